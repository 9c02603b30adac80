"""TensorFlow eager tensors and tf.Variable <-> safetensors tensors, through numpy (bfloat16 and float8 included)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from .._errors import UnsupportedTypeError
from .._format import FIELD
from . import numpy as np_adapter

__all__ = ["array_entry", "builder"]


def array_entry(value: Any, name: str, context: dict[str, Any]) -> tuple[Any, ...]:
    """Describe an eager tensor or a variable for the core writer, through its numpy value (exact dtype kept)."""
    fields: dict[str, Any] = {}
    if isinstance(value, tf.Variable):
        fields.update({FIELD.variable: True, FIELD.trainable: bool(value.trainable)})
        value = value.read_value()
    if value.dtype == tf.string or value.dtype == tf.resource or value.dtype == tf.variant:
        raise TypeError(f"TensorFlow tensors of dtype {value.dtype.name} are not stored")
    entry = np_adapter.array_entry(value.numpy(), name, context, "tensorflow")
    entry[3].update(fields)
    return entry


def builder(array: np.ndarray, fields: dict[str, Any]) -> Callable[[np.ndarray], Any]:
    """What builds a TensorFlow tensor (or tf.Variable, when it was saved from one) from a copy of `array`."""
    variable = fields.get(FIELD.variable) is True and fields.get(FIELD.framework) == "tensorflow"
    trainable = fields.get(FIELD.trainable, True)
    if variable and type(trainable) is not bool:
        raise ValueError("field 'trainable' must be a bool")

    def build(copy: np.ndarray) -> Any:
        try:
            tensor = tf.convert_to_tensor(copy)
        except (TypeError, ValueError) as e:
            raise UnsupportedTypeError(f"TensorFlow has no tensor of dtype {copy.dtype}; load with framework='numpy' ({e})") from None
        return tf.Variable(tensor, trainable=trainable) if variable else tensor

    return build

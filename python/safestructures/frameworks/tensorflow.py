"""TensorFlow eager tensors and tf.Variable <-> safetensors tensors, through numpy (bfloat16 and float8 included)."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from .._errors import UnsupportedTypeError
from . import numpy as np_adapter
from ._common import converting

__all__ = ["array_entry", "from_numpy"]


def array_entry(value: Any, name: str, context: dict[str, Any]) -> tuple[Any, ...]:
    """Describe an eager tensor or a variable for the core writer, through its numpy value (exact dtype kept)."""
    fields: dict[str, Any] = {}
    if isinstance(value, tf.Variable):
        fields.update(variable=True, trainable=bool(value.trainable))
        value = value.read_value()
    if value.dtype == tf.string or value.dtype == tf.resource or value.dtype == tf.variant:
        raise TypeError(f"TensorFlow tensors of dtype {value.dtype.name} are not stored")
    stored, shape, data, np_fields = np_adapter.array_entry(value.numpy(), name, context)
    np_fields.update(fw="tensorflow", **fields)
    return stored, shape, data, np_fields


def from_numpy(array: np.ndarray, fields: dict[str, Any], context: dict[str, Any]) -> Any:
    """A TensorFlow tensor (or tf.Variable, when it was saved from one) holding a copy of `array` (charged to the
    load's budget first)."""
    variable = fields.get("variable") is True and fields.get("fw") == "tensorflow"
    trainable = fields.get("trainable", True)
    if variable and type(trainable) is not bool:
        raise ValueError("field 'trainable' must be a bool")
    array = np_adapter.converted(array, fields, context, "tensorflow")
    with converting("tensorflow", fields, array.dtype):
        try:
            tensor = tf.convert_to_tensor(array)
        except (TypeError, ValueError) as e:
            raise UnsupportedTypeError(f"TensorFlow has no tensor of dtype {array.dtype}; load with framework='numpy' ({e})") from None
        return tf.Variable(tensor, trainable=trainable) if variable else tensor

"""PaddlePaddle tensors <-> safetensors tensors, through numpy. Paddle keeps bfloat16 as uint16 bits in numpy (and
reads a numpy uint16 array as bfloat16), so both are mapped explicitly; dtypes paddle lacks are refused."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np

from .._errors import FrameworkNotAvailableError, UnsupportedTypeError
from .._format import FIELD

if "paddle" not in sys.modules and "tensorflow" in sys.modules:
    # Importing paddle into a process that has imported TensorFlow kills it (a segmentation fault, seen with paddle
    # 3.3 and TensorFlow 2.21): refused instead.
    raise FrameworkNotAvailableError("paddle cannot be imported after tensorflow in the same process; load with framework='numpy'")

with warnings.catch_warnings():
    # paddle warns at import about build tools (ccache) it does not need here.
    warnings.simplefilter("ignore")
    import paddle

from . import numpy as np_adapter

__all__ = ["array_entry", "builder"]

_LOADABLE = {np.dtype(t) for t in (np.bool_, np.uint8, np.int8, np.int16, np.int32, np.int64, np.float16, np.float32, np.float64, np.complex64, np.complex128)}


def array_entry(value: Any, name: str, context: dict[str, Any]) -> tuple[Any, ...]:
    """Describe a paddle tensor for the core writer, through its numpy value (exact dtype kept)."""
    if value.dtype == paddle.bfloat16:
        array = value.numpy().view(ml_dtypes.bfloat16)
    else:
        try:
            array = value.numpy()
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"paddle tensors of dtype {value.dtype} are not stored ({e})") from None
    entry = np_adapter.array_entry(array, name, context, "paddle")
    if not value.stop_gradient:
        entry[3][FIELD.grad] = True
    return entry


def builder(array: np.ndarray, fields: dict[str, Any]) -> Callable[[np.ndarray], Any]:
    """What builds a paddle tensor from a copy of `array`, with the same dtype (bfloat16 included)."""
    native = array.dtype.newbyteorder("=")
    if native != ml_dtypes.bfloat16 and native not in _LOADABLE:
        # Notably uint16, which paddle would silently take for bfloat16 bits.
        raise UnsupportedTypeError(f"paddle has no tensor of dtype {native}; load with framework='numpy'")
    bits = native == ml_dtypes.bfloat16
    stop_gradient = not (fields.get(FIELD.grad) is True and fields.get(FIELD.framework) == "paddle")
    return lambda copy: paddle.to_tensor(copy.view(np.uint16) if bits else copy, stop_gradient=stop_gradient)

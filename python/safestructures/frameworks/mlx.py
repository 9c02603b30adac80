"""MLX arrays <-> safetensors tensors, through numpy (bfloat16 through its uint16 bits, which numpy's buffer protocol
cannot describe)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ml_dtypes
import mlx.core as mx
import numpy as np

from .._errors import UnsupportedTypeError
from .._format import DTYPE_NUMPY_NAMES
from . import numpy as np_adapter

__all__ = ["array_entry", "builder"]

# numpy dtype -> MLX dtype, for the safetensors dtypes (the core's table) MLX has: it names them as numpy and ml_dtypes
# do, but for bool (MLX's bool_).
_TO_MLX = {np.dtype(getattr(ml_dtypes, name, name)): getattr(mx, "bool_" if name == "bool" else name)
           for name in DTYPE_NUMPY_NAMES.values() if name == "bool" or hasattr(mx, name)}


def array_entry(value: Any, name: str, context: dict[str, Any]) -> tuple[Any, ...]:
    """Describe an MLX array for the core writer, through a numpy copy (exact dtype kept)."""
    array = np.array(value.view(mx.uint16)).view(ml_dtypes.bfloat16) if value.dtype == mx.bfloat16 else np.array(value)
    return np_adapter.array_entry(array, name, context, "mlx")


def builder(array: np.ndarray, fields: dict[str, Any]) -> Callable[[np.ndarray], Any]:
    """What builds an MLX array from a copy of `array`, with the same dtype (MLX would otherwise narrow float64 to
    float32)."""
    native = array.dtype.newbyteorder("=")
    dtype = _TO_MLX.get(native)
    if dtype is None:
        raise UnsupportedTypeError(f"MLX has no array of dtype {native}; load with framework='numpy'")
    return lambda copy: mx.array(copy, dtype=dtype)

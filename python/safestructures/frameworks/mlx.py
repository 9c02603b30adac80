"""MLX arrays <-> safetensors tensors, through numpy (bfloat16 through its uint16 bits, which numpy's buffer protocol
cannot describe)."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import mlx.core as mx
import numpy as np

from .._errors import UnsupportedTypeError
from . import numpy as np_adapter
from ._common import converting

__all__ = ["array_entry", "from_numpy"]

_TO_MLX = {
    np.dtype(np.bool_): mx.bool_,
    np.dtype(np.uint8): mx.uint8,
    np.dtype(np.uint16): mx.uint16,
    np.dtype(np.uint32): mx.uint32,
    np.dtype(np.uint64): mx.uint64,
    np.dtype(np.int8): mx.int8,
    np.dtype(np.int16): mx.int16,
    np.dtype(np.int32): mx.int32,
    np.dtype(np.int64): mx.int64,
    np.dtype(np.float16): mx.float16,
    np.dtype(np.float32): mx.float32,
    np.dtype(np.float64): mx.float64,
    np.dtype(np.complex64): mx.complex64,
    np.dtype(ml_dtypes.bfloat16): mx.bfloat16,
}


def array_entry(value: Any, name: str, context: dict[str, Any]) -> tuple[Any, ...]:
    """Describe an MLX array for the core writer, through a numpy copy (exact dtype kept)."""
    if value.dtype == mx.bfloat16:
        array = np.array(value.view(mx.uint16)).view(ml_dtypes.bfloat16)
    else:
        array = np.array(value)
    stored, shape, data, fields = np_adapter.array_entry(array, name, context)
    fields["fw"] = "mlx"
    return stored, shape, data, fields


def from_numpy(array: np.ndarray, fields: dict[str, Any], context: dict[str, Any]) -> Any:
    """An MLX array holding a copy of `array` (charged to the load's budget first) with the same dtype (MLX would
    otherwise narrow float64 to float32)."""
    native = array.dtype.newbyteorder("=")
    dtype = _TO_MLX.get(native)
    if dtype is None:
        raise UnsupportedTypeError(f"MLX has no array of dtype {native}; load with framework='numpy'")
    array = np_adapter.converted(array, fields, context, "mlx")
    with converting("mlx", fields, array.dtype):
        return mx.array(array, dtype=dtype)

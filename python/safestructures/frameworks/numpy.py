"""numpy arrays <-> safetensors tensors: the dtype table (ml_dtypes for bfloat16, float8, float6 and float4)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .. import _core
from .._errors import UnsupportedTypeError

__all__ = ["dtype_of", "numpy_dtype", "to_entry", "from_file"]

#: safetensors dtypes whose elements are smaller than a byte: ml_dtypes keeps one element per byte, the file packs them.
SUB_BYTE = frozenset({"F4", "F6_E2M3", "F6_E3M2"})


@functools.cache
def _tables() -> tuple[dict[np.dtype[Any], str], dict[str, np.dtype[Any]]]:
    # ml_dtypes is imported on first use, not at `import safestructures`.
    import ml_dtypes

    pairs: list[tuple[Any, str]] = [
        (np.bool_, "BOOL"),
        (np.uint8, "U8"),
        (np.int8, "I8"),
        (np.int16, "I16"),
        (np.uint16, "U16"),
        (np.float16, "F16"),
        (np.int32, "I32"),
        (np.uint32, "U32"),
        (np.float32, "F32"),
        (np.complex64, "C64"),
        (np.float64, "F64"),
        (np.int64, "I64"),
        (np.uint64, "U64"),
        (ml_dtypes.bfloat16, "BF16"),
        (ml_dtypes.float8_e5m2, "F8_E5M2"),
        (ml_dtypes.float8_e4m3fn, "F8_E4M3"),
        (ml_dtypes.float8_e8m0fnu, "F8_E8M0"),
        (ml_dtypes.float8_e4m3fnuz, "F8_E4M3FNUZ"),
        (ml_dtypes.float8_e5m2fnuz, "F8_E5M2FNUZ"),
        (ml_dtypes.float4_e2m1fn, "F4"),
        (ml_dtypes.float6_e2m3fn, "F6_E2M3"),
        (ml_dtypes.float6_e3m2fn, "F6_E3M2"),
    ]
    to_name = {np.dtype(t): name for t, name in pairs}
    to_dtype = {name: np.dtype(t) for t, name in pairs}
    assert set(to_dtype) == set(_core.DTYPES), "every safetensors dtype maps to exactly one numpy dtype"
    return to_name, to_dtype


def dtype_of(dtype: np.dtype[Any]) -> str | None:
    """The safetensors dtype name of a native-byte-order numpy dtype, or None when safetensors has no such dtype."""
    return _tables()[0].get(dtype)


def numpy_dtype(name: str) -> np.dtype[Any]:
    """The numpy dtype that holds a safetensors dtype (ml_dtypes types for BF16, F8_*, F6_* and F4)."""
    return _tables()[1][name]


def to_entry(name: str, value: Any) -> tuple[str, str, tuple[int, ...], np.ndarray]:
    """Describe one array for the core writer: (name, safetensors dtype, shape, array whose memory is written).

    Big-endian arrays are byte-swapped into a little-endian copy and sub-byte ones packed; every other array is
    written straight from its own memory, strided ones included.
    """
    if isinstance(value, np.ma.MaskedArray):
        raise UnsupportedTypeError(f"tensor {name!r}: a masked array's mask cannot be stored in a safetensors tensor")
    if isinstance(value, np.generic):
        value = np.asarray(value)
    elif not isinstance(value, np.ndarray):
        raise UnsupportedTypeError(f"tensor {name!r}: expected a numpy array, got {type(value).__module__}.{type(value).__qualname__}")
    array = np.asarray(value)
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and not np.little_endian):
        array = array.astype(array.dtype.newbyteorder("<"))
    dtype = dtype_of(array.dtype)
    if dtype is None:
        raise UnsupportedTypeError(f"tensor {name!r}: numpy dtype {array.dtype} has no safetensors dtype")
    shape = tuple(array.shape)
    if dtype in SUB_BYTE:
        codes = np.ascontiguousarray(array).view(np.uint8).tobytes()
        packed = np.frombuffer(_core.pack_sub_byte(dtype, codes), dtype=np.uint8)
        return name, dtype, shape, packed
    return name, dtype, shape, array


def from_file(buffer: Any, dtype: str, shape: tuple[int, ...], offset: int, nbytes: int) -> np.ndarray:
    """A numpy array over `nbytes` of `buffer` at `offset`: a zero-copy view, except for the sub-byte dtypes."""
    np_dtype = numpy_dtype(dtype)
    if dtype in SUB_BYTE:
        elements = int(np.prod(shape, dtype=np.uint64))
        packed = bytes(memoryview(buffer)[offset : offset + nbytes])
        codes = bytearray(_core.unpack_sub_byte(dtype, packed, elements))
        return np.frombuffer(codes, dtype=np_dtype).reshape(shape)
    return np.ndarray(shape, dtype=np_dtype, buffer=buffer, offset=offset)

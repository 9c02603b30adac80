"""numpy arrays <-> safetensors tensors: the dtype table (ml_dtypes for bfloat16, float8, float6 and float4), arrays
of dtypes safetensors lacks (stored as bytes with their numpy dtype in the schema), and numpy scalars."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _core
from .._errors import InvalidArgumentError, InvalidFileError, SafestructuresError, UnsupportedTypeError, quote, shown
from .._format import DTYPE_BITS, DTYPE_NUMPY_NAMES, FIELD
from ._common import byte_shape, charge, view_base, view_reach

__all__ = [
    "array_entry",
    "dtype_of",
    "from_file",
    "to_numpy",
    "numpy_dtype",
    "scalar_fields",
    "scalar_from_fields",
    "to_entry",
]

#: safetensors dtypes whose elements are smaller than a byte: ml_dtypes keeps one element per byte, the file packs them.
SUB_BYTE = {name: bits for name, bits in DTYPE_BITS.items() if bits < 8}



@functools.cache
def _tables() -> tuple[dict[np.dtype[Any], str], dict[str, np.dtype[Any]], dict[str, np.dtype[Any]]]:
    # ml_dtypes is imported on first use, not at `import safestructures`.
    import ml_dtypes

    # The core's table names each safetensors dtype's numpy dtype; the ones numpy lacks come from ml_dtypes.
    to_dtype = {name: np.dtype(getattr(ml_dtypes, numpy_name, numpy_name)) for name, numpy_name in DTYPE_NUMPY_NAMES.items()}
    to_name = {dtype: name for name, dtype in to_dtype.items()}
    # ml_dtypes types safetensors has no dtype for, stored as bytes and named by their ml_dtypes name.
    extras = {name: np.dtype(getattr(ml_dtypes, name)) for name in _core.ML_DTYPES_BYTE_NAMES if hasattr(ml_dtypes, name)}
    by_name = {dt.name: dt for dt in to_dtype.values()} | extras
    return to_name, to_dtype, by_name


def dtype_of(dtype: np.dtype[Any]) -> str | None:
    """The safetensors dtype name of a native-byte-order numpy dtype, or None when safetensors has no such dtype."""
    return _tables()[0].get(dtype)


def numpy_dtype(name: str) -> np.dtype[Any]:
    """The numpy dtype that holds a safetensors dtype (ml_dtypes types for BF16, F8_*, F6_* and F4)."""
    return _tables()[1][name]


@functools.cache
def _stored_as_is() -> dict[np.dtype[Any], str]:
    """{numpy dtype: its safetensors dtype} for the arrays array_entry stores as they are, without a check or a
    conversion (native little-endian, whole bytes): the dtypes of nearly every array saved."""
    return {dtype: name for dtype, name in _tables()[0].items()
            if name not in SUB_BYTE and np.little_endian and dtype.byteorder != ">"}


def _logical_name(dtype: np.dtype[Any]) -> str:
    """How the schema names a numpy dtype that is stored as bytes."""
    return dtype.name if dtype.name in _tables()[2] else dtype.str


def logical_dtype(name: Any) -> np.dtype[Any]:
    """The numpy dtype a file names; only plain numeric, string and datetime dtypes and ml_dtypes types are allowed."""
    if type(name) is not str:
        raise ValueError(f"a dtype must be named by a string, not {type(name).__name__}")
    known = _tables()[2].get(name)
    if known is not None:
        return known
    # The core's rule of the dtypes a file may name (numpy type strings of numeric, string and datetime dtypes): never
    # an object or structured dtype, which building from bytes would read pointers or fields from.
    if not name.isascii() or _core.byte_dtype_item_size(name) is None or name.startswith("torch."):
        raise ValueError(f"dtype {quote(name)} is not one that safestructures stores")
    dtype = np.dtype(name)
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"dtype {quote(name)} is not one that safestructures stores")
    return dtype


def _native(array: np.ndarray) -> np.ndarray:
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and not np.little_endian):
        return array.astype(array.dtype.newbyteorder("<"))
    return array


def _packed(name: str, dtype: str, array: np.ndarray) -> np.ndarray:
    bits = SUB_BYTE[dtype] * array.size
    if bits % 8:
        raise InvalidArgumentError(
            f"tensor {quote(name)}: {array.size} elements of {dtype} do not fill a whole number of bytes "
            f"(the element count times {SUB_BYTE[dtype]} bits must be a multiple of 8)",
            code="SubByteNotWhole",
        )
    codes = np.ascontiguousarray(array).view(np.uint8).tobytes()
    return np.frombuffer(_core.pack_sub_byte(dtype, codes), dtype=np.uint8)


def to_entry(name: str, value: Any) -> tuple[str, str, tuple[int, ...], np.ndarray]:
    """Describe one array of a flat file for the core writer: (name, safetensors dtype, shape, array to write).

    Big-endian arrays are byte-swapped into a little-endian copy and sub-byte ones packed; every other array is
    written straight from its own memory, strided ones included.
    """
    if isinstance(value, np.ma.MaskedArray):
        raise UnsupportedTypeError(f"tensor {quote(name)}: a masked array's mask cannot be stored in a safetensors tensor")
    if not isinstance(value, (np.ndarray, np.generic)):
        raise UnsupportedTypeError(f"tensor {quote(name)}: expected a numpy array, got {type(value).__module__}.{type(value).__qualname__}")
    array = _native(np.asarray(value))
    dtype = dtype_of(array.dtype)
    if dtype is None:
        raise UnsupportedTypeError(f"tensor {quote(name)}: numpy dtype {array.dtype} has no safetensors dtype")
    return name, dtype, tuple(array.shape), _packed(name, dtype, array) if dtype in SUB_BYTE else array


def _zeroed_padding(raw: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    """`raw` (the uint8 view of a contiguous array) with the padding bytes of x87 long doubles set to zero.

    An 80-bit long double sits in 12 or 16 bytes; the rest is whatever was in memory. Stored as is, it would leak
    process memory into the file and make equal arrays give different files.
    """
    base = dtype.type(0).real.dtype if dtype.kind == "c" else dtype
    if base.kind != "f" or base.itemsize not in (12, 16) or np.finfo(base).nmant != 63:
        return raw
    fixed = raw.copy().reshape(-1, base.itemsize)
    fixed[:, 10:] = 0
    return fixed.reshape(-1)


def array_entry(
    array: np.ndarray, name: str, context: dict[str, Any], framework: str = "numpy",
) -> tuple[str, tuple[int, ...], Any, dict[str, Any]]:
    """Describe an array met in nested data: (stored dtype, stored shape, array to write, schema fields). The other
    adapters describe their tensors through their numpy value, with the `framework` it was saved from.

    Arrays of a safetensors dtype are stored as themselves. Big-endian ones are stored little-endian with their
    numpy dtype in the schema (``"dtype": ">i4"``). Arrays of dtypes safetensors lacks (complex128, str, bytes,
    datetime64, long double, ml_dtypes' int4...) are stored as U8 bytes with ``"dtype"`` and ``"shape"`` in the
    schema. Raises TypeError for object and structured arrays.
    """
    dtype = array.dtype
    stored = _stored_as_is().get(dtype)
    if stored is not None:
        return stored, array.shape, array, {FIELD.framework: framework}
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind == "V" and dtype.name not in _tables()[2]:
        raise TypeError(f"numpy arrays of dtype {dtype} hold Python objects or records, which are not stored as tensors")
    native = _native(array)
    stored = dtype_of(native.dtype)
    shape = tuple(array.shape)
    fields: dict[str, Any] = {FIELD.framework: framework}
    if stored is not None:
        if native is not array:
            fields[FIELD.dtype] = dtype.str
        return stored, shape, _packed(name, stored, native) if stored in SUB_BYTE else native, fields
    raw = _zeroed_padding(np.ascontiguousarray(array).reshape(-1).view(np.uint8), dtype)
    fields.update({FIELD.dtype: _logical_name(dtype), FIELD.shape: list(shape)})
    return "U8", (raw.size,), raw, fields


def check_bools(buffer: Any, offset: int, nbytes: int, name: Any) -> None:
    """Refuses bool elements stored as a byte other than 0 or 1. Readers disagree on them: numpy and torch read any
    such byte as True, while JAX and TensorFlow keep it and read it by its value or its low bit (``jnp.where`` gives 0
    for a 2, ``tf.logical_not`` True for a 255, ``== True`` False for both)."""
    codes = np.frombuffer(buffer, dtype=np.uint8, count=nbytes, offset=offset)
    if nbytes and codes.max() > 1:
        first = int(np.argmax(codes > 1))
        raise InvalidFileError(f"tensor {quote(str(name))}: element {first} of a bool tensor holds the byte {int(codes[first])}, "
                               "which is no bool (0 or 1)")


def from_file(
    buffer: Any, dtype: str, shape: tuple[int, ...], offset: int, nbytes: int, name: str = "?",
    charge: Callable[[int, str], None] | None = None,
) -> np.ndarray:
    """A numpy array over `nbytes` of `buffer` at `offset`: a zero-copy view, except for the sub-byte dtypes, whose
    unpacked copy (one byte per element) is first passed to `charge(nbytes, what)` when given."""
    np_dtype = numpy_dtype(dtype)
    if dtype == "BOOL":
        check_bools(buffer, offset, nbytes, name)
    try:
        if dtype in SUB_BYTE:
            elements = int(np.prod(shape, dtype=np.uint64))
            if charge is not None:
                charge(elements, f"the unpacked {dtype} copy")
            packed = bytes(memoryview(buffer)[offset : offset + nbytes])
            codes = bytearray(_core.unpack_sub_byte(dtype, packed, elements))
            return np.frombuffer(codes, dtype=np_dtype).reshape(shape)
        # frombuffer (unlike ndarray(buffer=...)) holds a buffer export, so a bytearray under the arrays cannot be
        # resized or freed while they live. Its arguments are given by position, and a 1-D array is not reshaped:
        # keywords and a reshape each cost as much as the call itself, for every tensor of a load.
        count = nbytes // np_dtype.itemsize
        array = np.frombuffer(buffer, np_dtype, count, offset)
        return array if len(shape) == 1 and shape[0] == count else array.reshape(shape)
    except SafestructuresError:
        raise
    except ValueError as e:
        raise _no_numpy_shape(name, shape, e) from e


def _no_numpy_shape(name: Any, shape: Any, error: ValueError) -> UnsupportedTypeError:
    """The error of a valid file's tensor whose shape numpy cannot hold (over 64 dimensions, more than 2**63 bytes
    counting its zero dimensions out): a tensor this framework cannot hold, as torch's and JAX's refusals say, not a
    broken file (torch holds some of them)."""
    return UnsupportedTypeError(f"tensor {quote(str(name))} of shape {list(shape)} cannot be a numpy array: {error}")


def to_numpy(
    buffer: Any, dtype: str | None, shape: tuple[int, ...] | None, offset: int | None, nbytes: int | None,
    fields: dict[str, Any], context: dict[str, Any],
) -> np.ndarray:
    """The numpy array a schema tensor node stands for: a view of the stored bytes where the dtype allows.

    Nodes saved as views of a storage (torch tensors sharing memory) come back as views of one base array, so they
    share memory here too. Nodes of a framework-only dtype numpy lacks raise ValueError.
    """
    bases = context.setdefault("numpy_bases", {})
    if dtype is None:
        return _strided(view_base(bases, fields).reshape(-1), fields)
    logical = fields.get(FIELD.dtype)
    if type(logical) is str and logical.startswith("torch."):
        raise UnsupportedTypeError(f"{logical} has no numpy dtype; load this tensor with framework='torch'")
    target = None if logical is None else logical_dtype(logical)
    if target is not None and dtype == "U8" and FIELD.shape in fields and FIELD.stride not in fields:
        logical_shape, _count = byte_shape(fields, target, target.itemsize, nbytes)
        try:
            array = np.frombuffer(buffer, dtype=np.uint8, count=nbytes, offset=offset).view(target).reshape(logical_shape)
        except ValueError as e:
            raise _no_numpy_shape(fields.get(FIELD.name), logical_shape, e) from e
        if target.kind == "U":
            _check_code_points(buffer, target, offset, nbytes)
        elif target.kind == "b":
            check_bools(buffer, offset, nbytes, fields.get(FIELD.name))
    else:
        # The budget is only charged for the copies of sub-byte dtypes and byte swaps: the usual view, built for every
        # tensor of a load, makes no charging function.
        charged = functools.partial(charge, context, fields) if dtype in SUB_BYTE else None
        array = from_file(buffer, dtype, shape, offset, nbytes, fields.get(FIELD.name, "?"), charged)
        if target is not None and target.newbyteorder("=") != array.dtype.newbyteorder("="):
            raise ValueError(f"dtype {quote(str(logical))} does not match the stored dtype {dtype}")
        if target is not None and target != array.dtype:
            # A big-endian array: the file holds it little-endian, so it loads as a byte-swapped copy.
            charge(context, fields, array.nbytes, "the byte-swapped copy")
            array = array.astype(target)
    # A later view node looks into this array, flattened then (most tensors have no views: flattening each now would
    # cost every load a reshape per tensor).
    if FIELD.stride in fields:
        # With a stride, the stored tensor is a whole storage and the node a view of it.
        base = bases[fields.get(FIELD.name)] = array.reshape(-1)
        return _strided(base, fields)
    if array.flags.c_contiguous and array.dtype.itemsize:
        bases[fields.get(FIELD.name)] = array
    return array


def _check_code_points(buffer: Any, target: np.dtype[Any], offset: int, nbytes: int) -> None:
    """Refuses a str array whose UCS-4 code units hold a value past U+10FFFF: numpy builds the array without looking,
    and reading such an element raises SystemError (from every indexing, repr, tolist and `safestructures get`)."""
    units = np.frombuffer(buffer, dtype=np.dtype(np.uint32).newbyteorder(target.byteorder), count=nbytes // 4, offset=offset)
    past = np.flatnonzero(units > 0x10FFFF)
    if past.size:
        first = int(past[0])
        raise ValueError(f"element {first // (target.itemsize // 4)} of dtype {target.str} holds 0x{int(units[first]):X}, "
                         "which is not a Unicode code point (at most 0x10FFFF)")


def _strided(base: np.ndarray, fields: dict[str, Any]) -> np.ndarray:
    """The view a node describes (element offset, shape, element strides) of a 1-D base array."""
    offset, shape, stride, empty = view_reach(fields, base.size)
    if empty:
        return base[:0].reshape(shape)
    return np.lib.stride_tricks.as_strided(base[offset:], shape=shape, strides=[s * base.dtype.itemsize for s in stride])


def scalar_fields(value: Any) -> dict[str, Any]:
    """The schema fields of a numpy scalar: its dtype name and exact Python value, or its dtype string and raw bytes
    where a Python value would not be exact (NaN payloads, long double, datetime64, ...)."""
    dtype = value.dtype
    if dtype.hasobject or dtype.fields is not None:
        raise TypeError(f"numpy scalars of dtype {dtype} are not stored")
    if dtype.kind in "US":
        # np.str_ and np.bytes_ are str and bytes; their dtype follows from the value.
        return {FIELD.dtype: dtype.kind, "v": str(value) if dtype.kind == "U" else bytes(value)}
    plain = dtype in _tables()[0] or dtype.name in _tables()[2]
    if plain and (dtype.kind in "biu" or dtype.name in ("int2", "int4", "uint2", "uint4")):
        return {FIELD.dtype: dtype.name, "v": int(value) if dtype.kind == "V" else value.item()}
    if plain and dtype.kind in "fcV" and not np.isnan(value):
        # Widening to a Python float or complex is exact for every dtype of 64 bits or less.
        return {FIELD.dtype: dtype.name, "v": complex(value) if dtype.kind == "c" else float(value)}
    if dtype.kind == "V" and dtype.name not in _tables()[2]:
        raise TypeError(f"numpy scalars of dtype {dtype} are not stored")
    raw = _zeroed_padding(np.frombuffer(value.tobytes(), dtype=np.uint8), dtype)
    return {FIELD.dtype: _logical_name(dtype), "raw": raw.tobytes()}


def scalar_from_fields(fields: dict[str, Any]) -> Any:
    """The numpy scalar that :func:`scalar_fields` described."""
    name = fields[FIELD.dtype]
    if name == "U" or name == "S":
        value = fields["v"]
        if type(value) is not (str if name == "U" else bytes):
            raise TypeError(f"a numpy {'str_' if name == 'U' else 'bytes_'} scalar needs a {'str' if name == 'U' else 'bytes'} value")
        return np.str_(value) if name == "U" else np.bytes_(value)
    dtype = logical_dtype(name)
    if "raw" in fields:
        raw = fields["raw"]
        if type(raw) is not bytes or len(raw) != dtype.itemsize:
            raise ValueError(f"field 'raw' must be {dtype.itemsize} bytes")
        if dtype.kind == "U":
            _check_code_points(raw, dtype, 0, len(raw))
        if dtype.kind == "b" and raw[0] > 1:
            # As in bool tensors (check_bools): a byte that numpy reads as True and others by its value.
            raise ValueError(f"a numpy bool scalar holds the byte {raw[0]}, which is no bool (0 or 1)")
        return np.frombuffer(raw, dtype=dtype)[0]
    value = fields["v"]
    if type(value) not in (bool, int, float, complex):
        raise TypeError(f"a numpy scalar's value must be a number, not {type(value).__name__}")
    return _exact_scalar(dtype, name, value)


def _holds_ints(dtype: np.dtype[Any]) -> bool:
    """Whether ``dtype`` holds ints: numpy's own, or ml_dtypes' (numpy kind "V", like its floats), which ml_dtypes'
    ``iinfo`` knows and refuses every other dtype."""
    if dtype.kind in "iu":
        return True
    import ml_dtypes

    try:
        ml_dtypes.iinfo(dtype)
    except ValueError:
        return False
    return True


def _exact_scalar(dtype: np.dtype[Any], name: str, value: bool | int | float | complex) -> Any:
    """The scalar of `dtype` whose exact value `value` is (format.md: ``v`` is the scalar's exact value, as
    scalar_fields writes it). A value the dtype cannot hold exactly is refused: numpy would wrap it (``int4`` 100 is 4),
    round it, or read any number as a bool or a str (``"U3"`` 5 is ``'5'``), and a reader of the field itself (the C++
    API, another tool) would read another value than the load gives."""
    integral = _holds_ints(dtype)
    if dtype.kind == "b":
        expected: tuple[type, ...] = (bool,)
    elif integral:
        expected = (int,)
    elif dtype.kind == "f" or (dtype.kind == "V" and dtype.name in _tables()[2]):
        expected = (int, float)
    elif dtype.kind == "c":
        expected = (int, float, complex)
    else:
        raise ValueError(f"a numpy scalar of dtype {quote(name)} is saved by its bytes ('raw'), not by a value")
    if type(value) not in expected:
        raise TypeError(f"a numpy scalar of dtype {quote(name)} needs a value of type {' or '.join(t.__name__ for t in expected)}, "
                        f"not {type(value).__name__}")
    with np.errstate(all="ignore"):  # an overflow to inf is refused below, not warned about
        scalar = dtype.type(value)
    held = int(scalar) if integral else complex(scalar) if dtype.kind == "c" else bool(scalar) if dtype.kind == "b" else float(scalar)
    if held != value:
        raise ValueError(f"a numpy scalar of dtype {quote(name)} cannot hold the value {shown(value)} exactly (it would be {shown(held)})")
    return scalar

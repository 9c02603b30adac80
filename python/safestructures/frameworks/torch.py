"""PyTorch tensors <-> safetensors tensors: exact dtypes, Parameters and requires_grad, shared storage, CUDA, and the
torch.dtype / torch.device / torch.Size values."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy
import torch

from .._errors import SafestructuresError, UnsupportedTypeError, quote, shown
from .._format import DTYPE_BITS, DTYPE_NUMPY_NAMES, FIELD, TAG
from . import numpy as np_adapter
from ._common import byte_shape, charge, converting, framework_error, label, reach, view_base, view_reach

__all__ = ["array_entry", "reduce_value", "construct_value", "to_torch"]

# Names a file may give a torch.dtype: torch's own dtype attributes, read once from its namespace (never getattr with a
# name from a file: torch's module __getattr__ imports submodules such as torch._dynamo on demand).
DTYPES_BY_NAME: dict[str, torch.dtype] = {name: value for name, value in vars(torch).items() if isinstance(value, torch.dtype)}
# The safetensors dtype of each torch dtype that has one: torch names its dtypes as numpy and ml_dtypes do (the core's
# table), and those of less than a byte it holds two to a byte (float4_e2m1fn_x2, handled on its own), not one.
_TO_NAME: dict[torch.dtype, str] = {DTYPES_BY_NAME[numpy_name]: name for name, numpy_name in DTYPE_NUMPY_NAMES.items()
                                    if numpy_name in DTYPES_BY_NAME and DTYPE_BITS[name] >= 8}
_FROM_NAME = {name: dtype for dtype, name in _TO_NAME.items()}
# Dtypes safetensors lacks, stored as bytes with this name in the schema: numpy's dtype string where numpy has the
# dtype (so numpy loads them too), a torch name otherwise.
_LOGICAL: dict[torch.dtype, str] = {torch.complex128: "<c16", torch.complex32: "torch.complex32"}
_FROM_LOGICAL = {name: dtype for dtype, name in _LOGICAL.items()}


class _Memory:
    """Exposes a CPU tensor's memory to the core writer through __array_interface__ (any dtype, any strides), and
    keeps the tensor alive while the file is written. Its address is read from the tensor each time: code the walk
    runs later (a to_data, a __getstate__) may resize the tensor or replace its storage (``t.data = ...``, ``set_``),
    freeing the memory, and the walk's end reads it again to refuse that before any is read (save_walk.cpp).

    Its storage is held too, by an alias of the tensor: the memory is read after the walk, with the GIL released
    (the write, a background save's copy) or between calls to a stream's write(), while another thread, or that
    write(), may replace the tensor's storage, which would free the memory under the read. (An alias costs a third of
    what untyped_storage() does the first time it is asked of a tensor.)"""

    def __init__(self, tensor: torch.Tensor, itemsize: int, contiguous: bool | None = None) -> None:
        self._tensor = tensor
        self._storage_holder = tensor.detach()
        if contiguous is None:
            contiguous = tensor.is_contiguous()
        self._interface = {
            "data": None,
            "shape": tuple(tensor.shape),
            "strides": None if contiguous else tuple(s * itemsize for s in tensor.stride()),
            "typestr": f"|V{itemsize}",
            "version": 3,
        }

    @property
    def __array_interface__(self) -> dict[str, Any]:
        # torch moves a storage's memory whenever it resizes it (a new block, then the old one freed): an address kept
        # is memory kept. (The one dict, its address renewed: the walk reads it twice per tensor.)
        self._interface["data"] = (self._tensor.data_ptr(), False)
        return self._interface


def _on_cpu(tensor: torch.Tensor) -> torch.Tensor:
    return tensor if tensor.is_cpu else tensor.cpu()


def array_entry(tensor: torch.Tensor, name: str, context: dict[str, Any]) -> tuple[Any, ...]:
    """Describe a torch tensor for the core writer (see frameworks.array_entry).

    Memory shared between tensors is stored once: each tensor written registers the stretch of its storage it holds
    (a segment), and a later tensor of the same dtype whose elements all lie in a registered segment is written as a
    view of it (offset, shape, stride), loading back as a view of the same memory. A tensor is written as itself when
    it is contiguous, or when it is a permutation of a dense block (a transpose, written in C order); a sparser view
    (a step slice, a chunk of a wider tensor) writes the segment of storage it spans and views it. CUDA tensors are
    copied to host memory to be written.
    """
    fields: dict[str, Any] = {FIELD.framework: "torch"}
    # The common case is kept cheap (this runs once per tensor): a plain tensor is neither a Parameter nor
    # uninitialized, and only one that requires grad needs detaching before views are taken of it.
    plain = type(tensor) is torch.Tensor
    if not plain and isinstance(tensor, torch.nn.parameter.UninitializedTensorMixin):
        # A lazy module's parameter or buffer before its first forward: there is no data (torch raises on any use).
        raise TypeError("uninitialized parameters and buffers (of a lazy module) have no data to store")
    if not plain and isinstance(tensor, torch.nn.Parameter):
        fields.update({FIELD.param: True, FIELD.grad: tensor.requires_grad})
    elif tensor.requires_grad:
        fields[FIELD.grad] = True
    t = tensor if plain and not tensor.requires_grad else tensor.detach()
    if t.layout is not torch.strided or t.is_quantized or t.is_nested or t.is_meta:
        kind = next((test.removeprefix("is_") for test in ("is_quantized", "is_nested", "is_meta") if getattr(t, test)), None)
        raise TypeError(f"{kind} torch tensors are not stored" if kind else f"torch tensors with layout {t.layout} are not stored")
    dtype = t.dtype
    if dtype not in _TO_NAME and dtype not in _LOGICAL and dtype != torch.float4_e2m1fn_x2:
        raise TypeError(f"torch dtype {dtype} has no stored form")
    if t.is_conj() or t.is_neg():
        # A lazy conjugate (x.conj()) or negative (x.conj().imag) view holds the unconjugated, unnegated elements in
        # memory, with a bit saying to flip them on use: its memory is not its value, and shares storage with tensors
        # that hold other values. Written from the copy that holds its value, which shares with nothing.
        t = t.resolve_conj().resolve_neg()
    itemsize = t.element_size()
    contiguous = t.is_contiguous()
    if dtype in _TO_NAME and t.numel():
        # The storage is identified by its address, computed from the tensor's own (untyped_storage() would build a
        # Python storage object per tensor); a CPU tensor's key leaves out its device, which costs an object too.
        offset = t.storage_offset()
        base = t.data_ptr() - offset * itemsize
        key = (base, dtype) if t.is_cpu else (t.device, base, dtype)
        segments: list[tuple[str, int, int]] = context.setdefault("torch_segments", {}).setdefault(key, [])
        low, high = (offset, offset + t.numel() - 1) if contiguous else reach(offset, t.shape, t.stride())
        for segment_name, start, end in segments:
            if start <= low and high <= end:
                fields.update({FIELD.storage: segment_name, FIELD.offset: offset - start, FIELD.shape: list(t.shape),
                               FIELD.stride: list(t.stride())})
                return None, (), None, fields
        if contiguous:
            segments.append((name, low, high))
        elif high - low + 1 > t.numel():
            segment = _on_cpu(t.as_strided((high - low + 1,), (1,), low))
            segments.append((name, low, high))
            fields.update({FIELD.offset: t.storage_offset() - low, FIELD.shape: list(t.shape), FIELD.stride: list(t.stride())})
            return _TO_NAME[dtype], (segment.numel(),), _Memory(segment, itemsize), fields
    on_cpu = _on_cpu(t)
    if on_cpu is not t:
        t, contiguous = on_cpu, on_cpu.is_contiguous()
    if dtype in _LOGICAL:
        # Both are complex: copied through their real view (torch warns when it allocates complex32) and flattened
        # before the byte view (torch cannot view a 0-d tensor as a dtype of another element size).
        raw = torch.view_as_real(t).contiguous().reshape(-1).view(torch.uint8)
        fields.update({FIELD.dtype: _LOGICAL[dtype], FIELD.shape: list(t.shape)})
        return "U8", (raw.numel(),), _Memory(raw, 1), fields
    if dtype == torch.float4_e2m1fn_x2:
        # Two 4-bit elements per byte, element 0 in the low nibble: safetensors' F4 with the last dimension doubled.
        packed = t.contiguous()
        shape = tuple(packed.shape[:-1]) + (packed.shape[-1] * 2,) if packed.dim() else (2,)
        fields[FIELD.pairs] = True
        if not packed.dim():
            # A 0-d pair is stored as F4 [2]; the node keeps the shape to give back.
            fields[FIELD.shape] = []
        return "F4", shape, _Memory(packed.view(torch.uint8), 1), fields
    return _TO_NAME[dtype], tuple(t.shape), _Memory(t, itemsize, contiguous), fields


# The numpy dtype torch.from_numpy takes for a torch dtype, where there is one: the tensor is then made typed, with no
# view(dtype) after (other dtypes go through uint8).
_NUMPY_OF: dict[torch.dtype, Any] = {DTYPES_BY_NAME[name]: numpy.dtype(name).type for name in (
    "bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64", "complex64", "complex128")}


def _from_buffer(buffer: Any, dtype: torch.dtype, count: int, offset: int, charge: Callable[[int, str], None]) -> torch.Tensor:
    if count == 0:
        # Through uint8: torch.empty of complex32 warns that ComplexHalf is experimental.
        return torch.empty(0, dtype=torch.uint8).view(dtype)
    nbytes = count * dtype.itemsize
    if not memoryview(buffer).readonly:
        # Through numpy.frombuffer, which holds a buffer export for as long as the tensor lives, so a bytearray (or a
        # memoryview of one) under the tensor cannot be resized or freed; torch.frombuffer holds only a reference, and
        # bytearray.clear() would leave its tensors over freed memory.
        typed = _NUMPY_OF.get(dtype)
        array = numpy.frombuffer(buffer, dtype=typed or numpy.uint8, count=count if typed else nbytes, offset=offset)
        tensor = torch.from_numpy(array)
        if tensor.data_ptr() % dtype.itemsize == 0:
            return tensor if typed is not None else tensor.view(dtype)
    # torch cannot view read-only memory (bytes), and its kernels assume elements aligned to their size (a complex128
    # tensor, stored as U8 at any offset, crashes the process when not 16-byte aligned): such loads copy, into memory
    # that torch allocates, charged to the load's budget first.
    charge(nbytes, "a copy")
    copy = torch.empty(nbytes, dtype=torch.uint8)
    copy.numpy()[...] = numpy.frombuffer(buffer, dtype=numpy.uint8, count=nbytes, offset=offset)
    return copy.view(dtype)


def check_device(device: str) -> None:
    """Refuses a device torch cannot use here (before anything is read), with torch's own reason."""
    try:
        torch.empty(0, device=device)
    except Exception as e:  # RuntimeError, AssertionError; ModuleNotFoundError for a backend not registered ("privateuseone")
        raise ValueError(f"device {device!r} cannot be used here: {e}") from None


def _finish(tensor: torch.Tensor, fields: dict[str, Any], context: dict[str, Any]) -> torch.Tensor:
    device = context.get("device") or "cpu"
    param = fields.get(FIELD.param)
    grad = fields.get(FIELD.grad, True) if param else fields.get(FIELD.grad)
    if device == "cpu" and param is None and grad is None:
        return tensor
    # Flags are bools, as saved: "param": "false" is no Parameter here while truthiness made it one (and a reader of
    # the field sees a str).
    if param is not None and type(param) is not bool:
        raise ValueError("field 'param' must be a bool")
    if grad is not None and type(grad) is not bool:
        raise ValueError("field 'grad' must be a bool")
    if device == "cpu" and not param and grad is not True:
        return tensor
    if grad is True and not (tensor.is_floating_point() or tensor.is_complex()):
        raise ValueError("only floating point and complex tensors can require gradients")
    with converting("torch", fields, tensor.dtype):
        if device != "cpu":
            # A copy on the device, at the view's full size where it repeats elements (an expanded tensor).
            charge(context, fields, tensor.numel() * tensor.element_size(), f"the copy on {device}")
            tensor = tensor.to(device)
        if param:
            return torch.nn.Parameter(tensor, requires_grad=grad)
        if grad is True:
            tensor.requires_grad_(True)
    return tensor


def to_torch(
    buffer: Any, dtype: str | None, shape: tuple[int, ...] | None, offset: int | None, nbytes: int | None,
    fields: dict[str, Any], context: dict[str, Any],
) -> torch.Tensor:
    """The torch tensor a schema node stands for: a zero-copy view of the file's bytes (writable, copy-on-write) where
    the buffer allows, else a copy charged to the load's budget. Whatever torch raises comes out as
    UnsupportedTypeError naming the tensor."""
    charged = functools.partial(charge, context, fields)
    bases: dict[str, torch.Tensor] = context.setdefault("torch_bases", {})
    if dtype is None:
        return _finish(_strided(view_base(bases, fields), fields), fields, context)
    logical = fields.get(FIELD.dtype)
    if logical is not None:
        target = _FROM_LOGICAL.get(logical) or _numpy_to_torch(logical)
        if dtype == "U8" and FIELD.shape in fields and FIELD.stride not in fields:
            logical_shape, count = byte_shape(fields, target, target.itemsize, nbytes)
            if target == torch.bool:
                np_adapter.check_bools(buffer, offset, nbytes, fields.get(FIELD.name))
            numpy_dtype = None if logical in _FROM_LOGICAL else np_adapter.logical_dtype(logical)
            with converting("torch", fields, target):
                if numpy_dtype is not None and not numpy_dtype.isnative:
                    # Bytes of another byte order (a ">c16" array is saved as its own bytes, which numpy reads as such):
                    # swapped into a copy, which torch, holding native elements only, would otherwise read as other values.
                    charge(context, fields, nbytes, "the byte-swapped copy")
                    raw = numpy.frombuffer(buffer, dtype=numpy.uint8, count=nbytes, offset=offset)
                    tensor = torch.from_numpy(raw.view(numpy_dtype).astype(numpy_dtype.newbyteorder("="))).reshape(logical_shape)
                else:
                    tensor = _from_buffer(buffer, target, count, offset, charged).reshape(logical_shape)
            return _finish(tensor, fields, context)
        # A big-endian numpy array: the file holds it little-endian, which is all torch has. A view node's stored
        # tensor must be of its dtype too, as numpy requires: bytes viewed under another dtype's name are refused, not
        # loaded as their bytes.
        tensor = _stored(buffer, dtype, shape, offset, nbytes, fields, charged)
        if tensor.dtype != target:
            raise ValueError(f"dtype {quote(str(logical))} does not match the stored dtype {dtype}")
    else:
        tensor = _stored(buffer, dtype, shape, offset, nbytes, fields, charged)
    if FIELD.stride in fields or tensor.is_contiguous():
        bases[fields.get(FIELD.name)] = tensor
    return _finish(_strided(tensor, fields) if FIELD.stride in fields else tensor, fields, context)


def _stored(
    buffer: Any, dtype: str, shape: tuple[int, ...], offset: int, nbytes: int, fields: dict[str, Any],
    charge: Callable[[int, str], None],
) -> torch.Tensor:
    if dtype == "F4":
        # torch holds F4 as float4_e2m1fn_x2, two elements per byte (as safetensors.torch does): the last dimension
        # halves.
        if not shape or shape[-1] % 2:
            raise UnsupportedTypeError(f"an F4 tensor of shape {list(shape)} has no torch form: float4_e2m1fn_x2 needs an even last dimension")
        packed = tuple(shape[:-1]) + (shape[-1] // 2,)
        if fields.get(FIELD.pairs) and fields.get(FIELD.shape) == []:
            packed = ()
        with converting("torch", fields, "F4"):
            return _from_buffer(buffer, torch.uint8, nbytes, offset, charge).view(torch.float4_e2m1fn_x2).reshape(packed)
    torch_dtype = _FROM_NAME.get(dtype)
    if torch_dtype is None:
        raise UnsupportedTypeError(f"safetensors dtype {dtype} has no torch dtype; load with framework='numpy'")
    if torch_dtype == torch.bool:
        np_adapter.check_bools(buffer, offset, nbytes, fields.get(FIELD.name))
    try:
        return _from_buffer(buffer, torch_dtype, math.prod(shape), offset, charge).reshape(shape)
    except SafestructuresError:
        raise
    except Exception as e:
        # (Inline rather than through converting(): this runs once per tensor.)
        raise framework_error("torch", fields, torch_dtype, e) from e


def _strided(base: torch.Tensor, fields: dict[str, Any]) -> torch.Tensor:
    if base.dtype == torch.float4_e2m1fn_x2:
        # A view's offset, shape and stride count F4 elements (as numpy reads them); torch holds them two to a byte and
        # would count pairs, reading other elements.
        raise UnsupportedTypeError(f"{label(fields)} views F4 elements, which have no torch form: torch holds them in pairs; "
                                   "load with framework='numpy'")
    size = base.untyped_storage().nbytes() // max(base.element_size(), 1)
    offset, shape, stride, _empty = view_reach(fields, size)
    with converting("torch", fields, base.dtype):
        # torch refuses what numpy allows: negative strides, sizes past 2**63.
        return base.as_strided(shape, stride, offset)


def _numpy_to_torch(name: str) -> torch.dtype:
    dtype = np_adapter.logical_dtype(name)
    try:
        return torch.from_numpy(numpy.empty(0, dtype=dtype.newbyteorder("="))).dtype
    except TypeError as e:
        # A dtype numpy holds and torch lacks (str, datetime64, int4...): a tensor this framework cannot hold, as JAX and
        # TensorFlow refuse it, not a broken file.
        raise UnsupportedTypeError(f"numpy dtype {name} has no torch dtype; load with framework='numpy'") from e


def reduce_value(value: Any) -> tuple[str, dict[str, Any]]:
    """The (tag, fields) of a torch.dtype, torch.device or torch.Size."""
    if isinstance(value, torch.dtype):
        return TAG.TorchDtype, {FIELD.name: str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return TAG.TorchDevice, {FIELD.type: value.type, "index": value.index}
    if type(value) is torch.Size:
        return TAG.TorchSize, {"dims": list(value)}
    raise TypeError(f"{type(value).__qualname__} is not a torch value safestructures stores")


# Device types a file may give a torch.device (torch's list, less the deprecated "mkldnn", which warns).
_DEVICE_TYPES = frozenset(("cpu", "cuda", "mps", "xla", "meta", "hpu", "xpu", "mtia", "ipu", "lazy", "fpga", "vulkan",
                           "opengl", "opencl", "ideep", "hip", "ve", "maia", "privateuseone"))


def _device_type(kind: str) -> bool:
    if kind in _DEVICE_TYPES:
        return True
    try:
        # A backend registered through torch.utils.rename_privateuse1_backend ("npu"...) saves under its own name.
        return kind == torch._C._get_privateuse1_backend_name()
    except Exception:
        return False


def construct_value(tag: str, fields: dict[str, Any]) -> Any:
    """Rebuild what reduce_value described; names are looked up in fixed tables of torch's dtypes and device types."""
    if tag == TAG.TorchDtype:
        name = fields[FIELD.name]
        value = DTYPES_BY_NAME.get(name) if type(name) is str else None
        if value is None:
            raise ValueError(f"{shown(name)} is not a torch dtype")
        return value
    if tag == TAG.TorchDevice:
        kind, index = fields[FIELD.type], fields.get("index")
        if type(kind) is not str or (index is not None and type(index) is not int):
            raise TypeError("a torch.device needs a str 'type' and an int or null 'index'")
        if not _device_type(kind):
            raise ValueError(f"{shown(kind)} is not a torch device type")
        try:
            device = torch.device(kind, index) if index is not None else torch.device(kind)
        except Exception as e:
            raise ValueError(f"torch cannot make device {shown(kind)}: {type(e).__name__}: {shown(str(e))}") from None
        if device.index != index:
            # torch keeps a device index in 8 bits and wraps a larger one without a word (index 257 is cuda:1, 255 no
            # index at all): the file's index is refused rather than read as another device.
            raise ValueError(f"torch cannot make device {shown(kind)} of index {index}: it would be {shown(str(device))}")
        return device
    dims = fields["dims"]
    if type(dims) is not list or any(type(d) is not int for d in dims):
        raise TypeError("a torch.Size needs a list of ints")
    try:
        return torch.Size(dims)
    except Exception as e:
        raise ValueError(f"torch cannot make a torch.Size of {shown(dims)}: {type(e).__name__}: {shown(str(e))}") from None

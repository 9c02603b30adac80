"""What every framework adapter shares: how messages name a tensor node, charging the load's byte budget, turning a
framework's own errors into safestructures errors, and checking the nodes stored as bytes and the reach of view nodes."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .. import _core
from .._errors import SafestructuresError, UnsupportedTypeError, quote, shown
from .._format import FIELD

__all__ = ["byte_shape", "charge", "converting", "framework_error", "label", "reach", "view_base", "view_reach"]


def label(fields: dict[str, Any]) -> str:
    """How messages name a tensor node, from its fields alone (the loader adds the path): its tensor, or the storage
    a view looks into."""
    name, storage = fields.get(FIELD.name), fields.get(FIELD.storage)
    if type(name) is str:
        return f"tensor {quote(name)}"
    return f"a view of tensor {quote(storage) if type(storage) is str else shown(storage)}"


def charge(context: dict[str, Any], fields: dict[str, Any], nbytes: int, what: str) -> None:
    """Charges `nbytes`, about to be allocated for a copy of (or a view materialised from) the node's tensor, to the
    load's byte budget; loads without a budget (flat loads, internal callers) are not charged."""
    budget = context.get("budget")
    if budget is not None:
        budget.charge(int(nbytes), f"{what} of {label(fields)}")


def framework_error(framework: str, fields: dict[str, Any], dtype: Any, error: Exception) -> UnsupportedTypeError:
    """What a load raises for an error `framework` raised while building the node's tensor: UnsupportedTypeError
    naming the tensor."""
    of = f" of dtype {dtype}" if dtype is not None else ""
    return UnsupportedTypeError(
        f"{label(fields)}{of} cannot be built as a {framework} tensor ({type(error).__name__}: {shown(str(error))}); "
        "load with framework='numpy'"
    )


@contextmanager
def converting(framework: str, fields: dict[str, Any], dtype: Any = None) -> Iterator[None]:
    """Around a framework's own calls while building a tensor: whatever it raises (a JaxRuntimeError, a RuntimeError,
    a MemoryError...) comes out as UnsupportedTypeError naming the tensor; safestructures' own errors pass."""
    try:
        yield
    except SafestructuresError:
        raise
    except Exception as e:
        raise framework_error(framework, fields, dtype, e) from e


def byte_shape(fields: dict[str, Any], dtype: Any, itemsize: int, nbytes: int) -> tuple[list[int], int]:
    """The shape (field 'shape') of a node stored as bytes, checked, and its element count, whose elements of
    `itemsize` bytes (of `dtype`, for messages) must fill the `nbytes` stored."""
    shape = fields[FIELD.shape]
    if type(shape) is not list or any(type(d) is not int or d < 0 for d in shape):
        raise ValueError("field 'shape' must be a list of non-negative ints")
    count = math.prod(shape)
    if count * itemsize != nbytes:
        raise ValueError(f"shape {shape} of {dtype} needs {count * itemsize} bytes, the tensor holds {nbytes}")
    return shape, count


def view_base(bases: dict[str, Any], fields: dict[str, Any]) -> Any:
    """The base a view node looks into, among the `bases` the tensors loaded before it defined."""
    storage = fields.get(FIELD.storage)
    if storage not in bases:
        raise ValueError(f"the tensor views storage {quote(str(storage))}, which is not defined before it")
    return bases[storage]


def reach(offset: int, shape: Sequence[int], stride: Sequence[int]) -> tuple[int, int]:
    """The lowest and highest element a non-empty strided view reaches."""
    low = offset + sum((n - 1) * s for n, s in zip(shape, stride) if s < 0)
    high = offset + sum((n - 1) * s for n, s in zip(shape, stride) if s > 0)
    return low, high


def view_reach(fields: dict[str, Any], size: int) -> tuple[int, list[int], list[int], bool]:
    """The (offset, shape, stride) of a view node, checked against its storage of `size` elements, and whether the
    view is empty."""
    offset, shape, stride = fields.get(FIELD.offset), fields.get(FIELD.shape), fields.get(FIELD.stride)
    if type(offset) is not int or offset < 0:
        raise ValueError("a view's 'offset' must be a non-negative int")
    if type(shape) is not list or any(type(n) is not int or n < 0 for n in shape):
        raise ValueError("a view's 'shape' must be a list of non-negative ints")
    if type(stride) is not list or len(stride) != len(shape) or any(type(s) is not int for s in stride):
        raise ValueError("a view's 'stride' must be a list of ints, one per dimension")
    empty = any(n == 0 for n in shape)
    if not all(-(2**63) <= v < 2**63 for v in (offset, size, *shape, *stride)):  # past 64 bits: outside any storage
        raise ValueError(f"a view of shape {shape} and stride {stride} at offset {offset} reaches outside its storage of {size} elements")
    problem = _core.view_reach_problem(offset, shape, stride, size)
    if problem:
        raise ValueError(problem)
    return offset, shape, stride, empty

"""What every framework adapter shares: how messages name a tensor node, charging the load's byte budget, turning a
framework's own errors into safestructures errors, and checking the reach of a view node."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .._errors import SafestructuresError, UnsupportedTypeError, quote, shown

__all__ = ["charge", "converting", "framework_error", "label", "view_reach"]


def label(fields: dict[str, Any]) -> str:
    """How messages name a tensor node, from its fields alone (the loader adds the path): its tensor, or the storage
    a view looks into."""
    name, storage = fields.get("name"), fields.get("storage")
    if type(name) is str:
        return f"tensor {quote(name)}"
    return f"a view of tensor {quote(storage) if type(storage) is str else shown(storage)}"


def charge(context: dict[str, Any], nbytes: int, fields: dict[str, Any], what: str = "a copy") -> None:
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


def view_reach(fields: dict[str, Any]) -> tuple[int, list[int], list[int], int, int]:
    """The (offset, shape, stride) of a view node, checked, and the lowest and highest element it reaches (low > high
    for an empty view)."""
    offset, shape, stride = fields.get("offset"), fields.get("shape"), fields.get("stride")
    if type(offset) is not int or offset < 0:
        raise ValueError("a view's 'offset' must be a non-negative int")
    if type(shape) is not list or any(type(n) is not int or n < 0 for n in shape):
        raise ValueError("a view's 'shape' must be a list of non-negative ints")
    if type(stride) is not list or len(stride) != len(shape) or any(type(s) is not int for s in stride):
        raise ValueError("a view's 'stride' must be a list of ints, one per dimension")
    if any(n == 0 for n in shape):
        return offset, shape, stride, 1, 0
    low = offset + sum((n - 1) * s for n, s in zip(shape, stride) if s < 0)
    high = offset + sum((n - 1) * s for n, s in zip(shape, stride) if s > 0)
    if low < 0:
        raise ValueError(f"a view of shape {shape} and stride {stride} at offset {offset} reaches before its storage")
    return offset, shape, stride, low, high

"""Framework adapters, one module per framework, each imported only when its tensors are met or asked for.

Saving: :func:`array_entry` describes any framework's tensor for the C++ walker. Loading: :func:`make_tensor` builds
each tensor node in the framework the caller asked for, or else in the one it was saved from when that framework is
already imported (a file never makes the load import one), or else as numpy. Every copy an adapter makes of file
bytes, and every view it materialises, is charged to the load's byte budget before it is made; every error a
framework raises while converting comes out as a SafestructuresError naming the tensor.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from .._errors import FrameworkNotAvailableError, shown
from .._format import FIELD
from .._progress import reading_tensor
from ._common import charge, converting

__all__ = [
    "ALIASES",
    "FRAMEWORKS",
    "FrameworkNotAvailableError",
    "array_entry",
    "canonical",
    "framework_of",
    "is_imported",
    "make_tensor",
    "require",
]

FRAMEWORKS = ("numpy", "torch", "tensorflow", "jax", "paddle", "mlx")
# The short names safestructures 1.0.0 and safetensors' ``safe_open(..., framework=...)`` use, and what they mean:
# the one table of framework aliases (flax arrays are jax arrays).
ALIASES = {"np": "numpy", "pt": "torch", "tf": "tensorflow", "flax": "jax"}


def known_names() -> str:
    """Every accepted framework name, for messages: each framework with its short spellings."""
    shorts: dict[str, list[str]] = {}
    for alias, name in ALIASES.items():
        shorts.setdefault(name, []).append(alias)
    return ", ".join(f"{name!r}" + "".join(f" / {a!r}" for a in shorts.get(name, ())) for name in FRAMEWORKS)


def canonical(framework: str | None) -> str | None:
    """The framework `framework` names (``"pt"`` -> ``"torch"``...), None for None; ValueError for an unknown name."""
    if framework is None or framework in FRAMEWORKS:
        return framework
    name = ALIASES.get(framework) if isinstance(framework, str) else None
    if name is None:
        raise ValueError(f"unknown framework {framework!r}; expected None or one of {known_names()}")
    return name


# The module whose presence in sys.modules means a framework is imported.
_MODULE = {**{name: name for name in FRAMEWORKS}, "mlx": "mlx.core"}
# The top-level module of a tensor class -> (its framework, the names of the framework's tensor types). numpy's are
# matched exactly (an ndarray subclass such as a masked array is not a tensor), the others with their subclasses.
_TENSOR_TYPES = {"numpy": ("numpy", ("ndarray", "memmap")), "torch": ("torch", ("Tensor",)),
                 "tensorflow": ("tensorflow", ("Tensor", "Variable")), "keras": ("tensorflow", ("Tensor", "Variable")),
                 "jax": ("jax", ("Array",)), "jaxlib": ("jax", ("Array",)), "paddle": ("paddle", ("Tensor",)),
                 "mlx": ("mlx", ("array",))}


def is_imported(framework: str) -> bool:
    """Whether the process has already imported `framework` (a load never imports one a file names)."""
    return _MODULE[framework] in sys.modules


def require(framework: str) -> Any:
    """The adapter module of `framework`, importing the framework itself; a clear error when it is not installed."""
    if framework not in FRAMEWORKS:
        return require(canonical(framework))  # type: ignore[arg-type]
    try:
        return importlib.import_module(f".{framework}", __name__)
    except FrameworkNotAvailableError:
        raise
    except ModuleNotFoundError as e:
        raise FrameworkNotAvailableError(
            f"tensors were asked for as {framework}, which is not installed here ({e}); load with framework='numpy'"
        ) from e


def framework_of(cls: type) -> str | None:
    """The framework whose tensor type `cls` is, judged only from frameworks already imported (never imports one)."""
    framework, names = _TENSOR_TYPES.get(cls.__module__.split(".", 1)[0], (None, ()))
    module = sys.modules.get(_MODULE[framework]) if framework is not None else None
    if module is None:
        return None
    types = tuple(getattr(module, name) for name in names)
    return framework if (cls in types if framework == "numpy" else issubclass(cls, types)) else None


_NUMPY_ADAPTER = f"{__name__}.numpy"
# Tensor type -> its adapter's array_entry: one dict lookup per tensor instead of classifying and importing each time.
_ENTRY_BY_TYPE: dict[type, Any] = {}


def array_entry(obj: Any, name: str, context: dict[str, Any]) -> tuple[Any, ...]:
    """(stored dtype or None, stored shape, object whose memory is written, schema fields) for any tensor."""
    cls = type(obj)
    entry = _ENTRY_BY_TYPE.get(cls)
    if entry is None:
        framework = framework_of(cls)
        if framework is None:
            raise TypeError(f"{cls.__module__}.{cls.__qualname__} is not a tensor type safestructures stores")
        entry = _ENTRY_BY_TYPE[cls] = require(framework).array_entry
    return entry(obj, name, context)


def make_tensor(
    buffer: Any, dtype: str | None, shape: tuple[int, ...] | None, offset: int | None, nbytes: int | None,
    fields: dict[str, Any], context: dict[str, Any],
) -> Any:
    """The tensor a schema node stands for: in the framework the load asked for; with none asked for, in the one it was
    saved from when that framework is already imported, else as numpy."""
    if nbytes:
        reading_tensor(nbytes)  # a load shown on a progress bar advances by each tensor of the file it builds
    saved = fields.get(FIELD.framework, "numpy")
    if saved not in FRAMEWORKS:
        raise ValueError(f"unknown framework {shown(saved)}")
    target = context.get("framework") or (saved if is_imported(saved) else "numpy")
    if target == "torch":
        return require("torch").to_torch(buffer, dtype, shape, offset, nbytes, fields, context)
    # Found in sys.modules after the first load: an import statement per tensor costs a tiny load a tenth of its time.
    np_adapter = sys.modules.get(_NUMPY_ADAPTER)
    if np_adapter is None:
        from . import numpy as np_adapter

    array = np_adapter.to_numpy(buffer, dtype, shape, offset, nbytes, fields, context)
    if target == "numpy":
        return array
    # The adapter refuses a dtype its framework lacks before anything is copied. It builds its copy from the array in
    # native byte order and C-contiguous, copied first where it is not (a zero-stride view of a few bytes is
    # materialised at its full size): each copy is charged to the load's budget before it is made.
    build = require(target).builder(array, fields)
    if not array.dtype.isnative or not array.flags.c_contiguous:
        charge(context, fields, array.nbytes, "a contiguous copy")
        array = array.astype(array.dtype.newbyteorder("="), order="C")
    charge(context, fields, array.nbytes, f"the {target} copy")
    with converting(target, fields, array.dtype):
        return build(array)

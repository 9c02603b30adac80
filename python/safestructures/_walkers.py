"""The bridge to the C++ walkers: the hooks they call back into (installed once, at import), each load's checked
arguments and context (framework, device, the classes it may build, its byte budget), saving to and loading from the
bytes of a file, and the data of a file without a v2 schema (1.0.0, or plain) from its tensor table."""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from typing import Any

from . import _core, _progress, _registry, _types, _v1, frameworks, plugins as _plugins
from ._errors import InvalidFileError, SafestructuresError, quote, raise_reading
from ._flat import _check_metadata
from ._format import FIELD
from ._limits import DEFAULT_MAX_DEPTH, DEFAULT_MAX_HEADER_SIZE, DEFAULT_MAX_NODES, ByteBudget, default_max_bytes
from ._source import V1, file_format

__all__ = ["default_context", "given_defaults", "load", "load_arguments", "load_context", "save", "unstructured"]


def default_context(file_size: int) -> dict[str, Any]:
    """The context of a load that takes every default (what :func:`load_context` checks and makes of the other
    arguments): the core asks for it only when a load needs it (a constructor, an adapter), when given None."""
    return {"names": _registry.registered_names(), "strict": False, "framework": None, "device": "cpu", "plugins": {},
            "budget": ByteBudget(default_max_bytes(file_size))}


# The adapters are looked up at each call, so that a test can stand in for one.
_core.set_hooks(
    {
        "classify": _types.classify,
        "reduce": _types.reduce,
        "array_entry": lambda *args: frameworks.array_entry(*args),
        "factory_name": _types.factory_name,
        "construct": _types.CONSTRUCT,
        "factories": _types.FACTORIES,
        "make_tensor": lambda *args: frameworks.make_tensor(*args),
        "numpy_dtype": lambda name: frameworks.require("numpy").numpy_dtype(name),
        "load_bar": _progress.LOAD_BAR,
        "ordered_dict_type": collections.OrderedDict,
        "defaultdict_type": collections.defaultdict,
        "deque_type": collections.deque,
        "counter_type": collections.Counter,
        "default_context": lambda file_size: default_context(file_size),
    }
)


def load_context(
    framework: str | None, device: str, plugins: type | Iterable[type] | None, types: Iterable[type], strict: bool,
    max_bytes: int | None = None, file_size: int = 0,
) -> dict[str, Any]:
    """The per-load state handed to the adapters and constructors; checks every argument first. ``budget`` is what
    the load may allocate beyond the file (``max_bytes``, by default tied to ``file_size``)."""
    if (framework is None and type(device) is str and device == "cpu" and plugins is None and type(types) is tuple and not types
            and strict is False and max_bytes is None):
        return default_context(file_size)  # what the general path below makes of them, without its checks
    if max_bytes is not None and (type(max_bytes) is not int or max_bytes < 0):
        raise TypeError(f"max_bytes must be None or a non-negative int, not {max_bytes!r}")
    framework = frameworks.canonical(framework)
    if framework is not None:
        frameworks.require(framework)  # a clear error now, rather than at the first tensor
    if type(device).__name__ == "device" and type(device).__module__ == "torch":
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be a str such as 'cpu' or 'cuda:0' (or a torch.device), not {type(device).__name__}")
    if device != "cpu":
        if framework not in (None, "torch"):
            raise ValueError(f"device={device!r} applies to torch tensors; framework={framework!r} loads on the CPU")
        frameworks.require("torch").check_device(device)
    context = _registry.resolver(types, strict)
    context.update(framework=framework, device=device, plugins=_plugins.plugins_by_name(plugins),
                   budget=ByteBudget(default_max_bytes(file_size) if max_bytes is None else max_bytes))
    return context


def load_arguments(framework: str | None, device: str, plugins: type | Iterable[type] | None, types: Iterable[type],
                   strict: bool, max_bytes: int | None, file_size: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the load's arguments, kept with ``types`` and ``plugins`` as tuples for the :func:`load_context` of each load
    made with them later; the context of a load of ``file_size`` bytes made now), every argument checked."""
    args = {"framework": framework, "device": device, "plugins": _plugins.plugin_tuple(plugins), "types": tuple(types),
            "strict": strict, "max_bytes": max_bytes}
    return args, load_context(**args, file_size=file_size)


def save(
    data: Any,
    metadata: Mapping[str, str] | None = None,
    plugins: type | Iterable[type] | None = None,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    checksums: bool = True,
) -> bytes:
    """Save nested data as the bytes of a safetensors file (what :func:`save_file` would write, checksums included
    unless ``checksums=False``)."""
    context = {"plugins": _plugins.check_plugins(plugins)}
    return _core.save_bytes(data, _check_metadata(metadata), max_depth, DEFAULT_MAX_HEADER_SIZE, context, checksums)


def unstructured(
    buffer: Any, tensors: list[tuple[str, str, tuple[int, ...], int, int]], metadata: dict[str, str] | None,
    context: dict[str, Any], max_depth: int,
) -> Any:
    """A file without a v2 schema: a safestructures 1.0.0 file, or a plain safetensors file (a dict of tensors)."""
    table = {name: (dtype, shape, offset, nbytes) for name, dtype, shape, offset, nbytes in tensors}

    def make(name: str, framework: str) -> Any:
        try:
            return frameworks.make_tensor(buffer, *table[name], {FIELD.name: name, FIELD.framework: framework}, context)
        except SafestructuresError:
            raise
        except Exception as e:  # a framework's own error (JAX's for a dtype it lacks) names the tensor too
            raise InvalidFileError(f"tensor {quote(name)}: {type(e).__name__}: {e}") from e

    if file_format(False, metadata) == V1:
        return _v1.load_v1(metadata, table, make, context, max_depth)  # type: ignore[arg-type]
    return {name: make(name, "numpy") for name in table}


# What load() takes without asking memoryview() first whether it holds bytes (which a tiny load pays for).
_BUFFER_TYPES = (bytes, bytearray)
_CPU = "cpu"
_NO_TYPES = ()


def given_defaults(framework: Any, device: Any, plugins: Any, types: Any, strict: Any, max_bytes: Any) -> bool:
    """Whether a load was given the default arguments themselves, recognised by identity: its context is
    :func:`default_context`'s, which the core makes only if the load needs it (a load passes it None). Other values
    equal to the defaults take :func:`load_context`'s way, to the same context."""
    return (framework is None and device is _CPU and plugins is None and types is _NO_TYPES and strict is False
            and max_bytes is None)


def load(
    data: bytes | bytearray | memoryview,
    framework: str | None = None,
    device: str = "cpu",
    plugins: type | Iterable[type] | None = None,
    *,
    types: Iterable[type] = (),
    strict: bool = False,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_nodes: int = DEFAULT_MAX_NODES,
    max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
    max_bytes: int | None = None,
    verify: bool = False,
) -> Any:
    """Load data from the bytes of a safetensors file, as :func:`load_file` does (``verify`` too).

    numpy arrays are views of ``data`` itself (read-only when ``data`` is immutable, like ``bytes``); torch tensors
    are views of a writable ``data`` (a bytearray, or a memoryview of one) and hold its buffer, so that it cannot be
    resized or freed while they live; from ``bytes`` they are copies, charged to ``max_bytes``.
    """
    if type(data) in _BUFFER_TYPES and given_defaults(framework, device, plugins, types, strict, max_bytes):
        context = None  # the core makes the default context if the load needs it
    else:
        context = load_context(framework, device, plugins, types, strict, max_bytes, memoryview(data).nbytes)
    try:
        structured, payload, metadata = _core.load_bytes(data, max_depth, max_nodes, max_header_size, context, verify)
        if structured:
            return payload
        if context is None:
            context = default_context(len(data))
        return unstructured(data, payload, metadata, context, max_depth)
    except Exception as e:
        raise_reading("the buffer", e)
        raise

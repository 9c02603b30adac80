"""The state a save or a load runs with: the hooks the C++ walkers call back into (installed once, at import), and
each load's checked arguments (framework, device, the classes it may build, its byte budget)."""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

from . import _core, _registry, _types, frameworks, plugins as _plugins
from ._limits import ByteBudget, default_max_bytes

__all__ = ["load_arguments", "load_context"]


# The hooks look their targets up at each call, so that a test can stand in for one.
def _array_entry(obj: Any, name: str, context: dict[str, Any]) -> Any:
    return frameworks.array_entry(obj, name, context)


def _make_tensor(*args: Any) -> Any:
    return frameworks.make_tensor(*args)


def _install_hooks() -> None:
    _core.set_hooks(
        {
            "classify": _types.classify,
            "reduce": _types.reduce,
            "array_entry": _array_entry,
            "factory_name": _types.factory_name,
            "construct": _types.CONSTRUCT,
            "factories": _types.FACTORIES,
            "make_tensor": _make_tensor,
            "ordered_dict_type": collections.OrderedDict,
            "defaultdict_type": collections.defaultdict,
            "deque_type": collections.deque,
            "counter_type": collections.Counter,
        }
    )


def load_context(
    framework: str | None, device: str, plugins: type | Iterable[type] | None, types: Iterable[type], strict: bool,
    max_bytes: int | None = None, file_size: int = 0,
) -> dict[str, Any]:
    """The per-load state handed to the adapters and constructors; checks every argument first. ``budget`` is what
    the load may allocate beyond the file (``max_bytes``, by default tied to ``file_size``)."""
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


_install_hooks()

"""A checkpoint's structure: a nested state flattened into its dicts and lists (every leaf None) and its leaves by
fqn, as the planners save it; two ranks' structures merged; and the state rebuilt from the structure on load."""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping
from typing import Any

import torch

from .._errors import InvalidArgumentError, InvalidFileError, quote

__all__ = ["fqn", "flatten", "merge", "rebuild"]

# The containers the planners walk into; everything else is one value, saved whole in the safestructures format.
MAPPINGS = (dict, collections.OrderedDict)


def fqn(path: tuple[Any, ...]) -> str:
    """A leaf's name: DCP's own flattening joins the path the same way, so tensor names match a DCP state dict's keys."""
    return ".".join(str(key) for key in path)


def _walks_into(value: Any) -> bool:
    """Whether the planners descend into ``value`` rather than keep it as one value.

    Dicts (and OrderedDicts) always; a list when something in it is a tensor or a container that holds one, as DCP
    decides (so a list of ints, like an optimizer's ``params``, stays one value). Tuples, sets, dataclasses and every
    other object are values, saved whole with their exact types (tensors inside them included, not resharded).
    """
    if type(value) in MAPPINGS:
        return True
    if type(value) is list:
        return any(isinstance(item, torch.Tensor) or _walks_into(item) for item in value)
    return False


def flatten(state: Mapping[Any, Any]) -> tuple[dict[Any, Any], dict[str, Any]]:
    """(structure, {fqn: leaf}) of a nested state.

    The structure is the state's dicts and lists, same types and keys (int keys stay ints), with every leaf replaced
    by None; a leaf's fqn is its path joined with dots, as in a PyTorch state dict. Two paths that join to the same
    fqn (``{"a.b": x, "a": {"b": y}}``) raise InvalidArgumentError.
    """
    flat: dict[str, Any] = {}

    def walk(value: Any, path: tuple[Any, ...]) -> Any:
        if type(value) in MAPPINGS:
            return type(value)((key, walk(item, path + (key,))) for key, item in value.items())
        if type(value) is list and _walks_into(value):
            return [walk(item, path + (i,)) for i, item in enumerate(value)]
        name = fqn(path)
        if not name.isascii():
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                # Names go into the index (UTF-8 JSON) and the shards' headers, which hold valid Unicode only.
                raise InvalidArgumentError(f"the name {name!r} of an entry of the state is not valid Unicode (a lone surrogate)") from None
        if name in flat:
            raise InvalidArgumentError(f"two entries of the state are both named {quote(name)} once their keys are joined with '.'")
        flat[name] = value
        return None

    if not isinstance(state, Mapping):
        raise TypeError(f"the state to checkpoint must be a dict, not {type(state).__qualname__}")
    return walk(dict(state), ()), flat


def merge(a: Any, b: Any, path: tuple[Any, ...]) -> Any:
    """The union of two ranks' structures; they must agree where both have an entry."""
    if a is None and b is None:
        return None
    if type(a) in MAPPINGS and type(b) is type(a):
        merged = type(a)(a)
        for key, item in b.items():
            merged[key] = merge(a[key], item, path + (key,)) if key in a else item
        return merged
    if type(a) is list and type(b) is list:
        common = [merge(x, y, path + (i,)) for i, (x, y) in enumerate(zip(a, b))]
        return common + a[len(common):] + b[len(common):]
    raise InvalidArgumentError(
        f"the ranks' states differ in shape at {quote(fqn(path))}: {type(a).__name__} on one rank, {type(b).__name__} on another"
    )


def rebuild(node: Any, path: tuple[Any, ...], parent: Any, key: Any, leaf: Callable[[str, Any, Any], Any]) -> Any:
    """The state a saved structure describes, below ``path``: its dicts and lists rebuilt, each leaf given by
    ``leaf(fqn, parent, key)`` (the container it goes in, and its key there)."""
    if type(node) in MAPPINGS or type(node) is list:
        mapping = type(node) in MAPPINGS
        out = type(node)() if mapping else [None] * len(node)
        for k, item in node.items() if mapping else enumerate(node):
            out[k] = rebuild(item, path + (k,), out, k, leaf)
        return out
    if node is not None:
        raise InvalidFileError(f"the checkpoint's structure holds a {type(node).__name__} at {quote(fqn(path))}")
    return leaf(fqn(path), parent, key)

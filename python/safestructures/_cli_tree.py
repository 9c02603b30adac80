"""The command line's walk of a lazily opened file's schema (``inspect``, ``verify``, ``get``), and its paths."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._cli_render import _a, _count
from ._errors import InvalidFileError, quote, shown
from ._format import TAG, TENSOR_TAGS
from ._lazy import Node, SafeFile
from ._lazy_schema import _key_text, _Link, path_text


#: Dtypes only torch has, which a file stores as bytes with the dtype's name in the node: their bytes per element.
_TORCH_ONLY = {"torch.complex32": 4}


class UsageError(Exception):
    """A command given what it cannot work with (exit status 2, like argparse's own usage errors)."""


class PathNotFound(LookupError):
    """A dotted path that names nothing in the data (exit status 1); the message says where the walk stopped."""


# --- the schema of a lazily opened file ---------------------------------------------------------------------------


def verify_torch_only(f: SafeFile) -> bool:
    """Checks a file that holds tensors of a dtype only torch has (``torch.complex32``), without torch: each such tensor
    against its node (its bytes are the size its shape needs), and every other part of the data built as numpy, in one
    load. False when the file holds no such tensor (the caller's error stands)."""
    doc, schema = f._document(), f._schema
    root = schema.resolve(doc.root, ())[0]
    # every node reachable from the root (resolved), and its path
    paths: dict[int, _Link | tuple[Any, ...]] = {root: ()}
    parents: dict[int, list[int]] = {}  # a node -> the containers that hold it
    torch_only: list[int] = []
    stack = [root]
    while stack:
        node = stack.pop()
        path = paths[node]
        if schema.head(node)[1] == TAG.Tensor:
            dtype = schema.field(node, "dtype")
            if isinstance(dtype, str) and dtype.startswith("torch."):
                torch_only.append(node)
            continue
        found = schema.children(node, path)
        for key, child in ([] if found is None else found[1]):
            where = _Link(path, key)
            child = schema.resolve(child, where)[0]
            parents.setdefault(child, []).append(node)
            if child not in paths:
                paths[child] = where
                stack.append(child)
    if not torch_only:
        return False
    for node in torch_only:
        _check_torch_only(f, node, paths[node])
    # The containers above a torch-only tensor are walked (their keys were built on the way); everything else is
    # built, each part once, in one load.
    tainted = set(torch_only)
    stack = list(torch_only)
    while stack:
        for parent in parents.get(stack.pop(), ()):
            if parent not in tainted:
                tainted.add(parent)
                stack.append(parent)
    parts = {node: paths[node] for node, held_by in parents.items()
             if node not in tainted and not tainted.isdisjoint(held_by)}
    f._load_many(list(parts.items()), framework="numpy")
    return True


def _check_torch_only(f: SafeFile, node: int, path: _Link | tuple[Any, ...]) -> None:
    """A tensor node of a dtype only torch has: a tensor of the file, stored as bytes (U8), exactly as many as its
    shape needs (what the torch adapter checks before it builds one)."""
    schema = f._schema
    field = {k: schema.field(node, k) for k in ("name", "dtype", "shape")}
    where = f"at {path_text(path)}: "
    itemsize = _TORCH_ONLY.get(field["dtype"])
    if itemsize is None:
        raise InvalidFileError(where + f"the tensor's dtype {json.dumps(field['dtype'])} is not a dtype of torch",
                               code="SchemaInvalid")
    if {"stride", "storage"} & schema.head(node)[2].keys():
        raise InvalidFileError(where + f"a {field['dtype']} tensor is stored whole, not as a view", code="SchemaInvalid")
    info = f._document().tensor(field["name"]) if isinstance(field["name"], str) else None
    if info is None:
        raise InvalidFileError(where + "the tensor names no tensor of the file", code="TensorNotFound")
    shape = field["shape"]
    if not isinstance(shape, list) or any(type(d) is not int or d < 0 for d in shape):
        raise InvalidFileError(where + "field 'shape' must be a list of non-negative ints", code="SchemaInvalid")
    needed = math.prod(shape) * itemsize
    if info[0] != "U8" or needed != info[2]:
        raise InvalidFileError(where + f"shape {shape} of {field['dtype']} needs {needed} bytes (U8), tensor "
                               f"{quote(field['name'])} holds {info[2]} ({info[0]})", code="SizeMismatch")


def referenced_tensors(f: SafeFile) -> set[str]:
    """The names of every tensor the schema refers to (tensors, views of a storage, long bytes)."""
    doc = f._document()
    return {doc.value(child) for i in range(doc.node_count) if doc.node(i)[1] in TENSOR_TAGS
            for key, child in doc.entries(i) if key in ("name", "storage", "tensor") and doc.node(child)[0] == "string"}


def find(f: SafeFile, parts: list[str | _Exact]) -> Node:
    """The node of ``f`` that the path ``parts`` names; PathNotFound saying where the walk stopped."""
    def children(node: Node) -> tuple[bool, str, list[tuple[Any, int]] | None]:
        found = node._children()
        return (False, node.kind, None) if found is None else (found[0], node.kind, found[1])

    return _walk(f.tree, parts, children, lambda node, key, child: Node(f, child, node._path + (key,)))


# --- paths ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Exact:
    """A path part written as error messages write paths (``["a.b"]``, ``[1]``): that exact key or index."""

    key: str | int


_BRACKET = re.compile(r'\[(?:(-?\d+)|("(?:[^"\\]|\\.)*"))\]')


def _split(path: str) -> list[str | _Exact]:
    """The parts of a path: dotted (``model.layers.0``; ``""`` and ``"."`` name the root), or as error messages write
    it (``$["model"]["layers"][0]``: keys as JSON strings, indices and int keys as integers)."""
    if not path.startswith("$"):
        return [] if path in ("", ".") else list(path.split("."))
    parts: list[str | _Exact] = []
    at = 1
    while at < len(path):
        match = _BRACKET.match(path, at)
        if match is None:
            raise UsageError(f"cannot read the path {path!r} at character {at + 1}: write $[\"key\"] or $[index] parts")
        number, text = match.groups()
        if number is not None and len(number.lstrip("-")) > 4000:  # no index is so long; int() refuses 4,300 digits
            raise UsageError(f"cannot read the path at character {at + 1}: an index of {len(number):,} digits")
        parts.append(_Exact(int(number) if number is not None else json.loads(text)))
        at = match.end()
    return parts


def _walk(root: Any, parts: list[str | _Exact], children: Callable[[Any], tuple[bool, str, list[tuple[Any, Any]] | None]],
          step: Callable[[Any, Any, Any], Any]) -> Any:
    """Follow a path (``_split``'s parts) from ``root``. A part of a sequence is an index; in a mapping, the longest
    run of parts that joins (with ``.``) into a key is taken first, so keys that hold dots (``model.embed.weight`` in a
    plain safetensors file) are found too; a non-string key is matched by its text (``_key_text``: its ``str()``,
    bounded). ``children(node)`` gives (indexed, kind, [(key, child)], None for a leaf); ``step(node, key, child)``
    makes the child node. An ``_Exact`` part is that key (of that type) or index, nothing else."""
    failures: list[tuple[int, str]] = []
    # The children already followed from each part without reaching the end (by their schema index, or their
    # identity, the child kept alive so that it stays theirs), each followed once: keys that join in many ways
    # (``a``, ``a.a``, ``a.a.a`` in a dict that holds itself) would otherwise make the walk exponential in the path's
    # length. What is reported is unchanged: a repeat adds only failures at parts that the first time already added.
    dead_ends: dict[tuple[bool, int, int], Any] = {}
    said = [repr(p.key) if isinstance(p, _Exact) else repr(p) for p in parts]

    def go(node: Any, path: tuple[Any, ...], i: int) -> Any:
        if i == len(parts):
            return node
        part = parts[i]
        indexed, kind, entries = children(node)
        if entries is None:
            failures.append((i, f"{path_text(path)} is {_a(kind)}, which has no key {said[i]}"))
            return None
        exact = part.key if isinstance(part, _Exact) else None
        as_index = type(exact) is int if isinstance(part, _Exact) else re.fullmatch(r"-?\d+", part) is not None
        if as_index and (indexed or kind == TAG.NamedTuple):
            k = int(exact if isinstance(part, _Exact) else part)  # type: ignore[arg-type]
            if not -len(entries) <= k < len(entries):
                failures.append((i, f"index {k} is out of range at {path_text(path)} ({_a(kind)} of {_count(len(entries), 'item')})"))
                return None
            key, child = entries[k]  # a sequence's key is its index from 0; a named tuple's, the field's name
            return go(step(node, key, child), path + (key,), i + 1)
        if isinstance(part, _Exact):
            for key, child in entries:
                if type(key) is type(exact) and key == exact and not indexed:
                    return go(step(node, key, child), path + (key,), i + 1)
        else:
            result = by_text(node, path, i, entries)
            if result is not None:
                return result
        if indexed:
            failures.append((i, f"{path_text(path)} is {_a(kind)}: {said[i]} is not an index"))
        else:
            some = ", ".join(repr(k) if isinstance(k, str) else shown(k) for k, _c in entries[:5]) + (", ..." if len(entries) > 5 else "")
            failures.append((i, f"no key {said[i]} at {path_text(path)} ({_a(kind)} of {_count(len(entries), 'item')}"
                                + (f": {some})" if entries else ")")))
        return None

    def by_text(node: Any, path: tuple[Any, ...], i: int, entries: list[tuple[Any, Any]]) -> Any:
        """The longest run of dotted parts from ``i`` that names a key, then shorter ones; None when none leads on."""
        keys: dict[str, tuple[Any, Any]] = {}  # a key's text -> (key, child), a string key first
        for key, child in entries:
            if isinstance(key, str) or _key_text(key) not in keys:
                keys[_key_text(key)] = (key, child)
        # A run of parts joins with one dot fewer than it has parts: no longer run than the most dotted key can match.
        longest = max((text.count(".") for text in keys), default=0) + 1
        for j in range(min(len(parts), i + longest), i, -1):
            run = parts[i:j]
            if any(isinstance(p, _Exact) for p in run):
                continue
            hit = keys.get(".".join(run))  # type: ignore[arg-type]
            if hit is not None:
                child = hit[1]
                tried = (True, child, j) if type(child) is int else (False, id(child), j)
                if tried in dead_ends:
                    continue
                result = go(step(node, hit[0], child), path + (hit[0],), j)
                if result is not None:
                    return result
                dead_ends[tried] = child
        return None

    result = go(root, (), 0)
    if result is None:
        # Of the ways tried, report the one that got furthest.
        raise PathNotFound(max(failures, key=lambda f: f[0])[1])
    return result

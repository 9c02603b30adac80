"""The command line's walk of a lazily opened file's schema (``inspect``, ``verify``, ``get``), and its paths."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ._cli_render import _value_children
from ._errors import InvalidFileError, quote
from ._format import FIELD, TAG, TENSOR_NAME_FIELDS, TENSOR_TAGS
from ._lazy import Node, SafeFile, find_node
from ._lazy_schema import _Link, path_text
from ._paths import INDEX_DIGITS, Exact, PathMiss, walk


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
            dtype = schema.field(node, FIELD.dtype)
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
    name, dtype, shape = (schema.field(node, k) for k in (FIELD.name, FIELD.dtype, FIELD.shape))
    where = f"at {path_text(path)}: "
    itemsize = _TORCH_ONLY.get(dtype)
    if itemsize is None:
        raise InvalidFileError(where + f"the tensor's dtype {json.dumps(dtype)} is not a dtype of torch",
                               code="SchemaInvalid")
    if {FIELD.stride, FIELD.storage} & schema.head(node)[2].keys():
        raise InvalidFileError(where + f"a {dtype} tensor is stored whole, not as a view", code="SchemaInvalid")
    info = f._document().tensor(name) if isinstance(name, str) else None
    if info is None:
        raise InvalidFileError(where + "the tensor names no tensor of the file", code="TensorNotFound")
    if not isinstance(shape, list) or any(type(d) is not int or d < 0 for d in shape):
        raise InvalidFileError(where + "field 'shape' must be a list of non-negative ints", code="SchemaInvalid")
    needed = math.prod(shape) * itemsize
    if info[0] != "U8" or needed != info[2]:
        raise InvalidFileError(where + f"shape {shape} of {dtype} needs {needed} bytes (U8), tensor "
                               f"{quote(name)} holds {info[2]} ({info[0]})", code="SizeMismatch")


def referenced_tensors(f: SafeFile) -> set[str]:
    """The names of every tensor the schema refers to (tensors, views of a storage, long bytes)."""
    doc = f._document()
    return {doc.value(child) for i in range(doc.node_count) if doc.node(i)[1] in TENSOR_TAGS
            for key, child in doc.entries(i) if key in TENSOR_NAME_FIELDS and doc.node(child)[0] == "string"}


def find(f: SafeFile, parts: list[str | Exact]) -> Node:
    """The node of ``f`` that the path ``parts`` names (the rule of ``SafeFile.node``); PathNotFound saying where the
    walk stopped."""
    try:
        return find_node(f.tree, parts)
    except PathMiss as e:
        raise PathNotFound(e.miss.text()) from None


def find_value(value: Any, parts: list[str | Exact]) -> tuple[tuple[Any, ...], Any]:
    """(path, value) of what the path ``parts`` names in a loaded value (a file without a schema tree: 1.0.0, a
    distributed checkpoint), by the same rule; PathNotFound saying where the walk stopped."""
    try:
        found, path = walk(value, parts, _value_children, lambda _node, _key, child: child)
    except PathMiss as e:
        raise PathNotFound(e.miss.text()) from None
    return path, found


# --- paths ---------------------------------------------------------------------------------------------------------


_BRACKET = re.compile(r'\[(?:(-?\d+)|("(?:[^"\\]|\\.)*"))\]')


def _split(path: str) -> list[str | Exact]:
    """The parts of a path: dotted (``model.layers.0``; ``""`` and ``"."`` name the root), or as error messages write
    it (``$["model"]["layers"][0]``: keys as JSON strings, indices and int keys as integers)."""
    if not path.startswith("$"):
        return [] if path in ("", ".") else list(path.split("."))
    parts: list[str | Exact] = []
    at = 1
    while at < len(path):
        match = _BRACKET.match(path, at)
        if match is None:
            raise UsageError(f"cannot read the path {path!r} at character {at + 1}: write $[\"key\"] or $[index] parts")
        number, text = match.groups()
        if number is not None and len(number.lstrip("-")) > INDEX_DIGITS:
            raise UsageError(f"cannot read the path at character {at + 1}: an index of {len(number):,} digits")
        parts.append(Exact(int(number) if number is not None else json.loads(text)))
        at = match.end()
    return parts

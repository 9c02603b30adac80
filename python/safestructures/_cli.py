"""The ``safestructures`` command line (also ``python -m safestructures``): inspect, verify, get and upgrade."""

from __future__ import annotations

import argparse
import base64
import collections
import importlib
import json
import math
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from . import _core
from ._api import load_file, save_file
from ._errors import InvalidFileError, SafestructuresError, UnsupportedTypeError, quote

# The lazy API's tables of tagged nodes (format.md 5.2) and dtype names, so that the walk here reads nodes as it does.
from ._lazy import _DTYPE_NAMES, _JSON_KINDS, _JSON_SCALARS, Node, SafeFile, _Schema, path_text as _path_text
from ._lazy import open as open_lazy

__all__ = ["main"]

# The tensor that holds a schema too large for the header (format.md 5.1): part of the file, not of the data.
_SPILL_TENSOR = "__safestructures_schema__"
_SCHEMA_KEY = "__safestructures__"


# How long a scalar or metadata value may be in the text tree before it is cut.
_TEXT_WIDTH = 60


class UsageError(Exception):
    """A command given what it cannot work with (exit status 2, like argparse's own usage errors)."""


class PathNotFound(LookupError):
    """A dotted path that names nothing in the data (exit status 1); the message says where the walk stopped."""


# --- the opened file ----------------------------------------------------------------------------------------------


@dataclass
class _Opened:
    """A file the commands work on: a lazily opened one (``lazy``), or the loaded value of a 1.0.0 file (``value``)."""

    path: str
    fmt: str  # "safestructures v2", "plain safetensors", "safestructures 1.0.0"
    metadata: dict[str, Any] | None
    tensors: dict[str, tuple[str, tuple[int, ...], int]]  # name -> (safetensors dtype, shape, nbytes), data only
    shards: int
    lazy: SafeFile | None = None
    value: Any = None  # the whole data of a 1.0.0 file, or the {name: tensor} of a plain sharded checkpoint
    warnings: list[str] = field(default_factory=list)  # what verify reports beside OK

    def summary(self) -> str:
        """One line: the format, tensors and their bytes, shards and the user metadata."""
        total = sum(nbytes for _dtype, _shape, nbytes in self.tensors.values())
        parts = [self.fmt]
        if self.shards > 1:
            parts.append(f"{self.shards} shards")
        parts.append(f"{_count(len(self.tensors), 'tensor')}, {_size(total)} of tensor data")
        if self.metadata:
            shown = {k: _cut(v) if isinstance(v, str) else v for k, v in self.metadata.items()}
            parts.append(f"metadata {json.dumps(shown, ensure_ascii=False)}")
        else:
            parts.append("no metadata")
        return f"{self.path}: " + ", ".join(parts)

    def close(self) -> None:
        """Release the lazily opened file."""
        if self.lazy is not None:
            self.lazy.close()


def _open(path: str) -> _Opened:
    """Open ``path`` for a command. A 1.0.0 file is loaded whole (as numpy: its tensors are views of the mapping, so
    this reads no tensor data); other files are opened lazily (header and schema only)."""
    from . import _sharded, _v1

    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    index = _sharded.index_path(path)
    if index is not None and os.path.isfile(index):
        weight_map = _plain_weight_map(index)
        if weight_map is not None:
            return _open_plain_shards(path, index, *weight_map)
    if index is None:
        # The raw metadata tells the formats apart (open() hides the reserved keys and refuses 1.0.0 files).
        _buffer, raw, table = _core.read_file(path)
        if _v1.is_v1(raw):
            kept = {k: v for k, v in raw.items() if k not in (_v1.SCHEMA_KEY, _v1.VERSION_KEY)}
            tensors = {name: (dtype, tuple(shape), nbytes) for name, dtype, shape, _offset, nbytes in table}
            value = load_file(path, framework="numpy")
            return _Opened(path, "safestructures 1.0.0", kept or None, tensors, 1, value=value)
        fmt = "safestructures v2" if raw and _SCHEMA_KEY in raw else "plain safetensors"
    else:
        fmt = "safestructures v2"
    f = open_lazy(path, framework="numpy")
    doc = f._document()
    tensors = {name: info for name, info in f.tensors().items() if name != _SPILL_TENSOR}
    return _Opened(path, fmt, f.metadata, tensors, doc.shard_count, lazy=f)


def _plain_weight_map(index: str) -> tuple[dict[str, str], dict[str, Any]] | None:
    """(weight_map, metadata) of the index of a sharded checkpoint of plain safetensors files (a Hugging Face one:
    no safestructures schema in it); None for any other index, which the lazy API reads (and reports on)."""
    from . import _sharded
    from ._limits import DEFAULT_MAX_HEADER_SIZE

    if os.path.getsize(index) > DEFAULT_MAX_HEADER_SIZE:
        return None
    with open(index, "rb") as f:
        try:
            document = json.loads(f.read())
        except ValueError:
            return None
    if not isinstance(document, dict) or not isinstance(document.get("weight_map"), dict):
        return None
    metadata = document.get("metadata", {})
    if not isinstance(metadata, dict) or _sharded.SCHEMA_KEY in metadata:
        return None
    return document["weight_map"], metadata


def _open_plain_shards(path: str, index: str, weight_map: dict[str, Any], metadata: dict[str, Any]) -> _Opened:
    """A sharded checkpoint of plain safetensors files, as the ``{name: tensor}`` dict its index maps (tensors in
    index order, numpy views of the mapped shards: no data read). A tensor the index maps to a shard that lacks it is
    an error; a tensor of a shard the index does not map to it is a warning."""
    from ._flat import load_tensors

    directory = os.path.dirname(index)
    loaded: dict[str, dict[str, Any]] = {}
    tensors: dict[str, tuple[str, tuple[int, ...], int]] = {}
    for name, shard in weight_map.items():
        # Only file names beside the index: an index must not point the command at any other file.
        if not isinstance(shard, str) or os.path.basename(shard) != shard or shard.startswith(".") or not shard:
            raise InvalidFileError(f"{index}: tensor {quote(name)} is mapped to {shard!r}, which is not a file name")
        if shard not in loaded:
            shard_path = os.path.join(directory, shard)
            loaded[shard] = load_tensors(shard_path)
            _buffer, _metadata, table = _core.read_file(shard_path)
            tensors.update({n: (dtype, tuple(shape), nbytes) for n, dtype, shape, _offset, nbytes in table})
    value = {}
    for name, shard in weight_map.items():
        if name not in loaded[shard]:
            raise InvalidFileError(f"{index}: the index maps tensor {quote(name)} to {shard}, which does not hold it")
        value[name] = loaded[shard][name]
    unmapped = [f"{quote(n)} ({shard})" for shard, held in loaded.items() for n in held if weight_map.get(n) != shard]
    warnings = []
    if unmapped:
        warnings.append(f"{_count(len(unmapped), 'tensor')} in the shards that the index does not map there: "
                        + ", ".join(unmapped[:10]) + (", ..." if len(unmapped) > 10 else ""))
    return _Opened(path, "plain safetensors", metadata or None, {n: tensors[n] for n in value}, len(loaded), value=value,
                   warnings=warnings)


# --- a fast walk of the schema --------------------------------------------------------------------------------------


class _Tree:
    """The schema of a lazily opened file, walked node by node for the commands, through the same reader as the lazy
    API's ``Node`` (``_lazy._Schema``: members read once, references followed, the children of every container).

    ``describe`` gives what ``Node.describe`` gives (tests check they agree), plus what the commands show besides:
    ``same_as`` on any reference to a node already described (tensors included), the ``storage`` a view lives in, a
    tensor the file lacks as ``missing`` rather than an error, and at most ``max_items`` children per container.
    """

    def __init__(self, f: SafeFile) -> None:
        self.f = f
        self.doc = f._document()
        self.schema = _Schema(f, "", "numpy")  # errors are prefixed with the file by main(); keys built as numpy
        self.defined: dict[int, tuple[Any, ...]] = {}  # reference id -> path of the node that defines it

    def build(self, index: int, path: tuple[Any, ...]) -> Any:
        """Build the value of a node as numpy (its tensors are views of the mapping)."""
        return Node(self.f, index, path).load(framework="numpy")

    def tensor(self, members: dict[str, int]) -> dict[str, Any]:
        """dtype, shape, nbytes, framework and tensor name of a tensor node, as ``Node.describe`` gives them."""
        name = self.schema.scalar(members["name"]) if "name" in members else None
        info = self.doc.tensor(name) if isinstance(name, str) else None
        dtype = self.schema.scalar(members["dtype"]) if "dtype" in members else None
        if not isinstance(dtype, str):
            storage = self.schema.scalar(members["storage"]) if "storage" in members else None
            found = info if info is not None else (self.doc.tensor(storage) if isinstance(storage, str) else None)
            dtype = None if found is None else _DTYPE_NAMES.get(found[0], found[0])
        x2 = "x2" in members and self.doc.node(members["x2"])[0] == "true"
        shape = None
        if "shape" in members and self.doc.node(members["shape"])[0] == "array":
            dims = [self.schema.scalar(c) for c in self.doc.elements(members["shape"])]
            if all(type(d) is int for d in dims):
                shape = list(dims)
        if shape is None and info is not None:
            shape = list(info[1])
        if x2 and shape:
            shape[-1] //= 2
        fw = self.schema.scalar(members["fw"]) if "fw" in members else None
        out: dict[str, Any] = {"dtype": dtype, "shape": shape or [], "nbytes": 0 if info is None else info[2],
                               "framework": fw if isinstance(fw, str) else None}
        if info is not None:
            out["tensor"] = name
        elif isinstance(name, str):
            out["missing"] = name  # the schema names a tensor the file lacks (verify reports it as an error)
        storage = self.schema.scalar(members["storage"]) if "storage" in members else None
        if isinstance(storage, str):
            out["storage"] = storage  # a view of (a segment held by) another tensor: no bytes of its own
        return out

    def bytes_size(self, members: dict[str, int]) -> int | None:
        """The length of a bytes node: its tensor's size, or the length its base64 text decodes to."""
        name = self.schema.scalar(members["tensor"]) if "tensor" in members else None
        info = self.doc.tensor(name) if isinstance(name, str) else None
        if info is not None:
            return int(info[2])
        b64 = self.schema.scalar(members["b64"]) if "b64" in members else None
        return len(b64) // 4 * 3 - b64[-2:].count("=") if isinstance(b64, str) else None

    def describe(self, index: int, path: tuple[Any, ...], depth: int | None, max_items: int | None = None,
                 raw_keys: bool = False, ancestors: frozenset[int] = frozenset()) -> dict[str, Any]:
        """The node at ``index`` as ``Node.describe(depth)`` gives it (see the class docstring), with at most
        ``max_items`` children listed per container (``len`` keeps the full count). Keys are shown as JSON shows
        them (other keys by repr), or left as they are with ``raw_keys`` (for the text tree, which tells 1 from '1')."""
        key_of = (lambda k: k) if raw_keys else _json_scalar
        index, ref = self.schema.resolve(index, path)
        json_kind, tag, members = self.schema.head(index)
        out: dict[str, Any] = {"kind": tag if tag is not None else _JSON_KINDS[json_kind]}
        type_name = self.schema.scalar(members["type"]) if "type" in members else None
        if isinstance(type_name, str):
            out["type"] = type_name
        same_as = None
        if ref is not None and (ref in self.defined or index in ancestors):
            same_as = self.defined.get(ref, ())
        elif "#" in members:
            defined = self.schema.scalar(members["#"])
            if type(defined) is int:
                self.defined.setdefault(defined, path)
        if tag == "tensor":
            out.update(self.tensor(members))
        elif tag in ("bytes", "bytearray"):
            out["nbytes"] = self.bytes_size(members)
        else:
            found = self.schema.children(index, path)
            if found is None:
                value = self.doc.value(index) if json_kind in _JSON_SCALARS else self.build(index, path)
                out["value"] = _json_scalar(value)
            else:
                is_sequence, entries = found
                out["len"] = len(entries)
                if same_as is None and (depth is None or depth > 0):
                    deeper = None if depth is None else depth - 1
                    inside = ancestors | {index}
                    shown = entries if max_items is None else entries[:max_items]
                    if is_sequence:
                        out["items"] = [self.describe(c, path + (i,), deeper, max_items, raw_keys, inside) for i, c in shown]
                    else:
                        out["items"] = [[key_of(k), self.describe(c, path + (k,), deeper, max_items, raw_keys, inside)]
                                        for k, c in shown]
        if same_as is not None:
            out["same_as"] = _dotted(same_as)
        return out

    def referenced_tensors(self) -> set[str]:
        """The names of every tensor the schema refers to (tensors, views of a storage, long bytes)."""
        names: set[str] = set()
        for i in range(self.doc.node_count):
            tag = self.doc.node(i)[1]
            if tag in ("tensor", "bytes", "bytearray"):
                for key, child in self.doc.members(i):
                    if key in ("name", "storage", "tensor"):
                        value = self.schema.scalar(child)
                        if isinstance(value, str):
                            names.add(value)
        return names

    def find(self, parts: list[str]) -> tuple[int, tuple[Any, ...]]:
        """The node (resolved) and path that the dotted-path ``parts`` name; PathNotFound saying where the walk stopped."""

        def children(node: tuple[int, tuple[Any, ...]]) -> tuple[bool, str, list[tuple[Any, Any]]] | None:
            index, path = node
            index, _ref = self.schema.resolve(index, path)
            json_kind, tag, _members = self.schema.head(index)
            found = self.schema.children(index, path)
            if found is None:
                return None
            kind = tag if tag is not None else _JSON_KINDS[json_kind]
            return found[0], kind, found[1]

        def kind_of(node: tuple[int, tuple[Any, ...]]) -> str:
            index, _ref = self.schema.resolve(*node)
            json_kind, tag, _members = self.schema.head(index)
            return tag if tag is not None else _JSON_KINDS[json_kind]

        index, path = _walk((self.doc.root, ()), parts, children, kind_of,
                            lambda node, key, child: (child, node[1] + (key,)))
        return self.schema.resolve(index, path)[0], path


# --- paths ----------------------------------------------------------------------------------------------------------


def _dotted(path: Sequence[Any]) -> str:
    """A path as tensor names write it: ``model.layers.0``."""
    return ".".join(str(p) for p in path)


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
        parts.append(_Exact(int(number) if number is not None else json.loads(text)))
        at = match.end()
    return parts


def _walk(root: Any, parts: list[str | _Exact], children: Callable[[Any], tuple[bool, str, list[tuple[Any, Any]]] | None],
          kind_of: Callable[[Any], str], step: Callable[[Any, Any, Any], Any]) -> Any:
    """Follow a path (``_split``'s parts) from ``root``. A part of a sequence is an index; in a mapping, the longest run of parts
    that joins (with ``.``) into a key is taken first, so keys that hold dots (``model.embed.weight`` in a plain
    safetensors file) are found too; a non-string key is matched by its ``str()``. ``children(node)`` gives
    (indexed, kind, [(key, child)]) or None for a leaf; ``step(node, key, child)`` makes the child node. An
    ``_Exact`` part is that key (of that type) or index, nothing else."""
    failures: list[tuple[int, str]] = []
    shown = [repr(p.key) if isinstance(p, _Exact) else repr(p) for p in parts]

    def go(node: Any, path: tuple[Any, ...], i: int) -> Any:
        if i == len(parts):
            return node
        part = parts[i]
        found = children(node)
        if found is None:
            failures.append((i, f"{_path_text(path)} is {_a(kind_of(node))}, which has no key {shown[i]}"))
            return None
        indexed, kind, entries = found
        exact = part.key if isinstance(part, _Exact) else None
        as_index = type(exact) is int if isinstance(part, _Exact) else re.fullmatch(r"-?\d+", part) is not None
        if as_index and (indexed or kind == "namedtuple"):
            k = int(exact if isinstance(part, _Exact) else part)  # type: ignore[arg-type]
            if not -len(entries) <= k < len(entries):
                failures.append((i, f"index {k} is out of range at {_path_text(path)} ({_a(kind)} of {_count(len(entries), 'item')})"))
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
            failures.append((i, f"{_path_text(path)} is {_a(kind)}: {shown[i]} is not an index"))
        else:
            some = ", ".join(repr(k) for k, _c in entries[:5]) + (", ..." if len(entries) > 5 else "")
            failures.append((i, f"no key {shown[i]} at {_path_text(path)} ({_a(kind)} of {_count(len(entries), 'item')}"
                                + (f": {some})" if entries else ")")))
        return None

    def by_text(node: Any, path: tuple[Any, ...], i: int, entries: list[tuple[Any, Any]]) -> Any:
        """The longest run of dotted parts from ``i`` that names a key, then shorter ones; None when none leads on."""
        keys: dict[str, tuple[Any, Any]] = {}  # a key's text -> (key, child); string keys first
        for key, child in entries:
            if isinstance(key, str):
                keys[key] = (key, child)
        for key, child in entries:
            if not isinstance(key, str):
                keys.setdefault(str(key), (key, child))
        for j in range(len(parts), i, -1):
            run = parts[i:j]
            if any(isinstance(p, _Exact) for p in run):
                continue
            hit = keys.get(".".join(run))  # type: ignore[arg-type]
            if hit is not None:
                result = go(step(node, hit[0], hit[1]), path + (hit[0],), j)
                if result is not None:
                    return result
        return None

    result = go(root, (), 0)
    if result is None:
        # Of the ways tried, report the one that got furthest.
        raise PathNotFound(max(failures, key=lambda f: f[0])[1])
    return result


# --- loaded values (1.0.0 files, and the output of get) --------------------------------------------------------------


def _value_children(value: Any) -> tuple[bool, str, list[tuple[Any, Any]]] | None:
    """(indexed, kind, [(key, child)]) of a loaded container, None for a leaf (tensors, scalars, bytes...)."""
    from ._records import NamedRecord, Record

    if isinstance(value, Record):
        return False, "record", list(value._fields.items())
    if isinstance(value, NamedRecord):
        return False, "namedtuple", list(zip(value._fields, value))
    if isinstance(value, Mapping):
        return False, type(value).__name__, list(value.items())
    if isinstance(value, (list, tuple, set, frozenset, collections.deque)):
        return True, type(value).__name__, list(enumerate(value))
    return None


def _is_tensor(value: Any) -> bool:
    import numpy as np

    return isinstance(value, np.ndarray)


def _describe_value(value: Any, path: tuple[Any, ...], depth: int | None, max_items: int | None, raw_keys: bool,
                    seen: dict[int, tuple[Any, ...]]) -> dict[str, Any]:
    """A loaded value described as ``_Tree.describe`` describes a node (for 1.0.0 files, which are loaded whole);
    a container met again inside itself is marked ``same_as`` its first place."""
    found = _value_children(value)
    if _is_tensor(value):
        out: dict[str, Any] = {"kind": "tensor", "dtype": str(value.dtype), "shape": list(value.shape),
                               "nbytes": int(value.nbytes), "framework": "numpy"}
    elif isinstance(value, (bytes, bytearray)):
        out = {"kind": type(value).__name__, "nbytes": len(value)}
    elif found is None:
        out = {"kind": "none" if value is None else type(value).__name__, "value": _json_scalar(value)}
    else:
        indexed, kind, entries = found
        out = {"kind": kind}
        if hasattr(value, "type_name"):
            out["type"] = value.type_name
        out["len"] = len(entries)
        if id(value) in seen:
            out["same_as"] = _dotted(seen[id(value)])
            return out
        seen[id(value)] = path
        if depth is None or depth > 0:
            deeper = None if depth is None else depth - 1
            shown = entries if max_items is None else entries[:max_items]
            if indexed:
                out["items"] = [_describe_value(v, path + (k,), deeper, max_items, raw_keys, seen) for k, v in shown]
            else:
                out["items"] = [[k if raw_keys else _json_scalar(k), _describe_value(v, path + (k,), deeper, max_items, raw_keys, seen)]
                                for k, v in shown]
        del seen[id(value)]  # only ancestors: shared but acyclic parts are shown where they are
    return out


def _json_scalar(value: Any) -> Any:
    """A scalar (or key) as ``Node.describe`` shows it: itself when JSON has it, else its repr."""
    if value is None or type(value) in (bool, int, str):
        return value
    if type(value) is float and math.isfinite(value):
        return value
    return repr(value)


def _to_json(value: Any, path: tuple[Any, ...], tensor_values: bool, ancestors: dict[int, tuple[Any, ...]]) -> Any:
    """A loaded value as JSON data, for ``get`` (the rendering is documented in docs/cli.md):

    None, bools, ints, strings and finite floats as themselves; lists, tuples, sets, frozensets and deques as arrays;
    a mapping with string keys as an object, other mappings as ``{"$items": [[key, value], ...]}``; records and named
    tuples as ``{"$type": name, field: value...}``; bytes as ``{"$bytes_b64": ...}``; a non-finite float as
    ``{"$float": "nan"}``; a tensor as ``{"$tensor": {"dtype", "shape", "path"}}``, or its values as nested arrays
    with ``tensor_values``; a container inside itself as ``{"$cycle": path}``; anything else as ``{"$repr": repr}``.
    """
    import numpy as np

    from ._records import NamedRecord, Record

    if value is None or type(value) in (bool, int, str):
        return value
    if type(value) is float:
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes_b64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, np.ndarray):
        if tensor_values:
            if value.dtype.kind == "f" and value.dtype.itemsize < 8:
                # float16/float32 as the shortest decimal that reads back to the same value (2.31, not the float64
                # 2.309999942779541 that tolist gives)
                shortest = np.array([float(str(x)) for x in value.reshape(-1)], dtype=object).reshape(value.shape)
                return _to_json(shortest.tolist(), path, False, ancestors)
            return _to_json(value.tolist(), path, False, ancestors)
        return {"$tensor": {"dtype": str(value.dtype), "shape": list(value.shape), "path": _dotted(path)}}
    if isinstance(value, np.generic):
        # a float16/float32 scalar as its shortest decimal, as in tensors' values
        item = float(str(value)) if value.dtype.kind == "f" and value.dtype.itemsize < 8 else value.item()
        return _to_json(item, path, False, ancestors) if type(item) in (bool, int, float, str, bytes) else {"$repr": repr(value)}
    found = _value_children(value)
    if found is None:
        return {"$repr": repr(value)}
    if id(value) in ancestors:
        return {"$cycle": _dotted(ancestors[id(value)])}
    ancestors[id(value)] = path
    try:
        indexed, _kind, entries = found
        if isinstance(value, (Record, NamedRecord)):
            out = {"$type": value.type_name}
            out.update({str(k): _to_json(v, path + (k,), tensor_values, ancestors) for k, v in entries})
            return out
        if indexed:
            return [_to_json(v, path + (k,), tensor_values, ancestors) for k, v in entries]
        if all(isinstance(k, str) for k, _v in entries):
            return {k: _to_json(v, path + (k,), tensor_values, ancestors) for k, v in entries}
        return {"$items": [[_to_json(k, path, tensor_values, {}), _to_json(v, path + (k,), tensor_values, ancestors)]
                           for k, v in entries]}
    finally:
        del ancestors[id(value)]


def _json_scalar_text(value: Any, ascii_only: bool) -> str:
    """One JSON scalar (or empty container) as text: json.dumps's output, without its per-call set-up (a tree of
    10,000 tensors has 150,000 of them)."""
    if type(value) is str:
        return json.encoder.encode_basestring_ascii(value) if ascii_only else json.encoder.encode_basestring(value)  # type: ignore[attr-defined]
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return int.__repr__(value)
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=False)


def _json_text(value: Any, ascii_only: bool, level: int = 0) -> tuple[str, str | None]:
    """(JSON indented by two spaces a level, the same on one line or None when that is too long). An array or
    object that fits on one line of 100 columns stays on one (a shape, a small tensor's rows). Built bottom-up, each
    value encoded once, so that deep or large values cost no more than plain json.dumps."""
    if not isinstance(value, (list, dict)) or not value:
        text = _json_scalar_text(value, ascii_only)
        return text, (text if len(text) + 2 * level <= 100 else None)
    pad, end = "  " * (level + 1), "  " * level
    if isinstance(value, list):
        parts = [_json_text(v, ascii_only, level + 1) for v in value]
        heads = [""] * len(parts)
        opening, closing = "[", "]"
    else:
        parts = [_json_text(v, ascii_only, level + 1) for v in value.values()]
        # keys as json.dumps writes them: strings as they are, other scalars by their JSON text
        heads = [_json_scalar_text(k if isinstance(k, str) else json.dumps(k), ascii_only) + ": " for k in value]
        opening, closing = "{", "}"
    if all(flat is not None for _pretty, flat in parts):
        flat = opening + ", ".join(h + f for h, (_p, f) in zip(heads, parts)) + closing  # type: ignore[operator]
        if len(flat) + 2 * level <= 100:
            return flat, flat
    return opening + "\n" + ",\n".join(pad + h + p for h, (p, _f) in zip(heads, parts)) + "\n" + end + closing, None


def _print_json(value: Any) -> None:
    """Print JSON data; text that standard output cannot encode (a lone surrogate) is written as \\u escapes."""
    text = _json_text(value, False)[0]
    try:
        text.encode(sys.stdout.encoding or "utf-8")
    except UnicodeEncodeError:
        text = _json_text(value, True)[0]
    sys.stdout.write(text + "\n")


# --- text -----------------------------------------------------------------------------------------------------------


def _a(noun: str) -> str:
    """``noun`` with its indefinite article (an int, a dict)."""
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _size(n: int) -> str:
    """Bytes for people: ``24 B``, ``1.5 KiB``, ``3.2 GiB``."""
    if n < 1024:
        return f"{n} B"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        n /= 1024  # type: ignore[assignment]
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def _cut(text: str, width: int = _TEXT_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


_BARE_KEY = re.compile(r"[A-Za-z_][\w.\-/]*")


def _key_text(key: Any) -> str:
    """A key in the tree: a plain string key bare, any other key as its repr (so ``1`` and ``'1'`` differ)."""
    if isinstance(key, str) and _BARE_KEY.fullmatch(key) and key not in ("None", "True", "False", "Ellipsis"):
        return _cut(key)
    return _cut(repr(key))


def _head_text(d: dict[str, Any]) -> str:
    """One node of a description, as its tree line shows it."""
    kind = d["kind"]
    if kind == "tensor":
        text = f"tensor {d['dtype']} {d['shape']}  {_size(d['nbytes'])}"
        if d.get("framework"):
            text += f"  ({d['framework']})"
        if "missing" in d:
            text = f"tensor  (MISSING: the file has no tensor {quote(d['missing'])})"
        elif "storage" in d:
            text += f"  view of tensor {quote(d['storage'])}"
    elif kind in ("bytes", "bytearray"):
        text = f"{kind} ({_size(d['nbytes'])})" if d.get("nbytes") is not None else kind
    elif "len" in d:
        noun = "field" if kind in ("dataclass", "namedtuple", "record") else "item"
        name = f" {d['type']}" if "type" in d else ""
        text = f"{kind}{name} ({_count(d['len'], noun)})"
    else:
        value = d.get("value")
        if kind == "str" and isinstance(value, str):
            shown = _cut(repr(value))
            if len(value) > _TEXT_WIDTH:
                shown += f" ({len(value):,} chars)"
        elif kind in ("none", "bool", "int", "float") and not isinstance(value, str):
            shown = _cut(repr(value))
            if kind == "int" and len(shown) < len(repr(value)):
                shown += f" ({len(repr(value).lstrip('-')):,} digits)"
        else:
            shown = _cut(str(value))
        name = f" {d['type']}" if "type" in d else ""
        text = f"{kind}{name} = {shown}"
    if "same_as" in d:
        text += f"  (same as {d['same_as'] or '<root>'})"
    elif "len" in d and d["len"] and "items" not in d:
        text += " …"
    return text


def _tree_lines(d: dict[str, Any], out: IO[str]) -> None:
    """Write a description as an indented tree."""
    out.write(_head_text(d) + "\n")

    def children(node: dict[str, Any], prefix: str) -> None:
        items = node.get("items")
        if items is None:
            return
        more = node["len"] - len(items)
        for n, item in enumerate(items):
            last = n == len(items) - 1 and more == 0
            # A sequence's items are descriptions; a mapping's, [key, description] pairs.
            label, child = (_key_text(item[0]), item[1]) if isinstance(item, list) else (f"[{n}]", item)
            out.write(f"{prefix}{'└── ' if last else '├── '}{label}: {_head_text(child)}\n")
            children(child, prefix + ("    " if last else "│   "))
        if more:
            out.write(f"{prefix}└── … {_count(more, 'more item')}\n")

    children(d, "")


# --- commands -------------------------------------------------------------------------------------------------------


def _nonnegative(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {n}")
    return n


def _inspect(args: argparse.Namespace) -> int:
    opened = _open(args.file)
    try:
        if opened.lazy is not None:
            tree = _Tree(opened.lazy)
            description = tree.describe(tree.doc.root, (), args.depth, args.items, raw_keys=not args.json)
        else:
            description = _describe_value(opened.value, (), args.depth, args.items, not args.json, {})
            if opened.fmt == "plain safetensors":  # a sharded checkpoint's dict: its keys are the tensors' names
                for name, tensor in description.get("items", []):
                    tensor["tensor"] = name
        if args.json:
            header = {"file": opened.path, "format": opened.fmt, "shards": opened.shards, "metadata": opened.metadata,
                      "tensors": len(opened.tensors),
                      "tensor_bytes": sum(nbytes for _d, _s, nbytes in opened.tensors.values())}
            _print_json({"header": header, "tree": description})
        else:
            print(opened.summary())
            _tree_lines(description, sys.stdout)
    finally:
        opened.close()
    return 0


def _verify(args: argparse.Namespace) -> int:
    opened = _open(args.file)
    try:
        warnings = []
        if opened.lazy is not None:
            # Every node built: tensors checked against their dtype and shape, every class name, key and reference.
            try:
                opened.lazy.load(framework="numpy")
            except UnsupportedTypeError:
                # A dtype only its own framework has (torch.complex32): build each tensor in its own framework.
                opened.lazy.load(framework=None)
            if opened.fmt == "safestructures v2":
                unused = sorted(set(opened.tensors) - _Tree(opened.lazy).referenced_tensors())
                if unused:
                    shown = ", ".join(quote(n) for n in unused[:10]) + (", ..." if len(unused) > 10 else "")
                    warnings.append(f"{_count(len(unused), 'tensor')} in the file that the data does not use: {shown}")
        warnings += opened.warnings
        for warning in warnings:
            print(f"safestructures verify: warning: {warning}", file=sys.stderr)
        print(f"OK: {opened.summary()}")
    finally:
        opened.close()
    return 0


def _write_npy(array: Any, out: IO[bytes]) -> None:
    """Write an array as .npy. numpy has no name of its own for ml_dtypes' types (bfloat16, float8_*, int4...):
    ``np.save`` would write them as opaque void (``|V2``), so their header names the ml_dtypes type instead, which
    ``np.load`` reads back once ``ml_dtypes`` is imported."""
    import numpy as np

    array = np.ascontiguousarray(array)
    if type(array.dtype.type).__module__.startswith("ml_dtypes") or array.dtype.type.__module__.startswith("ml_dtypes"):
        np.lib.format.write_array_header_1_0(out, {"descr": array.dtype.name, "fortran_order": False, "shape": array.shape})
        out.write(array.tobytes())
    else:
        np.lib.format.write_array(out, array, allow_pickle=False)


def _get(args: argparse.Namespace) -> int:
    opened = _open(args.file)
    try:
        parts = _split(args.path)
        if opened.lazy is not None:
            tree = _Tree(opened.lazy)
            index, path = tree.find(parts)
            value = tree.build(index, path)
        else:
            path, value = _walk(((), opened.value), parts, lambda node: _value_children(node[1]),
                                lambda node: "none" if node[1] is None else type(node[1]).__name__,
                                lambda node, key, child: (node[0] + (key,), child))
        if _is_tensor(value) and not args.json:
            if args.output is None:
                raise UsageError(f"{_path_text(path)} is a tensor ({value.dtype} {list(value.shape)}): give -o FILE.npy "
                                 "to write it (-o - for standard output), or --json for its values")
            if args.output == "-":
                _write_npy(value, sys.stdout.buffer)
                sys.stdout.buffer.flush()
            else:
                with open(args.output, "wb" if args.force else "xb") as out:  # never replaced without --force
                    _write_npy(value, out)
                print(f"wrote {args.output} ({value.dtype} {list(value.shape)}, {_size(value.nbytes)})", file=sys.stderr)
            return 0
        if args.output is not None:
            raise UsageError(f"{_path_text(path)} is not a tensor: -o writes tensors only (values are printed as JSON)")
        _print_json(_to_json(value, path, args.json, {}))
    finally:
        opened.close()
    return 0


def _plugin(spec: str) -> Any:
    """A plugin class named on the command line as ``module:Class`` (the user names the code to run, not a file)."""
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise argparse.ArgumentTypeError(f"a plugin is given as module:Class, not {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
        for part in class_name.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as e:
        raise argparse.ArgumentTypeError(f"cannot find plugin {spec!r}: {e}") from None
    return target


def _upgrade(args: argparse.Namespace) -> int:
    from . import _v1

    _buffer, metadata, _tensors = _core.read_file(args.old)
    if not _v1.is_v1(metadata):
        print(f"safestructures upgrade: {args.old} is not a safestructures 1.0.0 file", file=sys.stderr)
        return 2
    data = load_file(args.old, plugins=args.plugin or None, strict=args.strict)
    kept = {k: v for k, v in (metadata or {}).items() if k not in (_v1.SCHEMA_KEY, _v1.VERSION_KEY)}
    save_file(data, args.new, metadata=kept, plugins=args.plugin or None)
    print(f"wrote {args.new}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="safestructures", description="Work with safestructures files (and plain safetensors files).",
        epilog="FILE is a .safetensors file, or a sharded directory (or its model.safetensors.index.json). Exit "
        "status: 0 success, 1 a bad or unreadable file (the reason on standard error), 2 a usage error.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    inspect = commands.add_parser(
        "inspect", help="show the tree a file holds: types, dtypes, shapes and sizes",
        description="Show what a file holds as a tree: containers with their sizes, tensors with dtype, shape, bytes "
        "and framework, scalars with their values, classes by name. Reads the header and schema only (a 1.0.0 file "
        "is loaded, its tensors mapped, not read).",
    )
    inspect.add_argument("file", metavar="FILE", help="the file, or a sharded directory")
    inspect.add_argument("--depth", type=_nonnegative, metavar="N", help="show N levels below the root (default: all)")
    inspect.add_argument("--items", type=_nonnegative, metavar="N", help="show at most N children of each container")
    inspect.add_argument("--json", action="store_true", help="print {\"header\": ..., \"tree\": ...} as JSON")
    inspect.set_defaults(run=_inspect)

    verify = commands.add_parser(
        "verify", help="check a whole file: header, schema, every value and tensor",
        description="Check a file completely: its header, its schema, and every node built (as numpy, so no framework "
        "is needed), every tensor's bytes inside the file and consistent with its dtype and shape. Prints 'OK: ...' "
        "and exits 0 on a good file; prints the reason (naming the tensor or the path in the data) and exits 1 on a "
        "bad one. Tensors of the file the data does not use are reported as a warning; the file is still OK.",
    )
    verify.add_argument("file", metavar="FILE", help="the file, or a sharded directory")
    verify.set_defaults(run=_verify)

    get = commands.add_parser(
        "get", help="print a value as JSON, or write a tensor as .npy",
        description="Print the value at PATH as JSON, or write the tensor at PATH as a .npy file. PATH is dotted as "
        "tensor names are (model.layers.0.weight; '' or '.' for the whole data): sequence items by index, keys that "
        "hold dots as they are; or written as error messages write it, $[\"model\"][\"layers\"][0], for exact keys "
        "(\"1\" is a string, 1 an int). A bfloat16/float8 tensor's .npy names its ml_dtypes type: import ml_dtypes "
        "before np.load.",
    )
    get.add_argument("file", metavar="FILE", help="the file, or a sharded directory")
    get.add_argument("path", metavar="PATH", help="the dotted path of the value")
    how = get.add_mutually_exclusive_group()
    how.add_argument("-o", "--output", metavar="OUT.npy", help="where to write a tensor ('-' for standard output); "
                     "an existing file is not replaced without --force")
    how.add_argument("--json", action="store_true", help="print tensors' values as JSON arrays instead")
    get.add_argument("--force", action="store_true", help="replace OUT.npy if it exists")
    get.set_defaults(run=_get)

    upgrade = commands.add_parser(
        "upgrade",
        help="rewrite a safestructures 1.0.0 file in the current format",
        description="Rewrite a file written by safestructures 1.0.0 in the current format (the same data, the same "
        "metadata). Plugin types of the old file are rebuilt through the --plugin classes given, and saved through "
        "them again; without one they are kept as records.",
    )
    upgrade.add_argument("old", help="the 1.0.0 file")
    upgrade.add_argument("new", help="where to write the upgraded file (replaced atomically)")
    upgrade.add_argument("--plugin", action="append", type=_plugin, metavar="MODULE:CLASS", help="a 1.0.0-style plugin class (repeatable)")
    upgrade.add_argument("--strict", action="store_true", help="fail on a type no --plugin handles, instead of keeping it as a record")
    upgrade.set_defaults(run=_upgrade)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 1 a bad file or data, 2 a usage error)."""
    args = _parser().parse_args(argv)
    # The walks recurse once per level of the data; files may nest up to max_depth (1000) levels, each a few frames.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        return int(args.run(args))
    except BrokenPipeError:  # output piped into a command that stopped reading (head): not an error of the file
        try:  # what is left in standard output's buffer goes nowhere, instead of failing again at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # not a real file (output captured in-process)
            pass
        return 1
    except UsageError as e:
        print(f"safestructures {args.command}: {e}", file=sys.stderr)
        return 2
    except PathNotFound as e:
        print(f"safestructures {args.command}: {e}", file=sys.stderr)
        return 1
    except FileExistsError as e:
        print(f"safestructures {args.command}: {e.filename} exists (--force replaces it)", file=sys.stderr)
        return 1
    except SafestructuresError as e:
        # Name the file, as the header's errors do, so that a message from a batch of files says which one it is.
        where = getattr(args, "file", None)
        message = str(e) if where is None or str(e).startswith(where) else f"{where}: {e}"
        print(f"safestructures {args.command}: {message}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"safestructures {args.command}: {e}", file=sys.stderr)
        return 1
    finally:
        sys.setrecursionlimit(limit)

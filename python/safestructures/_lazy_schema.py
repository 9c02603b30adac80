"""An opened file's tree as the lazy API and the command line walk it, read through the core's reader
(``_core.LazyFile``: kinds, references followed, the children of every container): ``_TreeView`` keeps what each node
read gave and builds the keys that are not JSON scalars; ``describe``, the one walk that describes a tree (for
``Node.describe`` and ``inspect``); paths as messages write them; how walks show values."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from . import _core
from ._errors import InvalidFileError, SafestructuresError, quote, shown
from ._format import DTYPE_NUMPY_NAMES, FIELD, TAG, TENSOR_TAGS

if TYPE_CHECKING:
    from ._lazy import SafeFile

__all__ = ["describe", "path_text"]

# The JSON kinds of the tape (``LazyFile.node``) that are containers; the others are scalars.
_JSON_CONTAINERS = ("array", "object")


def path_text(path: Iterable[Any]) -> str:
    """A path as error messages write it: ``$["model"]["layers"][0]``, other keys by their bounded repr (``$[1.5]``;
    an int too long to write in decimal by its size); a deep one cut as the core cuts its messages' paths
    (``_core.path_cut``: ``$[0][0]...[... 970 more ...][0]``), or a message 1,000 levels deep would run to megabytes."""
    return "$" + "".join(_cut(path, _path_part, "[... {} more ...]"))


def _path_part(p: Any) -> str:
    return f"[{quote(p) if isinstance(p, str) else _json_scalar(p) if type(p) is int else shown(p)}]"


def _cut(path: Iterable[Any], show: Callable[[Any], str], more: str) -> list[str]:
    """Each part of ``path`` as ``show`` writes it, the middle of a deep path (``_core.path_cut``) as one part,
    ``more`` with its count of parts."""
    parts = list(path)
    first, last = _core.path_cut(len(parts))
    if first == last:
        return list(map(show, parts))
    return [*map(show, parts[:first]), more.format(last - first), *map(show, parts[last:])]


def located(error: SafestructuresError, path: Iterable[Any], prefix: str) -> SafestructuresError:
    """The core writes paths from the node it was asked about ("at $[0]: ..."); made absolute here, after ``prefix``
    (the file's name). The class and the code stay those of the core's error."""
    message = str(error)
    if message.startswith("at $"):
        message = "at " + path_text(path) + message[len("at $"):]
    return type(error)(f"{prefix}{message}", code=error.code)


def _check_keys_distinct(entries: list[tuple[Any, int]], built: set[int], path: Iterable[Any], prefix: str) -> None:
    """Refuses a mapping's pairs holding two equal keys, as a load does (a saved mapping never holds them): the keys
    shown would be more than the mapping a load builds. ``built``: the pairs whose keys were built from nodes."""
    seen: set[Any] = set()
    for k, (key, _child) in enumerate(entries):
        try:
            if key in seen:
                what = (f"a mapping holds the key {quote(key) if type(key) is str else key} twice"
                        if type(key) in (str, int) and k not in built else f"the key of pair {k} equals an earlier key of the mapping")
                raise InvalidFileError(f"{prefix}at {path_text(path)}: {what}", code="SchemaInvalid")
            seen.add(key)
        except TypeError:  # unhashable: a load says so, where it builds the mapping
            continue


class _TreeView:
    """An opened file's tree as walks read it, through the core: each node's members and children read once, and the
    keys of a mapping that are not JSON scalars built (in one pass, within a load's limits). ``Node``, ``describe``
    and the command line's walks all read the tree through the file's one view."""

    def __init__(self, file: SafeFile) -> None:
        self.file = file
        self._heads: dict[int, tuple[str, str | None, dict[str, int], str]] = {}
        self._children: dict[int, tuple[bool, list[tuple[Any, int]]] | None] = {}

    @property
    def doc(self) -> Any:
        return self.file._document()

    def head(self, index: int) -> tuple[str, str | None, dict[str, int], str]:
        """(JSON kind, tag, {member: node}, kind) of a node: members only for a tagged object (a plain dict's keys are
        data); kind is what it holds, its tag or the Python type of plain JSON (``"none"``, ``"list"``...)."""
        found = self._heads.get(index)
        if found is None:
            doc = self.doc
            json_kind, tag, _count, _end, kind = doc.node(index)
            found = self._heads[index] = (json_kind, tag, dict(doc.entries(index)) if tag is not None else {}, kind)
        return found

    def field(self, index: int, name: str) -> Any:
        """A scalar field of a tagged node, or a list of scalars (None when absent or anything else)."""
        child = self.head(index)[2].get(name)
        if child is None:
            return None
        doc = self.doc
        json_kind = doc.node(child)[0]
        if json_kind not in _JSON_CONTAINERS:
            return doc.value(child)
        items = [item for _k, item in doc.entries(child)] if json_kind == "array" else None
        if items is None or any(doc.node(item)[0] in _JSON_CONTAINERS for item in items):
            return None  # only a list of scalars is a field (a shape, the names of a named tuple)
        return [doc.value(item) for item in items]

    def resolve(self, index: int, path: Iterable[Any]) -> tuple[int, int | None]:
        """(the node ``index`` stands for, the reference id when it is a reference): a ref reads as the object it refers
        to (its first occurrence), a "nested" value of a 1.0.0-style plugin as its "v" (which loads as itself)."""
        try:
            return self.doc.follow(index)  # type: ignore[no-any-return]
        except InvalidFileError as e:
            raise located(e, path, f"{self.file._source}: ") from None

    def children(self, index: int, path: Iterable[Any]) -> tuple[bool, list[tuple[Any, int]]] | None:
        """(whether the children are indexed, [(key or index, child node)]) of a resolved container node, in stored
        order; None for a leaf. Read once per node."""
        if index not in self._children:
            try:
                found = self.doc.children(index)
            except InvalidFileError as e:
                raise located(e, path, f"{self.file._source}: ") from None
            if found is not None:
                indexed, entries, to_build = found
                if to_build:
                    keys = self.file._load_many([(node, path) for _k, node in to_build], keys=True)
                    for (k, _node), key in zip(to_build, keys):
                        entries[k] = (key, entries[k][1])
                if to_build is not None:
                    _check_keys_distinct(entries, {k for k, _node in to_build}, path, f"{self.file._source}: ")
                found = (indexed, entries)
            self._children[index] = found
        return self._children[index]


def tensor_fields(view: _TreeView, index: int, find: Callable[[str], Any]) -> dict[str, Any]:
    """What describe() says of a tensor node: dtype (as numpy names it), shape (None when neither the node nor the
    header gives one), nbytes (0 for a view within another tensor), framework, the tensor holding its data
    ("tensor"), the storage a view lives in ("storage"), a tensor the file lacks ("missing"). ``find(name)`` gives a
    tensor's (dtype, shape, nbytes, ...) from the header, or None (or raises)."""
    name, storage = view.field(index, FIELD.name), view.field(index, FIELD.storage)
    info = find(name) if isinstance(name, str) else None
    dtype = view.field(index, FIELD.dtype)
    if not isinstance(dtype, str):
        found = info if info is not None else (find(storage) if isinstance(storage, str) else None)
        dtype = None if found is None else DTYPE_NUMPY_NAMES.get(found[0], found[0])
    shape = view.field(index, FIELD.shape)
    if not (isinstance(shape, list) and all(type(d) is int for d in shape)):
        shape = None if info is None else list(info[1])
    if view.field(index, FIELD.pairs) is True and shape:
        shape[-1] //= 2
    fw = view.field(index, FIELD.framework)
    out: dict[str, Any] = {"dtype": dtype, "shape": shape, "nbytes": 0 if info is None else info[2],
                           "framework": fw if isinstance(fw, str) else None}
    if info is not None:
        out["tensor"] = name
    elif isinstance(name, str):
        out["missing"] = name
    if isinstance(storage, str):
        out["storage"] = storage
    return out


def bytes_size(view: _TreeView, index: int, find: Callable[[str], Any]) -> int | None:
    """The length of a bytes node: its tensor's size, or the length its base64 text decodes to."""
    name = view.field(index, FIELD.tensor)
    info = find(name) if isinstance(name, str) else None
    if info is not None:
        return int(info[2])
    b64 = view.field(index, FIELD.base64)
    return len(b64) // 4 * 3 - b64[-2:].count("=") if isinstance(b64, str) else None


#: The most bits an int shown as a number may have: Python refuses to write ints of over 4300 digits as text (the
#: conversion takes time quadratic in their length), so longer ones are shown by their size, or written in hex.
_INT_BITS = 14_000


def _key_text(key: Any) -> str:
    """How a dotted path writes a key, as tensor names do: a str as itself, a number by str() (an int of at most
    ``_INT_BITS`` bits), anything else by its bounded repr."""
    if isinstance(key, str):
        return key
    if type(key) in (bool, float, complex, type(None)) or (type(key) is int and key.bit_length() <= _INT_BITS):
        return str(key)
    return shown(key)


def _json_scalar(value: Any) -> Any:
    """A scalar (or key) as a description shows it: itself when JSON has it, else its repr (bounded: ``shown``)."""
    if value is None or type(value) in (bool, str):
        return value
    if type(value) is int:
        return value if value.bit_length() <= _INT_BITS else shown(value)
    if type(value) is float and math.isfinite(value):
        return value
    return shown(value)


class _Link:
    """A path in a walk as a link to its parent's path: extending it costs one object whatever the depth, where a
    tuple per node would cost its depth (a crafted file of a million nodes a thousand levels deep would hold a
    billion parts). Spelled out, by iterating it, only where a path is shown: a message, a ``same_as``."""

    __slots__ = ("parent", "key")

    def __init__(self, parent: _Link | tuple[Any, ...], key: Any) -> None:
        self.parent = parent
        self.key = key

    def __iter__(self) -> Iterator[Any]:
        keys = []
        link: _Link | tuple[Any, ...] = self
        while type(link) is _Link:
            keys.append(link.key)
            link = link.parent
        return iter((*link, *reversed(keys)))  # type: ignore[misc]


def _dotted(path: Iterable[Any]) -> str:
    """A path as tensor names write it: ``model.layers.0`` (each key as :func:`_key_text` writes it); a deep one cut as
    the core's messages cut it (``_core.path_cut``: ``a.0.0 ... 970 more ... 0.0``), since a description names a
    first place once per node met again: written whole each time, a path 1,000 levels deep would make a 550 KB file
    print 1.2 GB."""
    return ".".join(_cut(path, _key_text, "... {} more ..."))


def _same_as(seen: dict[Any, _Link | tuple[Any, ...] | str], key: Any) -> str:
    """The first path of a node met again (``seen[key]``), as ``same_as`` shows it: spelled out once, the text then
    standing in ``seen`` for the path, so that a node named from many places costs its depth once."""
    first = seen[key]
    if not isinstance(first, str):
        first = seen[key] = _dotted(first)
    return first


def met_again(seen: dict[Any, _Link | tuple[Any, ...] | str], identity: Any, path: _Link | tuple[Any, ...]) -> str | None:
    """The one rule of every description of a tree (``describe`` over a file's nodes, the command line over loaded
    values): None when the node of ``identity`` is met first (its ``path`` kept in ``seen``), else its first path,
    as ``same_as`` shows it. A node whose ``identity`` is None has none of its own: it is never met again."""
    if identity is None:
        return None
    if identity in seen:
        return _same_as(seen, identity)
    seen[identity] = path
    return None


def value_identity(value: Any) -> int | None:
    """What tells a loaded value apart from another, as a save tells objects apart: its ``id``, but none for an
    empty tuple, which a save never writes as a reference (Python hands out one empty tuple for all, so the empty
    tuples of a file load as one object)."""
    return None if type(value) is tuple and not value else id(value)


def describe(view: _TreeView, index: int, path: _Link | tuple[Any, ...], depth: int | None,
             find: Callable[[str], Any], commands: bool = False, max_items: int | None = None,
             raw_keys: bool = False) -> dict[str, Any]:
    """The node at ``index`` as plain JSON-ready data, down to ``depth`` levels (all when None): the one walk behind
    ``Node.describe`` and the command line's ``inspect``. ``find`` gives a tensor's header entry (see
    ``tensor_fields``). A container met again (shared, or a cycle back to an ancestor) is described once, then named
    by its first path (``same_as``) as ``{kind, same_as}``. With ``commands``, what the commands show besides: every
    reference to a node already described (tensors included) is named so, its own fields kept; a view's ``storage``;
    at most ``max_items`` children per container; keys left as they are with ``raw_keys``.

    Iterative, so that the deepest data a file may hold does not exhaust Python's recursion. The leaves whose value
    must be built (an Ellipsis, an enum member, a big int...) are built at the end, by one load of them all."""
    doc = view.doc
    result: dict[str, Any] = {}
    stack: list[tuple[int, _Link | tuple[Any, ...], dict[str, Any], int | None]] = [(index, path, result, depth)]
    seen: dict[Any, _Link | tuple[Any, ...] | str] = {}  # resolved node -> the path it was first described at
    pending: dict[int, tuple[_Link | tuple[Any, ...], list[dict[str, Any]]]] = {}  # node -> (path, descriptions)
    while stack:
        index, path, out, depth = stack.pop()
        json_kind, tag, count, _end, kind = doc.node(index)
        entries: Sequence[tuple[Any, int]] | None = None
        indexed = json_kind == "array"
        if tag is None:
            # Plain JSON, the bulk of most files, straight from the tape (it has no id, so it is met only once).
            out["kind"] = kind
            if json_kind not in _JSON_CONTAINERS:
                out["value"] = _json_scalar(doc.value(index))
                continue
            out["len"] = count
            entries = doc.entries(index)
        else:
            index, ref = view.resolve(index, path)
            json_kind, tag, _members, kind = view.head(index)
            found = None if tag in TENSOR_TAGS else view.children(index, path)
            same_as = met_again(seen, index, path)
            if same_as is not None and not commands and found is not None:
                out.update(kind=kind, same_as=same_as)
                continue
            if ref is None or not commands:
                same_as = None
            out["kind"] = kind
            type_name = view.field(index, FIELD.type)
            if isinstance(type_name, str):
                out["type"] = type_name
            if tag == TAG.Tensor:
                tensor = tensor_fields(view, index, find)
                out.update(tensor, shape=tensor["shape"] or [])
                if not commands:
                    out.pop("storage", None)
            elif tag in (TAG.Bytes, TAG.ByteArray):
                out["nbytes"] = bytes_size(view, index, find)
            elif found is None:
                if json_kind not in _JSON_CONTAINERS:
                    out["value"] = _json_scalar(doc.value(index))
                else:
                    out["value"] = None  # filled in below, once every leaf to build is known
                    pending.setdefault(index, (path, []))[1].append(out)
            else:
                indexed, found_entries = found
                out["len"] = len(found_entries)
                if same_as is None:
                    entries = found_entries
            if same_as is not None:
                out["same_as"] = same_as
        if entries is None or (depth is not None and depth <= 0):
            continue
        deeper = None if depth is None else depth - 1
        items: list[Any] = []
        out["items"] = items
        todo = []
        for key, child in entries if max_items is None else entries[:max_items]:
            child_out: dict[str, Any] = {}
            items.append(child_out if indexed else [key if raw_keys else _json_scalar(key), child_out])
            todo.append((child, _Link(path, key), child_out, deeper))
        stack.extend(reversed(todo))  # described in order, so the first occurrence is the one expanded
    if pending:
        nodes = list(pending.items())
        values = view.file._load_many([(i, where) for i, (where, _outs) in nodes], framework="numpy")
        for (_i, (_where, outs)), value in zip(nodes, values):
            for described in outs:
                described["value"] = _json_scalar(value)
    return result

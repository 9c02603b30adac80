"""Paths into the data: the one walk that follows a path's parts down a tree (``SafeFile.node``/``load`` and the
command line's ``get``, over a file's schema or over values already loaded), its rule for dotted parts, and the
words of what it says when a path names nothing."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ._errors import _a, _count, shown
from ._format import TAG
from ._lazy_schema import _key_text, path_text

__all__ = ["INDEX_DIGITS", "Exact", "Miss", "PathMiss", "by_text", "index_of", "walk"]

T = TypeVar("T")

#: The most digits a path part written as an index may have: no sequence is that long, and ``int()`` refuses texts
#: of over 4,300 digits (the conversion takes time quadratic in their length).
INDEX_DIGITS = 4000
_INDEX = re.compile(r"-?[0-9]+")


@dataclass(frozen=True)
class Exact:
    """A path part that is that exact key (of that type) or index, nothing else: the command line's ``["a.b"]`` and
    ``[1]`` parts."""

    key: Any


def index_of(part: str) -> int | None:
    """The index a dotted part writes (``"0"``, ``"-1"``), None when it writes none (or more digits than any index
    could have)."""
    return int(part) if _INDEX.fullmatch(part) and len(part.lstrip("-")) <= INDEX_DIGITS else None


def by_text(entries: Sequence[tuple[Any, Any]]) -> tuple[dict[str, tuple[Any, Any]], int]:
    """({a key's text: (key, child)}, the most parts a key's text falls into at its dots) of a mapping's or record's
    entries. A key's text is what a dotted path writes for it (``_key_text``: a str as itself, a number by ``str()``,
    anything else by its bounded repr); where two keys write the same text, a str key is the one named (``"1"``
    before ``1``), else the first in stored order."""
    found: dict[str, tuple[Any, Any]] = {}
    for key, child in entries:
        text = _key_text(key)
        if text not in found or (isinstance(key, str) and not isinstance(found[text][0], str)):
            found[text] = (key, child)
    return found, 1 + max((text.count(".") for text in found), default=0)


@dataclass(frozen=True)
class Miss:
    """Where a walk found nothing: at part ``at`` (``part`` as given), at the node of ``path``, of ``kind``, holding
    ``size`` children (the first keys ``some``). ``why`` is ``"leaf"`` (the node has no children), ``"range"`` (no
    such index: ``index``), ``"index"`` (a part that is no index of a sequence) or ``"key"`` (no such key)."""

    at: int
    why: str
    path: Iterable[Any]  # a tuple, or a lazy node's linked path (_lazy_schema._Link)
    kind: str
    part: Any
    size: int = 0
    some: tuple[Any, ...] = ()
    index: int = 0

    def error(self) -> LookupError:
        """The error of the Python API (``SafeFile.node``, ``Node[...]``): IndexError for an index out of range,
        KeyError otherwise."""
        part, where = self.part.key if isinstance(self.part, Exact) else self.part, path_text(self.path)
        if self.why == "leaf":
            return KeyError(f"{where} is a {self.kind}, which has no child {part!r}")
        if self.why == "range":
            return IndexError(f"index {self.index} is out of range for the {self.kind} of {self.size} items at {where}")
        if self.why == "index":
            return KeyError(f"{where} is a {self.kind}: {part!r} is not an index")
        return KeyError(f"{part!r} is not a key of the {self.kind} at {where}")

    def text(self) -> str:
        """The message of the command line (``safestructures get``), which names the node's size and first keys."""
        said, where = repr(self.part.key if isinstance(self.part, Exact) else self.part), path_text(self.path)
        size = f"{_a(self.kind)} of {_count(self.size, 'item')}"
        if self.why == "leaf":
            return f"{where} is {_a(self.kind)}, which has no key {said}"
        if self.why == "range":
            return f"index {self.index} is out of range at {where} ({size})"
        if self.why == "index":
            return f"{where} is {_a(self.kind)}: {said} is not an index"
        some = ", ".join(repr(k) if isinstance(k, str) else shown(k) for k in self.some)
        return f"no key {said} at {where} ({size}" + (f": {some}{', ...' if self.size > 5 else ''})" if self.size else ")")


class PathMiss(LookupError):
    """A path that names nothing: ``miss`` says where the walk that got furthest stopped."""

    def __init__(self, miss: Miss) -> None:
        super().__init__(miss.text())
        self.miss = miss


def walk(root: T, parts: Sequence[str | Exact], children: Callable[[T], tuple[bool, str, Sequence[tuple[Any, Any]] | None]],
         step: Callable[[T, Any, Any], T],
         texts: Callable[[T, Sequence[tuple[Any, Any]]], tuple[dict[str, tuple[Any, Any]], int]] = lambda _n, e: by_text(e),
         identity: Callable[[T], Any] = id) -> tuple[T, tuple[Any, ...]]:
    """(the node, its path) that ``parts`` lead to from ``root``; PathMiss, of the way that got furthest, when none.

    ``children(node)`` gives (indexed, kind, [(key, child)], None for a leaf); ``step(node, key, child)`` makes the
    child node; ``texts(node, entries)`` gives ``by_text(entries)`` (a caller may keep it per node); ``identity(node)``
    is the same for two nodes that are the same (a schema node's index; a value's ``id``). A part of a
    sequence, or a part written as an index of a named tuple, is an index. In a mapping or record, the longest run of
    parts that joins (with ``.``) into a key's text is taken first, then shorter ones: the key that ``keys()`` shows
    (``"a.b"`` beside ``"a"`` -> ``{"b"}``) is the one a path reaches, and the next way is tried only when that one
    leads nowhere. An ``Exact`` part is that key or index, nothing else.

    A node already walked from a part without reaching the end is not walked from there again (the node kept alive
    so that its identity stays its own): keys that join in many ways (``a``, ``a.a``, ``a.a.a`` in a dict that holds
    itself) would otherwise make the walk exponential in the path's length. What is reported is unchanged: a repeat
    adds only misses at parts that the first time already added. The walk keeps its own stack, so that a path of
    thousands of parts through data as deep (a dict that holds itself) does not exhaust Python's recursion."""
    misses: list[Miss] = []
    dead_ends: dict[tuple[Any, int], T] = {}

    def ways(node: T, path: tuple[Any, ...], i: int) -> Iterator[tuple[Any, Any, int]]:
        """(key, child, the part after it) of each way on from ``node`` at part ``i``, in the order tried; what was
        missed is added to ``misses`` when the ways run out."""
        part = parts[i]
        indexed, kind, entries = children(node)
        if entries is None:
            misses.append(Miss(i, "leaf", path, kind, part))
            return
        index = (part.key if type(part.key) is int else None) if isinstance(part, Exact) else index_of(part)
        if index is not None and (indexed or kind == TAG.NamedTuple):
            if not -len(entries) <= index < len(entries):
                misses.append(Miss(i, "range", path, kind, part, len(entries), index=index))
                return
            # Named by its index from 0, as the Python API and tensor names name it (a named tuple's item too).
            index %= len(entries)
            yield index, entries[index][1], i + 1
            return
        if indexed:
            misses.append(Miss(i, "index", path, kind, part, len(entries)))
            return
        if isinstance(part, Exact):
            for key, child in entries:
                if type(key) is type(part.key) and key == part.key:
                    yield key, child, i + 1
                    return
        else:
            keys, longest = texts(node, entries)
            # A run of parts joins with one dot fewer than it has parts: no longer run than the most dotted key.
            for j in range(min(len(parts), i + longest), i, -1):
                run = parts[i:j]
                hit = None if any(isinstance(p, Exact) for p in run) else keys.get(".".join(run))  # type: ignore[arg-type]
                if hit is not None:
                    yield hit[0], hit[1], j
        misses.append(Miss(i, "key", path, kind, part, len(entries), tuple(k for k, _c in entries[:5])))

    if not parts:
        return root, ()
    # (node, its path, its mark: (identity, part), the ways on from it not yet tried)
    stack = [(root, (), (identity(root), 0), ways(root, (), 0))]
    while stack:
        node, path, mark, left = stack[-1]
        way = next(left, None)
        if way is None:
            dead_ends[mark] = node
            stack.pop()
            continue
        key, child, j = way
        child_node, child_path = step(node, key, child), path + (key,)
        if j == len(parts):
            return child_node, child_path
        child_mark = (identity(child_node), j)
        if child_mark not in dead_ends:
            stack.append((child_node, child_path, child_mark, ways(child_node, child_path, j)))
    raise PathMiss(max(misses, key=lambda miss: miss.at))  # of the ways tried, the one that got furthest

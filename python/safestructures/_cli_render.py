"""How the command line renders what it shows: the text tree, JSON (``inspect --json``, ``get``), and loaded values
(1.0.0 files, ``get``). Every value read from a file is rendered in bounded work: shared structure is named by its
first path (never expanded), and anything shown by its repr goes through ``_errors.shown``."""

from __future__ import annotations

import base64
import collections
import json
import math
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

from ._errors import SafestructuresError, _count, quote, shown
from ._format import KIND, TAG
from ._lazy_schema import _INT_BITS, _dotted, _json_scalar, _Link, met_again, path_text, value_identity

# How long a scalar or metadata value may be in the text tree before it is cut.
_TEXT_WIDTH = 60
# Levels indented (JSON) or drawn (inspect's tree): deeper ones start where the last indented one does (whitespace
# means nothing to JSON, and a file may nest 1,000 levels, whose indentation alone would be kilobytes a line).
_INDENTED_LEVELS = 64


# --- text -----------------------------------------------------------------------------------------------------------


def _size(n: int) -> str:
    """Bytes for people: ``24 B``, ``1.5 KiB``, ``3.2 GiB``."""
    if n < 1024:
        return f"{n} B"
    exponent = min(5, (n.bit_length() - 1) // 10)
    return f"{n / 1024 ** exponent:.1f} {('KiB', 'MiB', 'GiB', 'TiB', 'PiB')[exponent - 1]}"


def _cut(text: str, width: int = _TEXT_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


_BARE_KEY = re.compile(r"[A-Za-z_][\w.\-/]*")
# Keys that would read as Python's constants if shown bare.
_CONSTANT_NAMES = {repr(value) for value in (None, True, False, ...)}


def _key_text(key: Any) -> str:
    """A key in the tree: a plain string key bare, any other key as its repr (so ``1`` and ``'1'`` differ)."""
    if isinstance(key, str) and _BARE_KEY.fullmatch(key) and key not in _CONSTANT_NAMES:
        return _cut(key)
    return _cut(shown(key))


def _head_text(d: dict[str, Any]) -> str:
    """One node of a description, as its tree line shows it."""
    kind, name = d["kind"], f" {d['type']}" if "type" in d else ""
    if kind == TAG.Tensor:
        text = f"tensor {d['dtype']} {d['shape']}  {_size(d['nbytes'])}"
        if d.get("framework"):
            text += f"  ({d['framework']})"
        if "missing" in d:
            text = f"tensor  (MISSING: the file has no tensor {quote(d['missing'])})"
        elif "storage" in d:
            text += f"  view of tensor {quote(d['storage'])}"
    elif kind in (TAG.Bytes, TAG.ByteArray):
        text = f"{kind} ({_size(d['nbytes'])})" if d.get("nbytes") is not None else kind
    elif "len" in d:
        noun = "field" if kind in (TAG.Dataclass, TAG.NamedTuple, "record") else "item"
        text = f"{kind}{name} ({_count(d['len'], noun)})"
    else:
        value = d.get("value")
        if kind == KIND.String and isinstance(value, str):
            shown = _cut(repr(value))
            if len(value) > _TEXT_WIDTH:
                shown += f" ({len(value):,} chars)"
        elif kind in ("none", KIND.Bool, KIND.Int, KIND.Float) and not isinstance(value, str):
            shown = _cut(repr(value))
            if kind == KIND.Int and len(shown) < len(repr(value)):
                shown += f" ({len(repr(value).lstrip('-')):,} digits)"
        else:
            shown = _cut(str(value))
        text = f"{kind}{name} = {shown}"
    if "same_as" in d:
        text += f"  (same as {d['same_as'] or '<root>'})"
    elif "len" in d and d["len"] and "items" not in d:
        text += " …"
    return text


def _tree_lines(d: dict[str, Any], write: Callable[[str], None]) -> None:
    """Write a description as an indented tree, drawn _INDENTED_LEVELS levels deep: a deeper line starts where the
    last drawn level's do, its level written (``(level 70)``). Drawn whole, 1,000 levels would prefix each line with
    4 KB: an 800 KB file would print 1.6 GB."""
    write(_head_text(d) + "\n")

    def children(node: dict[str, Any], prefix: str, level: int) -> None:
        items = node.get("items")
        if items is None:
            return
        more = node["len"] - len(items)
        drawn = level < _INDENTED_LEVELS
        marker = "" if drawn else f"(level {level + 1:,}) "
        for n, item in enumerate(items):
            last = n == len(items) - 1 and more == 0
            # A sequence's items are descriptions; a mapping's, [key, description] pairs.
            label, child = (_key_text(item[0]), item[1]) if isinstance(item, list) else (f"[{n}]", item)
            write(f"{prefix}{'└── ' if last else '├── '}{marker}{label}: {_head_text(child)}\n")
            children(child, prefix + ("    " if last else "│   ") if drawn else prefix, level + 1)
        if more:
            write(f"{prefix}└── {marker}… {_count(more, 'more item')}\n")

    children(d, "", 0)


# --- loaded values (1.0.0 files, and the output of get) --------------------------------------------------------------


def _value_children(value: Any) -> tuple[bool, str, list[tuple[Any, Any]] | None]:
    """(indexed, kind, [(key, child)]) of a loaded value; the children are None for a leaf (tensors, scalars, bytes...),
    whose kind is its type's name ("none" for None)."""
    from ._records import NamedRecord, Record

    if isinstance(value, Record):
        return False, "record", list(value._fields.items())
    if isinstance(value, NamedRecord):
        return False, TAG.NamedTuple, list(zip(value._fields, value))
    if isinstance(value, Mapping):
        return False, type(value).__name__, list(value.items())
    if isinstance(value, (list, tuple, set, frozenset, collections.deque)):
        return True, type(value).__name__, list(enumerate(value))
    return False, "none" if value is None else type(value).__name__, None


def _is_tensor(value: Any) -> bool:
    import numpy as np

    return isinstance(value, np.ndarray)


def _describe_value(value: Any, path: _Link | tuple[Any, ...], depth: int | None, max_items: int | None, raw_keys: bool,
                    seen: dict[Any, _Link | tuple[Any, ...] | str]) -> dict[str, Any]:
    """A loaded value described as ``describe`` describes a node (for 1.0.0 files, which are loaded whole):
    a container met a second time (shared, or inside itself) is marked ``same_as`` its first place, not described
    again. ``seen`` maps the id of each container described to its path (the values stay alive, so ids stay theirs)."""
    indexed, kind, entries = _value_children(value)
    if _is_tensor(value):
        out: dict[str, Any] = {"kind": TAG.Tensor, "dtype": str(value.dtype), "shape": list(value.shape),
                               "nbytes": int(value.nbytes), "framework": "numpy"}
    elif isinstance(value, (bytes, bytearray)):
        out = {"kind": kind, "nbytes": len(value)}
    elif entries is None:
        out = {"kind": kind, "value": _json_scalar(value)}
    else:
        out = {"kind": kind}
        if hasattr(value, "type_name"):
            out["type"] = value.type_name
        out["len"] = len(entries)
        same_as = met_again(seen, value_identity(value), path)
        if same_as is not None:
            out["same_as"] = same_as
            return out
        if depth is None or depth > 0:
            deeper = None if depth is None else depth - 1
            described = [(k, _describe_value(v, _Link(path, k), deeper, max_items, raw_keys, seen))
                         for k, v in (entries if max_items is None else entries[:max_items])]
            out["items"] = [d if indexed else [k if raw_keys else _json_scalar(k), d] for k, d in described]
    return out


def _to_json(value: Any, path: _Link | tuple[Any, ...], tensor_values: bool, max_bytes: int = 0) -> Any:
    """A loaded value as JSON data, for ``get``, rendered as docs/cli.md's table says (``$type``, ``$items``,
    ``$same_as``, ``$cycle``, ``$repr``...); with ``tensor_values`` a tensor as its values in nested arrays, at most
    ``max_bytes`` of them in all. Linear in the number of distinct objects: shared ones are never expanded."""
    import numpy as np

    seen: dict[Any, _Link | tuple[Any, ...] | str] = {}  # id of a container (or tensor) rendered -> its first path
    rendering: set[int] = set()  # the containers being rendered (ancestors of the current value)
    left = max_bytes

    def render(value: Any, path: _Link | tuple[Any, ...]) -> Any:
        nonlocal left
        if value is None or type(value) in (bool, str):
            return value
        if type(value) is int:
            return value if value.bit_length() <= _INT_BITS else {"$int_hex": hex(value)}
        if type(value) is float:
            return value if math.isfinite(value) else {"$float": repr(value)}
        if isinstance(value, (bytes, bytearray)):
            return {"$bytes_b64": base64.b64encode(bytes(value)).decode("ascii")}
        if isinstance(value, np.ndarray):
            if not tensor_values:
                return {"$tensor": {"dtype": str(value.dtype), "shape": list(value.shape), "path": _dotted(path)}}
            same_as = met_again(seen, id(value), path)
            if same_as is not None:
                return {"$same_as": same_as}
            # counted against the limit before the values are written out
            nbytes = math.prod(value.shape) * value.dtype.itemsize
            if nbytes > left:
                raise TooLarge(f"{path_text(path)}: writing the values of this tensor ({value.dtype} {list(value.shape)}) "
                               f"takes {nbytes:,} bytes, past the limit of {left:,} bytes left (--max-bytes raises it)")
            left -= nbytes
            if value.dtype.kind == "f" and value.dtype.itemsize < 8:
                # float16/float32 as the shortest decimal that reads back to the same value (2.31, not the float64
                # 2.309999942779541 that tolist gives)
                value = np.array([float(str(x)) for x in value.reshape(-1)], dtype=object).reshape(value.shape)
            return _to_json(value.tolist(), path, False)
        if isinstance(value, np.generic):
            # a float16/float32 scalar as its shortest decimal, as in tensors' values
            item = float(str(value)) if value.dtype.kind == "f" and value.dtype.itemsize < 8 else value.item()
            return render(item, path) if type(item) in (bool, int, float, str, bytes) else {"$repr": shown(value)}
        indexed, kind, entries = _value_children(value)
        if entries is None:
            return {"$repr": shown(value)}
        identity = value_identity(value)
        first = met_again(seen, identity, path)
        if first is not None:
            return {"$cycle": first} if identity in rendering else {"$same_as": first}
        rendering.add(id(value))
        try:
            # A key starting with "$" would read as one of the markers above (a field "$type" as the record's class, a
            # key "$tensor" as a tensor): such a mapping's or record's entries are written as "$items" pairs.
            plain_keys = all(isinstance(k, str) and not k.startswith("$") for k, _v in entries)
            if kind in ("record", TAG.NamedTuple):
                out = {"$type": value.type_name}
                if plain_keys:
                    out.update({k: render(v, _Link(path, k)) for k, v in entries})
                else:
                    out["$items"] = [[k if isinstance(k, str) else shown(k), render(v, _Link(path, k))] for k, v in entries]
                return out
            if indexed:
                return [render(v, _Link(path, k)) for k, v in entries]
            if plain_keys:
                return {k: render(v, _Link(path, k)) for k, v in entries}
            # A key's own parts are found under the mapping's path and "$keyN" (the Nth key).
            return {"$items": [[render(k, _Link(path, f"$key{n}")), render(v, _Link(path, k))]
                               for n, (k, v) in enumerate(entries)]}
        finally:
            rendering.discard(id(value))

    return render(value, path)


class TooLarge(SafestructuresError):
    """A tensor whose values would take more than the command's byte limit to write (exit status 1)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="LimitExceeded")


def _json_scalar_text(value: Any, ascii_only: bool) -> str:
    """One JSON scalar (or empty container) as text: json.dumps's output, without its per-call set-up (a tree of
    10,000 tensors has 150,000 of them)."""
    if type(value) is str:
        if ascii_only:
            return json.encoder.encode_basestring_ascii(value)  # type: ignore[attr-defined]
        text = json.encoder.encode_basestring(value)  # type: ignore[attr-defined]
        # JSON escapes C0 controls only: what else a terminal or viewer acts on (C1 controls, line separators,
        # bidirectional overrides, invisible characters) gets the same \u escape, which JSON reads back as itself.
        return text if text.isprintable() else "".join(c if c.isprintable() else _json_escape(c) for c in text)
    if value is None or type(value) is bool:
        return "null" if value is None else "true" if value else "false"
    if type(value) is int:
        return int.__repr__(value)
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=False)


def _json_escape(c: str) -> str:
    """One character as JSON's \\u escape (a surrogate pair past the first plane)."""
    code = ord(c)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _json_pairs(node: list[Any] | dict[Any, Any], ascii_only: bool) -> list[tuple[str, Any]]:
    """(what precedes a child, the child) for each child of an array or object: keys as json.dumps writes them."""
    if isinstance(node, list):
        return [("", child) for child in node]
    return [(_json_scalar_text(k if isinstance(k, str) else json.dumps(k), ascii_only) + ": ", child)
            for k, child in node.items()]


def _print_json(value: Any) -> None:
    """Print JSON data indented by two spaces a level, an array or object that fits on one line of 100 columns on one
    (a shape, a small tensor's rows); text that standard output cannot encode (a lone surrogate) as \\u escapes.
    The one-line forms are found first, bottom-up (by id; None when longer than a line can hold), then the text is
    written top-down as it goes, so that the work is that of the output and the memory a line's worth per container,
    however deeply the value nests."""
    encoding = sys.stdout.encoding or "utf-8"
    ascii_only, encodable = False, True
    one_line: dict[int, str | None] = {}

    def measure(node: Any) -> str | None:
        nonlocal encodable
        if not isinstance(node, (list, dict)) or not node:
            text = _json_scalar_text(node, ascii_only)
            if encodable and not text.isascii():
                try:
                    text.encode(encoding)
                except UnicodeEncodeError:
                    encodable = False
            return text if len(text) <= 100 else None
        parts = [(head, measure(child)) for head, child in _json_pairs(node, ascii_only)]
        line = None
        if all(text is not None for _head, text in parts):
            line = ", ".join(head + text for head, text in parts)  # type: ignore[operator]
            line = ("[" + line + "]" if isinstance(node, list) else "{" + line + "}") if len(line) <= 98 else None
        one_line[id(node)] = line
        return line

    measure(value)
    if not encodable:
        ascii_only = True
        measure(value)
    write = sys.stdout.write

    def emit(node: Any, level: int) -> None:
        if not isinstance(node, (list, dict)) or not node:
            write(_json_scalar_text(node, ascii_only))
            return
        line, shown_level = one_line[id(node)], min(level, _INDENTED_LEVELS)
        if line is not None and len(line) + 2 * shown_level <= 100:
            write(line)
            return
        entries, pad = _json_pairs(node, ascii_only), "  " * min(level + 1, _INDENTED_LEVELS)
        write("[\n" if isinstance(node, list) else "{\n")
        for n, (head, child) in enumerate(entries):
            write(pad + head)
            emit(child, level + 1)
            write(",\n" if n + 1 < len(entries) else "\n")
        write("  " * shown_level + ("]" if isinstance(node, list) else "}"))

    emit(value, 0)
    write("\n")

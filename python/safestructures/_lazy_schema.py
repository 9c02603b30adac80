"""An opened file's schema as the lazy API and the command line walk it: the tables of node kinds, paths as
messages write them, and ``_Schema``, which reads each node once and follows references."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from ._errors import InvalidFileError, quote, shown

if TYPE_CHECKING:
    from ._lazy import SafeFile

__all__ = ["path_text", "type_names"]

# The numpy name of each safetensors dtype (what a tensor of that dtype loads as in numpy).
_DTYPE_NAMES = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16", "F16": "float16", "BF16": "bfloat16",
    "I32": "int32", "U32": "uint32", "F32": "float32", "C64": "complex64", "F64": "float64", "I64": "int64", "U64": "uint64",
    "F8_E5M2": "float8_e5m2", "F8_E4M3": "float8_e4m3fn", "F8_E8M0": "float8_e8m0fnu", "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2FNUZ": "float8_e5m2fnuz", "F4": "float4_e2m1fn", "F6_E2M3": "float6_e2m3fn", "F6_E3M2": "float6_e3m2fn",
}

# The tensor a schema too large for the header is spilled into (format.md 5.1).
_SPILL = "__safestructures_schema__"

# Tagged nodes whose content is a sequence of items, and those whose items are [key, value] pairs.
_SEQUENCES = {"list", "tuple", "set", "frozenset", "deque"}
_MAPPINGS = {"dict", "OrderedDict", "Counter", "defaultdict"}
# Untagged JSON nodes: the kind each stands for, and those that are scalars.
_JSON_KINDS = {"null": "none", "false": "bool", "true": "bool", "int": "int", "float": "float", "string": "str",
               "array": "list", "object": "dict"}
_JSON_SCALARS = {"null", "false", "true", "int", "float", "string"}


# Tagged nodes that name a class (or a plugin type) in their "type" field.
_NAMED_KINDS = ("dataclass", "namedtuple", "enum", "object", "ext", "plugin")


def type_names(doc: Any) -> dict[str, dict[str, int]]:
    """{kind: {name: count}} of every class (and plugin type) the schema names, read in one pass over its nodes in
    tape order: nothing is built, imported or followed (a reference names nothing itself)."""
    out: dict[str, dict[str, int]] = {}
    root = doc.root
    end = doc.node(root)[3]
    for index in range(root, end):
        json_kind, tag, _count, _end = doc.node(index)
        if json_kind != "object" or tag not in _NAMED_KINDS:
            continue
        for key, child in doc.members(index):
            if key == "type":
                if doc.node(child)[0] == "string":
                    name = doc.value(child)
                    names = out.setdefault(tag, {})
                    names[name] = names.get(name, 0) + 1
                break
    return out


def path_text(path: Sequence[Any]) -> str:
    """A path as error messages write it: ``$["model"]["layers"][0]``, other keys by repr (``$[1.5]``)."""
    return "$" + "".join(f"[{p}]" if type(p) is int else f"[{quote(p) if isinstance(p, str) else repr(p)}]" for p in path)


class _Schema:
    """An opened file's schema as walks read it: each node's members read once, JSON scalars taken straight from the
    tape, a reference (or a value a plugin nested) followed to the node it stands for, and the children of every kind
    of container. ``Node`` and the command line's walk both read the schema through this."""

    def __init__(self, file: SafeFile, prefix: str, key_framework: Any) -> None:
        self.file = file
        # What error messages start with (the file's name), and the framework keys that must be built load in.
        self.prefix = prefix
        self.key_framework = key_framework
        self._heads: dict[int, tuple[str, str | None, dict[str, int]]] = {}
        self._children: dict[int, tuple[bool, list[tuple[Any, int]]] | None] = {}

    @property
    def doc(self) -> Any:
        return self.file._document()

    def fail(self, path: Sequence[Any], what: str) -> NoReturn:
        raise InvalidFileError(f"{self.prefix}at {path_text(path)}: {what}", code="SchemaInvalid")

    def head(self, index: int) -> tuple[str, str | None, dict[str, int]]:
        """(JSON kind, tag, {member: node}) of a node; members only for a tagged object (a plain dict's keys are data)."""
        found = self._heads.get(index)
        if found is None:
            doc = self.doc
            json_kind, tag, _count, _end = doc.node(index)
            found = self._heads[index] = (json_kind, tag, dict(doc.members(index)) if tag is not None else {})
        return found

    def scalar(self, index: int) -> Any:
        """A node's value when it is a JSON scalar, else None."""
        doc = self.doc
        return doc.value(index) if doc.node(index)[0] in _JSON_SCALARS else None

    def resolve(self, index: int, path: Sequence[Any]) -> tuple[int, int | None]:
        """(the node ``index`` stands for, the reference id when it is a reference): a ref reads as the object it refers
        to (its first occurrence), a "nested" value of a 1.0.0-style plugin as its "v" (which loads as itself)."""
        ref_id = None
        followed = {index}
        _json_kind, tag, members = self.head(index)
        while tag in ("ref", "nested"):
            if tag == "ref":
                ref = self.scalar(members["#"]) if "#" in members else None
                target = self.doc.definition(ref) if type(ref) is int else None
                if target is None:
                    self.fail(path, "a reference to an object the file does not define")
                ref_id = ref if ref_id is None else ref_id
            else:
                target = members.get("v")
                if target is None:
                    self.fail(path, 'a "nested" node needs a value "v"')
            if target in followed:  # a crafted "nested" node that defines an id its own value refers to
                self.fail(path, "a reference to itself")
            followed.add(target)
            index = target
            _json_kind, tag, members = self.head(index)
        return index, ref_id

    def children(self, index: int, path: Sequence[Any]) -> tuple[bool, list[tuple[Any, int]]] | None:
        """(whether the children are indexed, [(key or index, child node)]) of a resolved container node, in stored
        order; None for a leaf. Read once per node."""
        if index not in self._children:
            self._children[index] = self._read_children(index, path)
        return self._children[index]

    def _read_children(self, index: int, path: Sequence[Any]) -> tuple[bool, list[tuple[Any, int]]] | None:
        doc = self.doc
        json_kind, tag, members = self.head(index)
        if tag is None:
            if json_kind == "object":
                return False, list(doc.members(index))
            if json_kind == "array":
                return True, list(enumerate(doc.elements(index)))
            return None
        if tag in _SEQUENCES:
            return (True, list(enumerate(doc.elements(members["items"])))) if "items" in members else None
        if tag in _MAPPINGS:
            return (False, self._pairs(members["items"], path)) if "items" in members else None
        if tag == "namedtuple":
            names = [self.scalar(c) for c in doc.elements(members["fields"])] if "fields" in members else []
            values = doc.elements(members["items"]) if "items" in members else []
            return False, list(zip(names, values))
        if tag == "dataclass":
            return (False, list(doc.members(members["fields"]))) if "fields" in members else None
        if tag in ("object", "ext", "plugin"):
            # The base content of a built-in subclass, else the attributes, else a plugin's or to_data's value.
            for wrapper in ("value", "attrs", "data"):
                if wrapper in members:
                    return self.children(self.resolve(members[wrapper], path)[0], path)
        return None

    def _pairs(self, items: int, path: Sequence[Any]) -> list[tuple[Any, int]]:
        doc = self.doc
        keys: list[Any] = []
        values: list[int] = []
        built: list[tuple[int, tuple[Any, ...]]] = []  # (key node, path) of the keys to build, and where they go
        at: list[int] = []
        for k, pair in enumerate(doc.elements(items)):
            kind, _tag, count, _end = doc.node(pair)
            if kind != "array" or count != 2:
                self.fail(path, f"item {k} of a mapping is not a [key, value] pair")
            key_node, value_node = doc.elements(pair)
            # A JSON scalar key is the value a load gives it (str, int, float, bool, None); other keys are built, all
            # in one pass (keys built from shared objects build them once).
            if doc.node(key_node)[0] in _JSON_SCALARS:
                keys.append(doc.value(key_node))
            else:
                keys.append(None)
                built.append((key_node, tuple(path)))
                at.append(k)
            values.append(value_node)
        if built:
            for k, key in zip(at, self.file._load_many(built, framework=self.key_framework, keys=True)):
                keys[k] = key
        return list(zip(keys, values))


def _key_text(key: Any) -> str:
    """How a dotted path writes a key: a str as itself, a number by str(), anything else by its bounded repr."""
    if isinstance(key, str):
        return key
    if type(key) in (bool, float, complex, type(None)) or (type(key) is int and key.bit_length() <= 4096):
        return str(key)
    return shown(key)


def _container_field(doc: Any, node: int) -> Any:
    """A field that is a JSON list of scalars (a shape, the names of a named tuple), else None."""
    if doc.node(node)[0] != "array":
        return None
    values = []
    for child in doc.elements(node):
        if doc.node(child)[0] in ("array", "object"):
            return None
        values.append(doc.value(child))
    return values


def _json_value(value: Any) -> Any:
    """A scalar as JSON shows it: itself when JSON has it, else its repr (bounded: see ``shown``)."""
    if value is None or type(value) is bool or type(value) is str:
        return value
    if type(value) is int and value.bit_length() <= 4096:
        return value
    if type(value) is float and value == value and value not in (float("inf"), float("-inf")):
        return value
    return shown(value)

def _plain_schema(tensors: list[tuple[str, str, tuple[int, ...], int, int]]) -> str:
    """The schema a plain safetensors file would have if safestructures had saved its {name: tensor} dict."""
    nodes = {name: {"$": "tensor", "name": name, "fw": "numpy"} for name, *_ in tensors}
    # Names are unique, so a plain JSON object holds them, unless one is "$" (which would read as a tag).
    root: Any = nodes if "$" not in nodes else {"$": "dict", "items": [[name, node] for name, node in nodes.items()]}
    return json.dumps({"format": "safestructures", "version": 2, "root": root}, separators=(",", ":"))

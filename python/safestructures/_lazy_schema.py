"""An opened file's tree as the lazy API and the command line walk it, read through the core's reader
(``_core.LazyFile``: kinds, references followed, the children of every container): ``_TreeView`` keeps what each node
read gave and builds the keys that are not JSON scalars; paths as messages write them; how walks show values."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._errors import InvalidFileError, SafestructuresError, quote, shown
from ._format import DTYPE_NUMPY_NAMES

if TYPE_CHECKING:
    from ._lazy import SafeFile

__all__ = ["path_text"]

# The JSON kinds of the tape (``LazyFile.node``) that are containers; the others are scalars.
_JSON_CONTAINERS = ("array", "object")


def path_text(path: Sequence[Any]) -> str:
    """A path as error messages write it: ``$["model"]["layers"][0]``, other keys by repr (``$[1.5]``)."""
    return "$" + "".join(f"[{p}]" if type(p) is int else f"[{quote(p) if isinstance(p, str) else repr(p)}]" for p in path)


def located(error: SafestructuresError, path: Sequence[Any], prefix: str) -> SafestructuresError:
    """The core writes paths from the node it was asked about ("at $[0]: ..."); made absolute here, after ``prefix``
    (the file's name). The class and the code stay those of the core's error."""
    message = str(error)
    if message.startswith("at $"):
        message = "at " + path_text(path) + message[len("at $"):]
    return type(error)(f"{prefix}{message}", code=error.code)


class _TreeView:
    """An opened file's tree as walks read it, through the core: each node's members and children read once, and the
    keys of a mapping that are not JSON scalars built (in one pass, within a load's limits). ``Node`` and the command
    line's walk both read the tree through this."""

    def __init__(self, file: SafeFile, prefix: str, key_framework: Any) -> None:
        self.file = file
        # What error messages start with (the file's name), and the framework keys that must be built load in.
        self.prefix = prefix
        self.key_framework = key_framework
        self._heads: dict[int, tuple[str, str | None, dict[str, int]]] = {}
        self._kinds: dict[int, str] = {}
        self._children: dict[int, tuple[bool, list[tuple[Any, int]]] | None] = {}

    @property
    def doc(self) -> Any:
        return self.file._document()

    def head(self, index: int) -> tuple[str, str | None, dict[str, int]]:
        """(JSON kind, tag, {member: node}) of a node; members only for a tagged object (a plain dict's keys are data)."""
        found = self._heads.get(index)
        if found is None:
            doc = self.doc
            json_kind, tag, _count, _end, self._kinds[index] = doc.node(index)
            found = self._heads[index] = (json_kind, tag, dict(doc.entries(index)) if tag is not None else {})
        return found

    def kind(self, index: int) -> str:
        """What a node holds: its tag, or the Python type of plain JSON (``"none"``, ``"list"``...)."""
        if index not in self._kinds:
            self.head(index)
        return self._kinds[index]

    def scalar(self, index: int) -> Any:
        """A node's value when it is a JSON scalar, else None."""
        doc = self.doc
        return doc.value(index) if doc.node(index)[0] not in _JSON_CONTAINERS else None

    def field(self, index: int, name: str) -> Any:
        """A scalar field of a tagged node, or a list of scalars (None when absent or anything else)."""
        child = self.head(index)[2].get(name)
        if child is None:
            return None
        return self.scalar(child) if self.doc.node(child)[0] not in _JSON_CONTAINERS else _container_field(self.doc, child)

    def resolve(self, index: int, path: Sequence[Any]) -> tuple[int, int | None]:
        """(the node ``index`` stands for, the reference id when it is a reference): a ref reads as the object it refers
        to (its first occurrence), a "nested" value of a 1.0.0-style plugin as its "v" (which loads as itself)."""
        try:
            return self.doc.follow(index)  # type: ignore[no-any-return]
        except InvalidFileError as e:
            raise located(e, path, self.prefix) from None

    def children(self, index: int, path: Sequence[Any]) -> tuple[bool, list[tuple[Any, int]]] | None:
        """(whether the children are indexed, [(key or index, child node)]) of a resolved container node, in stored
        order; None for a leaf. Read once per node."""
        if index not in self._children:
            try:
                found = self.doc.children(index)
            except InvalidFileError as e:
                raise located(e, path, self.prefix) from None
            if found is not None:
                indexed, entries, to_build = found
                if to_build:
                    keys = self.file._load_many([(node, tuple(path)) for _k, node in to_build], framework=self.key_framework, keys=True)
                    for (k, _node), key in zip(to_build, keys):
                        entries[k] = (key, entries[k][1])
                found = (indexed, entries)
            self._children[index] = found
        return self._children[index]


def tensor_fields(view: _TreeView, index: int, find: Callable[[str], Any]) -> dict[str, Any]:
    """What describe() says of a tensor node: dtype (as numpy names it), shape (None when neither the node nor the
    header gives one), nbytes (0 for a view within another tensor), framework, the tensor holding its data
    ("tensor"), the storage a view lives in ("storage"), a tensor the file lacks ("missing"). ``find(name)`` gives a
    tensor's (dtype, shape, nbytes, ...) from the header, or None (or raises)."""
    name, storage = view.field(index, "name"), view.field(index, "storage")
    info = find(name) if isinstance(name, str) else None
    dtype = view.field(index, "dtype")
    if not isinstance(dtype, str):
        found = info if info is not None else (find(storage) if isinstance(storage, str) else None)
        dtype = None if found is None else DTYPE_NUMPY_NAMES.get(found[0], found[0])
    shape = view.field(index, "shape")
    if not (isinstance(shape, list) and all(type(d) is int for d in shape)):
        shape = None if info is None else list(info[1])
    if view.field(index, "x2") is True and shape:
        shape[-1] //= 2
    fw = view.field(index, "fw")
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
    name = view.field(index, "tensor")
    info = find(name) if isinstance(name, str) else None
    if info is not None:
        return int(info[2])
    b64 = view.field(index, "b64")
    return len(b64) // 4 * 3 - b64[-2:].count("=") if isinstance(b64, str) else None


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
    for _k, child in doc.entries(node):
        if doc.node(child)[0] in _JSON_CONTAINERS:
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

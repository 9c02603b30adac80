"""Lazy access: ``safestructures.open`` reads a file's header and schema only; nodes are walked without loading, and
``load`` builds just the part asked for (tensors stay unread until then, as pages of a mapping)."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

from . import _core
from ._errors import InvalidArgumentError, InvalidFileError, SafestructuresError, quote, reading
from ._evolve import WHERE_BASE
from ._format import FIELD, RECORDING_PADDING, SCHEMA_KEY, SPILL_TENSOR, TAG
from ._lazy_schema import _Link, _TreeView, bytes_size, describe, located, path_text, tensor_fields
from ._limits import DEFAULT_MAX_DEPTH, DEFAULT_MAX_HEADER_SIZE, DEFAULT_MAX_NODES
from ._paths import Exact, Miss, PathMiss, by_text, walk
from ._ranges import RangeFiller, read_header
from ._source import DCP, PLAIN, PLAIN_SHARDS, V1, V2, Source, check_shards, file_format, resolve, target_of, verify_index
from ._walkers import load_arguments, load_context

__all__ = ["Node", "SafeFile", "open", "open_source"]

class _Default:
    """Marks an argument left to the value given to :func:`open`."""


class Node:
    """One node of an opened file's tree: what it is, its children, and ``load()`` to build it.

    Containers support ``len``, ``[]`` (a key for mappings and records, an index for sequences), iteration (keys of
    a mapping, child nodes of a sequence) and ``keys()``/``values()``/``items()`` for mappings. Tensors report
    ``dtype``, ``shape`` and ``nbytes`` from the header; no tensor data is read until ``load()``.
    """

    __slots__ = ("_file", "_index", "_path", "_tag")

    def __init__(self, file: SafeFile, index: int, path: _Link | tuple[Any, ...]) -> None:
        # The path links to the parent's: a tuple per node would cost its depth (the children of a list 990 levels
        # deep, 300,000 of them from 9 MB, would hold 300 million parts); spelled out where shown.
        self._file = file
        self._path = path
        self._index, _ref = file._schema.resolve(index, path)
        self._tag = file._schema.head(self._index)[1]

    @property
    def kind(self) -> str:
        """What the node holds: ``"dict"``, ``"list"``, ``"tuple"``, ``"tensor"``, ``"int"``, ``"str"``, ``"none"``,
        ``"dataclass"``, ``"namedtuple"``, ``"enum"``, ``"object"``... (the tag of format.md section 5.2, or the Python
        type of a plain JSON value)."""
        return self._file._schema.head(self._index)[3]

    @property
    def type_name(self) -> str | None:
        """The class name stored for a dataclass, named tuple, enum member or object node (``module.QualName``)."""
        name = self._file._schema.field(self._index, FIELD.type)
        return name if isinstance(name, str) else None

    @property
    def path(self) -> str:
        """The node's path, joined with ``.`` as tensor names are (``model.layers.0.weight``); ``""`` for the root."""
        return ".".join(str(p) for p in self._path)

    @property
    def path_text(self) -> str:
        """The node's path as error messages write it (``$["model"]["layers"][0]``)."""
        return path_text(self._path)

    @property
    def is_container(self) -> bool:
        """Whether the node has children to walk (dicts, lists, records...) rather than being one value."""
        return self._children() is not None

    def _find_tensor(self, name: str) -> tuple[str, tuple[int, ...], int, int, int]:
        return self._file._tensor(name, self._path)

    def _tensor_field(self, name: str) -> Any:
        """A field of what describe() says of a tensor node (``tensor_fields``); None for other nodes."""
        if self._tag != TAG.Tensor:
            return None
        return tensor_fields(self._file._schema, self._index, self._find_tensor).get(name)

    @property
    def tensor_name(self) -> str | None:
        """The name of the safetensors tensor holding this tensor's (or long bytes') data; None for a view of another
        tensor's storage and for short bytes."""
        if self._tag in (TAG.Bytes, TAG.ByteArray):
            name = self._file._schema.field(self._index, FIELD.tensor)
            return name if isinstance(name, str) and self._find_tensor(name) else None
        return self._tensor_field("tensor")

    @property
    def dtype(self) -> str | None:
        """A tensor's dtype as numpy names it (``"float32"``, ``"bfloat16"``, ``">i4"``...); None for other nodes."""
        return self._tensor_field("dtype")

    @property
    def shape(self) -> tuple[int, ...] | None:
        """A tensor's shape; None for other nodes."""
        shape = self._tensor_field("shape")
        return None if shape is None else tuple(shape)

    @property
    def framework(self) -> str | None:
        """The framework a tensor was saved from (``"numpy"``, ``"torch"``...); None for other nodes."""
        return self._tensor_field("framework")

    @property
    def nbytes(self) -> int | None:
        """Bytes this tensor or bytes value takes in the file (0 for a view stored within another tensor); None for
        other nodes."""
        if self._tag in (TAG.Bytes, TAG.ByteArray):
            return bytes_size(self._file._schema, self._index, self._find_tensor)
        return self._tensor_field("nbytes")

    def _children(self) -> tuple[bool, list[tuple[Any, int]]] | None:
        """(whether the children are indexed, [(key or index, child node)]), or None for a leaf."""
        return self._file._schema.children(self._index, self._path)

    def _by_key(self, key: Any) -> tuple[Any, int] | None:
        """(stored key, child node) of the first child whose key is ``key`` (of the same type); None when there is
        none. The keys are read into a table once per node: a loop over a big mapping's keys asks for each."""
        found = self._file._keys.get(self._index)
        if found is None:
            found = {}
            for k, child in self._container()[1]:
                try:
                    found.setdefault((type(k), k), (k, child))
                except TypeError:  # an unhashable field name of a crafted record: it can only be reached by index
                    pass
            self._file._keys[self._index] = found
        try:
            return found.get((type(key), key))
        except TypeError:  # an unhashable key is not a key of anything
            return None

    def _by_text(self) -> tuple[dict[str, tuple[Any, int]], int]:
        """``_paths.by_text`` of this mapping or record's children: how dotted paths name them, read once per node
        (a loop of ``node()`` calls over a big mapping's keys asks at each)."""
        found = self._file._texts.get(self._index)
        if found is None:
            found = self._file._texts[self._index] = by_text(self._container()[1])
        return found

    def _container(self, fails: str = "has no children") -> tuple[bool, list[tuple[Any, int]]]:
        """``_children()`` of a container; a leaf raises TypeError saying that it ``fails``."""
        found = self._children()
        if found is None:
            raise TypeError(f"{self.kind} node at {self.path_text} {fails}")
        return found

    def _mapping(self) -> list[tuple[Any, int]]:
        """(key, child node) of every child of a mapping or record node; TypeError for other nodes."""
        indexed, entries = self._container()
        if indexed:
            raise TypeError(f"{self.kind} node at {self.path_text} has indices, not keys")
        return entries

    def _child_nodes(self, entries: list[tuple[Any, int]]) -> list[tuple[Any, Node]]:
        return [(k, Node(self._file, c, _Link(self._path, k))) for k, c in entries]

    def __len__(self) -> int:
        return len(self._container("has no length")[1])

    def __getitem__(self, key: Any) -> Node:
        indexed, entries = self._container()
        if indexed or (self._tag == TAG.NamedTuple and type(key) is int):
            if type(key) is not int:
                raise TypeError(f"{self.kind} node at {self.path_text} is indexed by int, not {type(key).__name__}")
            n = len(entries)
            if not -n <= key < n:
                raise Miss(0, "range", self._path, self.kind, key, n, index=key).error()
            index = key % n
            return Node(self._file, entries[index][1], _Link(self._path, index))
        found = self._by_key(key)
        if found is not None:
            return Node(self._file, found[1], _Link(self._path, found[0]))
        raise Miss(0, "key", self._path, self.kind, key).error()

    def keys(self) -> list[Any]:
        """The keys of a mapping or record node (field names of a dataclass or named tuple), in stored order."""
        return [k for k, _ in self._mapping()]

    def values(self) -> list[Node]:
        """The child nodes, in stored order."""
        return [child for _k, child in self._child_nodes(self._container()[1])]

    def items(self) -> list[tuple[Any, Node]]:
        """(key, child node) pairs of a mapping or record node."""
        return self._child_nodes(self._mapping())

    def __iter__(self) -> Iterator[Any]:
        """Keys of a mapping or record; child nodes of a sequence."""
        return iter(self.values() if self._container("is not iterable")[0] else self.keys())

    def __contains__(self, key: Any) -> bool:
        """Whether a mapping or record node has the key ``key`` (of that exact type: ``1`` is not ``"1"``); False for
        sequences, whose children are not keys."""
        return not self._container()[0] and self._by_key(key) is not None

    def load(self, *, framework: str | None | type[_Default] = _Default, device: str | None = None,
             verify: bool = False) -> Any:
        """Build this node's value: only its own tensors are read (and any object it shares with the rest of the
        file). ``framework``/``device`` override those given to :func:`open`. ``verify=True`` checks the structure
        and each tensor read against the checksums saved with them (:class:`IntegrityError` names what does not
        match); the tensors not read are not checked."""
        file = self._file
        context = file._context(framework, device)
        if self._path:
            context[WHERE_BASE] = functools.partial(path_text, self._path)
        if verify and file._unverified_index is not None:
            verify_index(file._unverified_index, file._document())
            file._unverified_index = None
        try:
            with reading(file._source):
                return file._document().load(self._index, context, verify)
        except SafestructuresError as e:
            raise located(e, self._path, f"{file._source}: ") from None

    def describe(self, max_depth: int | None = None) -> dict[str, Any]:
        """The node as plain JSON-ready data: kind, type, dtype/shape/nbytes of tensors, values of scalars (by a
        bounded repr where JSON has no form for them), and the children down to ``max_depth`` levels (all when None);
        reads no tensor data. A container met again is named by its first path (``same_as``), never expanded."""
        return describe(self._file._schema, self._index, self._path, max_depth, self._find_tensor)

    def __repr__(self) -> str:
        where = self.path or "<root>"
        if self._tag == TAG.Tensor:
            return f"<Node tensor {self.dtype}{list(self.shape or ())} at {where}>"
        if self._children() is not None:
            name = f" {self.type_name}" if self.type_name else ""
            return f"<Node {self.kind}{name} len={len(self)} at {where}>"
        return f"<Node {self.kind} at {where}>"


class SafeFile:
    """A file opened by :func:`open`. Walk it as its root node (``f["model"]``, ``len(f)``, ``f.keys()``), or load a
    part by path with ``f.load("model.layers.0")``. Usable as a context manager; tensors loaded stay valid after
    ``close()`` (they keep the mapping alive)."""

    def __init__(self, source: Source, load_args: dict[str, Any], limits: tuple[int, int, int]) -> None:
        #: For a file read by ranges (a URL, a seekable file object): what fetches them, and counts the bytes fetched.
        self.fetcher: RangeFiller | None = None
        if source.data is not None:  # a stream, read whole
            self._doc: Any = _core.LazyFile.from_buffers([source.data], None, source.name, source.schema, *limits)
            sizes = [len(source.data)]
        elif source.ranged:
            headers = [read_header(reader, limits[2]) for reader in source.ranged]
            buffers = [buffer for buffer, _end in headers]
            self.fetcher = RangeFiller(source.ranged, buffers, [end for _buffer, end in headers])
            self._doc = _core.LazyFile.from_buffers(buffers, self.fetcher, source.name, source.schema, *limits)
            sizes = [reader.size for reader in source.ranged]
        else:
            self._doc = _core.LazyFile(source.paths, source.schema, *limits)
            sizes = [self._doc.buffer(shard).size for shard in range(self._doc.shard_count)]
        self._metadata = source.metadata if source.metadata is not None else self._doc.metadata(0)
        self._load_args = load_args
        self._source = source.name
        # What the default max_bytes of each load is tied to: the bytes of every file.
        self._size = sum(sizes)
        self._schema = _TreeView(self)
        # Per schema node, read when first looked up in: its keys by value (Node._by_key), by text (Node._by_text).
        self._keys: dict[int, dict[Any, tuple[Any, int]]] = {}
        self._texts: dict[int, tuple[dict[str, tuple[Any, int]], int]] = {}
        # A sharded save whose index and shards the first verified load checks against the index's checksums.
        self._unverified_index = source if source.index_maps is not None else None

    def _document(self) -> Any:
        if self._doc is None:
            raise InvalidArgumentError(f"{self._source} is closed")
        return self._doc

    def _tensor(self, name: str, path: tuple[Any, ...]) -> tuple[str, tuple[int, ...], int, int, int]:
        """(dtype, shape, nbytes, shard, offset) of the tensor a node names; InvalidFileError when no file holds it
        (as loading the node would raise)."""
        found = self._document().tensor(name)
        if found is None:
            raise InvalidFileError(f"{self._source}: at {path_text(path)}: the schema refers to tensor {quote(name)}, "
                                   "which the file lacks", code="TensorNotFound")
        return found

    @property
    def metadata(self) -> dict[str, str] | None:
        """The caller's metadata saved with the data (None when the file has no metadata)."""
        return self._metadata

    @property
    def tree(self) -> Node:
        """The root node."""
        return Node(self, self._document().root, ())

    def tensors(self) -> dict[str, tuple[str, tuple[int, ...], int]]:
        """Every tensor in the file (or its shards): name -> (safetensors dtype, shape, nbytes), in file order."""
        doc = self._document()
        out = {}
        for shard in range(doc.shard_count):
            for name, dtype, shape, _offset, nbytes in doc.tensors(shard):
                # A schema spilled into a tensor, and a recording's padding (which only its writer's header takes
                # over), are not part of the data.
                if (name != SPILL_TENSOR and name != RECORDING_PADDING) or not doc.structured:
                    out[name] = (dtype, tuple(shape), nbytes)
        return out

    def type_names(self) -> dict[str, dict[str, int]]:
        """Every class name the file mentions, by node kind, with how many nodes name it: ``{"dataclass": {"m.Config":
        2}, "enum": {...}, ...}`` (``"plugin"`` for plugin types). Read from the schema alone: nothing is built or
        imported, so it is safe to call before deciding what to pass a load in ``types=``."""
        return self._document().type_names()  # type: ignore[no-any-return]

    def node(self, path: str | Sequence[Any] = "") -> Node:
        """The node at ``path``: a dotted path as tensor names are written (``"model.layers.0"``; ``""`` is the root),
        or a sequence of keys and indices (``("model", "layers", 0)``) for keys that are not strings.

        In a dotted path, a key that holds dots itself (a state dict's ``"layers.0.weight"``) is found too: at each
        step the longest run of segments that joins into a key is taken first, then shorter ones, so
        ``"sd.layers.0.weight"`` reaches ``f["sd"]["layers.0.weight"]``, and where ``"a.b"`` and ``"a"`` -> ``"b"``
        are both keys, ``"a.b"`` is the key ``"a.b"`` (what ``keys()`` shows). A shorter key is taken only when the
        longer one leads nowhere. A part of a sequence (or a named tuple) written as an integer is an index; a key
        that is not a string is named by its text (``str()`` of a number), a string key first where both write the
        same. This is the rule of ``safestructures get`` too. KeyError (IndexError for an index out of range) says
        where the walk that got furthest stopped.
        """
        if isinstance(path, str):
            try:
                return find_node(self.tree, [] if path == "" else path.split("."))
            except PathMiss as e:
                raise e.miss.error() from None
        node = self.tree
        for part in path:
            if not node.is_container:
                raise Miss(0, "leaf", node._path, node.kind, part).error()
            node = node[part]
        return node

    def load(self, path: str | Sequence[Any] = "", *, framework: str | None | type[_Default] = _Default,
             device: str | None = None, verify: bool = False) -> Any:
        """Build the value at ``path`` (the whole data by default); see :meth:`node` for paths, and
        :meth:`Node.load` for ``verify``."""
        return self.node(path).load(framework=framework, device=device, verify=verify)

    def _context(self, framework: Any, device: str | None) -> dict[str, Any]:
        """A load's context from the arguments given to :func:`open`, ``framework`` and ``device`` overriding them."""
        args = dict(self._load_args)
        if framework is not _Default:
            args["framework"] = framework
        if device is not None:
            args["device"] = device
        return load_context(**args, file_size=self._size)

    def _load_many(self, nodes: Sequence[tuple[int, Iterable[Any]]], framework: Any = _Default, keys: bool = False) -> list[Any]:
        """Build several nodes ((index, path) each) for a walk over the tree (describe, keys, the command line): an
        object they share, or that they refer to elsewhere in the file, is built once for all of them. With ``keys``,
        the nodes are the keys of one mapping, hashed within the limits a whole load applies to keys."""
        if not nodes:
            return []
        context = self._context(framework, None)
        doc = self._document()
        try:
            with reading(self._source):
                return list(doc.load_many([index for index, _path in nodes], context, keys))
        except SafestructuresError as e:
            raise located(e, nodes[min(doc.failed_at, len(nodes) - 1)][1], f"{self._source}: ") from None

    def close(self) -> None:
        """Release the file (arrays already loaded keep their own reference to its mapping)."""
        self._doc = None

    def __enter__(self) -> SafeFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # The root node's container interface, so ``f["model"]`` and ``len(f)`` work on the file itself.
    def __getitem__(self, key: Any) -> Node:
        return self.tree[key]

    def __len__(self) -> int:
        return len(self.tree)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.tree)

    def __contains__(self, key: Any) -> bool:
        return key in self.tree

    def keys(self) -> list[Any]:
        """The keys of the root mapping."""
        return self.tree.keys()

    def __repr__(self) -> str:
        state = "closed" if self._doc is None else f"{len(self.tensors())} tensors"
        return f"<safestructures file {self._source}: {state}>"


def find_node(root: Node, parts: Sequence[str | Exact]) -> Node:
    """The node that the path ``parts`` leads to from ``root`` (``_paths.walk``: the rule of ``SafeFile.node`` and of
    ``safestructures get``); PathMiss saying where the walk that got furthest stopped."""
    return walk(root, parts, _children_of, _child_node, lambda node, _entries: node._by_text(), lambda node: node._index)[0]


def _children_of(node: Node) -> tuple[bool, str, list[tuple[Any, int]] | None]:
    """A node's children as ``_paths.walk`` reads them: (indexed, kind, [(key, child node)], None for a leaf)."""
    found = node._children()
    return (False, node.kind, None) if found is None else (found[0], node.kind, found[1])


def _child_node(node: Node, key: Any, child: int) -> Node:
    """The child ``child`` (a schema node) of ``node`` under ``key``, as ``_paths.walk`` steps."""
    return Node(node._file, child, _Link(node._path, key))


def open(
    path: str | os.PathLike[str] | IO[bytes],
    framework: str | None = None,
    *,
    device: str = "cpu",
    plugins: type | Iterable[type] | None = None,
    types: Iterable[type] = (),
    strict: bool = False,
    max_depth: int | None = None,
    max_nodes: int | None = None,
    max_header_size: int | None = None,
    max_bytes: int | None = None,
) -> SafeFile:
    """Open a file lazily: only its header and schema are read. Nothing is built and no tensor data is read until a
    node's ``load()`` (or ``f.load(path)``), which reads only the tensors of that part.

    ``path`` is a file saved by :func:`save_file`, a plain safetensors file (its tensors appear as a dict), a
    directory (or its ``model.safetensors.index.json``) written by ``save_file(..., max_shard_size=...)``, or a
    folder of plain shards as Hugging Face's ``save_pretrained`` writes one (its tensors appear as a dict, read
    from the shard the index names only when loaded). It may also be a URL of any fsspec protocol (``https://``,
    ``s3://``...; ``pip install safestructures[remote]``) or a seekable binary file object: the header is fetched
    with range requests, then each ``load()`` fetches only its tensors' bytes (adjacent ones in one request, large
    ones in parallel requests; keep a file object open while loading from it); or a stream that cannot seek, read
    once into memory (as far as its header declares, within ``max_bytes`` where one is given). See docs/files-anywhere.md. The load
    arguments are those of :func:`load_file` and apply to every ``load()`` from this file (``max_bytes`` to each
    load on its own; with ``framework=None``, a tensor comes back in its saved framework only when that framework is
    already imported, as numpy otherwise).

    Raises:
        InvalidFileError: the header or the schema is malformed, or a file of 1.0.0 (load those with load_file).
        OSError: the file cannot be read.
    """
    limits = (
        DEFAULT_MAX_DEPTH if max_depth is None else max_depth,
        DEFAULT_MAX_NODES if max_nodes is None else max_nodes,
        DEFAULT_MAX_HEADER_SIZE if max_header_size is None else max_header_size,
    )
    load_args, _context = load_arguments(framework, device, plugins, types, strict, max_bytes)
    where, target = target_of(path)
    with reading(target):
        opened, fmt = open_source(resolve(where, limits[2], max_bytes), load_args, limits)
    if fmt == V1:
        opened.close()
        raise InvalidFileError(f"{target} was written by safestructures 1.0.0, which open() does not read lazily: load it "
                               "with load_file(), or rewrite it with `safestructures upgrade`")
    return opened


def open_source(source: Source, load_args: dict[str, Any], limits: tuple[int, int, int]) -> tuple[SafeFile, str]:
    """(the file or sharded save ``source`` opened lazily with checked ``load_args``, what it holds: a format of
    :func:`file_format`). A plain file gets the schema of its ``{name: tensor}`` dict; a 1.0.0 file is opened without
    a schema (its caller loads it whole, or refuses it). A checkpoint whose index has no schema is refused."""
    if source.kind == DCP:
        raise InvalidFileError(f"{source.index}: a PyTorch Distributed Checkpoint; load it with safestructures.distributed."
                               "load() (load_file does so), it cannot be opened lazily")
    opened = SafeFile(source, load_args, limits)
    doc = opened._document()
    if source.kind == PLAIN_SHARDS:
        # A checkpoint of plain shards (as transformers writes one): the {name: tensor} dict its index maps, each
        # tensor read from the shard the index names.
        if source.index is not None:
            check_shards(source, doc)
        doc.read_as_plain("numpy", list(source.where))
        return opened, PLAIN
    if source.index is not None:
        check_shards(source, doc)
        return opened, V2
    fmt = file_format(doc.structured, opened.metadata)
    if fmt == PLAIN:
        doc.read_as_plain("numpy")
    return opened, fmt

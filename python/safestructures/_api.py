"""The public save/load API for nested data: files and bytes, through the C++ walkers."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping
from typing import IO, TYPE_CHECKING, Any

from . import _core, _progress, _sharded, plugins as _plugins
from ._errors import InvalidArgumentError, raise_reading, reading
from ._flat import _check_metadata, _fspath, verify_file
from ._lazy import open_source
from ._limits import DEFAULT_MAX_DEPTH, DEFAULT_MAX_HEADER_SIZE, DEFAULT_MAX_NODES
from ._elsewhere import save_elsewhere
from ._ranges import read_whole
from ._remote import is_url
from ._source import DCP, FILE, read_or_resolve, resolve, target_of
from ._streams import is_file_object
from ._walkers import default_context, given_defaults, load, load_arguments, save, unstructured
from .frameworks import canonical

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["DEFAULT_MAX_DEPTH", "DEFAULT_MAX_NODES", "load", "load_file", "save", "save_file"]


def save_file(
    data: Any,
    path: str | os.PathLike[str] | IO[bytes],
    metadata: Mapping[str, str] | None = None,
    plugins: type | Iterable[type] | None = None,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    fsync: bool = False,
    max_shard_size: int | str | None = None,
    checksums: bool = True,
    background: bool = False,
    progress: bool = False,
) -> Future[None] | None:
    """Save nested Python data holding arrays to ``path`` as a valid safetensors file.

    The structure (dicts, lists, tuples, sets, collections, dates, numbers, strings, bytes...) is kept in the file's
    metadata; the arrays are tensors named by their path in the data (``model.layers.0.weight``), so any safetensors
    tool shows them. An object reached twice is stored once and loads back as one object; cycles round-trip.
    ``metadata`` (str -> str) is stored alongside, unchanged. The file is written beside ``path`` and renamed over it:
    a failed save leaves ``path`` as it was (a FIFO or a device at ``path``, or a link to one, which the rename would
    replace, is refused: give a file object to write into one).

    Dataclasses, named tuples, enum members and subclasses of built-in types are saved with their class name and
    their data; other classes need ``register`` (or a 1.0.0-style plugin in ``plugins``).

    With ``max_shard_size`` (bytes, or a text such as ``"5GB"``), ``path`` is a directory that receives the tensors in
    shards of at most that size (a larger tensor gets a shard of its own), in the Hugging Face layout:
    ``model-00001-of-00003.safetensors``... each a plain safetensors file, and ``model.safetensors.index.json``
    (``metadata.total_size``, ``weight_map``) holding the structure and ``metadata``. :func:`load_file` and
    :func:`open` read the directory back. Shards of an earlier save there that this one does not use are removed.

    ``path`` may also be a binary file object (anything with ``write()``: ``io.BytesIO``, an open file, a pipe, a
    socket's file), which gets the file streamed from where it stands, in order and in chunks of at most 1 MiB (a pipe
    works; memory stays bounded; the tensors are hashed in a first pass when checksums are on), or a URL of any fsspec
    protocol (``s3://bucket/x.safetensors``; ``pip install safestructures[remote]``), written beside the target and
    moved over it. See docs/files-anywhere.md.

    Checksums are saved with the data: each tensor's bytes are hashed (XXH3-64) as they are written, and the
    structure and ``metadata`` too, into the metadata key ``__safestructures_checksums__`` (the index records each
    shard's); ``load_file(..., verify=True)``, a part's ``load(verify=True)`` and ``safestructures verify`` check them.
    ``checksums=False`` leaves them out.

    ``background=True`` returns at once with a :class:`concurrent.futures.Future` whose result is None once the file
    is written, after snapshotting the data in this thread: the walk is made and every tensor's bytes (bytearrays'
    too) are copied into memory the save owns, so the caller may change its data in place right away and the file
    holds the values at the call. That copy is the memory cost: the size of the tensor data, held until the file is
    written (a GPU tensor is copied to the host first). At most ``MAX_IN_FLIGHT`` (2) background saves are in flight
    at once in a process: a new one waits for a slot before it takes its snapshot. The errors a blocking save raises
    are raised by the future's ``result()``, with the same types; the interpreter waits at exit for the saves in
    flight. See docs/checkpoints.md.

    ``progress=True`` shows a progress bar over the tensor bytes on stderr while they are written (in the writer's
    thread for a background save), for a save that takes more than half a second; it needs tqdm, the ``progress``
    extra (``pip install 'safestructures[progress]'``).

    Raises:
        UnsupportedTypeError: an object cannot be stored; the message names its type and its path (``$["a"][3]``).
        InvalidArgumentError: the data nests deeper than ``max_depth``, or a metadata key is reserved.
        OSError: the file cannot be written.
    """
    context = {"plugins": _plugins.check_plugins(plugins)}
    limit = None if max_shard_size is None else _sharded.parse_size(max_shard_size)
    _progress.require(progress)
    if is_file_object(path) or is_url(path):
        for option, given in (("background", background), ("progress", progress)):
            if given:
                raise InvalidArgumentError(f"{option}=True saves to a local path only, not to a file object or a URL")
        local = save_elsewhere(data, path, _check_metadata(metadata), context, max_depth, limit, checksums, fsync)
        if local is None:
            return None
        path = local
    target = _fspath(path)
    if background:
        from . import _background  # its threads and pool only for a process that saves in the background

        # The writer thread may run after the caller changes directory: it gets the absolute path.
        target = os.path.abspath(target)

        def snapshot() -> Callable[[], None]:
            if limit is None:
                _sharded.check_replaceable(target)
            write = snapshot_save(data, metadata, context, max_depth, fsync, limit, checksums, progress)
            return lambda: write(target)

        return _background.submit(snapshot)
    if limit is not None:
        _sharded.save_sharded(data, target, _check_metadata(metadata), limit, max_depth, fsync, context, checksums,
                              progress=progress)
        return None
    checked = _check_metadata(metadata)
    _sharded.check_replaceable(target)
    _progress.saving(progress, target, lambda report: _core.save_file(data, target, checked, max_depth, fsync,
                                                                      DEFAULT_MAX_HEADER_SIZE, context, checksums, report))
    return None


def snapshot_save(data: Any, metadata: Mapping[str, str] | None, context: dict[str, Any], max_depth: int, fsync: bool,
                  max_shard_size: int | None, checksums: bool, progress: bool = False) -> Callable[[str], None]:
    """Takes what a save of ``data`` needs, every check made and every tensor's bytes copied, and returns the function
    that writes it to the path it is given (in another thread, later) as :func:`save_file` would have; with
    ``progress``, on a bar drawn while it writes."""
    metadata = _check_metadata(metadata)
    if max_shard_size is None:
        snapshot = _core.snapshot_file(data, metadata, max_depth, DEFAULT_MAX_HEADER_SIZE, context, checksums)
        return lambda path: _progress.saving(progress, path,
                                             lambda report: _core.write_snapshot_file(snapshot, path, fsync, report))
    _sharded.check_index_metadata(metadata)
    sharded = _core.snapshot_sharded(data, max_depth, context)
    return lambda path: _sharded.save_sharded(None, path, metadata, max_shard_size, max_depth, fsync, context, checksums,
                                              sharded, progress)


def _file_size(where: Any) -> int:
    """The size of the local file ``where`` names (0 for a file object or a URL, whose bytes are counted once read)."""
    if not isinstance(where, str) or is_url(where):
        return 0
    try:
        return os.stat(where).st_size
    except OSError:
        return 0  # the load itself reports why the file cannot be read


def load_file(
    path: str | os.PathLike[str] | IO[bytes],
    framework: str | None = None,
    device: str = "cpu",
    plugins: type | Iterable[type] | None = None,
    *,
    types: Iterable[type] = (),
    strict: bool = False,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_nodes: int = DEFAULT_MAX_NODES,
    max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
    max_bytes: int | None = None,
    verify: bool = False,
    progress: bool = False,
) -> Any:
    """Load the data a file holds. Never imports a module or calls anything the file names.

    A file saved by :func:`save_file` loads as the data it was saved from, with exact types. A file written by
    safestructures 1.0.0 loads too (its dataclasses as generic records, its plugin types through ``plugins``). A
    plain safetensors file (no structure in it) loads as a ``{name: tensor}`` dict.

    ``framework=None`` gives each tensor back in the framework it was saved from when this process has already
    imported that framework, and as a numpy array otherwise (numpy for plain files): a file never makes a load import
    a framework (torch dtypes, devices and sizes of a file come back as records unless torch is imported).
    ``"numpy"``, ``"torch"``, ``"tensorflow"``, ``"jax"``, ``"paddle"`` or ``"mlx"`` imports that framework and
    converts every tensor to it, exact dtypes kept. numpy arrays and torch tensors are zero-copy views of a private
    mapping of the file: writable, and writing to them never changes the file; tensors of the other frameworks are
    copies. ``device`` ("cuda", "cuda:1") moves torch tensors there (and so asks for torch).

    A class named in the file is only looked up among the registered classes (``register``), the ``types`` given
    here and the ``plugins`` given here; it is rebuilt without calling ``__init__``. A class not found comes back as
    a generic :class:`Record` (a :class:`NamedRecord` for a named tuple, the value for an enum member), or raises
    :class:`UnknownTypeError` with ``strict=True``.

    ``path`` may also be a directory written with ``save_file(..., max_shard_size=...)``, or its
    ``model.safetensors.index.json``; or a checkpoint written through ``safestructures.distributed`` (PyTorch
    Distributed Checkpoint), which loads whole in this process as torch tensors; or a folder as Hugging Face's
    ``save_pretrained`` writes one (its index without a safestructures structure, or its ``.safetensors`` files
    without an index), which loads as ``{tensor name: tensor}``, each tensor read from the shard the index names. Or a
    URL of any fsspec protocol (``https://...``, ``s3://...``; fetched whole), or a binary file object read from where
    it stands to its end (a stream that cannot seek, such as a pipe, is read once into memory, as far as its header
    declares and within ``max_bytes`` where one is given); tensors then view that memory. See docs/files-anywhere.md.

    ``max_bytes`` bounds what the load allocates beyond the file's own mapping: copies (conversions to another
    framework, byte swaps, unpacked sub-byte dtypes, torch copies of read-only or misaligned bytes, copies to a
    ``device``), each charged at its full size before it is made, and views it materialises (a view of a few bytes
    expanded to a large shape, converted to a framework without such views). By default it is four times the file's
    size plus 256 MiB; a file that needs more is refused before the memory is taken.

    ``verify=True`` checks what the load reads against the checksums saved with it: the structure and metadata
    first, then each tensor as it is built (for a sharded save, the index and each shard it reads too). A file
    without checksums (written with ``checksums=False``, before checksums existed, or by another tool) loads as it
    would without ``verify``; ``safestructures verify`` says whether a file has them.

    ``progress=True`` shows a progress bar over the file's tensor bytes on stderr, advanced as each tensor is built,
    for a load that takes more than half a second; it needs tqdm (``pip install 'safestructures[progress]'``).

    Raises:
        InvalidFileError: the file is malformed, or exceeds a limit (``max_depth`` levels of nesting,
            ``max_nodes`` schema nodes, ``max_header_size`` header bytes, ``max_bytes``); the message says what and
            where.
        FrameworkNotAvailableError: a tensor is asked for in a framework that is not installed.
        UnsupportedTypeError: a tensor cannot be built in the framework asked for (a dtype or a view it lacks); the
            message names the tensor and its path.
        UnknownTypeError: with ``strict=True``, the file names a class this load was not given.
        IntegrityError: with ``verify=True``, a tensor or the structure does not match its checksum; the message
            names the tensor and its path in the data.
        OSError: the file cannot be read.
    """
    where, target = target_of(path)
    if progress is False and given_defaults(framework, device, plugins, types, strict, max_bytes):
        args = context = None  # the core makes the default context if the load needs it
    else:
        args, context = load_arguments(framework, device, plugins, types, strict, max_bytes, _file_size(where))
        _progress.require(progress)
    try:
        if progress:  # the bar wants the paths before the load
            loaded, source = None, resolve(where, max_header_size, max_bytes)
        else:
            loaded, source = read_or_resolve(where, max_header_size, _core.load_file,
                                             (max_depth, max_nodes, max_header_size, context, verify), max_bytes)
        if source is None:  # a single local file, loaded
            buffer, (structured, payload, metadata) = loaded
            return payload if structured else unstructured(buffer, payload, metadata,
                                                           default_context(buffer.size) if context is None else context,
                                                           max_depth)
    except Exception as e:
        raise_reading(target, e)
        raise
    if args is None:
        args, context = load_arguments(framework, device, plugins, types, strict, max_bytes, _file_size(where))
    with contextlib.ExitStack() as shown:
        with reading(target):
            if progress and (source.data is not None or source.ranged):
                raise InvalidArgumentError("progress=True loads from a local path only, not from a file object or a URL")
            if source.kind == FILE and (source.data is not None or source.ranged):
                # A file object or a URL: read whole, then loaded as bytes are.
                data = source.data if source.data is not None else read_whole(source.ranged[0], max_header_size)
                _args, context = load_arguments(framework, device, plugins, types, strict, max_bytes, len(data))
                structured, payload, metadata = _core.load_bytes(data, max_depth, max_nodes, max_header_size, context,
                                                                 verify)
                return payload if structured else unstructured(data, payload, metadata, context, max_depth)
            shown.enter_context(_progress.load_bar(progress, source.paths, _progress.label(target)))
            if source.kind == FILE:
                # The file itself: a folder's one .safetensors file, when given the folder, or a file under a progress
                # bar.
                buffer, (structured, payload, metadata) = _core.load_file(source.name, max_depth, max_nodes,
                                                                          max_header_size, context, verify)
                return payload if structured else unstructured(buffer, payload, metadata, context, max_depth)
            if source.kind == DCP:
                # Written through PyTorch Distributed Checkpoint: its own reader rebuilds the state (as torch tensors).
                if canonical(framework) not in (None, "torch") or device != "cpu" or plugins is not None:
                    raise InvalidArgumentError(f"{target} is a PyTorch Distributed Checkpoint: it loads as torch tensors "
                                               "on the CPU, without framework=, device= or plugins=")
                from . import distributed

                if verify:
                    for shard in source.paths:
                        verify_file(shard, max_header_size)
                return distributed.load(os.path.dirname(source.index), types=args["types"], strict=strict)
            opened, _fmt = open_source(source, args, (max_depth, max_nodes, max_header_size))
        with opened:
            return opened.load(verify=verify)

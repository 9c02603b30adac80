"""What a path holds: a single safetensors file (safestructures v2, 1.0.0 or plain), a sharded save (its directory or
index), a sharded checkpoint of plain files, or a PyTorch Distributed Checkpoint. ``load_file``, ``open`` and the
command line all ask :func:`resolve`, and read what it found."""

from __future__ import annotations

import dataclasses
import json
import mmap
import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import _core
from ._errors import IntegrityError, InvalidFileError, quote, shown
from ._flat import _fspath
from ._format import (CHECKSUMS_KEY, DCP_KEY, INDEX_METADATA, INDEX_NAME, INDEX_SUFFIX, INDEX_WEIGHT_MAP, SAVE_KEY, SCHEMA_KEY,
                      TOTAL_SIZE_KEY, V1_SCHEMA_KEY)
from ._ranges import read_header
from ._http import is_http
from ._remote import UrlRanges, exists, filesystem, is_url, listing, local_path, read_index
from ._sharded import (SHARD_FILE_NAME, aside_id, check_regular_file, index_document, index_text, previous_shard,
                       read_index_file, shard_name, shard_of)
from ._streams import FileObjectRanges, check_binary, is_file_object, name_of, read_stream, seekable

__all__ = ["DCP", "FILE", "PLAIN_SHARDS", "SHARDED", "Source", "check_shards", "file_format", "read_or_resolve", "resolve",
           "target_of", "verify_index"]

#: The kinds of :class:`Source`.
FILE = "file"
SHARDED = "sharded"
PLAIN_SHARDS = "plain shards"
DCP = "dcp"

#: The most .safetensors files a folder URL without an index may list: each costs requests (its size, its header,
#: about 90 ms on the loopback), so a page of 100 MB of links would keep a load asking for days.
MAX_REMOTE_FOLDER_FILES = 1000

#: The formats of a single file, as the command line names them (see :func:`file_format`).
V2, V1, PLAIN = "safestructures v2", "safestructures 1.0.0", "plain safetensors"


@dataclass(frozen=True)
class Source:
    """What :func:`resolve` found at a path. A :data:`FILE` is known once its header is read (see
    :func:`file_format`). With an index: the shard ``paths`` in order of first mention, ``where`` each tensor's shard
    (its position in ``paths``), and the index's ``schema``, ``save_id`` and ``metadata`` (the caller's for a
    :data:`SHARDED` save, the index's whole metadata otherwise)."""

    kind: str
    name: str
    paths: list[str]
    index: str | None = None
    schema: str | None = None
    metadata: dict[str, Any] | None = None
    where: dict[str, int] = field(default_factory=dict)
    save_id: str | None = None
    #: The index's metadata and weight map as read, which its checksums cover (see :func:`verify_index`).
    index_maps: tuple[dict[str, Any], dict[str, str]] | None = None
    #: Files read by byte ranges instead of mapped (a URL, a seekable file object): one reader per path.
    ranged: list[Any] | None = None
    #: A stream that cannot seek, read as far as its header declares (see :func:`._streams.read_stream`).
    data: bytearray | mmap.mmap | None = None


def file_format(structured: bool, metadata: dict[str, str] | None) -> str:
    """What a single file holds, from its header: :data:`V2` (it has a safestructures schema), :data:`V1` (it has
    1.0.0's) or :data:`PLAIN`."""
    if structured:
        return V2
    return V1 if metadata and V1_SCHEMA_KEY in metadata else PLAIN


def target_of(path: Any) -> tuple[Any, str]:
    """(what :func:`resolve` takes for ``path``, how messages name it): a file object or a URL as given, a local path
    as a str (with the errors Python's own open() gives for one it cannot use)."""
    if type(path) is str and "\0" not in path:
        return path, path  # a URL or a local path, as the ways below give it (a tiny load's way)
    if is_file_object(path):
        return path, name_of(path)
    if is_url(path):
        return path, path
    text = _fspath(path)
    return text, text


def resolve(path: Any, max_header_size: int, max_bytes: int | None = None) -> Source:
    """What ``path`` (as :func:`target_of` gives it) holds. A directory or an index is read (at most
    ``max_header_size`` bytes of index) and checked: a malformed index, a shard name that is not a file beside it, or a
    shard that is not a regular file raise here. A single file is not opened: its reader tells what it holds from the
    header. A directory without an index holds ``.safetensors`` files as ``save_pretrained`` writes them: one is that
    file, several are the plain shards of one checkpoint (see :func:`_folder_of_files`).

    ``path`` may also be a file object (see :mod:`._streams`: a seekable one is read by ranges, a stream read here
    as far as its header declares, within ``max_bytes`` where the caller gave one) or a URL (see :func:`_remote_source`). :func:`read_or_resolve` is this with a cheaper first step."""
    if is_file_object(path):
        check_binary(path)
        name = name_of(path)
        if seekable(path):
            return Source(FILE, name, [name], ranged=[FileObjectRanges(path)])
        return Source(FILE, name, [name], data=read_stream(path, max_header_size, max_bytes))
    if is_url(path):
        return _remote_source(path, max_header_size)
    if os.path.isdir(path):
        index = os.path.join(path, INDEX_NAME)
        if not os.path.lexists(index):
            names = sorted(name for name in os.listdir(path) if SHARD_FILE_NAME.fullmatch(name))
            paths = [os.path.join(path, name) for name in names]
            for shard_path in paths:  # before the core opens any: a FIFO would block the load
                check_regular_file(shard_path, "shard")
            return _folder_of_files(path, names, paths, lambda shard: _core.read_file(shard, max_header_size)[1:])
    elif path.endswith(INDEX_SUFFIX):
        index = path
    else:
        return Source(FILE, path, [path])
    try:
        raw = read_index_file(index, max_header_size)
    except FileNotFoundError:
        raise FileNotFoundError(2, f"no {INDEX_NAME} here: not a sharded save", index) from None
    directory = os.path.dirname(index)
    return _index_source(path, index, raw, lambda shard, moved_as: _shard_at(directory, shard, moved_as, os.path.lexists, os.path.join),
                         lambda shard: check_regular_file(shard, "shard"))


def _shard_at(directory: str, shard: str, moved_as: str, present: Callable[[str], bool], join: Callable[..., str]) -> str:
    """Where shard ``shard`` of an index is: beside it, or moved aside (under the index's ``aside_id``) by a later save
    that was cut before its index replaced this one (previous_shard)."""
    aside = previous_shard(directory, shard, moved_as, join)
    return aside if present(aside) else join(directory, shard)


def read_or_resolve(path: Any, max_header_size: int, read: Callable[..., Any], read_args: tuple[Any, ...],
                    max_bytes: int | None = None) -> tuple[Any, Source | None]:
    """:func:`resolve`, with a first step for a caller that reads a single file at once: a local path that names no
    index is read by ``read(path, *read_args)``, whose open refuses a directory with IsADirectoryError, as the core's
    does. (what ``read`` returned, None) for a single local file; (None, what :func:`resolve` finds) for any other path.
    A tiny load so pays neither a stat of its own to tell a file from a directory, nor a :class:`Source` (together a
    tenth of its time)."""
    if type(path) is str and not path.endswith(INDEX_SUFFIX) and not is_url(path):
        try:
            return read(path, *read_args), None
        except IsADirectoryError:
            pass  # resolved as any directory
    return None, resolve(path, max_header_size, max_bytes)


def _remote_source(url: str, max_header_size: int) -> Source:
    """What a URL holds, read through fsspec: a file (read by ranges), or a sharded save (its directory or index; its
    shards read by ranges), or a folder of plain files without an index (see :func:`_folder_of_files`); a ``file://``
    URL is its local path."""
    local = local_path(url)
    if local is not None:  # file://: mapped as a path is
        return resolve(local, max_header_size)
    fs, where = filesystem(url)
    # A file's name settles it without asking the filesystem (over HTTP, a directory is told by GETting the URL).
    paths = None
    if where.endswith(INDEX_SUFFIX):
        index = where
    elif SHARD_FILE_NAME.fullmatch(posixpath.basename(where)) or (paths := listing(fs, where, max_header_size)) is None:
        return Source(FILE, url, [url], ranged=[UrlRanges(fs, where)])
    else:
        index = posixpath.join(where, INDEX_NAME)
        if not exists(fs, index):
            return _remote_folder_of_files(fs, where, url, paths, max_header_size)
    raw = read_index(fs, index, max_header_size, url)
    directory = posixpath.dirname(index)
    # A save cut while uploading over this checkpoint leaves the shards it replaced moved aside (none over HTTP, which
    # no save writes): one listing of the directory tells (the one already made where the URL named the directory).
    if paths is None and not is_http(fs):
        paths = listing(fs, directory, max_header_size)
    names = {posixpath.basename(p.rstrip("/")) for p in paths or ()}
    source = _index_source(url, fs.unstrip_protocol(index), raw, lambda shard, moved_as: _shard_at(
        directory, shard, moved_as, lambda aside: posixpath.basename(aside) in names, posixpath.join), lambda shard: None)
    if source.kind == DCP:
        raise InvalidFileError(f"{url}: a PyTorch Distributed Checkpoint, which loads from a local directory only")
    ranged = [UrlRanges(fs, shard) for shard in source.paths]
    return dataclasses.replace(source, paths=[fs.unstrip_protocol(shard) for shard in source.paths], ranged=ranged)


def _index_source(path: str, index: str, raw: bytes, shard_path: Callable[[str, str], str],
                  check_shard: Callable[[str], None]) -> Source:
    """The source an index's ``raw`` bytes describe (``index`` names it in messages), its shards at
    ``shard_path(name, the id its shards are moved aside under: aside_id)``, each checked by ``check_shard`` before any
    is opened."""
    document = index_document(raw, index)
    if (not isinstance(document, dict) or not isinstance(document.get(INDEX_WEIGHT_MAP), dict)
            or not isinstance(document.get(INDEX_METADATA), dict)):
        raise InvalidFileError(f'{index}: an index is an object with "{INDEX_METADATA}" and "{INDEX_WEIGHT_MAP}" objects')
    metadata, weight_map = document[INDEX_METADATA], document[INDEX_WEIGHT_MAP]
    schema = metadata.get(SCHEMA_KEY)
    kind = SHARDED if schema is not None else DCP if DCP_KEY in metadata else PLAIN_SHARDS
    if kind == SHARDED:
        if not isinstance(schema, str):
            raise InvalidFileError(f"{index}: the index has no safestructures schema (metadata {quote(SCHEMA_KEY)} is "
                                   "not a string)")
        _valid_text(schema, index, f"metadata {quote(SCHEMA_KEY)}")
    numbers: dict[str, int] = {}  # shard name -> its number, in order of first mention (a dict: one lookup per tensor)
    where: dict[str, int] = {}
    for tensor, shard in weight_map.items():
        _valid_text(tensor, index, f"a tensor name of {INDEX_WEIGHT_MAP}")
        # Only plain file names beside the index: an index must not point a load at any other file.
        if not isinstance(shard, str) or not SHARD_FILE_NAME.fullmatch(shard):
            shown_shard = shown(shard).encode("utf-8", "backslashreplace").decode("utf-8")
            raise InvalidFileError(f"{index}: tensor {json.dumps(tensor)} is mapped to {shown_shard}, which is not "
                                   "a shard file name")
        where[tensor] = numbers.setdefault(shard, len(numbers))
    if kind == SHARDED and not numbers:
        numbers[shard_name(1, 1)] = 0  # data without tensors: its one shard holds none
    elif not numbers:
        raise InvalidFileError(f"{index}: the index maps no tensor to a shard")
    save_id = metadata.get(SAVE_KEY) if kind == SHARDED else None
    if save_id is not None and not isinstance(save_id, str):
        raise InvalidFileError(f"{index}: metadata {quote(SAVE_KEY)} must be a string")
    moved_as = aside_id(raw, metadata.get(SAVE_KEY))
    paths = [shard_path(s, moved_as) for s in numbers]
    for shard in paths:  # before the core opens any: a FIFO would block the load
        check_shard(shard)
    if kind != SHARDED:
        return Source(kind, path, paths, index, None, metadata, where)
    kept = {k: v for k, v in metadata.items() if k not in (SCHEMA_KEY, SAVE_KEY, TOTAL_SIZE_KEY, CHECKSUMS_KEY)}
    if not all(isinstance(v, str) for v in kept.values()):
        raise InvalidFileError(f"{index}: metadata values other than {TOTAL_SIZE_KEY} must be strings")
    return Source(SHARDED, path, paths, index, schema, kept, where, save_id, (metadata, weight_map))


def _valid_text(text: str, index: str, what: str) -> None:
    """Refuses ``text`` (a string of an index) when it is not valid Unicode (a lone surrogate escape, ``"\\ud800"``,
    which no file name or schema may hold)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidFileError(f"{index}: {what} holds a lone surrogate ({json.dumps(text[e.start:e.end])}), which is not "
                               "valid Unicode") from None


def _remote_folder_of_files(fs: Any, where: str, url: str, paths: list[str], max_header_size: int) -> Source:
    """A folder URL without an index, as :func:`_folder_of_files` reads a local one: its files (``paths``, as listed,
    at most :data:`MAX_REMOTE_FOLDER_FILES` of them), their headers fetched by range requests."""
    names = sorted(posixpath.basename(p) for p in paths if SHARD_FILE_NAME.fullmatch(posixpath.basename(p)))
    if len(names) > MAX_REMOTE_FOLDER_FILES:
        raise InvalidFileError(f"{url}: the folder lists {len(names):,} .safetensors files and no {INDEX_NAME}: at most "
                               f"{MAX_REMOTE_FOLDER_FILES:,} are read without one (each costs requests); an index names "
                               "the shards of a larger checkpoint")
    readers = {posixpath.join(url, name): UrlRanges(fs, posixpath.join(where, name)) for name in names}

    def header(shard: str) -> tuple[Any, Any]:
        return _core.read_bytes(read_header(readers[shard], max_header_size)[0], max_header_size)

    source = _folder_of_files(url, names, list(readers), header)
    return dataclasses.replace(source, ranged=[readers[shard] for shard in source.paths])


def _folder_of_files(directory: str, names: list[str], paths: list[str],
                     read_header_of: Callable[[str], tuple[Any, Any]]) -> Source:
    """A directory without an index: its one ``.safetensors`` file, or its several as the plain shards of one checkpoint
    (tensors in the files' order, by name, then header order). Their headers are read here (``read_header_of(path)``
    gives a file's metadata and tensor table): a tensor in two files, a file that holds a safestructures structure
    among several (each is loaded on its own), or a shard of one of our sharded saves (whose structure is in the
    missing index) is refused."""
    if not names:
        raise FileNotFoundError(2, f"no {INDEX_NAME} and no .safetensors file here", directory)
    where: dict[str, int] = {}
    for number, shard_path in enumerate(paths):
        metadata, tensors = read_header_of(shard_path)
        if metadata and SAVE_KEY in metadata:
            # Shards of a sharded save keep its structure in the index: without it they are not the data.
            raise FileNotFoundError(2, f"{names[number]} is a shard of a safestructures sharded save whose {INDEX_NAME} "
                                       "is missing", directory)
        if len(paths) == 1:
            return Source(FILE, shard_path, paths)
        if metadata and SCHEMA_KEY in metadata:
            raise InvalidFileError(f"{directory}: {names[number]} holds a safestructures structure beside "
                                   f"{len(paths) - 1} other .safetensors files and no index: load it on its own")
        for name, *_entry in tensors:
            if where.setdefault(name, number) != number:
                raise InvalidFileError(f"{directory}: tensor {quote(name)} is in both {names[where[name]]} and "
                                       f"{names[number]}", code="TensorMismatch")
    return Source(PLAIN_SHARDS, directory, paths, where=where)


def check_shards(source: Source, document: Any) -> None:
    """The index and the shards of a sharded save, opened as ``document`` (a ``_core.LazyFile``), agree: every tensor
    of the index is in the shard it names, every tensor of a shard is in the index, mapped to that shard, and every
    shard was written by the save that wrote the index. A directory whose files do not belong together (from two
    saves, say) is refused rather than loaded as a mix."""
    index, where, paths = source.index, source.where, source.paths
    for tensor, shard in where.items():
        found = document.tensor(tensor)
        if found is None or found[3] != shard:
            raise InvalidFileError(f"{index}: the index maps tensor {quote(tensor)} to {os.path.basename(paths[shard])}, "
                                   "which does not hold it")
    for shard, path in enumerate(paths):
        if source.save_id is not None and (document.metadata(shard) or {}).get(SAVE_KEY) != source.save_id:
            raise InvalidFileError(f"{index}: shard {os.path.basename(path)} was not written by the save that wrote the "
                                   "index (another save's file, left by an interrupted save or by two saves at once)")
        for name, *_ in document.tensors(shard):
            if where.get(name) != shard:
                raise InvalidFileError(f"{index}: shard {os.path.basename(path)} holds tensor {quote(name)}, which the "
                                       "index does not map to it")


def verify_index(source: Source, document: Any) -> None:
    """A sharded save's index against its checksums (its metadata, with the structure, and its weight map), and each
    shard against the digest the index records of it (which covers the shard whole: its own checksums cover its
    header and tensors, which the load checks as it reads them). An index without checksums is not checked.

    Raises:
        IntegrityError: what does not match, naming the index or the shard.
    """
    if source.index_maps is None:
        return
    metadata, weight_map = source.index_maps
    try:
        recorded = _core.verify_index(index_text(metadata), weight_map)
    except IntegrityError as e:
        raise IntegrityError(f"{source.index}: {e}", code=e.code) from None
    if recorded is None:
        return
    for shard, path in enumerate(source.paths):
        name = shard_of(path)
        if recorded.get(name) != document.entry_digest(shard):
            raise IntegrityError(f"{source.index}: shard {name} does not match the checksum the index records of it "
                                 "(the shard changed, or is another save's)", code="ChecksumMismatch")

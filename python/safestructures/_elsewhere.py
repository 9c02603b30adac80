"""Saves to targets other than a local path: a binary file object (streamed, written once in order, so a pipe or a
socket works) or a URL (through fsspec: a temporary beside the target moved over it; a sharded save's shards, then its
index last, over the checkpoint there as a local save replaces one). A ``file://`` URL is saved as its local path is."""

from __future__ import annotations

import os
import posixpath
import tempfile
from typing import Any

from . import _core, _sharded
from ._errors import InvalidArgumentError, InvalidFileError
from ._format import INDEX_NAME
from ._limits import DEFAULT_MAX_HEADER_SIZE
from ._remote import exists, filesystem, listing, local_path, read_index, write_atomically
from ._streams import chunk_writer, is_file_object

__all__ = ["save_elsewhere"]


def save_elsewhere(data: Any, target: Any, metadata: dict[str, str] | None, context: dict[str, Any], max_depth: int,
                   max_shard_size: int | None, checksums: bool, fsync: bool) -> str | None:
    """Saves ``data`` to the file object or URL ``target``; returns the local path to save to instead when ``target``
    names one (a ``file://`` URL), None when done."""
    if is_file_object(target):
        if max_shard_size is not None:
            raise InvalidArgumentError("a sharded save (max_shard_size) writes a directory: give it a path or a URL, not "
                                       "a file object")
        write_stream(data, target, metadata, context, max_depth, checksums)
        return None
    local = local_path(target)
    if local is not None:
        return local
    if max_shard_size is None:
        write_atomically(target, lambda f: write_stream(data, f, metadata, context, max_depth, checksums))
        return None
    _save_sharded_remote(data, target, metadata, context, max_depth, max_shard_size, checksums, fsync)
    return None


def write_stream(data: Any, fileobj: Any, metadata: dict[str, str] | None, context: dict[str, Any], max_depth: int,
                 checksums: bool) -> None:
    """Streams the file of ``data`` to ``fileobj``'s write() in chunks of at most 1 MiB, then flushes it."""
    _core.save_stream(data, chunk_writer(fileobj), metadata, max_depth, DEFAULT_MAX_HEADER_SIZE, context, checksums)
    flush = getattr(fileobj, "flush", None)
    if flush is not None:
        flush()


def _save_sharded_remote(data: Any, url: str, metadata: dict[str, str] | None, context: dict[str, Any], max_depth: int,
                         max_shard_size: int, checksums: bool, fsync: bool) -> None:
    """A sharded save to a URL: written to a local temporary directory (as to a local path), then uploaded shard by
    shard, the index last, so that a reader never finds an index naming shards not there yet, over the checkpoint
    there as a local save replaces one (_sharded.install: the shards it replaces moved aside until the new index is
    up). Each upload is written whole or not at all where the filesystem's writes are (object stores)."""
    fs, where = filesystem(url)
    with tempfile.TemporaryDirectory(prefix=".safestructures-upload-") as staging:
        _sharded.save_sharded(data, staging, metadata, max_shard_size, max_depth, fsync, context, checksums)
        fs.makedirs(where, exist_ok=True)
        shards = {name: os.path.join(staging, name) for name in sorted(os.listdir(staging)) if name != INDEX_NAME}
        _sharded.install(_url_place(fs), where, shards, os.path.join(staging, INDEX_NAME), fs.put_file,
                         _old_remote_shards(fs, posixpath.join(where, INDEX_NAME)))


def _url_place(fs: Any) -> _sharded.Place:
    """A directory of the fsspec filesystem ``fs``, as _sharded.install replaces the checkpoint in it."""
    def remove(path: str) -> None:
        try:
            fs.rm_file(path)
        except FileNotFoundError:
            pass

    def names(directory: str) -> list[str]:
        return [posixpath.basename(p.rstrip("/")) for p in listing(fs, directory, DEFAULT_MAX_HEADER_SIZE) or ()]

    return _sharded.Place(posixpath.join, names, fs.exists, fs.mv, remove)


def _old_remote_shards(fs: Any, index: str) -> tuple[set[str], str | None]:
    """_sharded.old_shards of the index at ``index`` in ``fs``, read within the bound of a load's."""
    try:
        if not exists(fs, index):
            return set(), None
        return _sharded.old_shards(read_index(fs, index, DEFAULT_MAX_HEADER_SIZE, index))
    except (OSError, InvalidFileError):  # none there, or none a load reads
        return set(), None

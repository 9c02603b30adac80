"""URLs (``memory://``, ``file://``, ``http(s)://``, ``s3://``, ``gs://``, ``hf://``... any fsspec protocol) through
fsspec, an optional dependency imported only when a URL is used: files read by byte ranges, saves written beside the
target and moved over it where the filesystem can move."""

from __future__ import annotations

import errno
import os
import posixpath
import re
import uuid
from collections.abc import Callable
from typing import Any

from ._errors import FrameworkNotAvailableError, InvalidFileError
from ._http import http_ask, http_listing, http_range, is_http
from ._ranges import checked_read
from ._streams import checked_bytes

__all__ = ["UrlRanges", "exists", "filesystem", "is_url", "listing", "local_path", "read_index", "write_atomically"]

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")


def is_url(path: Any) -> bool:
    """Whether ``path`` is a URL (``protocol://...``) rather than a local path."""
    return isinstance(path, str) and "://" in path and _URL.match(path) is not None  # a local path is told by the cheaper test


def filesystem(url: str) -> tuple[Any, str]:
    """(the fsspec filesystem of ``url``, the path within it). ImportError naming the extra when fsspec is missing."""
    try:
        import fsspec
    except ImportError:
        raise FrameworkNotAvailableError(f"{url}: URLs are read and written through fsspec, which is not installed: "
                                         "pip install safestructures[remote]") from None
    return fsspec.core.url_to_fs(url)


def local_path(url: str) -> str | None:
    """The local path a ``file://`` URL (or any URL of fsspec's local filesystem) names; None for a remote one."""
    fs, where = filesystem(url)
    from fsspec.implementations.local import LocalFileSystem

    return where if isinstance(fs, LocalFileSystem) else None


def listing(fs: Any, where: str, limit: int) -> list[str] | None:
    """The paths in the directory ``where`` of ``fs``; None where it is no directory. Over HTTP, a page of links read
    within ``limit`` bytes (see :mod:`._http`). Listed afresh: s3fs and gcsfs keep listings, which another process's
    save may have made stale (the shards a cut save moved aside would be missed)."""
    if is_http(fs):
        return http_listing(fs, where, limit)
    fs.invalidate_cache(where)
    return fs.ls(where, detail=False) if fs.isdir(where) else None


def read_index(fs: Any, index: str, limit: int, shown_as: str) -> bytes:
    """The bytes of the index at ``index`` in ``fs``, read by ranges: InvalidFileError naming ``shown_as`` when it
    holds more than ``limit`` bytes, before any is read."""
    reader = UrlRanges(fs, index)
    if reader.size > limit:
        raise InvalidFileError(f"{shown_as}: the index is {reader.size} bytes, over the limit of {limit}")
    return checked_read(reader, 0, reader.size)


def exists(fs: Any, where: str) -> bool:
    """Whether ``where`` is in ``fs`` (over HTTP, asked within the stall bound of :mod:`._http`)."""
    return bool(http_ask(fs, where, "exists")) if is_http(fs) else fs.exists(where)


class UrlRanges:
    """A file of an fsspec filesystem read by byte ranges (a :class:`~safestructures._ranges.RangeReader`): over
    HTTP, each read is one range request, of which no more than the range is read (see :mod:`._http`)."""

    def __init__(self, fs: Any, path: str) -> None:
        self.name = fs.unstrip_protocol(path)
        self._fs = fs
        self._path = path
        self._http = is_http(fs)
        size = http_ask(fs, path, "size") if self._http else fs.size(path)
        if type(size) is not int or size < 0:  # fsspec's HTTP gives None for a server that sends no Content-Length
            raise OSError(errno.EIO, f"the server gives no size for the file ({size!r}), which a read by ranges needs",
                          self.name)
        self.size = size

    def read(self, begin: int, end: int) -> bytes:
        if self._http:
            return http_range(self._fs, self._path, begin, end, self.size, self.name)
        # Refused before it is copied when the filesystem gives more than the range (its own read took it whole:
        # fsspec reads a response's body whole, which only HTTP's way above bounds).
        got = self._fs.cat_file(self._path, start=begin, end=end)
        return bytes(checked_bytes(got, end - begin, self.name, "cat_file", f"start={begin}, end={end}",
                                   "a filesystem's cat_file() gives bytes"))


def write_atomically(url: str, write: Callable[[Any], None]) -> None:
    """Calls ``write`` with a binary file object open on a temporary name beside ``url``, then moves it over ``url``
    (a rename where the filesystem has one; on object stores a copy, where the object still appears whole). A failed
    write removes the temporary and leaves ``url`` as it was."""
    fs, where = filesystem(url)
    temporary = posixpath.join(posixpath.dirname(where), f".{posixpath.basename(where)}.{os.getpid()}-{uuid.uuid4().hex}.tmp")
    try:
        with fs.open(temporary, "wb") as f:
            write(f)
        fs.mv(temporary, where)
    except BaseException:
        try:
            if fs.exists(temporary):
                fs.rm(temporary)
        except Exception:  # the first error is the one to report
            pass
        raise

"""Binary file objects as sources and targets: a save streams the file to ``write()`` in bounded chunks (a pipe or a
socket works: nothing is written twice); a seekable one is read by ranges from where it stands, a stream that cannot
seek is read once, whole, into memory."""

from __future__ import annotations

import errno
import io
import os
import threading
from typing import Any

from ._errors import InvalidArgumentError

__all__ = ["FileObjectRanges", "check_binary", "chunk_writer", "is_file_object", "name_of", "read_stream", "seekable"]

#: What a stream is read in.
READ_CHUNK = 1 << 20


def is_file_object(target: Any) -> bool:
    """Whether ``target`` is a file object rather than a path: it has ``read`` or ``write``."""
    return not isinstance(target, (str, bytes, os.PathLike)) and (hasattr(target, "read") or hasattr(target, "write"))


def name_of(fileobj: Any) -> str:
    """How messages name a file object: its file's name where it has one (an open file), else its type."""
    name = getattr(fileobj, "name", None)
    return name if isinstance(name, str) else f"<{type(fileobj).__name__}>"


def check_binary(fileobj: Any) -> None:
    """Refuses a text file object (``open(path, "w")``): the file is bytes."""
    if isinstance(fileobj, io.TextIOBase):
        raise InvalidArgumentError(f"{name_of(fileobj)} is a text file object: open it in binary mode ('rb' or 'wb')")


def seekable(fileobj: Any) -> bool:
    """Whether ranges of ``fileobj`` can be read by seeking (a pipe's file object says it cannot)."""
    try:
        return bool(fileobj.seekable()) and hasattr(fileobj, "seek")
    except (AttributeError, OSError, ValueError):
        return False


def chunk_writer(fileobj: Any) -> Any:
    """The function a streamed save hands each chunk to: it writes all of it to ``fileobj`` (a raw file object may
    take part of a chunk per call)."""
    if not hasattr(fileobj, "write"):
        raise InvalidArgumentError(f"cannot save to a {type(fileobj).__name__}: it has no write()")
    check_binary(fileobj)
    write = fileobj.write
    where = name_of(fileobj)

    # A raw file object returns None when a non-blocking stream cannot take more now; any other object that returns
    # no count (a caller's own class, say) took the whole chunk.
    raw = isinstance(fileobj, io.RawIOBase)

    def write_all(chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            written = write(view)
            if written is None and raw:
                raise OSError(errno.EAGAIN, "the stream cannot take more bytes now (non-blocking)", where)
            if written is None or written == len(view):
                return
            if not isinstance(written, int) or not 0 < written < len(view):
                raise OSError(errno.EIO, f"write() of {len(view)} bytes returned {written!r}", where)
            view = view[written:]

    return write_all


def read_stream(fileobj: Any) -> bytearray:
    """All that ``fileobj`` holds from where it stands, read to its end."""
    out = bytearray()
    while True:
        chunk = fileobj.read(READ_CHUNK)
        if chunk is None:
            raise OSError(errno.EAGAIN, "the stream has no bytes to give now (non-blocking)", name_of(fileobj))
        if not chunk:
            return out
        out += chunk


class FileObjectRanges:
    """A seekable file object read by ranges (a :class:`~safestructures._ranges.RangeReader`); the file starts where
    the object stood when given. Reads are serialised: the object has one position."""

    def __init__(self, fileobj: Any) -> None:
        self.name = name_of(fileobj)
        self._file = fileobj
        self._lock = threading.Lock()
        self._base = fileobj.tell()
        self.size = fileobj.seek(0, os.SEEK_END) - self._base
        fileobj.seek(self._base)

    def read(self, begin: int, end: int) -> bytes:
        with self._lock:
            self._file.seek(self._base + begin)
            out = bytearray()
            while len(out) < end - begin:
                chunk = self._file.read(end - begin - len(out))
                if not chunk:
                    break
                out += chunk
            return bytes(out)

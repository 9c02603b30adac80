"""Binary file objects as sources and targets: a save streams the file to ``write()`` in bounded chunks (a pipe or a
socket works: nothing is written twice); a seekable one is read by ranges from where it stands, a stream that cannot
seek is read once into memory, as far as its header declares."""

from __future__ import annotations

import errno
import io
import mmap
import os
import threading
from typing import Any

from . import _core
from ._errors import InvalidArgumentError, InvalidFileError
from ._ranges import anonymous_buffer, header_length

__all__ = ["FileObjectRanges", "check_binary", "checked_bytes", "chunk_writer", "is_file_object", "name_of", "read_stream", "seekable"]

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


def read_stream(fileobj: Any, max_header_size: int, max_bytes: int | None = None) -> bytearray | mmap.mmap:
    """The file ``fileobj`` holds from where it stands, read as far as the file declares and no further: its length
    prefix, its header (refused over ``max_header_size`` bytes before it is read), then the data the header declares,
    into anonymous memory of the declared size (reserved first: a size the system cannot reserve is refused before
    the data is read), and one byte more where bytes may not follow it (which refuses them as ``TrailingBytes``); a
    recording's trailing bytes are not read. A stream that sends without end so costs no more than its header says;
    ``max_bytes``, where the caller gave one, bounds the file too (its bytes are held in memory). A stream that ends
    within its prefix or header gives what it held, which the load refuses as the file it is (too small, header past
    its end); one that ends within its data is refused here (``DataPastEnd``)."""
    name = name_of(fileobj)
    prefix = bytearray(8)
    got = _fill(fileobj, prefix, 0, 8)
    if got < 8:
        return prefix[:got]
    length = header_length(prefix, max_header_size, name)
    header = bytearray(length)
    got = _fill(fileobj, header, 0, length)
    if got < length:
        return prefix + header[:got]
    try:
        data_size, trailing_allowed = _core.declared_data(bytes(header))
    except InvalidFileError as e:
        raise InvalidFileError(f"{name}: {e}", code=e.code) from None
    size = 8 + length + data_size
    if max_bytes is not None and size > max_bytes:
        raise InvalidFileError(f"{name}: the file's header declares {size:,} bytes, which would take this load past its "
                               f"max_bytes limit of {max_bytes:,} (a stream is read into memory): pass a larger "
                               "max_bytes= if the file is trusted", code="LimitExceeded")
    buffer = anonymous_buffer(size, name)
    buffer[:8] = prefix
    buffer[8:8 + length] = header
    del header
    got = _fill(fileobj, buffer, 8 + length, size)
    if got < size:
        raise InvalidFileError(f"{name}: the stream ends after {got:,} bytes, where its header declares a file of "
                               f"{size:,} bytes", code="DataPastEnd")
    if not trailing_allowed and _fill(fileobj, bytearray(1), 0, 1):
        raise InvalidFileError(f"{name}: bytes follow the last tensor's data, where the header says the file ends (at "
                               f"{size:,} bytes)", code="TrailingBytes")
    return buffer


def _fill(fileobj: Any, buffer: Any, begin: int, end: int) -> int:
    """Reads ``fileobj`` into ``buffer[begin:end]`` until it is full or the stream ends; where it got to."""
    at = begin
    with memoryview(buffer) as into:
        while at < end:
            asked = min(READ_CHUNK, end - at)
            chunk = fileobj.read(asked)
            if chunk is None:
                raise OSError(errno.EAGAIN, "the stream has no bytes to give now (non-blocking)", name_of(fileobj))
            chunk = _bytes_read(fileobj, chunk, asked)
            if not chunk:
                break
            into[at:at + len(chunk)] = chunk
            at += len(chunk)
    return at


def _bytes_read(fileobj: Any, chunk: Any, asked: int) -> memoryview:
    """What ``fileobj.read(asked)`` returned, as bytes (see :func:`checked_bytes`)."""
    return checked_bytes(chunk, asked, name_of(fileobj), "read", str(asked), "a binary file object's read() gives bytes")


def checked_bytes(chunk: Any, asked: int, name: str, call: str, arguments: str, contract: str) -> memoryview:
    """What a read of ``asked`` bytes (``call(arguments)``, whose ``contract`` is to give bytes) returned, as bytes:
    OSError naming ``name`` when it is not bytes-like or holds more than asked (a reader whose read lies would
    otherwise make the file other bytes than it holds). No copy is made of what is refused."""
    try:
        view = memoryview(chunk).cast("B")
    except TypeError:
        raise OSError(errno.EIO, f"{call}() returned {type(chunk).__name__}, not bytes: {contract}", name) from None
    if len(view) > asked:
        raise OSError(errno.EIO, f"{call}({arguments}) returned {len(view)} bytes, more than asked", name)
    return view


def _position(fileobj: Any, what: str, value: Any) -> int:
    """A position ``fileobj`` gave (``what`` returned ``value``): OSError naming the object unless it is an int >= 0."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise OSError(errno.EIO, f"{what} returned {value!r}, not a position in the file", name_of(fileobj))
    return value


class FileObjectRanges:
    """A seekable file object read by ranges (a :class:`~safestructures._ranges.RangeReader`); the file starts where
    the object stood when given. Reads are serialised: the object has one position."""

    def __init__(self, fileobj: Any) -> None:
        self.name = name_of(fileobj)
        self._file = fileobj
        self._lock = threading.Lock()
        self._base = _position(fileobj, "tell()", fileobj.tell())
        end = _position(fileobj, "seek(0, SEEK_END)", fileobj.seek(0, os.SEEK_END))
        if end < self._base:
            raise OSError(errno.EIO, f"seek(0, SEEK_END) returned {end}, before where the object stood ({self._base})",
                          self.name)
        self.size = end - self._base
        fileobj.seek(self._base)

    def read(self, begin: int, end: int) -> bytes:
        with self._lock:
            self._file.seek(self._base + begin)
            out = bytearray()
            while len(out) < end - begin:
                chunk = self._file.read(end - begin - len(out))
                if chunk is None:  # a non-blocking raw file with nothing now: fewer bytes, which the caller reports
                    break
                chunk = _bytes_read(self._file, chunk, end - begin - len(out))
                if not chunk:
                    break
                out += chunk
            return bytes(out)

"""A file read by byte ranges (a remote URL, a seekable file object): its header fetched first, then only the bytes of
the tensors a load reads, into a buffer of the file's size that the core reads as it reads a mapped file. Adjacent
ranges are coalesced into one request, large ones split into parts fetched in parallel; what was fetched once is not
fetched again."""

from __future__ import annotations

import bisect
import errno
import mmap
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from . import _core
from ._errors import InvalidFileError

__all__ = ["COALESCE_GAP", "FIRST_READ", "PART_SIZE", "RangeReader", "RangeFiller", "anonymous_buffer", "header_length",
           "read_whole", "read_header"]

#: Ranges at most this far apart are fetched in one request (the bytes between are fetched too: fewer round trips).
COALESCE_GAP = 4096
#: A range larger than this is fetched in parts of this size, in parallel.
PART_SIZE = 8 << 20
#: How many requests are in flight at once.
PARALLEL_REQUESTS = 8
#: The first request's size: a header usually fits, which saves a round trip.
FIRST_READ = 64 << 10


class RangeReader(Protocol):
    """A file that gives byte ranges: its ``name`` (for messages), its ``size``, and ``read(begin, end)``, which may
    return fewer bytes than asked (the caller checks) and may be called from several threads at once."""

    name: str
    size: int

    def read(self, begin: int, end: int) -> bytes: ...


def checked_read(reader: RangeReader, begin: int, end: int) -> bytes:
    """Bytes ``[begin, end)`` of ``reader``; an OSError naming the file when fewer come back (a file shorter than the
    size it gave, a connection cut)."""
    data = reader.read(begin, end)
    if len(data) != end - begin:
        why = ("the file is shorter than its size said, or the transfer was cut" if len(data) < end - begin else
               "the server ignored the range asked for (it does not serve ranges?)")
        raise OSError(errno.EIO, f"asked for bytes [{begin}, {end}) of a file of {reader.size} bytes, got {len(data)}: "
                                 f"{why}", reader.name)
    return data


def read_header(reader: RangeReader, max_header_size: int) -> tuple[mmap.mmap, int]:
    """(a buffer of the file's size holding its header, the header's end): the length prefix is checked against
    ``max_header_size`` and the file's size before the header is fetched, so a huge or lying one costs nothing. The
    buffer is anonymous memory: pages the fetches never write take none."""
    size = reader.size
    if size < 8:
        raise InvalidFileError(f"{reader.name}: {size} bytes, too small to be a safetensors file (the header's length "
                               "alone is 8)", code="FileTooSmall")
    first = checked_read(reader, 0, min(size, FIRST_READ))
    length = header_length(first[:8], max_header_size, reader.name)
    if 8 + length > size:
        raise InvalidFileError(f"{reader.name}: the header's length ({length}) runs past the end of the file ({size} "
                               "bytes)", code="HeaderPastEnd")
    buffer = anonymous_buffer(size, reader.name)
    buffer[:len(first)] = first
    if 8 + length > len(first):
        buffer[len(first):8 + length] = checked_read(reader, len(first), 8 + length)
    return buffer, max(len(first), 8 + length)


def header_length(prefix: bytes | bytearray, max_header_size: int, name: str) -> int:
    """The header's length a file's 8-byte ``prefix`` gives: InvalidFileError (HeaderTooLarge) naming the file ``name``
    names when it is over ``max_header_size``, before any of the header is read."""
    length = int.from_bytes(prefix, "little")
    if length > max_header_size:
        raise InvalidFileError(f"{name}: the header is {length} bytes, over the limit of {max_header_size}",
                               code="HeaderTooLarge")
    return length


def anonymous_buffer(size: int, name: str) -> mmap.mmap:
    """Anonymous memory of ``size`` bytes for the file ``name`` names, which takes none until written: OSError (ENOMEM)
    naming the file when the system will not reserve that much address space (a size no machine here could hold)."""
    try:
        return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except (OSError, OverflowError) as e:
        raise OSError(errno.ENOMEM, f"cannot reserve {size} bytes of address space for the file: {e}", name) from None


def read_whole(reader: RangeReader, max_header_size: int) -> bytearray | mmap.mmap:
    """The whole file: one request where it is no larger than a part (a server that serves no ranges gives it too);
    else its header first (:func:`read_header`), which the core checks against the file's size before the rest is
    fetched, in parallel parts (a size the header does not account for, which a server may claim, costs nothing)."""
    if reader.size <= PART_SIZE:
        return bytearray(checked_read(reader, 0, reader.size))
    buffer, fetched = read_header(reader, max_header_size)
    if fetched < reader.size:
        try:
            _core.read_bytes(buffer, max_header_size)
        except InvalidFileError as e:
            raise InvalidFileError(f"{reader.name}: {e}", code=e.code) from None
        _fetch_into(reader, memoryview(buffer), [(fetched, reader.size)])
    return buffer


class RangeFiller:
    """The ``fetch`` of a ``LazyFile`` over the buffers of ``readers`` (from :func:`read_header`): called with
    ``[(shard, begin, end)]``, it fetches what of those ranges is not there yet and writes it into the buffers."""

    def __init__(self, readers: list[RangeReader], buffers: list[mmap.mmap], fetched: list[int]) -> None:
        self._readers = readers
        self._buffers = buffers
        # Per shard: sorted, disjoint [begin, end) ranges already fetched, as two parallel lists.
        self._begins: list[list[int]] = [[0] for _ in readers]
        self._ends: list[list[int]] = [[end] for end in fetched]
        self._lock = threading.Lock()
        #: Bytes fetched after the headers (what the loads cost).
        self.bytes_fetched = 0

    def __call__(self, ranges: Iterable[tuple[int, int, int]]) -> None:
        with self._lock:
            by_shard: dict[int, list[tuple[int, int]]] = {}
            for shard, begin, end in ranges:
                by_shard.setdefault(shard, []).extend(self._missing(shard, begin, end))
            for shard, wanted in by_shard.items():
                merged = _coalesced(sorted(wanted))
                _fetch_into(self._readers[shard], memoryview(self._buffers[shard]), merged)
                for begin, end in merged:
                    self._add(shard, begin, end)
                    self.bytes_fetched += end - begin

    # Both find their place by bisection: a load per tensor of a file of many (every other one, out of order) would
    # otherwise walk or sort every range fetched so far, quadratic in the tensors (16,000 loads: 9.7 s).
    def _missing(self, shard: int, begin: int, end: int) -> list[tuple[int, int]]:
        """The parts of ``[begin, end)`` not fetched yet (a tensor the header's first read took part of)."""
        begins, ends = self._begins[shard], self._ends[shard]
        out: list[tuple[int, int]] = []
        at = begin
        k = bisect.bisect_right(ends, at)  # the first range that ends past `at`
        while k < len(begins) and begins[k] < end:
            if begins[k] > at:
                out.append((at, begins[k]))
            at = ends[k]
            k += 1
        if at < end:
            out.append((at, end))
        return out

    def _add(self, shard: int, begin: int, end: int) -> None:
        """Records ``[begin, end)`` as fetched, joined with the ranges it touches or overlaps."""
        begins, ends = self._begins[shard], self._ends[shard]
        first = bisect.bisect_left(ends, begin)  # ranges first..last-1 end at or after `begin`, begin at or before `end`
        last = bisect.bisect_right(begins, end)
        if first < last:
            begin, end = min(begin, begins[first]), max(end, ends[last - 1])
        begins[first:last] = [begin]
        ends[first:last] = [end]


def _coalesced(ranges: list[tuple[int, int]], gap: int = COALESCE_GAP) -> list[tuple[int, int]]:
    """Sorted ranges with those at most ``gap`` apart joined (touching or overlapping ones with ``gap=0``)."""
    out: list[tuple[int, int]] = []
    for begin, end in ranges:
        if out and begin - out[-1][1] <= gap:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((begin, end))
    return out


def _fetch_into(reader: RangeReader, buffer: memoryview, ranges: list[tuple[int, int]]) -> None:
    """Fetches ``ranges`` of ``reader`` into the same bytes of ``buffer``: each in parts of at most
    :data:`PART_SIZE`, several requests in flight when there is more than one part."""
    parts = [(b, min(b + PART_SIZE, end)) for begin, end in ranges for b in range(begin, end, PART_SIZE)]

    def fetch(part: tuple[int, int]) -> None:
        begin, end = part
        buffer[begin:end] = checked_read(reader, begin, end)

    _run_all(fetch, parts)


def _run_all(work: Callable[[tuple[int, int]], None], parts: list[tuple[int, int]]) -> None:
    if len(parts) <= 1:
        for part in parts:
            work(part)
        return
    with ThreadPoolExecutor(max_workers=min(PARALLEL_REQUESTS, len(parts))) as pool:
        try:
            for done in [pool.submit(work, part) for part in parts]:
                done.result()
        except BaseException:
            pool.shutdown(cancel_futures=True)  # the first failure ends the fetch: no request is made after it
            raise

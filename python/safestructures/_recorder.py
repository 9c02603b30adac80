"""Recordings: records appended to one file as they come (``safestructures.Recorder``), the file a valid safetensors
and safestructures file at every flush, crash-safe between them. The layout is docs/format.md section 9; the guide is
docs/recorder.md."""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from . import _core, plugins as _plugins
from ._errors import InvalidArgumentError, InvalidFileError, SafestructuresError
from ._flat import _check_metadata, _fspath
from ._format import (ID_MEMBER, RECORDING_KEY, RECORDING_PADDING, RECORDING_VERSION, SCHEMA_KEY, TAG, TAG_MEMBER,
                      TENSOR_TAGS)
from ._limits import DEFAULT_MAX_DEPTH, DEFAULT_MAX_HEADER_SIZE
from ._sharded import write_atomically

__all__ = ["Recorder", "Stream"]

# The fields of a tensor-naming node that hold a tensor's name: a tensor's own, the storage a view reads, the tensor
# holding large bytes.
_NAME_FIELDS = ("name", "storage", "tensor")
_PAGE = 4096
# The most room a regrowth reserves for the data's sake (beyond twice the header): spaces cost disk, and memory never.
_DATA_ROOM_CAP = 16 << 20


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _document_envelope() -> tuple[str, str]:
    """The schema document around its root (``{"format":...,"root":`` and ``}``), as the core writes it for None."""
    blob = _core.save_bytes(None, None, DEFAULT_MAX_DEPTH, DEFAULT_MAX_HEADER_SIZE, None, False)
    metadata, _ = _core.read_bytes(blob)
    head, null, tail = metadata[SCHEMA_KEY].rpartition("null")
    return head, tail


def _tensor_name(prefix: str, index: int, name: str, taken: set[str]) -> str:
    base = f"{prefix}{index}.{name}"
    new, k = base, 0
    while new in taken:
        k += 1
        new = f"{base}~{k}"
    taken.add(new)
    return new


def _rename(node: Any, names: Mapping[str, str], id_base: int) -> int:
    """Points the tensor-naming nodes under ``node`` at the recording's names and moves its reference ids past
    ``id_base``, in place; returns the largest id met (0 for none)."""
    top = 0
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        if TAG_MEMBER in item:
            if ID_MEMBER in item and type(item[ID_MEMBER]) is int:
                top = max(top, item[ID_MEMBER])
                item[ID_MEMBER] += id_base
            if item[TAG_MEMBER] in TENSOR_TAGS:
                for field in _NAME_FIELDS:
                    if isinstance(item.get(field), str) and item[field] in names:
                        item[field] = names[item[field]]
        stack.extend(item.values())
    return top


def _largest_id(node: Any) -> int:
    return _rename(node, {}, 0)


def _entry_head(name: str, dtype: str, shape: Any) -> str:
    """A header entry up to its offsets, which depend on the padding before the records' data (``_entry``)."""
    return f'{_compact(name)}:{{"dtype":"{dtype}","shape":{_compact(list(shape))},"data_offsets":['


def _entry(head: str, begin: int, end: int) -> str:
    return f"{head}{begin},{end}]}}"


def _page_room(room: int) -> int:
    """The smallest room of at least ``room`` bytes whose data starts on a page (8 + room a whole number of pages): a
    file system can then grow it by inserting pages before the data, and the data is page-aligned."""
    return -(-(room + 8) // _PAGE) * _PAGE - 8


def _room_for(needed: int, data_size: int) -> int:
    """Header room for a header of ``needed`` bytes: twice that, or a 64th of ``data_size`` (the data a regrowth would
    move; 0 for a growth into the padding, which moves none) when more, up to 16 MiB (so that a run whose records are
    large regrows rarely), its data starting on a page, within the header limit."""
    room = _page_room(max(2 * needed, min(data_size // 64, _DATA_ROOM_CAP), _PAGE))
    return min(room, (DEFAULT_MAX_HEADER_SIZE + 8) // _PAGE * _PAGE - 8)


class Stream:
    """One named stream of a :class:`Recorder` (``recorder["blocks.0"]``): its records load as a list under its name."""

    def __init__(self, recorder: Recorder, name: str) -> None:
        self._recorder = recorder
        self.name = name

    def append(self, value: Any) -> None:
        """Appends one record to this stream (see :meth:`Recorder.append`)."""
        self._recorder._append(self.name, value)

    def __len__(self) -> int:
        return self._recorder._count(self.name)


class Recorder:
    """Appends records to one file as they come, in bounded memory: a recording.

    ``Recorder(path)`` starts a recording (``mode="w"`` replaces a file there); ``mode="a"`` continues the one at
    ``path`` (or starts one where there is none). ``append(value)`` adds a record: anything :func:`save_file` takes.
    Named streams (``recorder["blocks.0"].append(value)``) keep one list per name; a recording holds either plain
    records or streams, not both. ``load_file(path)`` gives the records: a list, or a dict of lists by stream name.

    Each record's tensors are written to the file when it is appended, straight from their memory; what is held
    until the next flush is the header's text for its tensors and its structure.
    ``flush()`` commits: everything appended becomes visible to readers and, with ``fsync`` (the default), durable.
    A flush also happens once ``flush_bytes`` of tensor data or ``flush_seconds`` have passed since the last (checked at
    each append), and on ``close()``, which the ``with`` block calls. After a flush the file is a valid safetensors
    file (stock ``safe_open`` reads every tensor) and a valid safestructures file. A process killed at any moment
    leaves a file that loads with exactly the records of its last completed flush (docs/recorder.md says what holds
    on a power loss).

    The header is rewritten in place within ``header_room`` bytes reserved at the start (64 KiB), behind which the
    records' data begins with a padding of ``header_reserve`` zeros (16 MiB; a hole in the file where the file system
    makes one: no disk, no memory), which the header's room grows into without moving any data (some 100 batches of
    ResNet-50 with every module recorded). A header that outgrows both is given twice its size (or a 64th of the data,
    up to 16 MiB) and a fresh padding by moving the data: a logarithmic number of times over a run, at most about twice
    the data in all (docs/recorder.md). Closing a recording with no more data than padding left writes it anew
    without the padding. ``metadata`` (str -> str) is stored alongside; ``plugins`` and ``max_depth``
    are save_file's.
    """

    def __init__(self, path: str | os.PathLike[str], mode: str = "w", *, metadata: Mapping[str, str] | None = None,
                 flush_bytes: int = 256 << 20, flush_seconds: float | None = 60.0, fsync: bool = True,
                 header_room: int = 64 << 10, header_reserve: int = 16 << 20,
                 plugins: type | Iterable[type] | None = None,
                 max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        if mode not in ("w", "a"):
            raise InvalidArgumentError(f'mode must be "w" (a new recording) or "a" (continue one), got {mode!r}')
        self.path = _fspath(path)
        self._plugins = _plugins.check_plugins(plugins)
        self._max_depth = max_depth
        self._flush_bytes, self._flush_seconds, self._fsync = flush_bytes, flush_seconds, fsync
        self._metadata = _check_metadata(metadata)
        # The caller's metadata is checked as a save checks it (reserved keys refused).
        _core.save_bytes(None, self._metadata, max_depth, DEFAULT_MAX_HEADER_SIZE, None, False)
        self._head, self._tail = _document_envelope()
        self._lock = threading.RLock()
        self._streams: dict[str | None, list[str]] = {}  # stream (None: plain records) -> each record's node text
        # Header entries, in data order: (entry up to its offsets, begin, end), offsets from the records' start.
        self._entries: list[tuple[str, int, int]] = []
        # The entries rendered (",ENTRY" each) for the padding `_rendered_for`: a flush renders only the new ones.
        self._rendered: list[str] = []
        self._rendered_for = 0
        self._names: set[str] = set()
        self._next_id = 0
        self._data_size = 0  # tensor bytes of the records written, committed or not (after the padding)
        # The padding before the records' data (docs/format.md section 9): zeros, a hole where the file system makes
        # one, which the header grows into without moving the records; a regrowth that moves them makes it this size.
        self._reserve = max(0, header_reserve) // _PAGE * _PAGE
        self._padding = self._padding_before = 0
        self._pending = 0  # tensor bytes appended since the last flush
        self._dirty = False
        self._last_flush = time.monotonic()
        self._fd = -1
        if mode == "a" and os.path.exists(self.path):
            self._continue()
        else:
            # The room asked for, less what makes its data start on a page.
            self._room = max(_PAGE, (header_room + 8) // _PAGE * _PAGE) - 8
            self._padding = self._reserve
            self._create()

    # ---- The file.
    def _header(self, padding: int) -> bytes:
        """The header text (unpadded) with ``padding`` bytes of padding before the records' data."""
        if not self._streams or None in self._streams:
            root = "[" + ",".join(self._streams.get(None, ())) + "]"
        elif any(name == TAG_MEMBER for name in self._streams):
            pairs = ",".join(f"[{_compact(name)},[{','.join(nodes)}]]" for name, nodes in self._streams.items())
            root = f'{{"{TAG_MEMBER}":"{TAG.Dict}","items":[{pairs}]}}'
        else:
            root = "{" + ",".join(f"{_compact(name)}:[{','.join(nodes)}]" for name, nodes in self._streams.items()) + "}"
        metadata = dict(self._metadata or {})
        metadata[SCHEMA_KEY] = self._head + root + self._tail
        # The recording's key first, where a reader finds it in the header's first page, torn or not.
        meta = ",".join([f"{_compact(RECORDING_KEY)}:{_compact(RECORDING_VERSION)}",
                         *(f"{_compact(k)}:{_compact(metadata[k])}" for k in sorted(metadata))])
        pad = (f',{_entry(_entry_head(RECORDING_PADDING, "U8", [padding]), 0, padding)}' if padding else "")
        if padding != self._rendered_for:
            self._rendered, self._rendered_for = [], padding
        self._rendered.extend(["," + _entry(head, begin + padding, end + padding)
                               for head, begin, end in self._entries[len(self._rendered):]])
        entries = "".join(self._rendered)
        return ('{"__metadata__":{' + meta + "}" + pad + entries + "}").encode()

    def _open_fd(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InvalidArgumentError(f"{self.path}: another Recorder is writing this recording") from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _write_whole(self, header: bytes) -> None:
        """Writes the recording anew (prefix, ``header`` padded to its room, the padding as a hole, the records' data
        so far) and renames it over the file."""
        old_fd, data_at = self._fd, 8 + self._room_before + self._padding_before

        def write(f: Any) -> None:
            f.write(self._room.to_bytes(8, "little") + header)
            for at in range(len(header), self._room, 1 << 20):
                f.write(b" " * min(1 << 20, self._room - at))
            f.flush()
            os.ftruncate(f.fileno(), 8 + self._room + self._padding)  # the padding: a hole, no bytes written
            left, src, dst = self._data_size, data_at, 8 + self._room + self._padding
            while left > 0:
                try:
                    n = os.copy_file_range(old_fd, f.fileno(), left, src, dst)
                except OSError:  # a file system without it: copy through memory, in bounded chunks
                    n = os.pwrite(f.fileno(), os.pread(old_fd, min(left, 16 << 20), src), dst)
                if n <= 0:
                    raise OSError(f"{self.path}: the recording's data ended early while regrowing its header")
                left, src, dst = left - n, src + n, dst + n

        write_atomically(self.path, write, self._fsync)
        if old_fd >= 0:
            os.close(old_fd)
            self._fd = -1
        self._open_fd()

    def _create(self) -> None:
        self._room_before, self._padding_before = self._room, self._padding
        self._write_whole(self._header(self._padding))

    def _continue(self) -> None:
        self._open_fd()
        try:
            _core.finish_recording_commit(self._fd, self._fsync)  # a commit a killed writer left (its room too)
            room = int.from_bytes(os.pread(self._fd, 8, 0), "little")
            buffer, metadata, tensors = _core.read_file(self.path)
            del buffer
            if not metadata or metadata.get(RECORDING_KEY) != RECORDING_VERSION:
                raise InvalidFileError(f"{self.path}: not a recording (its metadata has no {RECORDING_KEY!r} "
                                       f"= {RECORDING_VERSION!r}); mode='a' continues recordings only")
            self._adopt(room, metadata, tensors)
            # Data appended after the last commit is dropped.
            os.ftruncate(self._fd, 8 + room + self._padding + self._data_size)
        except BaseException:
            os.close(self._fd)
            self._fd = -1
            raise

    def _adopt(self, room: int, metadata: dict[str, str], tensors: list[tuple[str, str, tuple[int, ...], int, int]]) -> None:
        """Takes the state of the recording read from the file: its records, tensors and metadata."""
        try:
            document = json.loads(metadata[SCHEMA_KEY])
            root = document["root"]
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidFileError(f"{self.path}: the recording's structure is not a schema document ({e})") from None
        if isinstance(root, list):
            streams: dict[str | None, list[Any]] = {None: root} if root else {}
        elif isinstance(root, dict) and root.get(TAG_MEMBER) == TAG.Dict and isinstance(root.get("items"), list):
            streams = {pair[0]: pair[1] for pair in root["items"]}
        elif isinstance(root, dict) and TAG_MEMBER not in root:
            streams = dict(root)
        else:
            raise InvalidFileError(f"{self.path}: a recording's root is a list of records or a dict of lists")
        for name, nodes in streams.items():
            if not isinstance(nodes, list) or not (name is None or isinstance(name, str)):
                raise InvalidFileError(f"{self.path}: stream {name!r} of the recording is not a list of records")
        self._streams = {name: [_compact(node) for node in nodes] for name, nodes in streams.items()}
        self._next_id = max((_largest_id(nodes) for nodes in streams.values()), default=0)
        self._room = self._room_before = room
        records_at = 8 + room  # where the records' data starts: after the padding, if any
        for name, _dtype, _shape, offset, nbytes in tensors:
            if name == RECORDING_PADDING:
                if offset != records_at:
                    raise InvalidFileError(f"{self.path}: the recording's padding ({name!r}) does not start its data")
                self._padding = self._padding_before = nbytes
                records_at += nbytes
        for name, dtype, shape, offset, nbytes in sorted(tensors, key=lambda t: t[3]):
            if name == RECORDING_PADDING:
                continue
            begin = offset - records_at
            if begin < 0:
                raise InvalidFileError(f"{self.path}: tensor {name!r} of the recording lies in its padding")
            self._entries.append((_entry_head(name, dtype, shape), begin, begin + nbytes))
            self._names.add(name)
            self._data_size = max(self._data_size, begin + nbytes)
        if self._metadata is None:
            kept = {k: v for k, v in metadata.items() if k not in (SCHEMA_KEY, RECORDING_KEY)}
            self._metadata = kept or None

    # ---- Records.
    def _count(self, stream: str | None) -> int:
        with self._lock:
            return len(self._streams.get(stream, ()))

    def __len__(self) -> int:
        """The number of records (of every stream)."""
        with self._lock:
            return sum(len(nodes) for nodes in self._streams.values())

    def __getitem__(self, name: str) -> Stream:
        """The stream ``name``, where records are appended under that name."""
        if not isinstance(name, str):
            raise InvalidArgumentError(f"a stream is named by a str, got {type(name).__qualname__}")
        try:
            name.encode()
        except UnicodeEncodeError:
            raise InvalidArgumentError(f"stream name {name!r} is not valid Unicode") from None
        return Stream(self, name)

    def append(self, value: Any) -> None:
        """Appends one record: anything :func:`save_file` takes (nested containers, tensors of any framework...)."""
        self._append(None, value)

    def _append(self, stream: str | None, value: Any) -> None:
        with self._lock:
            if self._fd < 0:
                raise InvalidArgumentError(f"{self.path}: the recorder is closed")
            if self._streams and (stream is None) != (None in self._streams):
                raise InvalidArgumentError(f"{self.path}: a recording holds plain records or named streams, not both")
            nodes = self._streams.get(stream, [])
            where = f"record {len(nodes)}" + ("" if stream is None else f" of stream {stream!r}")
            at = 8 + self._room + self._padding + self._data_size
            try:
                # A context of its own, as each save has: what one save notes (torch storages written) is its own.
                context = {"plugins": self._plugins}
                # The record's tensors written from their memory after the data; back, its own header places them.
                header = json.loads(_core.write_recording_record(value, self._fd, at, self._max_depth, context))
            except BaseException as e:
                os.ftruncate(self._fd, at)  # the file ends where its data does, as a commit needs
                if isinstance(e, SafestructuresError):
                    raise type(e)(f"{self.path}: {where}: {e}", code=e.code) from e
                raise
            document = json.loads(header.pop("__metadata__")[SCHEMA_KEY])
            prefix = "" if stream is None else "".join("_" if ord(c) < 0x20 else c for c in stream) + "."
            names = {name: _tensor_name(prefix, len(nodes), name, self._names) for name in header}
            self._next_id += _rename(document["root"], names, self._next_id)
            size = 0
            for name, entry in header.items():  # in data order, as a header lists them
                begin, end = entry["data_offsets"]
                self._entries.append((_entry_head(names[name], entry["dtype"], entry["shape"]), self._data_size + begin,
                                      self._data_size + end))
                size = max(size, end)
            self._data_size += size
            self._pending += size
            nodes.append(_compact(document["root"]))
            self._streams[stream] = nodes
            self._dirty = True
            if self._pending >= self._flush_bytes or (
                    self._flush_seconds is not None and time.monotonic() - self._last_flush >= self._flush_seconds):
                self.flush()

    # ---- Commits.
    def flush(self) -> None:
        """Commits every record appended so far: visible to readers of the file and, with ``fsync``, on the disk."""
        with self._lock:
            if self._fd < 0 or not self._dirty:
                return
            header = self._header(self._padding)
            if len(header) > self._room:
                if len(header) > DEFAULT_MAX_HEADER_SIZE:
                    raise InvalidArgumentError(
                        f"{self.path}: the recording's header would take {len(header)} bytes, over the limit of "
                        f"{DEFAULT_MAX_HEADER_SIZE}: start another recording")
                self._grow(len(header))
            else:
                _core.commit_recording(self._fd, header, self._room, self._padding + self._data_size, self._fsync)
            self._room_before, self._padding_before = self._room, self._padding
            self._pending, self._dirty, self._last_flush = 0, False, time.monotonic()

    def _grow(self, needed: int) -> None:
        """Commits into a room grown for a header of ``needed`` bytes."""
        room, padding, data = self._room, self._padding, self._data_size
        # Into the padding, where it is long enough: the header takes it over, the records stay where they are (a
        # shorter padding never lengthens the header: its offsets only lose digits).
        grown = min(_room_for(needed, 0), room + padding)
        if grown >= needed:
            header = self._header(room + padding - grown)
            _core.commit_recording(self._fd, header, grown, room + padding - grown + data, self._fsync)
            self._room, self._padding = grown, room + padding - grown
            return
        # Else the records move, behind a new room and a new padding: pages inserted before them where the file
        # system can (ext4, XFS); else the file written anew.
        new_room, new_padding = _room_for(needed, data), max(self._reserve, padding)
        header = self._header(new_padding)
        if not _core.grow_recording(self._fd, header, room, new_room, padding + data, new_padding + data, self._fsync):
            self._room, self._padding = new_room, new_padding
            self._write_whole(header)
        self._room, self._padding = new_room, new_padding

    def close(self) -> None:
        """Flushes, then lets go of the file. Closing twice does nothing."""
        with self._lock:
            if self._fd < 0:
                return
            try:
                self.flush()
                if self._padding and self._data_size <= self._padding:
                    self._drop_padding()
            finally:
                os.close(self._fd)
                self._fd = -1

    def _drop_padding(self) -> None:
        """Writes the file anew without its padding: a recording whose data is no larger than its padding would
        otherwise be mostly padding once closed (in its size, and in what a stock reader allocates for it). The copy
        costs at most the padding's size; a larger recording keeps the padding rather than be copied whole."""
        header = self._header(0)
        self._room_before, self._padding_before = self._room, self._padding
        self._room, self._padding = _room_for(len(header), 0), 0
        self._write_whole(header)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Recorder {self.path!r}: {len(self)} records>"

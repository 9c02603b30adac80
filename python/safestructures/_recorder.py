"""Recordings: records appended to one file as they come (``safestructures.Recorder``), the file a valid safetensors
and safestructures file at every flush, crash-safe between them. The layout is docs/format.md section 9; the guide is
docs/recorder.md."""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from . import _core, plugins as _plugins
from ._errors import InvalidArgumentError, InvalidFileError, SafestructuresError, raise_reading
from ._flat import _check_metadata, _fspath
from ._limits import DEFAULT_MAX_DEPTH, DEFAULT_MAX_HEADER_SIZE, DEFAULT_MAX_NODES
from ._sharded import locked_by_another, write_atomically
from ._walkers import default_context

__all__ = ["Recorder", "Stream"]


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

    ``Recorder(path)`` starts a recording (``mode="w"`` replaces a file there, not one another Recorder writes);
    ``mode="a"`` continues the one at ``path`` (or starts one where there is none), once a load of it succeeds (it
    raises the load's error otherwise). ``append(value)`` adds a record: anything :func:`save_file` takes.
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
        metadata = _check_metadata(metadata)
        self._reserve = max(0, header_reserve)
        self._lock = threading.RLock()
        self._pending = 0  # tensor bytes appended since the last flush
        self._dirty = False
        self._last_flush = time.monotonic()
        self._fd = -1
        if mode == "a" and os.path.exists(self.path):
            self._continue(metadata)
        else:
            self._check_not_written()
            # The header, its room and padding, the records and their tensors' names: the core's (recording_writer.hpp).
            self._writer = _core.RecordingWriter(metadata, max(0, header_room), self._reserve)
            self._write_whole()

    # ---- The file.
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

    def _check_not_written(self) -> None:
        """Refuses to start a recording over one that another Recorder is writing (holding its lock): that writer would
        go on into a file no longer at the path, and its next rewrite (a regrowth, its close) would replace this one.
        Where the path cannot be looked at, the write says what is wrong."""
        if locked_by_another(self.path):
            raise InvalidArgumentError(f"{self.path}: another Recorder is writing this recording")

    def _gone(self) -> str | None:
        """How the path no longer names the file this recorder writes ("removed", "replaced": by another process, another
        Recorder, a save_file), or None while it does: a commit would then go where no reader of the path looks, and
        a rewrite would replace the other file."""
        mine = os.fstat(self._fd)
        try:
            there = os.stat(self.path)
        except FileNotFoundError:
            return "removed"
        return None if (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino) else "replaced"

    def _check_still_here(self) -> None:
        """Raises OSError where :meth:`_gone` says the path no longer names this recorder's file."""
        gone = self._gone()
        if gone is not None:
            raise OSError(errno.ESTALE, f"the recording was {gone} by another process since this Recorder opened it: "
                                        "the records appended since its last flush are not in it", self.path)

    def _write_whole(self) -> None:
        """Writes the recording anew as the core's rewrite says (prefix, header padded to its room, the padding as a
        hole, the records' data so far) and renames it over the file."""
        header, room, padding, data_at, data_size = self._writer.rewrite()
        old_fd = self._fd
        if old_fd >= 0:
            self._check_still_here()

        def write(f: Any) -> None:
            f.write(room.to_bytes(8, "little") + header)
            for at in range(len(header), room, 1 << 20):
                f.write(b" " * min(1 << 20, room - at))
            f.flush()
            os.ftruncate(f.fileno(), 8 + room + padding)  # the padding: a hole, no bytes written
            left, src, dst = data_size, data_at, 8 + room + padding
            while left > 0:
                try:
                    n = os.copy_file_range(old_fd, f.fileno(), left, src, dst)
                except OSError:  # a file system without it: copy through memory, in bounded chunks
                    n = os.pwrite(f.fileno(), os.pread(old_fd, min(left, 16 << 20), src), dst)
                if n <= 0:
                    raise OSError(f"{self.path}: the recording's data ended early while regrowing its header")
                left, src, dst = left - n, src + n, dst + n

        write_atomically(self.path, write, self._fsync)
        self._writer.rewritten()
        if old_fd >= 0:
            os.close(old_fd)
            self._fd = -1
        self._open_fd()

    def _continue(self, metadata: Mapping[str, str] | None) -> None:
        self._open_fd()
        try:
            _core.finish_recording_commit(self._fd, self._fsync)  # a commit a killed writer left (its room too)
            self._writer = _core.RecordingWriter.continuing(self.path, metadata, self._reserve)
            self._check_loads()
            # Data appended after the last commit is dropped.
            os.ftruncate(self._fd, self._writer.data_end)
        except BaseException as e:
            os.close(self._fd)
            self._fd = -1
            self._raise_named(e)
            raise

    def _check_loads(self) -> None:
        """Refuses to continue a recording that a load refuses (records appended to it would be in a file that nothing
        reads): the load's own error, saying so. The load builds its records as numpy arrays (views of the file) and
        stand-ins of classes (no registered class's code runs); a tensor numpy cannot hold is no fault of the file."""
        where = f"{self.path}: mode='a' continues a recording that loads, and a load refuses this one"
        context = {**default_context(os.path.getsize(self.path)), "names": {}, "framework": "numpy"}
        try:
            _core.load_file(self.path, max(DEFAULT_MAX_DEPTH, self._max_depth + 2), DEFAULT_MAX_NODES,
                            DEFAULT_MAX_HEADER_SIZE, context, False)
        except InvalidFileError as e:
            text = str(e)
            text = text[len(self.path) + 2:] if text.startswith(f"{self.path}: ") else text
            raise type(e)(f"{where}: {text}", code=e.code) from None
        except (SafestructuresError, OSError):
            pass  # a tensor numpy cannot hold; the file itself was read as the writer reads it
        except Exception as e:
            raise_reading(where, e)
            raise

    # ---- Records.
    def _count(self, stream: str | None) -> int:
        with self._lock:
            return self._writer.count(stream)

    def __len__(self) -> int:
        """The number of records (of every stream)."""
        with self._lock:
            return len(self._writer)

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
            try:
                self._writer.check_stream(stream)
            except SafestructuresError as e:
                raise type(e)(f"{self.path}: {e}", code=e.code) from None
            where = f"record {self._writer.count(stream)}" + ("" if stream is None else f" of stream {stream!r}")
            at = self._writer.data_end
            try:
                # A context of its own, as each save has: what one save notes (torch storages written) is its own.
                context = {"plugins": self._plugins}
                # The record's tensors written from their memory after the data; the core names and places them.
                _core.write_recording_record(self._writer, stream, value, self._fd, self._max_depth, context)
            except BaseException as e:
                os.ftruncate(self._fd, at)  # the file ends where its data does, as a commit needs
                if isinstance(e, SafestructuresError):
                    raise type(e)(f"{self.path}: {where}: {e}", code=e.code) from e
                self._raise_named(e)
                raise
            self._pending += self._writer.data_end - at
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
            self._check_still_here()
            try:
                committed = self._writer.commit(self._fd, self._fsync)
            except SafestructuresError as e:
                raise type(e)(f"{self.path}: {e}", code=e.code) from e
            except OSError as e:
                self._raise_named(e)
                raise
            if not committed:  # the data moves: the file written anew
                self._write_whole()
            self._pending, self._dirty, self._last_flush = 0, False, time.monotonic()

    def _raise_named(self, e: BaseException) -> None:
        """Raises ``e`` again naming the recording's path, where it is an OSError of the core's, which knows the file by
        its descriptor only (``'the recording'``); returns for any other."""
        if isinstance(e, OSError) and e.filename == "the recording":
            raise type(e)(e.errno, e.strerror, self.path) from e

    def close(self) -> None:
        """Flushes, then lets go of the file. Closing twice does nothing."""
        with self._lock:
            if self._fd < 0:
                return
            try:
                self.flush()
                # A recording whose data is no larger than its padding would otherwise be mostly padding once closed
                # (in its size, and in what a stock reader allocates for it): written anew without it, a copy of at
                # most the padding's size; a larger recording keeps its padding rather than be copied whole.
                if self._gone() is None and self._writer.drop_padding():  # (gone: nothing left to write, no error)
                    self._write_whole()
            finally:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Recorder {self.path!r}: {len(self)} records>"

"""CheckpointManager: a training run's checkpoints as numbered steps in one directory, each visible only once complete,
the old ones removed by a retention rule."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import _sharded, plugins as _plugins
from ._api import load_file, save_file, snapshot_save
from ._errors import InvalidArgumentError
from ._flat import _fspath
from ._lazy import SafeFile, open as open_file
from ._limits import DEFAULT_MAX_DEPTH

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["CheckpointManager"]

#: A complete step: ``step-00000100.safetensors`` (one file) or ``step-00000100`` (a sharded save's folder); at least
#: eight digits, as :func:`_step_name` writes them.
_STEP = re.compile(r"step-(\d{8,})(\.safetensors)?")
#: A step being written, or one being removed: ``.step-00000100.<save id>.partial`` (a folder while written, then
#: whatever is removed under that name). It is the save's while the save holds its lock (_sharded.save_lock), and
#: removable by anyone once not.
_STAGED = re.compile(r"\.step-\d{8,}\.([0-9a-f]{24})\.partial")


def _step_name(step: int) -> str:
    return f"step-{step:08d}"


def _check_step(step: Any) -> int:
    if type(step) is not int:
        raise TypeError(f"a step is an int, not {type(step).__name__}")
    if step < 0:
        raise InvalidArgumentError(f"a step is a non-negative int, not {step}")
    return step


def _check_keep(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if type(value) is not int:
        raise TypeError(f"{name} must be None or an int, not {type(value).__name__}")
    if value < 1:
        raise InvalidArgumentError(f"{name} must be at least 1 (or None), not {value}")
    return value


def _remove_tree(path: str) -> None:
    """Removes a file or a folder (and what it holds); what is already gone is no error."""
    import shutil  # only when removing: a load must not import it

    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        _sharded.remove_if_present(path)


class CheckpointManager:
    """Numbered checkpoints of a training run in ``directory``, each step a file (``step-00000100.safetensors``) or,
    saved with ``max_shard_size``, a folder of shards (``step-00000100/``).

    A step is written under a temporary name in ``directory`` and renamed into place once complete: :meth:`steps`,
    :meth:`load` and :meth:`open` (in this process or any other) only ever see complete steps. After each save,
    retention removes the steps that are neither among the last ``keep_last`` (by number; None keeps them all) nor a
    multiple of ``keep_every`` (None: no such rule). A save killed at any moment (SIGKILL, power loss with
    ``fsync=True``) leaves the steps saved before it as they were; the next save removes what it left. A step is never
    overwritten: saving a step that exists raises InvalidArgumentError (remove it first to save it again).
    """

    def __init__(self, directory: str | os.PathLike[str], keep_last: int | None = 3, keep_every: int | None = None) -> None:
        self.directory = os.path.abspath(_fspath(directory))
        self.keep_last = _check_keep("keep_last", keep_last)
        self.keep_every = _check_keep("keep_every", keep_every)
        os.makedirs(self.directory, exist_ok=True)
        import threading  # only for a process that manages checkpoints

        self._lock = threading.Lock()
        self._in_flight: dict[int, Future[None]] = {}
        self._ranked: Future[None] | None = None  # the last multi-rank save in the background

    def __repr__(self) -> str:
        return f"CheckpointManager({self.directory!r}, keep_last={self.keep_last}, keep_every={self.keep_every})"

    # ---- Reading

    def _complete(self) -> dict[int, str]:
        """{step: its path} of the complete steps in the directory."""
        found: dict[int, str] = {}
        with os.scandir(self.directory) as entries:
            for entry in entries:
                match = _STEP.fullmatch(entry.name)
                if match is None or entry.name != _step_name(int(match.group(1))) + (match.group(2) or ""):
                    continue  # not a name this manager gives (step-100, step-000000100 are someone else's)
                try:
                    # A step is a regular file or a folder (links followed, as files are): a FIFO, a link that leads
                    # nowhere or a folder named like a file is none, and no "latest step" a resume would fail on.
                    kind_fits = entry.is_dir() if match.group(2) is None else entry.is_file()
                except OSError:
                    # A link whose target cannot be told (a loop, a folder it may not enter) is no step either: one
                    # such entry must not stop every save, listing and load of the run's checkpoints.
                    continue
                if not kind_fits:
                    continue
                found[int(match.group(1))] = entry.path
        return found

    def steps(self) -> list[int]:
        """The complete steps in the directory, in increasing order."""
        return sorted(self._complete())

    def latest_step(self) -> int | None:
        """The highest complete step, or None when there is none."""
        return max(self._complete(), default=None)

    def path(self, step: int | None = None) -> str:
        """The path of a complete step (the latest by default): its file, or its sharded save's folder. A step this
        manager is saving in the background is waited for first (for the latest, every such step), so that a process
        reads what it saved; :meth:`steps` and :meth:`latest_step` list what is complete now, without waiting.

        Raises:
            FileNotFoundError: no such step (or no step at all) in the directory; for a step whose background save by
                this manager failed, the message gives that save's error.
        """
        if step is not None:
            step = _check_step(step)
        failed = self._settle(step)
        complete = self._complete()
        if step is None:
            if not complete:
                raise FileNotFoundError(f"no checkpoint step in {self.directory}{failed}")
            return complete[max(complete)]
        if step not in complete:
            listed = ", ".join(map(str, sorted(complete))) or "none"
            raise FileNotFoundError(f"no step {step} in {self.directory} (the complete steps: {listed}){failed}")
        return complete[step]

    def _settle(self, step: int | None) -> str:
        """Waits for this manager's background saves of ``step`` (None: of every step); what the last of them that
        failed raised, as the end of a message ('' when none failed). The error stays the future's, and
        :meth:`wait`'s to raise."""
        from concurrent.futures import wait as wait_for

        with self._lock:
            futures = [future for saved, future in self._in_flight.items() if step is None or saved == step]
        if not futures:
            return ""
        wait_for(futures)
        errors = [error for future in futures if (error := future.exception()) is not None]
        return f"; this manager's background save failed: {type(errors[-1]).__name__}: {errors[-1]}" if errors else ""

    def load(self, step: int | None = None, **options: Any) -> Any:
        """The data of a step (the latest by default), as :func:`load_file` loads it with ``options`` (``framework``,
        ``device``, ``types``, ``verify``, ``progress``...). FileNotFoundError when the step is not in the directory."""
        return load_file(self.path(step), **options)

    def open(self, step: int | None = None, **options: Any) -> SafeFile:
        """A step (the latest by default) opened lazily, as :func:`safestructures.open` opens a file."""
        return open_file(self.path(step), **options)

    # ---- Saving

    def save(self, step: int, data: Any, metadata: Mapping[str, str] | None = None, *, background: bool = False,
             plugins: type | Iterable[type] | None = None, max_depth: int = DEFAULT_MAX_DEPTH, fsync: bool = False,
             max_shard_size: int | str | None = None, checksums: bool = True, progress: bool = False,
             distributed: bool = False, process_group: Any = None) -> Future[None] | None:
        """Save ``data`` as step ``step``, as :func:`save_file` saves it with these options (a folder of shards with
        ``max_shard_size``), then apply retention; ``progress=True`` shows the bytes written on a progress bar.

        With ``background=True`` the data is snapshotted now, as ``save_file(..., background=True)`` does, and a
        :class:`concurrent.futures.Future` returned: its result is None once the step is complete and retention done,
        or the error the save raised.

        With ``distributed=True`` every rank of ``process_group`` (the default group; or this process alone when none
        is initialized) calls ``save`` with its own state, and the step is a folder that ``safestructures.distributed``
        writes through PyTorch DCP: a shard per rank and the index. ``background=True`` uses DCP's ``async_save``,
        whose collectives run in its writer thread: give it a group of its own (``dist.new_group(backend="gloo")``),
        so that they never interleave with the training's on the default group; one such save is in flight at a time
        (the next waits for it). The directory must be shared by the ranks; rank 0 stages
        the folder, renames it into place once DCP is done, and applies retention. A blocking save returns on every
        rank once the step is in place; in the background, rank 0's future completes once it is, the other ranks'
        once their part is written. ``metadata``, ``plugins``, ``max_shard_size`` and ``progress`` do not apply.

        Raises:
            TypeError, InvalidArgumentError: ``step`` is not a non-negative int; the step already exists in the
                directory or is being saved by this manager (a step is never overwritten).
            The errors of :func:`save_file`: at once, or from the future's ``result()`` in the background.
        """
        step = _check_step(step)
        name = _step_name(step) + ("" if max_shard_size is not None or distributed else ".safetensors")
        with self._lock:
            running = self._in_flight.get(step)
            if running is not None and not running.done():
                raise InvalidArgumentError(f"step {step} is being saved in {self.directory}")
            if step in self._complete():
                raise InvalidArgumentError(f"step {step} exists in {self.directory}: a step is never overwritten "
                                           "(remove it first to save it again)")
        if distributed:
            given = {"metadata": metadata, "plugins": plugins, "max_shard_size": max_shard_size, "progress": progress or None}
            unused = [option for option, value in given.items() if value is not None]
            if unused:
                raise InvalidArgumentError(f"{', '.join(unused)}: not for a multi-rank step (distributed=True)")
            return self._save_ranks(step, name, data, background, fsync, process_group)
        if not background:
            self._publish(step, name, fsync, lambda target: save_file(data, target, metadata, plugins, max_depth=max_depth,
                                                                      fsync=fsync, max_shard_size=max_shard_size,
                                                                      checksums=checksums, progress=progress))
            return None
        from . import _background

        context = {"plugins": _plugins.check_plugins(plugins)}
        limit = None if max_shard_size is None else _sharded.parse_size(max_shard_size)

        def snapshot() -> Callable[[], None]:
            write = snapshot_save(data, metadata, context, max_depth, fsync, limit, checksums, progress)
            return lambda: self._publish(step, name, fsync, write)

        future = _background.submit(snapshot)
        with self._lock:
            self._in_flight[step] = future
        return future

    def wait(self) -> None:
        """Waits for this manager's background saves to finish; raises the error of the first that failed."""
        with self._lock:
            futures = list(self._in_flight.values())
        try:
            for future in futures:
                future.result()
        finally:
            with self._lock:
                for step, future in list(self._in_flight.items()):
                    if future.done():
                        del self._in_flight[step]

    def _publish(self, step: int, name: str, fsync: bool, write: Callable[[str], None]) -> None:
        """Writes a step through ``write`` (given the path to write) into a folder staged in the directory, renames it
        into place once complete, then applies retention."""
        with contextlib.ExitStack() as held:
            staged = self._stage(step, held)
            write(os.path.join(staged, name))
            self._place(step, name, staged, fsync)
        self._retain()

    def _stage(self, step: int, held: contextlib.ExitStack) -> str:
        """A new folder for a step's save in the directory (what killed saves left removed first), under the save's
        lock; both held by ``held``: the lock until it closes, the folder removed then (once its step was renamed out)."""
        save_id = os.urandom(12).hex()
        self.remove_stale()
        held.enter_context(_sharded.save_lock(self.directory, save_id))
        staged = os.path.join(self.directory, f".{_step_name(step)}.{save_id}.partial")
        os.mkdir(staged)
        held.callback(_remove_tree, staged)
        return staged

    def _place(self, step: int, name: str, staged: str, fsync: bool) -> None:
        """Renames a step written in ``staged`` into place."""
        # Managers take turns here (the directory's lock, as sharded saves take it), so the check and the rename are
        # one step for them: a step appears once, whole, and is never replaced.
        with _sharded.directory_lock(self.directory):
            if step in self._complete():
                raise FileExistsError(f"step {step} exists in {self.directory}: a step is never overwritten")
            os.rename(os.path.join(staged, name), os.path.join(self.directory, name))
            if fsync:
                self._sync_directory()

    def _save_ranks(self, step: int, name: str, data: Any, background: bool, fsync: bool,
                    process_group: Any) -> Future[None] | None:
        """A multi-rank step (see :meth:`save`): rank 0 stages its folder and tells the others its name; every rank
        writes its part through ``safestructures.distributed``; rank 0 renames it into place and applies retention."""
        from concurrent.futures import Future, wait as wait_for

        from . import distributed as ssd  # first: without torch.distributed, its error says what is missing

        import torch.distributed as dist

        ranked = dist.is_initialized()
        first = not ranked or dist.get_rank(process_group) == 0
        # One multi-rank save at a time: the collectives of one in the background (in DCP's writer thread) must not
        # interleave with the next one's, which starts here, on any rank.
        if self._ranked is not None:
            wait_for([self._ranked])
        held = contextlib.ExitStack()
        try:
            staged = [self._stage(step, held) if first else None]
            if ranked:
                dist.broadcast_object_list(staged, group=process_group, group_src=0)
            target = os.path.join(staged[0], name)

            def place() -> None:
                with held:
                    if first:
                        self._place(step, name, staged[0], fsync)
                if first:
                    self._retain()

            if not background:
                ssd.save(data, target, process_group=process_group, fsync=fsync)
                place()
                if ranked:
                    dist.barrier(group=process_group)  # every rank returns once the step is in place
                return None
            written = ssd.async_save(data, target, process_group=process_group, fsync=fsync)
        except BaseException:
            held.close()
            raise
        done: Future[None] = Future()

        def settle(future: Future[Any]) -> None:
            try:
                future.result()
                place()
                done.set_result(None)
            except BaseException as e:
                held.close()
                done.set_exception(e)

        written.add_done_callback(settle)
        with self._lock:
            self._in_flight[step] = done
        self._ranked = done
        return done

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)  # the rename itself survives a power loss
        finally:
            os.close(fd)

    def _retain(self) -> None:
        """Removes the steps retention does not keep: each is first renamed to a removable name (so that it leaves the
        listing at once, whole), then removed."""
        if self.keep_last is None:
            return
        complete = self._complete()
        ordered = sorted(complete)
        kept = set(ordered[-self.keep_last:])
        if self.keep_every is not None:
            kept.update(step for step in ordered if step % self.keep_every == 0)
        for step in ordered:
            if step in kept:
                continue
            doomed = os.path.join(self.directory, f".{_step_name(step)}.{os.urandom(12).hex()}.partial")
            try:
                os.rename(complete[step], doomed)
            except FileNotFoundError:
                continue  # another manager removed it first
            _remove_tree(doomed)

    def remove_stale(self) -> list[str]:
        """Removes what saves into the directory that no longer run (killed) left: their staged steps, and their
        temporary and lock files; returns the names removed. A save running now, in any process, is left alone
        (_sharded.save_running). Each save calls it first."""
        removed = []
        with os.scandir(self.directory) as entries:
            staged = [(entry.name, match.group(1)) for entry in entries if (match := _STAGED.fullmatch(entry.name))]
        for name, save_id in staged:
            if not _sharded.save_running(self.directory, save_id):
                _remove_tree(os.path.join(self.directory, name))
                removed.append(name)
        return removed + _sharded.remove_stale_temporaries(self.directory)

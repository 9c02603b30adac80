"""Background saves: a few threads that write what saves snapshotted in the caller's thread, with a bound on how many
snapshots are held at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["MAX_IN_FLIGHT", "submit"]

#: How many background saves may be in flight at once, each holding a copy of its data's tensor bytes. A new one waits
#: for a slot before it takes its snapshot, so copies never pile up when saves come faster than the disk writes them.
MAX_IN_FLIGHT = 2

_slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """The writers' pool, made at the first background save. Its threads are not daemons: the interpreter waits for
    the saves in flight before it exits."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT, thread_name_prefix="safestructures-save")
        return _pool


def _write_then_free_slot(write: Callable[[], None]) -> None:
    try:
        write()
    finally:
        _slots.release()


def submit(snapshot: Callable[[], Callable[[], None]]) -> Future[None]:
    """Waits for a slot, calls ``snapshot`` in this thread (it takes everything the save needs from the caller's data
    and returns the function that writes it), and runs that function in a writer thread. The future's result is None,
    or the error either raised: the same types as a blocking save's."""
    _slots.acquire()
    try:
        write = snapshot()
        return _executor().submit(_write_then_free_slot, write)
    except Exception as error:  # what a blocking save would raise now is the future's, as a write's error is
        _slots.release()
        failed: Future[None] = Future()
        failed.set_exception(error)
        return failed
    except BaseException:
        _slots.release()
        raise

"""Progress bars over bytes for long saves and loads (``progress=True``), drawn with tqdm, an optional dependency (the
``progress`` extra) imported only when a bar is asked for.

A save's bar counts the tensor bytes as the C++ writer streams them out (it tells ``progress(done, total)`` every few
MiB); a load's counts the tensor bytes of its file(s), advanced as each tensor is built (:func:`reading_tensor`, called by
``frameworks.make_tensor``) and brought to its total when the load is done (the structure's own tensors, a spilled
schema or large ``bytes`` values, are read without being built as tensors).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

__all__ = ["DELAY_S", "advancing", "bar", "installed", "label", "load_bar", "reading_tensor", "require", "saving", "tensor_bytes"]

T = TypeVar("T")

#: A bar appears only once its work has run this long: a short save or load prints nothing.
DELAY_S = 0.5

#: The bar of the load running in this context (thread, task), told of each tensor built; None when there is none.
#: The bar of the load running in this context, if any: make_tensor advances it (a load that shows one builds its
#: numpy arrays through the adapter, not the core's shortcut, which this would miss).
LOAD_BAR: ContextVar[Any] = ContextVar("safestructures_load_bar", default=None)


def _tqdm() -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        raise ModuleNotFoundError("progress=True draws its bar with tqdm, which is not installed: "
                                  "pip install 'safestructures[progress]' (or tqdm)", name="tqdm") from None
    return tqdm


def installed() -> bool:
    """Whether tqdm can be imported (the command line draws bars only then, and only on a terminal)."""
    import importlib.util

    return importlib.util.find_spec("tqdm") is not None


def _check(progress: Any) -> bool:
    if type(progress) is not bool:
        raise TypeError(f"progress must be True or False, not {type(progress).__name__}")
    return progress


def require(progress: Any) -> None:
    """Checks a ``progress`` argument before a save or load starts: a bool, and tqdm importable when it is True."""
    if _check(progress):
        _tqdm()


@contextlib.contextmanager
def bar(progress: bool, total: int | None, what: str, *, file: Any = None) -> Iterator[Any]:
    """A tqdm bar over ``total`` bytes (None when not known yet) labelled ``what``, or None when ``progress`` is False;
    closed when the block ends. ``file`` is where it is drawn (stderr by default)."""
    if not _check(progress):
        yield None
        return
    shown = _tqdm()(total=total, desc=what, unit="B", unit_scale=True, unit_divisor=1024, delay=DELAY_S, leave=False,
                    file=file, dynamic_ncols=True)
    try:
        yield shown
    finally:
        shown.close()


def advancing(shown: Any) -> Callable[[int, int], None]:
    """The ``progress(done, total)`` callable that the C++ writer (or verifier) calls as it goes through one file's or
    one save's tensor bytes: it moves ``shown`` on by what is new, and gives it its total when it has none yet (a bar
    over several files gets one callable per file)."""
    told = 0

    def report(done: int, total: int) -> None:
        nonlocal told
        if shown.total is None:
            shown.total = total
            if shown.delay <= time.time() - shown.start_t:
                shown.refresh()  # drawn again with its total, once shown (within its delay a bar stays hidden)
        shown.update(done - told)
        told = done

    return report


def saving(progress: bool, path: str, write: Callable[[Callable[[int, int], None] | None], T]) -> T:
    """Runs ``write(report)``, a save to ``path`` that hands ``report`` to the C++ writer: with ``progress``, a bar
    shows the tensor bytes as they stream out (:func:`advancing`); without, ``report`` is None."""
    with bar(progress, None, label(path)) as shown:
        return write(None if shown is None else advancing(shown))


@contextlib.contextmanager
def load_bar(progress: bool, paths: list[str], what: str) -> Iterator[Any]:
    """Shows a load of the safetensors files ``paths`` (a file, or a sharded save's shards) on a bar over their tensor
    bytes while the block runs (the bar, or None without ``progress``); brought to its total when the block ends
    without an error."""
    if not _check(progress):
        yield None
        return
    with bar(True, tensor_bytes(paths), what) as shown:
        token = LOAD_BAR.set(shown)
        try:
            yield shown
        finally:
            LOAD_BAR.reset(token)
        shown.update(shown.total - shown.n)


def tensor_bytes(paths: list[str]) -> int:
    """The tensor bytes of the safetensors files ``paths``: a bar's total for work over them (their headers read)."""
    from . import _core

    return sum(nbytes for path in paths for *_rest, nbytes in _core.read_file(path)[2])


def reading_tensor(nbytes: int) -> None:
    """Tells the bar of the load running here (if any) that a tensor of ``nbytes`` bytes of its file is being built."""
    shown = LOAD_BAR.get()
    if shown is not None:
        shown.update(nbytes)


def label(path: str) -> str:
    """How a bar names the file or folder it shows."""
    return os.path.basename(os.path.normpath(path)) or path

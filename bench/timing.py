"""Timing and memory primitives shared by the harness and the safestructures 1.0.0 worker (standard library only)."""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable
from typing import Any


#: Whether timed() collects garbage first; a smoke run turns it off (a collection with torch loaded takes tens of ms).
COLLECT = True


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call of `fn` takes, after a collection so that garbage left by an earlier call is not billed to it.
    The GC stays enabled during the call, as users run it."""
    if COLLECT:
        gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def summary(samples: list[float]) -> dict[str, float]:
    """Median and spread of repeated timings: the interquartile range where there are enough samples, else min/max."""
    ordered = sorted(samples)
    median = statistics.median(ordered)
    if len(ordered) >= 4:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1, q3 = ordered[0], ordered[-1]
    return {"median": median, "q1": q1, "q3": q3, "min": ordered[0], "max": ordered[-1], "n": len(ordered)}


def drop_page_cache() -> bool:
    """Drops clean page-cache pages (root only), so that a load from disk reads the disk; False when not allowed."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
        return True
    except OSError:
        return False


def status_kib(field: str) -> int:
    """A /proc/self/status field in KiB (VmRSS, VmHWM, RssAnon, RssFile, RssShmem)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak() -> bool:
    """Resets VmHWM to the current resident size (Linux: write 5 to /proc/self/clear_refs); False when unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5\n")
        return True
    except OSError:
        return False

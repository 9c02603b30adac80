"""Issue 21's ratios on a shared, noisy machine: saving and loading W4's pure-Python data in memory (``save``/``load``
against pickle protocol 5) at 10,000, 100,000 and 1,000,000 nodes, and W6's tiny call (also against safetensors on the
call's one tensor). Each of our calls is interleaved with the peer's and both are timed in thread CPU time, so that
time the scheduler gives other processes counts for neither; the best of many calls is kept. Prints one line per
size: ``python bench/structure_ratio.py [--sizes 10000,100000,1000000] [--no-tiny]``.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads as wl  # noqa: E402

# Calls per measurement: enough for a stable best at each size within about a minute in all.
CALLS = {10_000: 200, 100_000: 30, 1_000_000: 5}
TINY_CALLS = 20_000
TINY_BATCH = 20  # calls timed together: a tiny call is a few microseconds


def best_of_interleaved(ours: Callable[[], object], theirs: Callable[[], object], calls: int,
                        batch: int = 1) -> tuple[float, float]:
    """The fastest of `calls` runs of each, in thread CPU seconds per call, the two taking turns; each run times
    `batch` calls together, so that a call of a few microseconds is not lost below the clock's resolution."""
    best_ours = best_theirs = float("inf")
    for _ in range(max(1, calls // batch)):
        started = time.thread_time()
        for _ in range(batch):
            ours()
        best_ours = min(best_ours, (time.thread_time() - started) / batch)
        started = time.thread_time()
        for _ in range(batch):
            theirs()
        best_theirs = min(best_theirs, (time.thread_time() - started) / batch)
    return best_ours, best_theirs


def main() -> None:
    import safestructures as ss

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--no-tiny", action="store_true")
    args = parser.parse_args()
    for nodes in (int(n) for n in args.sizes.split(",")):
        data = wl.pure_python(nodes)
        ours_bytes, pickled = ss.save(data), pickle.dumps(data, protocol=5)
        assert ss.load(ours_bytes) == data
        calls = CALLS.get(nodes, 20)
        save, pickle_save = best_of_interleaved(lambda: ss.save(data), lambda: pickle.dumps(data, protocol=5), calls)
        load, pickle_load = best_of_interleaved(lambda: ss.load(ours_bytes), lambda: pickle.loads(pickled), calls)
        print(f"{nodes:>9} nodes: save {save / pickle_save:.2f}x pickle ({save * 1e3:.2f} / {pickle_save * 1e3:.2f} ms), "
              f"load {load / pickle_load:.2f}x pickle ({load * 1e3:.2f} / {pickle_load * 1e3:.2f} ms)", flush=True)
    if args.no_tiny:
        return
    from safetensors.numpy import load as st_load, save as st_save

    tiny = wl.tiny_call()
    alone = {"t": tiny["t"]}
    ours_bytes, pickled, st_bytes = ss.save(tiny), pickle.dumps(tiny, protocol=5), st_save(alone)
    save, pickle_save = best_of_interleaved(lambda: ss.save(tiny), lambda: pickle.dumps(tiny, protocol=5), TINY_CALLS, TINY_BATCH)
    load, pickle_load = best_of_interleaved(lambda: ss.load(ours_bytes), lambda: pickle.loads(pickled), TINY_CALLS, TINY_BATCH)
    st_save_time, st_load_time = best_of_interleaved(lambda: st_save(alone), lambda: st_load(st_bytes), TINY_CALLS, TINY_BATCH)
    print(f"tiny call: save {save / pickle_save:.2f}x pickle, {save / st_save_time:.2f}x safetensors "
          f"({save * 1e6:.1f} / {pickle_save * 1e6:.1f} / {st_save_time * 1e6:.1f} us); load {load / pickle_load:.2f}x pickle, "
          f"{load / st_load_time:.2f}x safetensors ({load * 1e6:.1f} / {pickle_load * 1e6:.1f} / {st_load_time * 1e6:.1f} us)")


if __name__ == "__main__":
    main()

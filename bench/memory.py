"""Peak memory of one W1 save or load by one peer, in a fresh interpreter; run by bench.py, prints JSON.

Save: the checkpoint is built first, then the peak resident size is reset (/proc/self/clear_refs) and the save runs;
the extra peak is VmHWM minus the resident size just before the save. Load: the file is written by bench.py
first, then the load runs and touches every tensor's pages. Pages of a file mapping count in VmHWM too (they are page
cache, shared, dropped under pressure), so the anonymous memory still held afterwards (RssAnon: copies) is reported
beside it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads as wl  # noqa: E402
from timing import reset_peak, status_kib  # noqa: E402

MIB = 1024


def peers(sizes: wl.Sizes) -> dict[str, Any]:
    import bench

    w1 = next(w for w in bench.workloads(sizes, quick=sizes is wl.QUICK) if w.key == "W1")
    return {p.name: p for p in w1.peers}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", choices=("full", "quick"), default="full")
    parser.add_argument("--peer", required=True)
    parser.add_argument("--op", choices=("save", "load"), required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    sizes = wl.FULL if args.sizes == "full" else wl.QUICK
    import bench

    peer = peers(sizes)[args.peer]
    path = os.path.join(args.dir, bench.memory_file_name(args.peer))
    if args.op == "save":
        data = peer.prepare(wl.checkpoint(sizes))
        gc.collect()
        before = status_kib("VmRSS")
        anon_before = status_kib("RssAnon")
        if not reset_peak():
            raise SystemExit("cannot reset the peak resident size (/proc/self/clear_refs)")
        peer.save(data, path)
        peak = status_kib("VmHWM")
        result = {"extra_peak_mib": (peak - before) / MIB, "anon_after_mib": (status_kib("RssAnon") - anon_before) / MIB}
        os.unlink(path)
    else:
        gc.collect()
        before = status_kib("VmRSS")
        anon_before = status_kib("RssAnon")
        if not reset_peak():
            raise SystemExit("cannot reset the peak resident size (/proc/self/clear_refs)")
        loaded = peer.load(path)
        wl.touch(wl.tensors_in(loaded))
        peak = status_kib("VmHWM")
        result = {"extra_peak_mib": (peak - before) / MIB, "anon_after_mib": (status_kib("RssAnon") - anon_before) / MIB}
        del loaded
        os.unlink(path)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()

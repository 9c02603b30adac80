"""Times safestructures 1.0.0 on a workload's data; run by bench.py with .venv-v1's Python (1.0.0, numpy, torch).

Prints {medium: {"save": [seconds...], "load": [seconds...]}} as JSON. The data comes from workloads.py, as for every
other peer, and loads touch the tensors' pages the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import safestructures  # the 1.0.0 release  # noqa: E402
import workloads as wl  # noqa: E402
from timing import drop_page_cache, timed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload", choices=("W3", "W4"), required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--touch", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--medium", action="append", default=[], help="name=directory")
    args = parser.parse_args()
    sizes = wl.QUICK if args.quick else wl.FULL
    data = wl.activations(sizes) if args.workload == "W3" else wl.pure_python(sizes.nodes)
    # 1.0.0 loads tensors as numpy unless told the framework ("pt"); W3's were saved from torch.
    framework = "pt" if args.workload == "W3" else "np"
    out: dict[str, Any] = {}
    for spec in args.medium:
        medium, directory = spec.split("=", 1)
        path = os.path.join(directory, f"{args.workload}-v1.bin")
        disk = medium == "disk"
        saves, loads = [], []
        for rep in range(args.warmup + args.repeats):
            if os.path.exists(path):
                os.unlink(path)
            seconds = timed(lambda: safestructures.save_file(data, path))
            if disk:
                os.sync()
            if rep >= args.warmup:
                saves.append(seconds)
            if disk:
                drop_page_cache()
            holder: list[Any] = []

            def load_and_touch() -> None:
                loaded = safestructures.load_file(path, framework=framework)
                if args.touch:
                    wl.touch(wl.tensors_in(loaded))
                holder.append(loaded)

            seconds = timed(load_and_touch)
            del holder
            if rep >= args.warmup:
                loads.append(seconds)
        os.unlink(path)
        out[medium] = {"save": saves, "load": loads}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

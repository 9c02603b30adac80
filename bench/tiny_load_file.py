"""``load_file`` of a tiny file (W6's step record, saved to disk) against ``safetensors.numpy.load_file`` of a file
of its one tensor, on the same medium: the fixed cost of a load from a path, the resolver's decision of what the path
holds included. Each of our calls is interleaved with the peer's and both are timed in thread CPU time, the best of
many kept (see structure_ratio.py). Prints one line per round:
``python bench/tiny_load_file.py [--rounds 5] [--dir /dev/shm]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads as wl  # noqa: E402
from structure_ratio import TINY_BATCH, TINY_CALLS, best_of_interleaved  # noqa: E402


def main() -> None:
    import safestructures as ss
    from safetensors.numpy import load_file as st_load_file, save_file as st_save_file

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where the two files are written (default: the temporary directory)")
    args = parser.parse_args()
    tiny = wl.tiny_call()
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        ours_path, st_path = os.path.join(directory, "ours.safetensors"), os.path.join(directory, "st.safetensors")
        ss.save_file(tiny, ours_path)
        st_save_file({"t": tiny["t"]}, st_path)
        assert ss.load_file(ours_path)["name"] == "run"
        for _ in range(args.rounds):
            ours, theirs = best_of_interleaved(lambda: ss.load_file(ours_path), lambda: st_load_file(st_path),
                                               TINY_CALLS, TINY_BATCH)
            print(f"tiny load_file: {ours / theirs:.3f}x safetensors.numpy.load_file ({ours * 1e6:.2f} / "
                  f"{theirs * 1e6:.2f} us)", flush=True)


if __name__ == "__main__":
    main()

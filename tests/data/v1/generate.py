"""Writes the safestructures 1.0.0 fixtures: run by scripts/make_v1_fixtures.sh with the real 1.0.0 release."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import safestructures  # the 1.0.0 release, in its own virtual environment  # noqa: E402
from v1_cases import CASES  # noqa: E402


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, (build, plugins, _expected) in CASES.items():
        path = out / f"{name}.safetensors"
        safestructures.save_file(build(), path, metadata={"case": name}, plugins=plugins or None)
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1])

"""The README's demo (examples/demo.py, what scripts/demo.sh runs) runs to its end: its own assertions check that the
record loads back exactly and that the training loop's background checkpoints resume exactly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


def test_the_demo_runs_and_resumes_from_its_latest_checkpoint(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(DEMO), str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "resumed from step 8" in done.stdout and "steps [4, 6, 8] kept (keep_last=2, keep_every=4)" in done.stdout
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step-00000004.safetensors", "step-00000006.safetensors", "step-00000008.safetensors"]

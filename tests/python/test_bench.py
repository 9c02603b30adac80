"""Smoke test of the benchmark harness (bench/): its quick mode runs every workload and writes its reports, so the
harness cannot rot. No timing is asserted: the numbers of a smoke run mean nothing."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import safestructures

REPO = Path(__file__).resolve().parents[2]

pytest.importorskip("torch")
pytest.importorskip("safetensors")


def test_quick_run_reports_every_workload(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench.py"), "--quick", "--no-v1", "--no-chart", "--media", "shm,disk",
         "--disk-dir", str(tmp_path / "disk"), "--memory-peers", "safestructures", "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    expected = {("W1", "save"), ("W1", "load"), ("W2", "save"), ("W2", "load"), ("W3", "save"), ("W3", "load"),
                ("W4", "save"), ("W4", "load")}
    if hasattr(safestructures, "open"):
        expected.add(("W5", "load"))
    expected.add(("W8", "save"))  # the background save against the blocking one (orbax's where it is installed)
    if hasattr(safestructures, "Recorder"):
        expected.add(("W7", "record"))
    assert expected <= {(r["workload"], r["op"]) for r in rows}
    assert {r["medium"] for r in rows} == {"memory", "shm", "disk"}
    assert all(math.isfinite(r["ratio"]) and r["ratio"] > 0 for r in rows)
    # Every target of the issue is evaluated in the run (1.0.0's only where its environment exists).
    targeted = {(r["workload"], r["op"], r["peer"]) for r in rows if r["target"]}
    assert ("W1", "save", "raw bytes") in targeted and ("W4", "load", "pickle") in targeted
    assert ("W8", "save", "safestructures, blocking") in targeted
    memory = results["memory"]
    assert set(memory) == {"save", "load"}
    assert all("extra_peak_mib" in memory[op]["safestructures"] for op in ("save", "load"))
    if hasattr(safestructures, "Recorder"):  # W7: the recorder's peak memory beside its largest record
        w7 = results["workloads"]["W7"]["memory"]
        assert {"1", "2"} == set(w7) and all(w7[b]["safestructures Recorder"]["largest_record"] > 0 for b in w7)
        assert ("W7", "record", "safetensors per call") in targeted
    table = (out / "results.md").read_text()
    assert "| W2 | save | shm |" in table
    # The temporary files are removed.
    assert not any((tmp_path / "disk").iterdir())

"""The memory background saves snapshot into: kept between saves (a second snapshot of the same size touches no new
page), reused without mixing one save's bytes into another's, and spent once written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import safestructures as ss
from safestructures import _core
from conftest import run_python_json


def test_a_second_snapshot_reuses_the_first_one_s_memory(tmp_path: Path) -> None:
    # Minor page faults counted around the call (what it takes to touch memory the process never touched): a snapshot
    # of 64 MiB into new memory faults in at least half its pages; into the memory kept from the last one, almost none.
    faults = run_python_json(f"""
import json, resource
import numpy as np
import safestructures as ss
state = {{"w": np.ones(64 << 20, dtype=np.uint8), "step": 1}}
counts = []
for i in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    future = ss.save_file(state, {str(tmp_path)!r} + f"/{{i}}.safetensors", background=True)
    counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    future.result()
print(json.dumps(counts))
""")
    if faults[0] < (64 << 20) // 4096 // 2:
        pytest.skip(f"new memory took {faults[0]} faults for 64 MiB here (huge pages): faults cannot show the reuse")
    assert faults[1] < 1000 and faults[2] < 1000


def test_reused_memory_holds_each_save_s_own_values(tmp_path: Path) -> None:
    # Larger, smaller, larger again: each save reuses a kept buffer (or not) and holds the values at its own call.
    sizes = [300_000, 1_000, 500_000, 300_000, 2_000_000]
    for i, n in enumerate(sizes):
        weights = torch.full((n,), float(i), dtype=torch.float32)
        future = ss.save_file({"w": weights, "i": i}, tmp_path / f"{i}.safetensors", background=True)
        weights.fill_(-1.0)
        assert future.result() is None
    for i, n in enumerate(sizes):
        back = ss.load_file(tmp_path / f"{i}.safetensors")
        assert back["i"] == i and back["w"].dtype == torch.float32 and back["w"].shape == (n,)
        assert torch.equal(back["w"], torch.full((n,), float(i)))


@pytest.mark.parametrize("sharded", [False, True])
def test_a_snapshot_is_written_once(tmp_path: Path, sharded: bool) -> None:
    data = {"w": np.arange(10.0)}
    if sharded:
        snapshot = _core.snapshot_sharded(data, 64, {"plugins": ()})
        _core.write_snapshot_sharded(snapshot, str(tmp_path), "model", "0" * 24, 1 << 20, False, True)
        again = lambda: _core.write_snapshot_sharded(snapshot, str(tmp_path), "model", "1" * 24, 1 << 20, False, True)  # noqa: E731
    else:
        snapshot = _core.snapshot_file(data, None, 64, _core.DEFAULT_MAX_HEADER_SIZE, {"plugins": ()}, True)
        _core.write_snapshot_file(snapshot, str(tmp_path / "a.safetensors"), False)
        assert ss.load_file(tmp_path / "a.safetensors")["w"].tolist() == list(np.arange(10.0))
        again = lambda: _core.write_snapshot_file(snapshot, str(tmp_path / "b.safetensors"), False)  # noqa: E731
    with pytest.raises(ValueError, match=r"this snapshot was written already \(its memory went to the next snapshots\)"):
        again()
    assert not (tmp_path / "b.safetensors").exists()

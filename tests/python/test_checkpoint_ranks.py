"""Multi-rank CheckpointManager steps (distributed=True): two ranks on gloo save steps through safestructures.distributed,
blocking and with DCP's async_save, retention by rank 0, the state at the call kept, and a new process loading them;
one process without a process group; the options that do not apply; errors from the future."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import safestructures as ss  # noqa: E402
import safestructures.distributed as ssd  # noqa: E402
import torch.distributed as dist  # noqa: E402
from safestructures import CheckpointManager, InvalidArgumentError, UnsupportedTypeError  # noqa: E402
from conftest import exit_rank, run_ranks  # noqa: E402

WORLD = 2
JOIN_TIMEOUT_S = 300


def state_at(step: int) -> dict[str, Any]:
    """The replicated part of the state at a step (the same on every rank: DCP writes each tensor once)."""
    return {"model": {"w": torch.full((4, 3), float(step)), "b": torch.arange(3, dtype=torch.int64) + step},
            "step": step, "config": {"lr": 0.1, "layers": (2, 3)}}


def _rank_main(rank: int, world: int, port: int, directory: str) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        mesh = init_device_mesh("cpu", (world,))
        # The checkpoints' own group: a background save's collectives run in DCP's writer thread, and must not
        # interleave with this thread's (distribute_tensor below scatters over the default group meanwhile).
        group = dist.new_group(backend="gloo")
        manager = CheckpointManager(directory, keep_last=2)
        # Step 1 blocking: on return, on every rank, the step is in place.
        rows = distribute_tensor(torch.arange(24, dtype=torch.float32).reshape(4, 6), mesh, [Shard(0)])
        assert manager.save(1, {**state_at(1), "rows": rows}, distributed=True, process_group=group) is None
        assert manager.steps() == [1]
        # Steps 2 and 3 in the background: the state at the call is what the step holds, whatever changes after.
        futures = []
        for step in (2, 3):
            state = {**state_at(step), "rows": distribute_tensor(torch.full((4, 6), float(step)), mesh, [Shard(0)])}
            futures.append(manager.save(step, state, background=True, distributed=True, process_group=group))
            state["model"]["w"].fill_(-1.0)
            state["rows"].to_local().fill_(-1.0)
        assert all(future.result(JOIN_TIMEOUT_S) is None for future in futures)
        manager.wait()
        dist.barrier()
        assert manager.steps() == [2, 3]  # keep_last=2, applied by rank 0 once each step was in place
        # Every rank loads the latest step back, resharded: rows sharded by columns now.
        columns = distribute_tensor(torch.zeros(4, 6), mesh, [Shard(1)])
        loaded = ssd.load(manager.path(), {"model": {"w": torch.zeros(4, 3), "b": torch.zeros(3, dtype=torch.int64)},
                                           "rows": columns, "step": None, "config": None})
        assert loaded["step"] == 3 and loaded["config"] == {"lr": 0.1, "layers": (2, 3)}
        assert torch.equal(loaded["model"]["w"], torch.full((4, 3), 3.0))
        assert torch.equal(columns.full_tensor(), torch.full((4, 6), 3.0))
        dist.barrier()
    finally:
        dist.destroy_process_group()
    exit_rank()


def test_two_ranks_save_steps_blocking_and_in_the_background(tmp_path: Path) -> None:
    directory = tmp_path / "run"
    run_ranks(_rank_main, WORLD, str(directory), timeout=JOIN_TIMEOUT_S)
    # This process (no process group) sees the two steps whole: a shard per rank and the index, nothing staged left.
    manager = CheckpointManager(directory)
    assert manager.steps() == [2, 3]
    assert sorted(os.listdir(directory)) == ["step-00000002", "step-00000003"]
    assert sorted(os.listdir(directory / "step-00000003")) == [
        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"]
    for step in (2, 3):
        back = manager.load(step)
        assert back["step"] == step and back["config"] == {"lr": 0.1, "layers": (2, 3)}
        assert torch.equal(back["model"]["w"], torch.full((4, 3), float(step)))
        assert back["model"]["b"].dtype == torch.int64 and back["model"]["b"].tolist() == [step, step + 1, step + 2]
        assert torch.equal(back["rows"], torch.full((4, 6), float(step)))


@pytest.mark.parametrize("background", [False, True])
def test_one_process_saves_a_multi_rank_step_without_a_process_group(tmp_path: Path, background: bool) -> None:
    manager = CheckpointManager(tmp_path, keep_last=1)
    for step in (5, 6):
        state = state_at(step)
        saved = manager.save(step, state, background=background, distributed=True)
        state["model"]["w"].fill_(-1.0)
        assert (saved.result() if background else saved) is None
    assert manager.steps() == [6] and sorted(os.listdir(tmp_path)) == ["step-00000006"]
    back = manager.load()
    assert back["step"] == 6 and torch.equal(back["model"]["w"], torch.full((4, 3), 6.0))
    assert sorted(os.listdir(tmp_path / "step-00000006")) == ["model-00001-of-00001.safetensors", "model.safetensors.index.json"]


def test_options_that_do_not_apply_to_a_multi_rank_step(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path)
    with pytest.raises(InvalidArgumentError, match=r"^metadata, max_shard_size: not for a multi-rank step \(distributed=True\)$"):
        manager.save(1, state_at(1), {"a": "b"}, max_shard_size="1MB", distributed=True)
    with pytest.raises(InvalidArgumentError, match=r"^progress: not for a multi-rank step"):
        manager.save(1, state_at(1), progress=True, distributed=True)
    assert manager.steps() == [] and os.listdir(tmp_path) == []


@pytest.mark.parametrize("background", [False, True])
def test_a_failed_multi_rank_step_leaves_nothing(tmp_path: Path, background: bool) -> None:
    manager = CheckpointManager(tmp_path)
    manager.save(1, state_at(1), distributed=True)
    bad = {**state_at(2), "f": lambda: None}
    with pytest.raises(UnsupportedTypeError, match="function"):
        saved = manager.save(2, bad, background=background, distributed=True)
        if background:
            saved.result()
    assert manager.steps() == [1] and sorted(os.listdir(tmp_path)) == ["step-00000001"]
    assert ss.load_file(tmp_path / "step-00000001")["step"] == 1

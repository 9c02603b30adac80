"""Background saves (save_file(..., background=True)) and the CheckpointManager: the snapshot taken at the call, errors
through the future, the bound on saves in flight, retention, and what other processes and killed saves see."""

from __future__ import annotations

import gc
import json
import os
import signal
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import safestructures as ss
from safestructures import CheckpointManager, InvalidArgumentError, UnsupportedTypeError, _background, _core
from conftest import run_python_json, start_python

INDEX = "model.safetensors.index.json"


def index_schema(directory: Path) -> str:
    """The schema a sharded save keeps in its index."""
    return json.loads((directory / INDEX).read_text())["metadata"]["__safestructures__"]


def visible(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


# ---------------------------------------------------------------------------------------------------------------------
# The snapshot: the file holds the values at the call, whatever the caller changes afterwards.


def test_background_save_holds_numpy_values_at_the_call(tmp_path: Path) -> None:
    weights = np.arange(12, dtype=np.float32).reshape(3, 4)
    column = weights[:, 1]  # strided: gathered into the snapshot as the file holds it
    raw = bytearray(range(100))  # a bytearray long enough to be stored as a tensor
    data = {"weights": weights, "column": column, "raw": raw, "step": 7}
    future = ss.save_file(data, tmp_path / "a.safetensors", {"run": "one"}, background=True)
    weights[:] = -1
    raw[:] = bytes(100)
    data["step"] = 8
    assert future.result() is None
    back = ss.load_file(tmp_path / "a.safetensors")
    assert sorted(back) == ["column", "raw", "step", "weights"]
    assert type(back["weights"]) is np.ndarray and back["weights"].dtype == np.float32
    assert back["weights"].tolist() == np.arange(12, dtype=np.float32).reshape(3, 4).tolist()
    assert back["column"].tolist() == [1.0, 5.0, 9.0]
    assert type(back["raw"]) is bytearray and back["raw"] == bytearray(range(100))
    assert back["step"] == 7
    assert ss.load_metadata(tmp_path / "a.safetensors")["run"] == "one"


def test_background_save_holds_torch_values_at_the_call(tmp_path: Path) -> None:
    layer = torch.arange(6, dtype=torch.bfloat16)
    data = {"layer": layer, "same": layer, "half": layer[::2]}
    future = ss.save_file(data, tmp_path / "t.safetensors", background=True)
    layer.add_(100)
    future.result()
    back = ss.load_file(tmp_path / "t.safetensors")
    assert type(back["layer"]) is torch.Tensor and back["layer"].dtype == torch.bfloat16
    assert back["layer"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert back["same"] is back["layer"]
    assert back["half"].tolist() == [0.0, 2.0, 4.0]
    assert back["half"].untyped_storage().data_ptr() == back["layer"].untyped_storage().data_ptr()


def test_sharded_background_save_keeps_types_and_values(tmp_path: Path) -> None:
    state = {"a": torch.arange(64, dtype=torch.float32), "b": torch.ones(64, dtype=torch.int64), "n": np.arange(8)}
    expected = {name: value.tolist() for name, value in state.items()}
    ss.save_file(state, tmp_path / "blocking", max_shard_size=300)
    future = ss.save_file(state, tmp_path / "background", max_shard_size=300, background=True)
    state["a"].zero_()
    state["b"].zero_()
    state["n"][:] = 0
    future.result()
    # The same file as a blocking save of the values at the call: the same schema (torch tensors recorded as torch),
    # the same shards.
    assert index_schema(tmp_path / "background") == index_schema(tmp_path / "blocking")
    assert '"fw":"torch"' in index_schema(tmp_path / "background")
    assert visible(tmp_path / "background") == visible(tmp_path / "blocking") == [
        "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors", INDEX]
    back = ss.load_file(tmp_path / "background")
    assert [type(back[k]) for k in ("a", "b", "n")] == [torch.Tensor, torch.Tensor, np.ndarray]
    assert {name: value.tolist() for name, value in back.items()} == expected


def test_the_snapshot_holds_one_copy_and_no_reference_to_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = _core.write_snapshot_file
    started, release = threading.Event(), threading.Event()
    sizes: list[int] = []

    def held_write(snapshot: Any, *args: Any) -> None:
        sizes.append(snapshot.tensor_bytes)
        started.set()
        assert release.wait(60)
        real(snapshot, *args)

    monkeypatch.setattr(_core, "write_snapshot_file", held_write)
    weights = np.arange(1000, dtype=np.float64)
    alive = weakref.ref(weights)
    future = ss.save_file({"w": weights, "v": weights[::2]}, tmp_path / "f", background=True)
    assert started.wait(60)
    del weights
    gc.collect()
    assert alive() is None  # the writer holds its own copy, not the caller's array
    assert sizes == [8000 + 4000]  # one copy of the tensor data (the view of "v" is gathered, as the file holds it)
    release.set()
    future.result(60)
    back = ss.load_file(tmp_path / "f")
    assert back["w"].tolist() == list(range(1000)) and back["v"].tolist() == list(range(0, 1000, 2))


# ---------------------------------------------------------------------------------------------------------------------
# Errors: those of a blocking save, from result().


def errors_of(save: Callable[..., Any], background: bool) -> BaseException:
    if background:
        future = save(background=True)
        error = future.exception()
        assert error is not None
        return error
    with pytest.raises(Exception) as raised:
        save()
    return raised.value


@pytest.mark.parametrize("shard", [None, 100])
def test_background_errors_are_those_of_a_blocking_save(tmp_path: Path, shard: int | None) -> None:
    cases: list[tuple[type, Callable[..., Any]]] = [
        (UnsupportedTypeError, lambda **kw: ss.save_file({"x": [object()]}, tmp_path / "u", max_shard_size=shard, **kw)),
        (InvalidArgumentError, lambda **kw: ss.save_file([[[1]]], tmp_path / "d", max_depth=2, max_shard_size=shard, **kw)),
        (InvalidArgumentError, lambda **kw: ss.save_file({}, tmp_path / "m", {"__safestructures__": "x"}, max_shard_size=shard, **kw)),
        # A path inside a regular file: neither the file nor a sharded save's folder can be made there.
        (NotADirectoryError, lambda **kw: ss.save_file({"a": np.ones(3)}, tmp_path / "plain" / "f", max_shard_size=shard,
                                                       **kw)),
    ]
    (tmp_path / "plain").write_bytes(b"")
    for expected, save in cases:
        blocking, background = errors_of(save, False), errors_of(save, True)
        assert type(blocking) is expected and type(background) is expected
        assert str(background) == str(blocking)
    # Nothing written (a blocking sharded save makes its folder before it walks the data: empty folders only).
    assert sorted(path.name for path in tmp_path.rglob("*") if not path.is_dir()) == ["plain"]


def test_a_failed_background_save_frees_its_slot(tmp_path: Path) -> None:
    for _ in range(_background.MAX_IN_FLIGHT + 2):
        assert type(ss.save_file({"x": object()}, tmp_path / "f", background=True).exception()) is UnsupportedTypeError
    ss.save_file({"x": 1}, tmp_path / "f", background=True).result()
    assert ss.load_file(tmp_path / "f") == {"x": 1}


# ---------------------------------------------------------------------------------------------------------------------
# At most MAX_IN_FLIGHT saves hold a snapshot at once.


def test_saves_in_flight_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_snapshot, real_write = _core.snapshot_file, _core.write_snapshot_file
    lock = threading.Lock()
    held: list[int] = []  # snapshots taken and not yet written, at each snapshot
    counts = {"taken": 0, "written": 0}
    release = threading.Semaphore(0)
    two_writing = threading.Event()

    def snapshot(*args: Any) -> Any:
        with lock:
            counts["taken"] += 1
            held.append(counts["taken"] - counts["written"])
        return real_snapshot(*args)

    def write(*args: Any) -> None:
        with lock:
            if counts["taken"] - counts["written"] >= 2:
                two_writing.set()
        release.acquire()  # the test lets each write go
        real_write(*args)
        with lock:
            counts["written"] += 1

    monkeypatch.setattr(_core, "snapshot_file", snapshot)
    monkeypatch.setattr(_core, "write_snapshot_file", write)
    futures: list[Any] = []
    feeder = threading.Thread(target=lambda: futures.extend(
        ss.save_file({"i": i, "a": np.full(4, i)}, tmp_path / f"{i}.safetensors", background=True) for i in range(5)))
    feeder.start()
    assert two_writing.wait(60)
    feeder.join(0.5)  # the third save waits for a slot: it takes no snapshot while two writes are held
    assert feeder.is_alive() and counts["taken"] == 2
    for _ in range(5):
        release.release()
    feeder.join(60)
    for future in futures:
        future.result(60)
    assert max(held) <= _background.MAX_IN_FLIGHT == 2
    assert [ss.load_file(tmp_path / f"{i}.safetensors")["a"].tolist() for i in range(5)] == [[i] * 4 for i in range(5)]


def test_interpreter_exit_waits_for_saves_in_flight(tmp_path: Path) -> None:
    code = """
    import sys
    import numpy as np
    import safestructures as ss
    ss.save_file({"a": np.arange(1 << 22, dtype=np.int64)}, sys.argv[1], background=True)
    print("[]")
    """
    assert run_python_json(code, str(tmp_path / "f")) == []
    assert ss.load_file(tmp_path / "f")["a"].tolist() == list(range(1 << 22))


# ---------------------------------------------------------------------------------------------------------------------
# The manager: steps, retention, bad arguments.


def save_steps(manager: CheckpointManager, steps: range, background: bool = False, **options: Any) -> None:
    for step in steps:
        weights = torch.full((4,), float(step))
        result = manager.save(step, {"step": step, "w": weights}, {"step": str(step)}, background=background, **options)
        weights.zero_()
        assert (result is None) is not background
    manager.wait()


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize("shard", [None, 8])
def test_retention_keeps_the_last_steps(tmp_path: Path, background: bool, shard: int | None) -> None:
    manager = CheckpointManager(tmp_path / "run", keep_last=3)
    save_steps(manager, range(10), background, max_shard_size=shard)
    assert manager.steps() == [7, 8, 9] and manager.latest_step() == 9
    suffix = "" if shard else ".safetensors"
    assert visible(tmp_path / "run") == [f"step-0000000{i}{suffix}" for i in (7, 8, 9)]
    for step in (7, 8, 9):
        back = manager.load(step)
        assert back["step"] == step and back["w"].tolist() == [float(step)] * 4 and type(back["w"]) is torch.Tensor
    assert manager.load()["step"] == 9
    with manager.open() as opened:
        assert opened["step"].load() == 9


def test_retention_with_keep_every(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep_last=2, keep_every=4)
    save_steps(manager, range(11), background=True)
    assert manager.steps() == [0, 4, 8, 9, 10]
    manager = CheckpointManager(tmp_path / "all", keep_last=None)
    save_steps(manager, range(0, 50, 7))
    assert manager.steps() == [0, 7, 14, 21, 28, 35, 42, 49]


def test_bad_steps_and_missing_steps(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path)
    assert manager.steps() == [] and manager.latest_step() is None
    with pytest.raises(FileNotFoundError, match="no checkpoint step in"):
        manager.load()
    for bad in ("3", 3.0, True, None):
        with pytest.raises(TypeError, match="a step is an int"):
            manager.save(bad, {})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="a step is a non-negative int, not -1"):
        manager.save(-1, {})
    manager.save(5, {"v": 1})
    with pytest.raises(InvalidArgumentError, match="step 5 exists in .*never overwritten"):
        manager.save(5, {"v": 2}, background=True)
    with pytest.raises(InvalidArgumentError, match="step 5 exists"):
        manager.save(5, {"v": 2}, max_shard_size=10)
    assert manager.load(5) == {"v": 1}
    with pytest.raises(FileNotFoundError, match=r"no step 4 in .* \(the complete steps: 5\)"):
        manager.load(4)
    for name, value, error in (("keep_last", 0, InvalidArgumentError), ("keep_every", "2", TypeError)):
        with pytest.raises(error, match=name):
            CheckpointManager(tmp_path, **{name: value})
    future = manager.save(6, {"bad": object()}, background=True)
    with pytest.raises(UnsupportedTypeError):
        manager.wait()
    assert type(future.exception()) is UnsupportedTypeError and manager.steps() == [5]
    assert visible(tmp_path) == ["step-00000005.safetensors"]


def test_loads_wait_for_the_managers_own_background_saves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that saves a step in the background and loads it at once reads that step, not "no step": load, open
    and path wait for this manager's save of the step asked for (the latest: all of them); the listing does not."""
    manager = CheckpointManager(tmp_path)
    manager.save(1, {"step": 1, "w": torch.full((4,), 1.0)})
    real = _core.write_snapshot_file
    release = threading.Event()

    def held_write(*args: Any) -> Any:
        assert release.wait(120)
        return real(*args)

    monkeypatch.setattr(_core, "write_snapshot_file", held_write)
    future = manager.save(2, {"step": 2, "w": torch.full((4,), 2.0)}, background=True)
    assert manager.steps() == [1] and manager.latest_step() == 1  # complete now; never waits
    assert manager.load(1)["step"] == 1  # another step's save is not waited for
    threading.Timer(0.2, release.set).start()
    back = manager.load()
    assert future.done() and back["step"] == 2 and back["w"].dtype == torch.float32 and back["w"].tolist() == [2.0] * 4
    with manager.open(2) as f:
        assert f.load("step") == 2
    assert manager.path() == str(tmp_path / "step-00000002.safetensors") and manager.steps() == [1, 2]
    # A failed save: the step is missing, and the message says why; the error stays the future's and wait()'s.
    failed = manager.save(3, {"bad": object()}, background=True)
    with pytest.raises(FileNotFoundError, match=r"no step 3 in .* \(the complete steps: 1, 2\); this manager's "
                                                r"background save failed: UnsupportedTypeError: .*object"):
        manager.load(3)
    assert manager.load()["step"] == 2 and type(failed.exception()) is UnsupportedTypeError
    with pytest.raises(UnsupportedTypeError):
        manager.wait()
    with pytest.raises(FileNotFoundError, match=r"no step 3 in .* \(the complete steps: 1, 2\)$"):
        manager.load(3)


# ---------------------------------------------------------------------------------------------------------------------
# Other processes: a new one reading the folder, one reading while a save runs, one killed while it saves.

READ_STEPS = """
import sys, json
import torch
import safestructures as ss
manager = ss.CheckpointManager(sys.argv[1])
print(json.dumps({str(step): [manager.load(step)["step"], manager.load(step)["w"].tolist()] for step in manager.steps()}))
"""


def test_a_new_process_lists_and_loads_the_steps(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep_last=2)
    save_steps(manager, range(3), background=True)
    save_steps(manager, range(3, 5), max_shard_size=8)
    assert run_python_json(READ_STEPS, str(tmp_path)) == {"3": [3, [3.0] * 4], "4": [4, [4.0] * 4]}


def test_a_reader_sees_only_complete_steps_during_a_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manager = CheckpointManager(tmp_path)
    save_steps(manager, range(2))
    real = _core.write_snapshot_sharded
    written, release = threading.Event(), threading.Event()

    def write_then_hold(*args: Any) -> Any:
        shards = real(*args)  # the step's shards are on disk under temporary names
        written.set()
        assert release.wait(120)
        return shards

    monkeypatch.setattr(_core, "write_snapshot_sharded", write_then_hold)
    future = manager.save(2, {"step": 2, "w": torch.full((4,), 2.0)}, max_shard_size=8, background=True)
    assert written.wait(60)
    assert run_python_json(READ_STEPS, str(tmp_path)) == {"0": [0, [0.0] * 4], "1": [1, [1.0] * 4]}
    release.set()
    future.result(60)
    assert run_python_json(READ_STEPS, str(tmp_path)) == {str(i): [i, [float(i)] * 4] for i in range(3)}


POLL_STEPS = """
import sys, json
import torch
import safestructures as ss
manager = ss.CheckpointManager(sys.argv[1])
seen = set()
while True:
    latest = manager.latest_step()
    if latest is not None:
        back = manager.load(latest)  # the latest step is complete, and retention keeps it
        assert back["step"] == latest and back["w"].tolist() == [float(latest)] * 4, (latest, back)
        seen.add(latest)
    if latest == int(sys.argv[2]):
        break
print(json.dumps(sorted(seen)[-1:]))
"""


def test_a_reader_polling_during_saves_loads_only_whole_steps(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep_last=1)
    reader = start_python(POLL_STEPS, str(tmp_path), "29")
    save_steps(manager, range(30), background=True, max_shard_size=8)
    out, err = reader.communicate(timeout=300)
    assert reader.returncode == 0, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1]) == [29]


KILLED_SAVE = """
import sys, os, time
import torch
import safestructures as ss
from safestructures import _core
directory, where = sys.argv[1], sys.argv[2]
manager = ss.CheckpointManager(directory)
manager.save(1, {"step": 1, "w": torch.full((4,), 1.0)})
name = "write_snapshot_sharded" if where == "shards" else "write_snapshot_file"
real = getattr(_core, name)
def write_then_stop(*args):
    real(*args)  # written, not yet renamed into place
    print("written", flush=True)
    time.sleep(600)
setattr(_core, name, write_then_stop)
manager.save(2, {"step": 2, "w": torch.full((4,), 2.0)}, background=True, max_shard_size=8 if where == "shards" else None)
time.sleep(600)
"""


@pytest.mark.parametrize("where", ["file", "shards"])
def test_a_killed_background_save_leaves_the_last_step_and_the_next_save_cleans_up(tmp_path: Path, where: str) -> None:
    process = start_python(KILLED_SAVE, str(tmp_path), where)
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "written\n"
        left = visible(tmp_path)
        assert any(name.startswith(".step-00000002.") and name.endswith(".partial") for name in left)
        assert any(name.startswith(".model.") and name.endswith(".lock") for name in left)
        # While it runs, a save of another manager leaves its files alone.
        assert CheckpointManager(tmp_path).remove_stale() == []
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    manager = CheckpointManager(tmp_path)
    assert manager.steps() == [1] and manager.load()["w"].tolist() == [1.0] * 4
    save_steps(manager, range(3, 4))
    assert visible(tmp_path) == ["step-00000001.safetensors", "step-00000003.safetensors"]

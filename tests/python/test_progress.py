"""Progress bars (progress=True): the C++ writer's and verifier's counts of tensor bytes as they go, exact totals, the
bars drawn on stderr when asked for and nothing otherwise, a clear error without tqdm, and the command line's bar on a
terminal only."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tqdm import tqdm

import safestructures as ss
from safestructures import CheckpointManager, _core, _progress
from conftest import run_python, run_python_json

MIB = 1 << 20


def state() -> dict[str, Any]:
    """24 MiB over three tensors (one large enough to be written in several pieces) and a few plain values."""
    return {"big": np.arange(4 * MIB, dtype=np.float32), "small": np.ones((3, 5), dtype=np.int16),
            "t": torch.arange(4 * MIB, dtype=torch.int32), "step": 3, "name": "run"}


TENSOR_BYTES = 16 * MIB + 30 + 16 * MIB


def recorder() -> tuple[list[tuple[int, int]], Any]:
    calls: list[tuple[int, int]] = []
    return calls, lambda done, total: calls.append((done, total))


def check_calls(calls: list[tuple[int, int]], total: int) -> None:
    """Told at the start, in increasing steps, and once at the exact end; never past the total."""
    assert calls[0] == (0, total)
    assert calls[-1] == (total, total)
    assert all(t == total for _done, t in calls)
    done = [d for d, _t in calls]
    assert done == sorted(done) and len(set(done)) == len(done)
    assert len(calls) >= 4  # a 16 MiB tensor goes out in 8 MiB pieces: the count moves while it is written


@pytest.fixture
def no_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_progress, "DELAY_S", 0)


# ---------------------------------------------------------------------------------------------------------------------
# The counts from the C++ writer and verifier.


@pytest.mark.parametrize("checksums", [True, False])
def test_the_writer_counts_every_tensor_byte_as_it_streams(tmp_path: Path, checksums: bool) -> None:
    calls, report = recorder()
    _core.save_file(state(), str(tmp_path / "a.safetensors"), None, context={}, checksums=checksums, progress=report)
    check_calls(calls, TENSOR_BYTES)


def test_the_snapshot_writer_and_the_sharded_writer_count_too(tmp_path: Path) -> None:
    calls, report = recorder()
    snapshot = _core.snapshot_file(state(), None, 64, _core.DEFAULT_MAX_HEADER_SIZE, {}, True)
    _core.write_snapshot_file(snapshot, str(tmp_path / "a.safetensors"), False, report)
    check_calls(calls, TENSOR_BYTES)
    calls, report = recorder()
    _core.save_sharded(state(), str(tmp_path), "model", "0" * 24, 64, 10 * MIB, False, {}, True, report)
    check_calls(calls, TENSOR_BYTES)


def test_save_tensors_and_verify_count_the_file_s_tensor_bytes(tmp_path: Path) -> None:
    calls, report = recorder()
    arrays = {"a": np.zeros(5 * MIB, dtype=np.uint8), "b": np.zeros((7, 3), dtype=np.float64)}
    _core.write_file(str(tmp_path / "f.safetensors"), [(n, "U8" if n == "a" else "F64", a.shape, a) for n, a in arrays.items()],
                     None, False, True, report)
    assert calls[0] == (0, 5 * MIB + 168) and calls[-1] == (5 * MIB + 168, 5 * MIB + 168)
    calls, report = recorder()
    assert _core.verify_file(str(tmp_path / "f.safetensors"), _core.DEFAULT_MAX_HEADER_SIZE, report)[:2] == (True, [])
    assert calls == [(0, 5 * MIB + 168), (5 * MIB + 168, 5 * MIB + 168)]


def test_a_failing_progress_callable_does_not_fail_the_save(tmp_path: Path) -> None:
    # In a process of its own: the callable's error is printed as unraisable (which pytest would fail this test for).
    target = str(tmp_path / "a.safetensors")
    result = run_python(f"""
import numpy as np
from safestructures import _core, load_file
told = []
def broken(done, total):
    told.append(done)
    raise RuntimeError("the display broke")
_core.save_file({{"x": np.arange(10)}}, {target!r}, None, context={{}}, progress=broken)
print(told, load_file({target!r})["x"].tolist())
""")
    assert result.returncode == 0
    assert result.stdout.splitlines()[-1] == "[0] [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"  # told once, then no more
    assert "Exception ignored" in result.stderr and "RuntimeError: the display broke" in result.stderr


def test_a_bar_over_one_save_ends_at_the_exact_total(tmp_path: Path) -> None:
    shown = tqdm(total=None, file=io.StringIO(), unit="B")
    _core.save_file(state(), str(tmp_path / "a.safetensors"), None, context={}, progress=_progress.advancing(shown))
    assert (shown.n, shown.total) == (TENSOR_BYTES, TENSOR_BYTES)


def test_a_load_bar_advances_per_tensor_built_and_ends_at_the_exact_total(tmp_path: Path) -> None:
    data = state()
    data["raw"] = bytes(range(200))  # a bytes value stored as a tensor of its own: read, not built as a tensor
    ss.save_file(data, tmp_path / "a.safetensors")
    with _progress.load_bar(True, [str(tmp_path / "a.safetensors")], "a") as shown:
        assert (shown.n, shown.total) == (0, TENSOR_BYTES + 200)
        back = ss.load_file(tmp_path / "a.safetensors")
        assert shown.n == TENSOR_BYTES  # each tensor counted as it was built
    assert (shown.n, shown.total) == (TENSOR_BYTES + 200, TENSOR_BYTES + 200)
    assert back["raw"] == bytes(range(200)) and back["t"].dtype == torch.int32


# ---------------------------------------------------------------------------------------------------------------------
# The public API: a bar on stderr when asked for, nothing otherwise.


def saves_and_loads(tmp_path: Path, progress: bool) -> None:
    ss.save_file(state(), tmp_path / "a.safetensors", progress=progress)
    ss.save_file(state(), tmp_path / "sharded", max_shard_size="10MB", progress=progress)
    assert ss.save_file(state(), tmp_path / "b.safetensors", background=True, progress=progress).result() is None
    ss.save_tensors({"x": np.zeros(MIB, dtype=np.uint8)}, tmp_path / "flat.safetensors", progress=progress)
    assert ss.load_file(tmp_path / "a.safetensors", progress=progress)["step"] == 3
    assert ss.load_file(tmp_path / "sharded", progress=progress)["small"].dtype == np.int16
    assert ss.load_tensors(tmp_path / "flat.safetensors", progress=progress)["x"].nbytes == MIB


def test_bars_are_drawn_when_asked_for(tmp_path: Path, capsys: pytest.CaptureFixture[str], no_delay: None) -> None:
    saves_and_loads(tmp_path, True)
    out, err = capsys.readouterr()
    assert out == ""
    for label in ("a.safetensors", "sharded", "b.safetensors", "flat.safetensors"):
        assert f"{label}:" in err
    assert "/32.0M " in err and "/1.00M " in err  # the totals, in bytes


def test_nothing_is_drawn_otherwise(tmp_path: Path, capsys: pytest.CaptureFixture[str], no_delay: None) -> None:
    saves_and_loads(tmp_path, False)
    assert capsys.readouterr() == ("", "")


def test_a_short_save_draws_nothing_even_when_asked_for(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ss.save_file({"x": np.zeros(3)}, tmp_path / "a.safetensors", progress=True)
    assert ss.load_file(tmp_path / "a.safetensors", progress=True)["x"].tolist() == [0.0, 0.0, 0.0]
    assert capsys.readouterr() == ("", "")


def test_the_manager_shows_its_saves_and_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str], no_delay: None) -> None:
    manager = CheckpointManager(tmp_path / "run")
    manager.save(1, state(), progress=True)
    assert manager.save(2, state(), background=True, progress=True).result() is None
    assert manager.load(progress=True)["name"] == "run"
    err = capsys.readouterr().err
    assert "step-00000001.safetensors:" in err and "step-00000002.safetensors:" in err
    manager.save(3, state())
    assert manager.load(3)["step"] == 3 and capsys.readouterr() == ("", "")


def test_progress_must_be_a_bool(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="progress must be True or False, not str"):
        ss.save_file({"x": 1}, tmp_path / "a.safetensors", progress="yes")  # type: ignore[arg-type]
    assert not (tmp_path / "a.safetensors").exists()


def test_without_tqdm_the_error_names_the_extra(tmp_path: Path) -> None:
    ss.save_file({"x": 1}, tmp_path / "a.safetensors")
    # A process where tqdm cannot be imported (a None entry in sys.modules makes its import fail).
    result = run_python_json(f"""
import sys
sys.modules["tqdm"] = None
import safestructures as ss
out = {{"imported": "tqdm" in sys.modules and sys.modules["tqdm"] is not None}}
out["load"] = ss.load_file({str(tmp_path / "a.safetensors")!r})
for call in (lambda: ss.save_file({{"x": 1}}, {str(tmp_path / "b.safetensors")!r}, progress=True),
             lambda: ss.load_file({str(tmp_path / "a.safetensors")!r}, progress=True)):
    try:
        call()
    except ModuleNotFoundError as e:
        out.setdefault("errors", []).append([e.name, str(e)])
out["written"] = __import__("os").path.exists({str(tmp_path / "b.safetensors")!r})
print(__import__("json").dumps(out))
""")
    message = "progress=True draws its bar with tqdm, which is not installed: pip install 'safestructures[progress]' (or tqdm)"
    assert result == {"imported": False, "load": {"x": 1}, "errors": [["tqdm", message], ["tqdm", message]], "written": False}


def test_importing_safestructures_does_not_import_tqdm() -> None:
    assert run_python_json("import sys, json, safestructures\nprint(json.dumps('tqdm' in sys.modules))") is False


# ---------------------------------------------------------------------------------------------------------------------
# The command line: a bar on a terminal, none on a pipe.


def run_cli(args: list[str], terminal: bool) -> tuple[int, str]:
    """Runs the command line with no bar delay, its stderr a terminal (a pseudo-terminal) or a pipe: (status, stderr)."""
    code = ("import sys; from safestructures import _progress, _cli; _progress.DELAY_S = 0; "
            f"sys.exit(_cli.main({args!r}))")
    env = dict(os.environ)
    if not terminal:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
        return done.returncode, done.stderr
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a new terminal is 0 columns wide
    try:
        process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=follower, env=env)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other end is closed: the process is done
                break
            if not chunk:
                break
            chunks.append(chunk)
        return process.wait(timeout=300), b"".join(chunks).decode()
    finally:
        os.close(leader)


@pytest.mark.parametrize("sharded", [False, True])
def test_verify_draws_a_bar_on_a_terminal_only(tmp_path: Path, sharded: bool) -> None:
    target = tmp_path / ("sharded" if sharded else "a.safetensors")
    ss.save_file(state(), target, max_shard_size="10MB" if sharded else None)
    status, err = run_cli(["verify", str(target)], terminal=True)
    assert status == 0
    assert f"verify {target.name}:" in err and "/32.0M " in err
    status, err = run_cli(["verify", str(target)], terminal=False)
    assert status == 0 and err == ""

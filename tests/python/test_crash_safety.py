"""Crash-safe saves. A save writes a temporary file beside the target ('.NAME.PID-N-STAMP.tmp') and renames it over
the target, so that the target is at every moment either the old file or the new one, whole. A process killed in the
middle of a save leaves the old file as it was (its temporary file stays behind: a killed process cannot clean up);
a save that fails (unsupported data, a full disk, a missing directory...) leaves the old file untouched and no
temporary file."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from safetensors import numpy as st_numpy

import safestructures
import safestructures as ss
from safestructures import InvalidArgumentError, InvalidFileError, UnsupportedTypeError
from safestructures._cli import main as cli_main
from conftest import assert_same, nested_sample, run_python_json, start_python, temporary_files


class OldFile:
    """A valid file saved at ``path`` before the test acts, and the means to check it was left alone."""

    def __init__(self, path: Path, data: Any = None) -> None:
        self.path = path
        self.data = nested_sample(7) if data is None else data
        safestructures.save_file(self.data, path)
        self.bytes = path.read_bytes()
        self.stat = path.stat()

    def same_inode(self) -> bool:
        now = self.path.stat()
        return (now.st_ino, now.st_size, now.st_mtime_ns) == (self.stat.st_ino, self.stat.st_size, self.stat.st_mtime_ns)

    def assert_intact(self) -> None:
        assert self.same_inode(), "the old file was replaced or modified"
        assert self.path.read_bytes() == self.bytes
        assert_same(safestructures.load_file(self.path), self.data)


# ---------------------------------------------------------------------------------------------------------------------
# A save killed with SIGKILL while it writes.

#: Saves 512 MiB of arrays to argv[2] by argv[1] ("save_file" or the flat "save_tensors").
BIG_SAVE = """
import sys
import numpy as np
import safestructures
route, target = sys.argv[1], sys.argv[2]
arrays = {f"layer{i}": np.zeros(64 << 20, dtype=np.uint8) for i in range(8)}  # 512 MiB, pages untouched until written
if route == "save_file":
    safestructures.save_file({"arrays": arrays, "note": "the new file"}, target)
else:
    safestructures.save_tensors(arrays, target)
print("saved", flush=True)
"""

#: A killed save's temporary file is in the middle of being written once it holds this much.
GROWN = 16 << 20


@pytest.mark.parametrize("route", ["save_file", "save_tensors"])
def test_a_save_killed_midway_leaves_the_old_file(tmp_path: Path, route: str) -> None:
    old = OldFile(tmp_path / "model.safetensors")
    process = start_python(BIG_SAVE, route, str(old.path))
    temporary = None
    try:
        deadline = time.monotonic() + 60
        reads = 0
        while True:
            assert process.poll() is None, f"the save ended before it could be killed: {process.communicate()}"
            # A reader meanwhile only ever finds the old file, whole.
            assert old.same_inode()
            assert_same(safestructures.load_file(old.path), old.data)
            reads += 1
            names = temporary_files(tmp_path)
            if names:
                assert len(names) == 1, names
                try:
                    if (tmp_path / names[0]).stat().st_size >= GROWN:
                        temporary = tmp_path / names[0]
                        break
                except FileNotFoundError:
                    pass  # renamed over the target just now; the next loop reports it
            assert time.monotonic() < deadline, "no growing temporary file appeared within 60 s"
        process.send_signal(signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, (process.returncode, stdout, stderr)
    assert "saved" not in stdout
    assert reads > 0
    old.assert_intact()
    # The killed process's temporary file is the only other file: beside the target, named after it and the process.
    assert sorted(os.listdir(tmp_path)) == sorted([old.path.name, temporary.name])
    assert re.fullmatch(rf"\.model\.safetensors\.{process.pid}-\d+-\d+\.tmp", temporary.name), temporary.name
    # It holds a partial file (the header written first, the data cut short), which no reader accepts.
    size = temporary.stat().st_size
    assert GROWN <= size < (512 << 20)
    with pytest.raises(InvalidFileError) as info:
        safestructures.load_file(temporary)
    assert info.value.code == "DataPastEnd"
    temporary.unlink()
    # The next save goes through as usual, beside the old file's place.
    safestructures.save_file({"after": [1, 2]}, old.path)
    assert safestructures.load_file(old.path) == {"after": [1, 2]}
    assert os.listdir(tmp_path) == [old.path.name]


# ---------------------------------------------------------------------------------------------------------------------
# Saves that fail: the old file stays, no temporary file is left.


def big_arrays() -> dict[str, np.ndarray]:
    return {f"a{i}": np.full(1 << 20, i, dtype=np.uint8) for i in range(4)}


#: (data, metadata, exception class, error code) of saves that fail after most of the data was walked.
LATE_FAILURES: dict[str, tuple[Callable[[], Any], dict[str, str] | None, type[Exception], str | None]] = {
    "unsupported-object-late": (lambda: {**big_arrays(), "z": [1, 2, {"deep": object()}]}, None, UnsupportedTypeError, None),
    "object-array-late": (lambda: {**big_arrays(), "z": np.array([object()])}, None, UnsupportedTypeError, None),
    "sub-byte-array-not-whole": (
        lambda: {**big_arrays(), "z": np.zeros(3, dtype=ml_dtypes.float4_e2m1fn)},
        None,
        InvalidArgumentError,
        "SubByteNotWhole",
    ),
    "too-deep-late": (lambda: {**big_arrays(), "z": _nested_lists(1001)}, None, InvalidArgumentError, "NestingTooDeep"),
    "tuple-cycle-late": (lambda: {**big_arrays(), "z": _tuple_cycle()}, None, UnsupportedTypeError, None),
    "reserved-metadata-key": (big_arrays, {"run": "r1", "__safestructures__": "x"}, InvalidArgumentError, "InvalidMetadata"),
}


def _nested_lists(depth: int) -> list[Any]:
    x: list[Any] = []
    for _ in range(depth - 1):
        x = [x]
    return x


def _tuple_cycle() -> tuple[Any, ...]:
    inner: list[Any] = []
    outer = (inner,)
    inner.append(outer)
    return outer


@pytest.mark.parametrize("case", list(LATE_FAILURES))
def test_a_failing_save_leaves_the_old_file(tmp_path: Path, case: str) -> None:
    make, metadata, error, code = LATE_FAILURES[case]
    old = OldFile(tmp_path / "model.safetensors")
    with pytest.raises(error) as info:
        safestructures.save_file(make(), old.path, metadata)
    assert info.value.code == code
    old.assert_intact()
    assert os.listdir(tmp_path) == [old.path.name]


@pytest.mark.parametrize(
    ("tensors", "error", "code"),
    [
        ({"a": np.zeros(1 << 20), "z": [1, 2]}, UnsupportedTypeError, None),
        ({"a": np.zeros(1 << 20), "__metadata__": np.zeros(2)}, InvalidArgumentError, "InvalidName"),
        ({"a": np.zeros(1 << 20), "b\0": np.zeros(2)}, InvalidArgumentError, "InvalidName"),
    ],
    ids=["not-an-array", "reserved-name", "nul-in-name"],
)
def test_a_failing_flat_save_leaves_the_old_file(tmp_path: Path, tensors: dict[str, Any], error: type[Exception], code: str | None) -> None:
    old = OldFile(tmp_path / "model.safetensors")
    with pytest.raises(error) as info:
        safestructures.save_tensors(tensors, old.path)
    assert info.value.code == code
    old.assert_intact()
    assert os.listdir(tmp_path) == [old.path.name]


#: Saves argv[3] (a layout of arrays) by argv[1] to argv[2] under a file size limit of argv[4] bytes (RLIMIT_FSIZE,
#: with SIGXFSZ ignored so that write() fails with EFBIG rather than killing the process): a disk that fills up.
FILE_SIZE_LIMITED_SAVE = """
import json, resource, signal, sys
import numpy as np
import safestructures
route, target, layout, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
if layout == "one-large-array":
    arrays = {"w": np.ones(4 * limit, dtype=np.uint8)}
else:  # small arrays, which the writer gathers into a buffer before writing
    arrays = {f"w{i}": np.full(4096, i % 256, dtype=np.uint8) for i in range(4 * limit // 4096)}
try:
    if route == "save_file":
        safestructures.save_file({"arrays": arrays, "more": [1, 2]}, target)
    else:
        safestructures.save_tensors(arrays, target)
    print(json.dumps({"outcome": "saved"}))
except OSError as e:
    print(json.dumps({"outcome": "OSError", "class": type(e).__name__, "errno": e.errno, "message": str(e)}))
"""


@pytest.mark.parametrize("layout", ["one-large-array", "many-small-arrays"])
@pytest.mark.parametrize("route", ["save_file", "save_tensors"])
def test_a_full_disk_leaves_the_old_file(tmp_path: Path, route: str, layout: str) -> None:
    limit = 1 << 20
    old = OldFile(tmp_path / "model.safetensors")
    assert old.stat.st_size < limit
    report = run_python_json(FILE_SIZE_LIMITED_SAVE, route, str(old.path), layout, str(limit), timeout=60)
    assert report["outcome"] == "OSError", report
    assert report["errno"] == errno.EFBIG, report
    assert "File too large" in report["message"], report
    old.assert_intact()
    assert os.listdir(tmp_path) == [old.path.name]


@pytest.mark.parametrize("route", ["save_file", "save_tensors"])
def test_a_missing_directory_is_not_created(tmp_path: Path, route: str) -> None:
    target = tmp_path / "missing" / "model.safetensors"
    with pytest.raises(FileNotFoundError) as info:
        if route == "save_file":
            safestructures.save_file({"w": np.zeros(3)}, target)
        else:
            safestructures.save_tensors({"w": np.zeros(3)}, target)
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == str(target)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("route", ["save_file", "save_tensors"])
def test_a_directory_in_the_way_is_left_alone(tmp_path: Path, route: str) -> None:
    # The whole file is written before the rename fails: the temporary file must still go.
    target = tmp_path / "model.safetensors"
    target.mkdir()
    (target / "inside").write_bytes(b"keep")
    with pytest.raises(IsADirectoryError) as info:
        if route == "save_file":
            safestructures.save_file({"w": np.zeros(1 << 18)}, target)
        else:
            safestructures.save_tensors({"w": np.zeros(1 << 18)}, target)
    assert info.value.errno == errno.EISDIR
    assert os.listdir(tmp_path) == [target.name]
    assert os.listdir(target) == ["inside"] and (target / "inside").read_bytes() == b"keep"


def test_a_successful_save_replaces_the_file_and_leaves_nothing_else(tmp_path: Path) -> None:
    old = OldFile(tmp_path / "model.safetensors")
    new = nested_sample(8)
    safestructures.save_file(new, old.path)
    assert old.path.stat().st_ino != old.stat.st_ino  # a new file renamed into place, not the old one rewritten
    assert_same(safestructures.load_file(old.path), new)
    assert os.listdir(tmp_path) == [old.path.name]


# A sharded save killed between the renames of its shards (the previous save's shards of the same names are replaced
# one by one, its index last). Before: the previous index beside some new shards, which every load refused, while the
# previous checkpoint's shards were gone: neither save loaded.

#: Saves V2 over the checkpoint in argv[1], dying (os._exit, as a SIGKILL would leave it) at rename number argv[2]
#: among the save's renames of its shards and index, before it is made.
KILLED_BETWEEN_RENAMES = """
import os, sys
import numpy as np
import safestructures as ss
from safestructures import _sharded
renames, die_at = [0], int(sys.argv[2])
real_replace = os.replace
def replace(src, dst):
    if os.path.basename(str(src)).endswith(".partial"):  # the save's own renames: its shards, then its index
        renames[0] += 1
        if renames[0] == die_at:
            os._exit(9)
    real_replace(src, dst)
_sharded.os.replace = replace
ss.save_file({"w": np.full(64, 2.0), "b": np.full(64, 2.0)}, sys.argv[1], max_shard_size=600)
"""


def write_foreign_checkpoint(target: Path, value: float) -> None:
    """A sharded checkpoint another tool wrote (safetensors' shards, an index with no save id), as Hugging Face's
    save_pretrained lays it out."""
    target.mkdir()
    st_numpy.save_file({"w": np.full(64, value)}, str(target / "model-00001-of-00002.safetensors"))
    st_numpy.save_file({"b": np.full(64, value)}, str(target / "model-00002-of-00002.safetensors"))
    (target / "model.safetensors.index.json").write_text(json.dumps({
        "metadata": {"total_size": 1024},
        "weight_map": {"w": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))


@pytest.mark.parametrize("theirs", [False, True], ids=["a-save-of-ours", "another-tools"])
@pytest.mark.parametrize("die_at", [1, 2, 3], ids=["before-the-first-shard", "between-the-shards", "before-the-index"])
def test_a_sharded_save_killed_between_its_renames_leaves_the_previous_checkpoint(tmp_path: Path, die_at: int,
                                                                                   theirs: bool) -> None:
    # Another tool's checkpoint (an index without a save id), before: its shards were replaced in place: cut between
    # the shards, loads took "w" of the new save and "b" of the old one as one checkpoint, with no error; cut before
    # the index, the old one was gone.
    target = tmp_path / "ckpt"
    if theirs:
        write_foreign_checkpoint(target, 1.0)
    else:
        ss.save_file({"w": np.full(64, 1.0), "b": np.full(64, 1.0)}, target, max_shard_size=600)
    assert sorted(p.name for p in target.iterdir()) == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                                                        "model.safetensors.index.json"]
    done = subprocess.run([sys.executable, "-c", KILLED_BETWEEN_RENAMES, str(target), str(die_at)], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    # Every route reads the previous checkpoint whole: the shards the cut save moved aside stand in for those it replaced.
    loaded = ss.load_file(target)
    assert set(loaded) == {"w", "b"}
    for value in loaded.values():
        np.testing.assert_array_equal(value, np.full(64, 1.0))
    with ss.open(target) as f:
        np.testing.assert_array_equal(f["w"].load(), np.full(64, 1.0))
    assert cli_main(["verify", str(target)]) == 0
    # The next save puts the moved shards back before its own renames, and leaves nothing else behind.
    ss.save_file({"w": np.full(64, 3.0), "b": np.full(64, 3.0)}, target, max_shard_size=600)
    assert sorted(p.name for p in target.iterdir()) == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                                                        "model.safetensors.index.json"]
    np.testing.assert_array_equal(ss.load_file(target)["b"], np.full(64, 3.0))


def test_an_index_save_id_names_no_file_outside_its_directory(tmp_path: Path) -> None:
    # A save id other than a save's (24 hex digits) is no part of a file name: the shards are looked for beside the
    # index, or moved aside under an id made from the index's bytes.
    target = tmp_path / "ckpt"
    write_foreign_checkpoint(target, 1.0)
    index = target / "model.safetensors.index.json"
    document = json.loads(index.read_text())
    document["metadata"]["__safestructures_save__"] = "/../../outside"
    index.write_text(json.dumps(document))
    (target / ".model-00001-of-00002.safetensors.").mkdir()
    st_numpy.save_file({"w": np.full(64, 9.0)}, str(tmp_path / "outside.previous"))
    np.testing.assert_array_equal(ss.load_file(target)["w"], np.full(64, 1.0))


def test_a_sharded_save_killed_after_its_index_leaves_its_own_checkpoint(tmp_path: Path) -> None:
    target = tmp_path / "ckpt"
    ss.save_file({"w": np.full(64, 1.0), "b": np.full(64, 1.0)}, target, max_shard_size=600)
    # Dies right after the index's rename (rename 4 never comes): the shards it moved aside are left, stale.
    script = KILLED_BETWEEN_RENAMES.replace("real_replace(src, dst)\n", "real_replace(src, dst)\n    if str(dst).endswith('.json'):\n        os._exit(9)\n")
    done = subprocess.run([sys.executable, "-c", script, str(target), "99"], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    np.testing.assert_array_equal(ss.load_file(target)["w"], np.full(64, 2.0))
    assert len([p for p in target.iterdir() if p.name.endswith(".previous")]) == 2
    ss.save_file({"w": np.full(64, 3.0), "b": np.full(64, 3.0)}, target, max_shard_size=600)
    assert not [p for p in target.iterdir() if p.name.startswith(".")]
    np.testing.assert_array_equal(ss.load_file(target)["w"], np.full(64, 3.0))

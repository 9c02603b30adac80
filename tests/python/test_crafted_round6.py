"""Crafted files of the sixth round of attacks (cases 27 on; docs/security.md's table lists them): numpy arrays built
from a file's bytes, recordings continued with mode="a", and the readers' edges. Each attack has its legitimate twin,
which must keep loading; limits on time or memory only in subprocesses (test_crafted_meaning.run_attack)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import crafted
import safestructures as ss
from safestructures._cli import main
from test_crafted_meaning import run_attack

def load_by(route: str, data: bytes, path: Path) -> Any:
    """Loads ``data`` by ``route``: ``load`` of the bytes, or ``load_file`` or ``open().load()`` of them written at ``path``."""
    path.write_bytes(data)
    if route == "load":
        return ss.load(data)
    if route == "load_file":
        return ss.load_file(path)
    with ss.open(path) as f:
        return f.load()


# --- 27. a numpy str array holding code units past U+10FFFF ---------------------------------------------------------------

CODE_POINT_MESSAGE = ('at $["t"]: cannot rebuild tensor "t": ValueError: element 1 of dtype {dtype} holds 0x110000, which is not a '
                      "Unicode code point (at most 0x10FFFF)")


@pytest.mark.parametrize("dtype", ["<U1", ">U1"])
@pytest.mark.parametrize("route", ["load", "load_file", "open"])
def test_case_27_a_str_array_past_unicode_is_refused(tmp_path: Path, dtype: str, route: str) -> None:
    # Loaded before: reading its second element (indexing, repr, tolist) raised SystemError from numpy.
    path = tmp_path / "u.safetensors"
    with pytest.raises(ss.InvalidFileError) as info:
        load_by(route, crafted.str_array_past_unicode(dtype=dtype), path)
    prefix = "" if route == "load" else f"{path}: "
    assert str(info.value) == prefix + CODE_POINT_MESSAGE.format(dtype=dtype)
    assert info.value.code == "SchemaInvalid"


def test_case_27_get_json_says_what_is_wrong(tmp_path: Path) -> None:
    # Before: `safestructures get FILE t --json` ended in a SystemError traceback.
    path = tmp_path / "u.safetensors"
    path.write_bytes(crafted.str_array_past_unicode())
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["get", str(path), "t", "--json"])
    assert status == 1 and out.getvalue() == ""
    assert err.getvalue() == f"safestructures get: {path}: " + CODE_POINT_MESSAGE.format(dtype="<U1") + "\n"


def test_case_27_a_str_scalar_past_unicode_is_refused() -> None:
    # Before: refused, but as "SystemError: invalid maximum character passed to PyUnicode_New" from numpy.
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load(crafted.str_scalar_past_unicode())
    assert str(info.value) == ('at $["s"]: cannot rebuild a npscalar: ValueError: element 0 of dtype <U1 holds 0x110000, which is '
                               "not a Unicode code point (at most 0x10FFFF)")
    assert type(ss.load(ss.save(np.float128(1.5)))) is np.float128


@pytest.mark.parametrize("dtype", ["<U2", ">U2"])
def test_case_27_twin_str_arrays_up_to_the_last_code_point_load(tmp_path: Path, dtype: str) -> None:
    data = crafted.str_array_past_unicode((0x61, 0x10FFFF, 0xD800, 0), dtype)
    back = ss.load(data)["t"]
    assert back.dtype == np.dtype(dtype) and back.shape == (2,)
    assert back.tolist() == ["a\U0010ffff", "\ud800"]
    saved = np.array(["", "x\U0010ffff", "日本"]).astype(dtype)
    path = tmp_path / "s.safetensors"
    ss.save_file({"s": saved}, path)
    for loaded in (ss.load_file(path)["s"], ss.load(path.read_bytes())["s"]):
        assert loaded.dtype == saved.dtype and loaded.tolist() == ["", "x\U0010ffff", "日本"]


# --- 28. a member of the schema document twice, one of them spelled with escapes -------------------------------------------


@pytest.mark.parametrize("route", ["load", "load_file", "open"])
def test_case_28_a_schema_document_holding_root_twice_is_refused(tmp_path: Path, route: str) -> None:
    # Before: loads read the first "root"; Python's json (any tool reading the schema with it) the last.
    path = tmp_path / "r.safetensors"
    with pytest.raises(ss.InvalidFileError) as info:
        load_by(route, crafted.recording_with_two_roots(), path)
    assert str(info.value) == ("" if route == "load" else f"{path}: ") + 'the schema\'s JSON object at $ holds the key "root" twice'
    assert info.value.code == "DuplicateKey"


@pytest.mark.parametrize(("data", "message"), [
    (crafted.recording_with_two_roots(), 'the recording\'s structure is not a schema document (the schema\'s JSON object at $ holds '
                                         'the key "root" twice)'),
    (crafted.recording_with_two_stream_lists(), 'the recording\'s structure is not a schema document (the schema\'s JSON object at '
                                                '$["root"] holds the key "items" twice)'),
    (crafted.recording_with_a_stream_twice(), 'the recording\'s structure is not a schema document (the schema\'s JSON object at '
                                              '$["root"] holds the key "s" twice)'),
    (crafted.recording_with_a_stream_twice(pairs=True), 'stream "s" appears twice'),
], ids=["root", "items", "stream", "stream-pairs"])
def test_case_28_a_recorder_does_not_continue_another_document_than_loads_read(tmp_path: Path, data: bytes, message: str) -> None:
    # Before: Recorder(mode="a") continued the document its scan of the text found: the file's records (what loads
    # read: [[1], [2]] / {"s": [[1]]}) were replaced by the other ones (and two streams "s" merged into one).
    path = tmp_path / "r.safetensors"
    path.write_bytes(data)
    with pytest.raises(ss.InvalidFileError) as info:
        ss.Recorder(path, mode="a")
    assert str(info.value) == f"{path}: {message}" and info.value.code == "SchemaInvalid"
    assert path.read_bytes() == data


def test_case_28_twins_recordings_continue(tmp_path: Path) -> None:
    path = tmp_path / "r.safetensors"
    with ss.Recorder(path) as rec:
        rec["s"].append([1])
        rec["$"].append({"root": "root", "items": [2]})
    with ss.Recorder(path, mode="a") as rec:
        rec["s"].append(3)
        rec["$"].append(np.arange(2, dtype=np.int16))
    back = ss.load_file(path)
    assert list(back) == ["s", "$"] and back["s"] == [[1], 3]
    assert back["$"][0] == {"root": "root", "items": [2]}
    assert back["$"][1].dtype == np.int16 and back["$"][1].tolist() == [0, 1]
    path.write_bytes(crafted.recording_bytes(crafted.ENVELOPE + r'"\u0073ome":1,"root":[[1],[2]]}'))
    assert ss.load_file(path) == [[1], [2]]
    with ss.Recorder(path, mode="a") as rec:
        rec.append([3])
    assert ss.load_file(path) == [[1], [2], [3]]


# --- 29. a field of a tagged node twice ------------------------------------------------------------------------------------


@pytest.mark.parametrize("framework", [None, "numpy", "torch"])
def test_case_29_a_tensor_node_naming_two_tensors_is_refused(tmp_path: Path, framework: str | None) -> None:
    # Before: $["a"] was tensor "t" (the core's first "name"), and the numpy adapter, when it took the node, recorded
    # its array as the base of "u" (its dict of fields kept the last).
    if framework == "torch":
        pytest.importorskip("torch")
    data = crafted.tensor_field_twice()
    path = tmp_path / "t.safetensors"
    path.write_bytes(data)
    for load in (lambda: ss.load(data, framework=framework), lambda: ss.load_file(path, framework=framework),
                 lambda: ss.open(path).load(framework=framework)):
        with pytest.raises(ss.InvalidFileError) as info:
            load()
        assert str(info.value).endswith('the schema\'s JSON object at $["root"]["a"] holds the key "name" twice')
        assert info.value.code == "DuplicateKey"


def test_case_29_a_scalar_node_giving_its_dtype_twice_is_refused() -> None:
    # Before: np.uint64(1), the last "dtype" (Python's json would say the same; the core's member() the first).
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load(crafted.scalar_field_twice())
    assert str(info.value) == 'the schema\'s JSON object at $["root"] holds the key "dtype" twice' and info.value.code == "DuplicateKey"


def test_case_29_twins_tensor_and_scalar_nodes_load(tmp_path: Path) -> None:
    data = {"a": np.arange(3, dtype=np.float32), "b": np.arange(2, dtype=">i4"), "s": np.int8(-3), "u": np.uint64(2**64 - 1)}
    path = tmp_path / "t.safetensors"
    ss.save_file(data, path)
    for back in (ss.load_file(path), ss.load(path.read_bytes()), ss.open(path).load()):
        assert back["a"].dtype == np.float32 and back["a"].tolist() == [0.0, 1.0, 2.0]
        assert back["b"].dtype == np.dtype(">i4") and back["b"].tolist() == [0, 1]
        assert type(back["s"]) is np.int8 and back["s"] == -3
        assert type(back["u"]) is np.uint64 and back["u"] == 2**64 - 1


# --- 30. a FIFO named like a save's lock file in the directory saved into --------------------------------------------------

FIFO_LOCK = ".model.0123456789abcdef01234567.lock"


@pytest.mark.parametrize("saver", ["sharded", "checkpoint"])
def test_case_30_a_fifo_named_like_a_lock_does_not_hang_saves(tmp_path: Path, saver: str) -> None:
    # Before: a sharded save (and a checkpoint manager's save, or remove_stale) into a directory holding it opened the
    # FIFO to test its lock, and waited for a writer for ever.
    save = ("ss.save_file({'a': np.arange(4.0), 'b': np.arange(4.0)}, d, max_shard_size=40)" if saver == "sharded" else
            "ss.CheckpointManager(d).save(7, {'a': np.arange(4.0)})")
    outcome = run_attack(tmp_path, crafted.file_bytes([1]), f"""
import os
import numpy as np
d = os.path.join(os.path.dirname(path), "saved")
os.mkdir(d)
os.mkfifo(os.path.join(d, {FIFO_LOCK!r}))
{save}
return sorted(os.listdir(d))
""")
    assert outcome["outcome"] == "ok", outcome
    expected = (["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"]
                if saver == "sharded" else ["step-00000007.safetensors"])
    assert outcome["result"] == expected


def test_case_30_twin_a_held_lock_keeps_its_save_files(tmp_path: Path) -> None:
    import fcntl
    import os

    saved = tmp_path / "saved"
    saved.mkdir()
    temporary = saved / ".model-00001.0123456789abcdef01234567.partial"
    temporary.write_bytes(b"running")
    stale = saved / ".model-00001.89abcdef0123456789abcdef.partial"
    stale.write_bytes(b"killed")
    fd = os.open(saved / FIFO_LOCK, os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        ss.save_file({"a": np.arange(4.0)}, saved, max_shard_size=40)
        assert temporary.read_bytes() == b"running" and not stale.exists()
    finally:
        os.close(fd)
    assert ss.load_file(saved)["a"].tolist() == [0.0, 1.0, 2.0, 3.0]


# --- 31. a pointer to a spilled schema holding a root of its own -----------------------------------------------------------

SPILL_AND_ROOT = 'the schema document holds both "spill" and "root"'


@pytest.mark.parametrize("route", ["load", "load_file", "open"])
def test_case_31_a_spill_pointer_with_a_root_is_refused(tmp_path: Path, route: str) -> None:
    # Before: loads read the spilled tensor ([[1], [2]]); Python's json, or a recorder, the pointer's "root" ([[9]]).
    path = tmp_path / "s.safetensors"
    with pytest.raises(ss.InvalidFileError) as info:
        load_by(route, crafted.spilled_recording_with_a_root(), path)
    assert str(info.value) == ("" if route == "load" else f"{path}: ") + SPILL_AND_ROOT and info.value.code == "SchemaInvalid"


def test_case_31_a_recorder_does_not_continue_the_pointer_s_root(tmp_path: Path) -> None:
    # Before: one append made the file load as [[9], [42]]: its records replaced.
    data = crafted.spilled_recording_with_a_root()
    path = tmp_path / "s.safetensors"
    path.write_bytes(data)
    with pytest.raises(ss.InvalidFileError) as info:
        ss.Recorder(path, mode="a")
    assert str(info.value) == f"{path}: the recording's structure is not a schema document ({SPILL_AND_ROOT})"
    assert path.read_bytes() == data


def test_case_31_twin_a_spilled_schema_loads() -> None:
    spilled = b'{"format":"safestructures","version":2,"root":[[1],[2]]}'
    pointer = f'{{"format":"safestructures","version":2,"spill":"{crafted.SPILL_TENSOR}"}}'
    data = crafted.metadata_file({crafted.SCHEMA_KEY: pointer}, {crafted.SPILL_TENSOR: ("U8", [len(spilled)], spilled)})
    assert ss.load(data) == [[1], [2]]

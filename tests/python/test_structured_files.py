"""Structured files are valid safetensors files: readable tensor names, metadata, determinism, zero-copy loading."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import safetensors
import safetensors.numpy
from safetensors import safe_open

import safestructures
from safestructures import InvalidArgumentError, UnsupportedTypeError, _core
from safestructures._format import CHECKSUMS_KEY
from conftest import (
    SCHEMA_KEY,
    assert_same,
    data_pointer,
    file_mappings,
    header_of,
    run_python,
    sample_array,
    split_file,
    temporary_files,
)


def tensor_names(data: bytes) -> list[str]:
    return sorted(name for name in header_of(data) if name != "__metadata__")


def buffer_range(data: bytes | bytearray) -> tuple[int, int]:
    start = data_pointer(np.frombuffer(data, dtype=np.uint8))
    return start, start + len(data)


# ---------------------------------------------------------------------------------------------------------------------
# Tensor names


def test_tensor_names_are_data_paths(tmp_path: Path) -> None:
    w0 = sample_array("F32", (3, 4), seed=1)
    w1 = sample_array("F16", (2,), seed=2)
    bias = sample_array("I64", (5,), seed=3)
    data = {"model": {"layers": [{"weight": w0}, {"weight": w1, "bias": bias}]}, "step": 3, "opt": (np.int8(1), [sample_array("U8", (0,))])}
    path = tmp_path / "model.safetensors"
    safestructures.save_file(data, path)
    flat = safetensors.numpy.load_file(str(path))
    assert sorted(flat) == ["model.layers.0.weight", "model.layers.1.bias", "model.layers.1.weight", "opt.1.0"]
    assert flat["model.layers.0.weight"].tobytes() == w0.tobytes() and flat["model.layers.0.weight"].dtype == np.float32
    assert flat["model.layers.1.weight"].tobytes() == w1.tobytes() and flat["model.layers.1.weight"].shape == (2,)
    assert flat["model.layers.1.bias"].tolist() == bias.tolist()
    with safe_open(str(path), framework="np") as f:
        assert sorted(f.keys()) == sorted(flat)
        assert f.get_tensor("model.layers.0.weight").tobytes() == w0.tobytes()
    assert_same(safestructures.load_file(path), data)


@pytest.mark.parametrize("order", ["flat-first", "nested-first"])
def test_colliding_names_are_made_unique(tmp_path: Path, order: str) -> None:
    x = np.arange(3, dtype=np.int32)
    y = np.arange(4, dtype=np.float64)
    data = {"a.b": x, "a": {"b": y}} if order == "flat-first" else {"a": {"b": y}, "a.b": x}
    path = tmp_path / "t.safetensors"
    safestructures.save_file(data, path)
    flat = safetensors.numpy.load_file(str(path))
    assert sorted(flat) == ["a.b", "a.b~1"]
    first, second = (x, y) if order == "flat-first" else (y, x)
    assert flat["a.b"].tobytes() == first.tobytes() and flat["a.b~1"].tobytes() == second.tobytes()
    loaded = safestructures.load_file(path)
    assert_same(loaded, data)
    assert list(loaded) == list(data)


def test_many_colliding_names() -> None:
    data = [{"0": np.zeros(1)}, np.ones(1), {"0": [np.zeros(2)]}]
    payload = safestructures.save({"0.0": np.zeros(3), "0": {"0": np.ones(3)}, "x": data})
    assert tensor_names(payload) == ["0.0", "0.0~1", "x.0.0", "x.1", "x.2.0.0"]


def test_names_that_collide_by_the_thousand_are_given_in_linear_time(tmp_path: Path) -> None:
    # 60,000 keys of four control characters or '_', which all name their tensor "____": each name tried every suffix
    # given before it (20,000 keys: 104 s to save). A fresh interpreter with a generous budget, as for crafted files.
    code = """
import itertools, sys
import numpy as np
import safestructures as ss
chars = [chr(c) for c in range(1, 32)] + ["_"]
keys = ["".join(p) for p in itertools.islice(itertools.product(chars, repeat=4), 60_000)]
ss.save_file({k: np.full(1, i, np.int32) for i, k in enumerate(keys)}, sys.argv[1])
"""
    path = tmp_path / "names.safetensors"
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)
    flat = safetensors.numpy.load_file(str(path))
    assert len(flat) == 60_000
    assert [int(flat[name][0]) for name in ("____", "____~1", "____~59999")] == [0, 1, 59_999]
    assert sorted(flat) == sorted(["____"] + [f"____~{k}" for k in range(1, 60_000)])


@pytest.mark.parametrize(
    ("data", "names"),
    [
        (np.zeros(2), ["root"]),
        (bytes(100), ["root"]),
        ({"": np.zeros(1)}, ["root"]),
        ({"__metadata__": np.zeros(1)}, ["__metadata__~1"]),
        ({"__safestructures_schema__": np.zeros(1)}, ["__safestructures_schema__~1"]),
        ({"a\x00b": np.zeros(1), "a\nb": np.ones(1)}, ["a_b", "a_b~1"]),
        ({"é": {"🙂": np.zeros(1)}}, ["é.🙂"]),
        ({(1, "a"): np.zeros(1), None: np.zeros(1), 2.5: np.zeros(1)}, ["(1, 'a')", "2.5", "None"]),
        ({"\ud800": np.zeros(1)}, ["?"]),
        (slice(np.zeros(1), None), ["start"]),
    ],
    ids=["root-array", "root-bytes", "empty-key", "metadata-key", "spill-key", "control-chars", "unicode", "non-str-keys", "surrogate", "field"],
)
def test_special_tensor_names(data: Any, names: list[str]) -> None:
    payload = safestructures.save(data)
    assert tensor_names(payload) == names
    assert sorted(name for name, _ in safetensors.deserialize(payload)) == names
    assert_same(safestructures.load(payload), data)


def test_keys_whose_text_python_refuses_are_named_question_mark() -> None:
    # str() of an int past Python's 4,300 digits raises: 16**3571 has 4,300 digits, 16**3572 4,302; a tuple holding one
    # fails the same way. The C++ API names them so too (test_value_api.cpp).
    data = {16**3571: np.zeros(1), 16**3572: np.ones(1), (16**3572, 1): np.full(1, 2.0)}
    payload = safestructures.save(data)
    assert tensor_names(payload) == [str(16**3571), "?", "?~1"]
    loaded = safestructures.load(payload)
    assert list(loaded) == list(data) and [v.tolist() for v in loaded.values()] == [[0.0], [1.0], [2.0]]
    # A str with a lone surrogate has no UTF-8 form for a name; in a tuple, repr() escapes it.
    assert tensor_names(safestructures.save({"a\ud800": np.zeros(1), ("a\ud800", 1): np.zeros(1)})) == ["('a\\ud800', 1)", "?"]


# ---------------------------------------------------------------------------------------------------------------------
# Metadata


def test_user_metadata_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    metadata = {"format": "pt", "note": "ünïcode ✓", "empty": ""}
    safestructures.save_file({"w": np.zeros(2)}, path, metadata)
    with safe_open(str(path), framework="np") as f:
        stored = f.metadata()
    assert set(stored) == {"format", "note", "empty", SCHEMA_KEY, CHECKSUMS_KEY}
    assert {k: stored[k] for k in metadata} == metadata
    assert json.loads(stored[SCHEMA_KEY])["format"] == "safestructures"
    # The checksums are the file's own: never part of the metadata a load returns.
    assert safestructures.load_metadata(path) == {k: v for k, v in stored.items() if k != CHECKSUMS_KEY}
    assert header_of(safestructures.save({"w": np.zeros(2)}, metadata))["__metadata__"] == stored


def test_without_user_metadata_only_the_formats_keys() -> None:
    for metadata in (None, {}):
        assert list(header_of(safestructures.save([1], metadata))["__metadata__"]) == [SCHEMA_KEY, CHECKSUMS_KEY]
        assert list(header_of(safestructures.save([1], metadata, checksums=False))["__metadata__"]) == [SCHEMA_KEY]


@pytest.mark.parametrize("key", ["__safestructures__", "__safestructures_checksums__", "_safestructures_schema_",
                                 "_safestructures_schema_version_"])
@pytest.mark.parametrize("to_file", [False, True], ids=["bytes", "file"])
def test_reserved_metadata_keys_are_refused(tmp_path: Path, key: str, to_file: bool) -> None:
    path = tmp_path / "t.safetensors"
    with pytest.raises(InvalidArgumentError) as info:
        if to_file:
            safestructures.save_file([1], path, {"ok": "1", key: "x"})
        else:
            safestructures.save([1], {"ok": "1", key: "x"})
    assert info.value.code == "InvalidMetadata"
    assert key in str(info.value)
    assert not path.exists() and temporary_files(tmp_path) == []


def test_metadata_is_not_mutated(tmp_path: Path) -> None:
    metadata = {"z": "1", "a": "2"}
    safestructures.save_file({"x": np.zeros(1)}, tmp_path / "t.safetensors", metadata)
    safestructures.save([1], metadata)
    assert metadata == {"z": "1", "a": "2"} and list(metadata) == ["z", "a"]
    reserved = {"k": "v", SCHEMA_KEY: "mine"}
    with pytest.raises(InvalidArgumentError):
        safestructures.save([1], reserved)
    assert reserved == {"k": "v", SCHEMA_KEY: "mine"}


@pytest.mark.parametrize("metadata", [{"k": 1}, {1: "v"}, [("k", "v")]])
def test_non_str_metadata_is_refused(tmp_path: Path, metadata: Any) -> None:
    with pytest.raises(TypeError, match="metadata"):
        safestructures.save_file([1], tmp_path / "t.safetensors", metadata)
    assert not (tmp_path / "t.safetensors").exists()


# ---------------------------------------------------------------------------------------------------------------------
# Plain safetensors files


def test_plain_safetensors_file_loads_as_a_dict_of_arrays(tmp_path: Path) -> None:
    tensors = {"b": sample_array("F32", (2, 3), seed=1), "a": sample_array("I16", (4,), seed=2), "s": np.array(1.5)}
    path = tmp_path / "plain.safetensors"
    safetensors.numpy.save_file(tensors, str(path), metadata={"format": "np"})
    for loaded in (safestructures.load_file(path), safestructures.load_file(str(path), "numpy"), safestructures.load(path.read_bytes())):
        assert type(loaded) is dict and sorted(loaded) == ["a", "b", "s"]
        for name, value in tensors.items():
            assert loaded[name].dtype == value.dtype and loaded[name].shape == value.shape
            assert loaded[name].tobytes() == value.tobytes()


def test_plain_file_without_tensors_loads_as_an_empty_dict(tmp_path: Path) -> None:
    path = tmp_path / "empty.safetensors"
    safetensors.numpy.save_file({}, str(path))
    assert safestructures.load_file(path) == {}


def test_unknown_framework_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    safestructures.save_file([1], path)
    with pytest.raises(ValueError, match="framework"):
        safestructures.load_file(path, "caffe")
    with pytest.raises(ValueError, match="framework"):
        safestructures.load(path.read_bytes(), "os")
    assert safestructures.load_file(path, "numpy") == [1]


def test_every_structured_file_is_valid_for_the_reference_reader(tmp_path: Path) -> None:
    data = {
        "native": {name: sample_array(name, (2, 3), seed=i) for i, name in enumerate(["F32", "F64", "I8", "U64", "BOOL", "C64", "F16"])},
        "ml": [np.zeros(4, ml_dtypes.bfloat16), np.zeros(4, ml_dtypes.float4_e2m1fn), np.zeros(4, ml_dtypes.float8_e4m3fn)],
        "stored_as_bytes": [np.zeros(2, np.complex128), np.array(["ab"]), np.zeros(3, ml_dtypes.int4)],
        "big_endian": np.arange(3, dtype=">f4"),
        "blob": bytes(range(200)),
        "set": {"a", "b"},
    }
    payload = safestructures.save(data)
    entries = dict(safetensors.deserialize(payload))
    assert sorted(entries) == tensor_names(payload)
    for name, value in data["native"].items():
        assert entries[f"native.{name}"]["data"] == value.tobytes()
    assert entries["big_endian"]["dtype"] == "F32" and entries["big_endian"]["data"] == np.arange(3, dtype="<f4").tobytes()
    assert entries["blob"]["data"] == bytes(range(200))
    path = tmp_path / "t.safetensors"
    path.write_bytes(payload)
    with safe_open(str(path), framework="np") as f:
        for name in data["native"]:
            assert f.get_tensor(f"native.{name}").tobytes() == data["native"][name].tobytes()


# ---------------------------------------------------------------------------------------------------------------------
# Determinism


def sample_data() -> dict[str, Any]:
    return {
        "weights": [sample_array("F32", (3, 3), seed=i) for i in range(3)],
        "names": {"gamma", "alpha", "beta", "delta", "épsilon", "z" * 40},
        "frozen": frozenset({"x", "y", "w"}),
        "by_set": {frozenset({"k", "j"}): 1},
        "ints": {3, 1, 2, -7, 2**70},
        "counter": collections.Counter("mississippi"),
        "blob": bytes(range(100)),
        "nested": {"t": (1.5, None, "x"), "d": collections.deque([1], maxlen=2)},
    }


def test_same_data_gives_identical_bytes(tmp_path: Path) -> None:
    first = safestructures.save(sample_data(), {"m": "1"})
    assert safestructures.save(sample_data(), {"m": "1"}) == first
    path = tmp_path / "a.safetensors"
    safestructures.save_file(sample_data(), path, {"m": "1"})
    assert path.read_bytes() == first
    safestructures.save_file(sample_data(), str(path), {"m": "1"})
    assert path.read_bytes() == first


def test_set_order_does_not_depend_on_insertion_history() -> None:
    a = {"one", "two", "three", "four"}
    b = set()
    for item in ["four", "three", "two", "one", "extra"]:
        b.add(item)
    b.discard("extra")
    assert safestructures.save(a) == safestructures.save(b)


def test_sets_of_strings_give_the_same_bytes_whatever_the_hash_seed(tmp_path: Path) -> None:
    code = """
        import hashlib, sys
        sys.path.insert(0, {tests!r})
        import safestructures
        from test_structured_files import sample_data
        print(hashlib.sha256(safestructures.save(sample_data())).hexdigest())
    """.format(tests=str(Path(__file__).parent))
    digests = set()
    for seed in ("0", "1", "12345"):
        result = run_python(code, env={"PYTHONHASHSEED": seed})
        assert result.returncode == 0, result.stderr
        digests.add(result.stdout.strip())
    assert digests == {hashlib.sha256(safestructures.save(sample_data())).hexdigest()}


# ---------------------------------------------------------------------------------------------------------------------
# Loaded arrays: zero-copy and writability


def test_arrays_from_files_are_zero_copy_and_writable(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    data = {"a": sample_array("F32", (4, 5), seed=1), "b": [sample_array("I64", (3,), seed=2)], "c": np.ones(3, np.complex128), "s": np.array(["ab", "c"])}
    safestructures.save_file(data, path)
    before = path.read_bytes()
    assert file_mappings(path) == []
    loaded = safestructures.load_file(path)
    ranges = file_mappings(path)
    assert ranges, "the file is not mapped"
    for array in (loaded["a"], loaded["b"][0], loaded["c"], loaded["s"]):
        pointer = data_pointer(array)
        assert any(begin <= pointer and pointer + array.nbytes <= end for begin, end in ranges)
        assert not array.flags.owndata
        assert array.flags.writeable
    loaded["a"][0, 0] = 42.0
    loaded["b"][0][:] = 7
    loaded["s"][0] = "zz"
    assert path.read_bytes() == before  # a private mapping: the file never changes
    assert_same(safestructures.load_file(path), data)


def test_arrays_from_bytes_are_read_only_views() -> None:
    payload = safestructures.save({"a": np.arange(6, dtype=np.int32), "c": np.ones(2, np.complex128), "w": [np.zeros((2, 2))]})
    loaded = safestructures.load(payload)
    start, end = buffer_range(payload)
    for array in (loaded["a"], loaded["c"], loaded["w"][0]):
        assert not array.flags.writeable
        assert start <= data_pointer(array) and data_pointer(array) + array.nbytes <= end
        with pytest.raises(ValueError):
            array[...] = 0


def test_arrays_from_a_bytearray_are_writable_views() -> None:
    buffer = bytearray(safestructures.save({"a": np.arange(6, dtype=np.int32)}))
    loaded = safestructures.load(buffer)
    start, end = buffer_range(buffer)
    assert loaded["a"].flags.writeable
    assert start <= data_pointer(loaded["a"]) < end
    loaded["a"][0] = 99
    assert safestructures.load(bytes(buffer))["a"][0] == 99  # a view: the write went into the buffer


def test_arrays_from_a_bytearray_pin_it() -> None:
    buffer = bytearray(safestructures.save({"a": np.arange(6, dtype=np.int32)}))
    loaded = safestructures.load(buffer)
    with pytest.raises(BufferError):
        buffer.clear()  # would free the memory the array still points to
    del loaded


def test_arrays_from_a_memoryview() -> None:
    payload = safestructures.save([np.arange(3)])
    loaded = safestructures.load(memoryview(payload))
    assert loaded[0].tolist() == [0, 1, 2] and not loaded[0].flags.writeable


def test_big_endian_and_sub_byte_arrays_are_copies() -> None:
    # Documented trade-off: arrays that need converting cannot be views of the file.
    payload = safestructures.save({"be": np.arange(3, dtype=">i4"), "f4": np.zeros(4, ml_dtypes.float4_e2m1fn)})
    loaded = safestructures.load(payload)
    start, end = buffer_range(payload)
    for array in loaded.values():
        assert not start <= data_pointer(array) < end
        assert array.flags.writeable


# ---------------------------------------------------------------------------------------------------------------------
# Writing


def test_save_file_writes_what_save_returns(tmp_path: Path) -> None:
    data = sample_data()
    path = tmp_path / "t.safetensors"
    safestructures.save_file(data, path, fsync=True)
    assert path.read_bytes() == safestructures.save(data)
    assert temporary_files(tmp_path) == []


@pytest.mark.parametrize("as_path", [str, Path], ids=["str", "Path"])
def test_failed_save_leaves_the_target_untouched(tmp_path: Path, as_path: Any) -> None:
    target = tmp_path / "t.safetensors"
    safestructures.save_file({"v": 1}, target)
    before = target.read_bytes()
    with pytest.raises(UnsupportedTypeError):
        safestructures.save_file({"w": np.zeros(3), "bad": [object()]}, as_path(target))
    with pytest.raises(InvalidArgumentError):
        safestructures.save_file({"w": np.zeros(3)}, as_path(target), {SCHEMA_KEY: "x"})
    assert target.read_bytes() == before
    assert temporary_files(tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == ["t.safetensors"]


def test_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="null"):
        safestructures.save_file([1], str(tmp_path / "a\0b"))
    with pytest.raises(TypeError):
        safestructures.save_file([1], b"/tmp/bytes-path")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        safestructures.load_file(tmp_path / "missing.safetensors")
    with pytest.raises(FileNotFoundError):
        safestructures.save_file([1], tmp_path / "no" / "dir" / "t.safetensors")


# ---------------------------------------------------------------------------------------------------------------------
# A schema too large for the header spills into a tensor


def spill_data() -> dict[str, Any]:
    return {f"key{i}": list(range(i, i + 20)) for i in range(60)} | {"arr": np.arange(5, dtype=np.int16)}


def test_large_schema_spills_into_a_u8_tensor() -> None:
    payload = _core.save_bytes(spill_data(), {"user": "kept"}, 1000, 4096, None, False)
    header = header_of(payload)
    assert header["__metadata__"] == {
        SCHEMA_KEY: json.dumps({"format": "safestructures", "version": 2, "spill": "__safestructures_schema__"}, separators=(",", ":")),
        "user": "kept",
    }
    assert json.loads(header["__metadata__"][SCHEMA_KEY]) == {"format": "safestructures", "version": 2, "spill": "__safestructures_schema__"}
    spilled = header["__safestructures_schema__"]
    assert spilled["dtype"] == "U8" and len(spilled["shape"]) == 1
    assert len(split_file(payload)[0]) <= 4096
    entries = dict(safetensors.deserialize(payload))
    document = json.loads(entries["__safestructures_schema__"]["data"])
    assert document["format"] == "safestructures" and document["version"] == 2
    assert document["root"]["key0"] == list(range(20))
    assert entries["arr"]["data"] == np.arange(5, dtype=np.int16).tobytes()
    # A schema that fits is not spilled.
    assert "__safestructures_schema__" not in header_of(_core.save_bytes({"small": 1}, None, 1000, 4096))


def test_spilled_schema_loads_back(tmp_path: Path) -> None:
    payload = _core.save_bytes(spill_data(), None, 1000, 4096)
    assert_same(safestructures.load(payload), spill_data())


def test_spilled_schema_file_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "spill.safetensors"
    _core.save_file(spill_data(), str(path), None, 1000, False, 4096)
    assert "__safestructures_schema__" in header_of(path.read_bytes())
    assert_same(safestructures.load_file(path), spill_data())

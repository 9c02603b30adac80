"""Interoperability with the reference `safetensors` package (0.8), both directions, and byte-identical output."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors
import safetensors.numpy

import safestructures
from safestructures._format import CHECKSUMS_KEY
from conftest import (
    ML_DTYPES,
    NATIVE_DTYPES,
    SHAPES,
    SUB_BYTE_DTYPES,
    assert_identical,
    assert_identical_dicts,
    element_count,
    layouts,
    padded_header,
    reference_pack,
    sample_array,
    split_file,
    write_file_bytes,
)

NATIVE_CASES = [(name, shape) for name in NATIVE_DTYPES for shape in SHAPES]
NATIVE_IDS = [f"{name}-{shape}" for name, shape in NATIVE_CASES]
ML_CASES = [(name, shape) for name in ML_DTYPES for shape in SHAPES]
ML_IDS = [f"{name}-{shape}" for name, shape in ML_CASES]
#: Shapes whose element count fills whole bytes for both 4-bit and 6-bit types.
SUB_BYTE_SHAPES = [(0,), (0, 3), (4,), (8,), (2, 4), (3, 4), (2, 3, 4)]
SUB_BYTE_CASES = [(name, shape) for name in SUB_BYTE_DTYPES for shape in SUB_BYTE_SHAPES]
SUB_BYTE_IDS = [f"{name}-{shape}" for name, shape in SUB_BYTE_CASES]

METADATA = {"format": "np", "note": "ünïcödé 🎉", "quote": "\"\\\n"}


def assert_reference_reads(path: Path, expected: dict[str, np.ndarray], metadata: dict[str, str] | None) -> None:
    """The reference loads ``path`` (through load_file and safe_open) to exactly ``expected`` and ``metadata``."""
    assert_identical_dicts(safetensors.numpy.load_file(path), expected)
    with safetensors.safe_open(path, framework="numpy") as f:
        # Files written here carry checksums beside the caller's metadata, which the reference reads as one more key.
        read = {key: value for key, value in (f.metadata() or {}).items() if key != CHECKSUMS_KEY}
        assert (read or None) == (metadata or None)
        assert sorted(f.keys()) == sorted(expected)
        for name, value in expected.items():
            assert_identical(f.get_tensor(name), value)


def deserialized(path: Path) -> dict[str, dict[str, Any]]:
    """The reference's raw view of a file: {name: {"dtype", "shape", "data"}}."""
    return {name: info for name, info in safetensors.deserialize(path.read_bytes())}


def reference_serialize_file(path: Path, entries: dict[str, tuple[str, list[int], bytes]], metadata: dict[str, str] | None = None) -> None:
    """Write ``{name: (numpy dtype name, shape, raw bytes)}`` with the reference's raw serializer."""
    keep_alive = []
    specs = {}
    for name, (dtype, shape, raw) in entries.items():
        buffer = np.frombuffer(raw or b"\0", dtype=np.uint8)
        keep_alive.append(buffer)
        specs[name] = safetensors.TensorSpec(dtype=dtype, shape=shape, data_ptr=buffer.ctypes.data, data_len=len(raw))
    safetensors.serialize_file(specs, str(path), metadata=metadata)


# ---------------------------------------------------------------------------------------------------------------------
# numpy's own dtypes


@pytest.mark.parametrize(("name", "shape"), NATIVE_CASES, ids=NATIVE_IDS)
def test_our_files_load_in_safetensors(tmp_path: Path, name: str, shape: tuple[int, ...]) -> None:
    tensors = {"x": sample_array(name, shape, seed=1), "y": sample_array(name, shape, seed=2)}
    path = tmp_path / "ours.safetensors"
    safestructures.save_tensors(tensors, path, METADATA)
    assert_reference_reads(path, tensors, METADATA)
    assert {key: info["dtype"] for key, info in deserialized(path).items()} == {"x": name, "y": name}


@pytest.mark.parametrize(("name", "shape"), NATIVE_CASES, ids=NATIVE_IDS)
def test_safetensors_files_load_here(tmp_path: Path, name: str, shape: tuple[int, ...]) -> None:
    tensors = {"x": sample_array(name, shape, seed=3), "y": sample_array(name, shape, seed=4)}
    path = tmp_path / "theirs.safetensors"
    safetensors.numpy.save_file(tensors, path, metadata=METADATA)
    assert_identical_dicts(safestructures.load_tensors(path), tensors)
    assert safestructures.load_metadata(path) == METADATA


def test_safetensors_files_without_metadata_load_here(tmp_path: Path) -> None:
    tensors = {name: sample_array(name, (3, 2), seed=i) for i, name in enumerate(NATIVE_DTYPES)}
    path = tmp_path / "theirs.safetensors"
    safetensors.numpy.save_file(tensors, path)
    assert_identical_dicts(safestructures.load_tensors(path), tensors)
    assert safestructures.load_metadata(path) is None


def test_safetensors_big_endian_input_loads_here(tmp_path: Path) -> None:
    tensors = {name: sample_array(name, (2, 5), seed=i).astype(dtype.newbyteorder(">")) for i, (name, dtype) in enumerate(NATIVE_DTYPES.items())}
    path = tmp_path / "theirs.safetensors"
    safetensors.numpy.save_file(tensors, path)
    assert_identical_dicts(safestructures.load_tensors(path), tensors)


@pytest.mark.parametrize("name", sorted(NATIVE_DTYPES))
def test_non_contiguous_fortran_and_big_endian_inputs_load_in_safetensors(tmp_path: Path, name: str) -> None:
    views = layouts(sample_array(name, (4, 5, 6), seed=8))
    path = tmp_path / "ours.safetensors"
    safestructures.save_tensors(views, path, checksums=False)
    assert_reference_reads(path, views, None)
    # The reference stores C-order little-endian data too: without checksums, its file of the same values is
    # byte-identical.
    contiguous = {key: view.astype(view.dtype.newbyteorder("<")).copy(order="C") for key, view in views.items()}
    assert path.read_bytes() == safetensors.numpy.save(contiguous)


# ---------------------------------------------------------------------------------------------------------------------
# ml_dtypes' whole-byte types (bfloat16, float8): safetensors.numpy cannot hold them, so use its raw API.


@pytest.mark.parametrize(("name", "shape"), ML_CASES, ids=ML_IDS)
def test_our_ml_dtypes_files_deserialize_in_safetensors(tmp_path: Path, name: str, shape: tuple[int, ...]) -> None:
    array = sample_array(name, shape, seed=5)
    path = tmp_path / "ours.safetensors"
    safestructures.save_tensors({"x": array, "pad": np.ones(3, np.uint8)}, path, METADATA)
    info = deserialized(path)["x"]
    assert info["dtype"] == name
    assert info["shape"] == list(shape)
    assert bytes(info["data"]) == array.reshape(-1).view(np.uint8).tobytes()
    with safetensors.safe_open(path, framework="numpy") as f:
        # The caller's metadata, and the checksums the save adds beside it (which the reference reader ignores).
        assert f.metadata() == {**METADATA, CHECKSUMS_KEY: f.metadata()[CHECKSUMS_KEY]}
        assert sorted(f.keys()) == ["pad", "x"]


@pytest.mark.parametrize(("name", "shape"), ML_CASES, ids=ML_IDS)
def test_safetensors_ml_dtypes_files_load_here(tmp_path: Path, name: str, shape: tuple[int, ...]) -> None:
    array = sample_array(name, shape, seed=6)
    path = tmp_path / "theirs.safetensors"
    reference_serialize_file(path, {"x": (array.dtype.name, list(shape), array.tobytes())}, METADATA)
    assert deserialized(path)["x"]["dtype"] == name  # the reference wrote the dtype we expect
    loaded = safestructures.load_tensors(path)
    assert loaded["x"].dtype == ML_DTYPES[name]
    assert loaded["x"].shape == shape
    assert loaded["x"].reshape(-1).view(np.uint8).tobytes() == array.reshape(-1).view(np.uint8).tobytes()
    assert_identical(loaded["x"], array)
    assert safestructures.load_metadata(path) == METADATA


# ---------------------------------------------------------------------------------------------------------------------
# Sub-byte types (F4, F6_*): packed little-endian bit streams, element 0 in the lowest bits.


@pytest.mark.parametrize(("name", "shape"), SUB_BYTE_CASES, ids=SUB_BYTE_IDS)
def test_our_sub_byte_files_deserialize_in_safetensors(tmp_path: Path, name: str, shape: tuple[int, ...]) -> None:
    _dtype, bits = SUB_BYTE_DTYPES[name]
    array = sample_array(name, shape, seed=7)
    path = tmp_path / "ours.safetensors"
    safestructures.save_tensors({"x": array}, path)
    info = deserialized(path)["x"]
    assert info["dtype"] == name
    assert info["shape"] == list(shape)
    assert bytes(info["data"]) == reference_pack(array.reshape(-1).view(np.uint8), bits)
    assert len(info["data"]) == element_count(shape) * bits // 8


@pytest.mark.parametrize("shape", [(0,), (2,), (8,), (3, 4), (2, 3, 6)])
def test_safetensors_f4_files_load_here(tmp_path: Path, shape: tuple[int, ...]) -> None:
    array = sample_array("F4", shape, seed=9)
    packed = reference_pack(array.reshape(-1).view(np.uint8), 4)
    # The reference takes F4 as "float4_e2m1fn_x2" with the storage shape (two elements per byte on the last axis).
    storage_shape = [*shape[:-1], shape[-1] // 2]
    path = tmp_path / "theirs.safetensors"
    reference_serialize_file(path, {"x": ("float4_e2m1fn_x2", storage_shape, packed)}, METADATA)
    info = deserialized(path)["x"]
    assert (info["dtype"], info["shape"], bytes(info["data"])) == ("F4", list(shape), packed)
    loaded = safestructures.load_tensors(path)["x"]
    assert_identical(loaded, array)
    assert loaded.view(np.uint8).tobytes() == array.view(np.uint8).tobytes()


@pytest.mark.parametrize("name", ["F6_E2M3", "F6_E3M2"])
@pytest.mark.parametrize("shape", [(0,), (4,), (2, 4), (3, 4)])
def test_f6_files_validated_by_safetensors_load_here(tmp_path: Path, name: str, shape: tuple[int, ...]) -> None:
    # safetensors 0.8's Python serializer cannot write F6 (TensorSpec knows no float6 dtype), so the file is built by
    # hand with the reference bit packing and checked by the reference reader before we read it.
    array = sample_array(name, shape, seed=10)
    packed = reference_pack(array.reshape(-1).view(np.uint8), 6)
    header = {"__metadata__": METADATA, "x": {"dtype": name, "shape": list(shape), "data_offsets": [0, len(packed)]}}
    path = write_file_bytes(tmp_path / "hand.safetensors", header, packed)
    info = deserialized(path)["x"]
    assert (info["dtype"], info["shape"], bytes(info["data"])) == (name, list(shape), packed)
    assert_identical(safestructures.load_tensors(path)["x"], array)
    assert safestructures.load_metadata(path) == METADATA


def test_every_dtype_in_one_file_both_ways(tmp_path: Path) -> None:
    tensors = {name.lower(): sample_array(name, (4, 2), seed=i) for i, name in enumerate([*NATIVE_DTYPES, *ML_DTYPES, "F4"])}
    ours = tmp_path / "ours.safetensors"
    safestructures.save_tensors(tensors, ours, checksums=False)
    raw = deserialized(ours)
    assert {key: info["dtype"] for key, info in raw.items()} == {key.lower(): key for key in [*NATIVE_DTYPES, *ML_DTYPES, "F4"]}
    theirs = tmp_path / "theirs.safetensors"
    entries = {}
    for key, value in tensors.items():
        if key == "f4":
            entries[key] = ("float4_e2m1fn_x2", [4, 1], reference_pack(value.reshape(-1).view(np.uint8), 4))
        else:
            entries[key] = (value.dtype.name, [4, 2], value.tobytes())
    reference_serialize_file(theirs, entries)
    assert_identical_dicts(safestructures.load_tensors(theirs), tensors)
    # The same layout rules: the reference's file and ours are the same bytes.
    assert ours.read_bytes() == theirs.read_bytes()


# ---------------------------------------------------------------------------------------------------------------------
# Exact bytes


def test_bytes_equal_the_reference_writer(tmp_path: Path) -> None:
    tensors = {
        "embedding": sample_array("F32", (5, 3), seed=1),
        "a_scalar": np.array(-2, dtype=np.int64),
        "flags": sample_array("BOOL", (7,), seed=2),
        "half": sample_array("F16", (3, 3), seed=3),
        "bytes": sample_array("U8", (5,), seed=4),
        "empty": np.zeros((0, 4), np.float64),
        "empty_too": np.zeros((3, 0, 2), np.int8),
        "c": sample_array("C64", (2,), seed=5),
        "u64": sample_array("U64", (1,), seed=6),
        "i16": sample_array("I16", (3,), seed=7),
        "u32": sample_array("U32", (2, 1), seed=8),
    }
    path = tmp_path / "ours.safetensors"
    safestructures.save_tensors(tensors, path, checksums=False)
    assert path.read_bytes() == safetensors.numpy.save(tensors)


def test_bytes_equal_the_reference_for_names_needing_escapes(tmp_path: Path) -> None:
    names = ["\"q\"", "a\\b", "\n\r\t\b\f", "\x01\x1f\x7f", "é", "𝔘", "\u2028\u2029", "/", "<>&", " ", ""]
    tensors = {name: np.full((2,), i, dtype=np.int16) for i, name in enumerate(names)}
    path = tmp_path / "ours.safetensors"
    safestructures.save_tensors(tensors, path, checksums=False)
    assert path.read_bytes() == safetensors.numpy.save(tensors)


def test_bytes_equal_the_reference_with_one_metadata_key(tmp_path: Path) -> None:
    tensors = {"w": sample_array("F64", (3,), seed=1), "b": sample_array("I8", (5,), seed=2)}
    metadata = {"k\n\x02é": "v \"\\ 𝔘"}
    path = tmp_path / "ours.safetensors"
    safestructures.save_tensors(tensors, path, metadata, checksums=False)
    assert path.read_bytes() == safetensors.numpy.save(tensors, metadata=metadata)


def test_exact_header_with_metadata(tmp_path: Path) -> None:
    tensors = {"b": np.array([1.5, -2.0], dtype=np.float32), "a": np.array([7], dtype=np.int64), "c": np.array([1, 0], dtype=np.bool_)}
    metadata = {"z": "last", "é": "\"q\"\n", "a": "first", "A": ""}
    path = tmp_path / "ours.safetensors"
    safestructures.save_tensors(tensors, path, metadata, checksums=False)
    expected_json = (
        '{"__metadata__":{"A":"","a":"first","z":"last","é":"\\"q\\"\\n"},'
        '"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},'
        '"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},'
        '"c":{"dtype":"BOOL","shape":[2],"data_offsets":[16,18]}}'
    ).encode()
    header = padded_header(expected_json)
    assert len(header) % 8 == 0 and header.endswith(b" ")
    data = tensors["a"].tobytes() + tensors["b"].astype("<f4").tobytes() + b"\x01\x00"
    assert path.read_bytes() == struct.pack("<Q", len(header)) + header + data
    # The reference writes the same header up to the order of the metadata keys.
    theirs_header, theirs_data = split_file(safetensors.numpy.save(tensors, metadata=metadata))
    ours_header, ours_data = split_file(path.read_bytes())
    assert json.loads(ours_header) == json.loads(theirs_header)
    assert len(ours_header) == len(theirs_header)
    assert ours_data == theirs_data


def test_same_input_gives_the_same_bytes(tmp_path: Path) -> None:
    dtypes = ["F32", "I8", "F64", "U16", "BOOL", "BF16", "F16", "F4", "F6_E3M2"]
    items = [(f"t{i}", sample_array(name, (4,), seed=i)) for i, name in enumerate(dtypes)]
    meta_items = [(f"key{i}", f"value{i}") for i in range(6)] + [("ü", "x"), ("A", "y")]
    path_a, path_b, path_c = tmp_path / "a.safetensors", tmp_path / "b.safetensors", tmp_path / "c.safetensors"
    safestructures.save_tensors(dict(items), path_a, dict(meta_items))
    safestructures.save_tensors(dict(items), path_b, dict(meta_items))
    safestructures.save_tensors(dict(reversed(items)), path_c, dict(reversed(meta_items)))
    assert path_a.read_bytes() == path_b.read_bytes() == path_c.read_bytes()
    rng = np.random.default_rng(0)
    for _ in range(5):
        order = rng.permutation(len(items))
        meta_order = rng.permutation(len(meta_items))
        shuffled = tmp_path / "shuffled.safetensors"
        safestructures.save_tensors({items[i][0]: items[i][1] for i in order}, shuffled, {meta_items[i][0]: meta_items[i][1] for i in meta_order})
        assert shuffled.read_bytes() == path_a.read_bytes()

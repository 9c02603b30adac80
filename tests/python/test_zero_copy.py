"""load_tensors maps the file: arrays view the mapping (no copy), are writable without touching the file, and keep the
mapping alive for as long as any of them lives."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest

import safestructures
from conftest import (
    ML_DTYPES,
    NATIVE_DTYPES,
    SUB_BYTE_DTYPES,
    assert_identical,
    assert_identical_dicts,
    data_pointer,
    file_mappings,
    read_header,
    sample_array,
    split_file,
    write_file_bytes,
)


@pytest.fixture
def mapped(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A file holding one tensor of every whole-byte dtype (odd sizes, so that alignment matters) and metadata."""
    tensors = {name.lower(): sample_array(name, (3, 5), seed=i) for i, name in enumerate([*NATIVE_DTYPES, *ML_DTYPES])}
    tensors["scalar"] = np.array(1.25, dtype=np.float64)
    path = tmp_path / "mapped.safetensors"
    safestructures.save_tensors(tensors, path, {"kind": "zero-copy"})
    return path, tensors


def test_arrays_point_into_a_mapping_of_the_file(mapped: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, tensors = mapped
    assert file_mappings(path) == []
    loaded = safestructures.load_tensors(path)
    ranges = file_mappings(path)
    assert ranges, "the file is not mapped"
    start = min(begin for begin, _ in ranges)
    header_bytes, _data = split_file(path.read_bytes())
    data_start = 8 + len(header_bytes)
    entries = read_header(path)
    for name, array in loaded.items():
        pointer = data_pointer(array)
        assert any(begin <= pointer and pointer + array.nbytes <= end for begin, end in ranges), name
        # Exactly where the header says the tensor's bytes are (the mapping starts at file offset 0).
        assert pointer - start == data_start + entries[name]["data_offsets"][0], name
        assert not array.flags.owndata
        assert array.flags.c_contiguous
        # Our files align every tensor to its element size, and the data buffer starts 8-aligned.
        assert array.flags.aligned, name
    assert_identical_dicts(loaded, tensors)


def test_loaded_arrays_are_writable_and_never_change_the_file(mapped: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, tensors = mapped
    before = path.read_bytes()
    loaded = safestructures.load_tensors(path)
    other = safestructures.load_tensors(path)
    for name, array in loaded.items():
        assert array.flags.writeable, name
        array.reshape(-1).view(np.uint8)[...] = 0xA5 if array.dtype != np.bool_ else 1
        assert array.tobytes() == bytes([0xA5 if array.dtype != np.bool_ else 1]) * array.nbytes, name
    assert loaded["i32"].view(np.uint32)[0, 0] == 0xA5A5A5A5
    loaded["scalar"][()] = 99.0
    assert loaded["scalar"][()] == 99.0
    # The file on disk, a second load made before the writes, and a fresh load all still hold the original data.
    assert path.read_bytes() == before
    assert_identical_dicts(other, tensors)
    assert_identical_dicts(safestructures.load_tensors(path), tensors)


def test_arrays_keep_the_mapping_alive(mapped: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, tensors = mapped
    loaded = safestructures.load_tensors(path)
    kept = loaded["f32"]
    view = loaded["u16"][1:, ::2]
    del loaded
    gc.collect()
    assert file_mappings(path), "the mapping went away while arrays still view it"
    assert_identical(kept, tensors["f32"])
    assert_identical(view, tensors["u16"][1:, ::2])
    assert any(begin <= data_pointer(kept) < end for begin, end in file_mappings(path))
    del kept
    gc.collect()
    assert file_mappings(path), "a view of one array must keep the mapping too"
    assert_identical(view, tensors["u16"][1:, ::2])
    del view
    gc.collect()
    assert file_mappings(path) == [], "the mapping outlived every array (leak)"


def test_metadata_only_reads_do_not_keep_the_file_mapped(mapped: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, _tensors = mapped
    assert safestructures.load_metadata(path) == {"kind": "zero-copy"}
    gc.collect()
    assert file_mappings(path) == []


def test_saving_over_a_mapped_file_keeps_old_arrays_intact(mapped: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, tensors = mapped
    loaded = safestructures.load_tensors(path)
    replacement = {"new": np.arange(7, dtype=np.int8)}
    safestructures.save_tensors(replacement, path)
    # The writer renamed a new file over the old one: the old mapping still reads the old bytes.
    assert_identical_dicts(loaded, tensors)
    assert_identical_dicts(safestructures.load_tensors(path), replacement)


def test_sub_byte_arrays_are_independent_writable_copies(tmp_path: Path) -> None:
    path = tmp_path / "packed.safetensors"
    tensors = {name: sample_array(name, (4, 4), seed=1) for name in SUB_BYTE_DTYPES}
    safestructures.save_tensors(tensors, path)
    before = path.read_bytes()
    loaded = safestructures.load_tensors(path)
    for name, array in loaded.items():
        assert_identical(array, tensors[name])
        assert array.flags.writeable
        array.reshape(-1).view(np.uint8)[...] = 0
    assert path.read_bytes() == before
    assert_identical_dicts(safestructures.load_tensors(path), tensors)


def test_zero_size_and_scalar_tensors_at_the_end_of_the_file(tmp_path: Path) -> None:
    # Zero-size tensors sort last among U8/BOOL here and sit exactly at the end of the mapping.
    tensors = {"z_bool": np.zeros((0, 2), np.bool_), "z_u8": np.zeros((3, 0), np.uint8), "one": np.array(True)}
    path = tmp_path / "ends.safetensors"
    safestructures.save_tensors(tensors, path)
    loaded = safestructures.load_tensors(path)
    assert_identical_dicts(loaded, tensors)
    loaded["one"][()] = False
    assert loaded["one"][()] == np.False_
    assert safestructures.load_tensors(path)["one"][()] == np.True_


def test_misaligned_tensors_from_other_writers_load_right(tmp_path: Path) -> None:
    # A valid file need not align its tensors: here an F32 and an F64 start at odd offsets.
    f32 = np.array([1.5, -2.25, 3.0], dtype="<f4")
    f64 = np.array([[np.pi, -0.0]], dtype="<f8")
    header = {
        "byte": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
        "f32": {"dtype": "F32", "shape": [3], "data_offsets": [1, 13]},
        "f64": {"dtype": "F64", "shape": [1, 2], "data_offsets": [13, 29]},
    }
    path = write_file_bytes(tmp_path / "odd.safetensors", header, b"\x07" + f32.tobytes() + f64.tobytes())
    loaded = safestructures.load_tensors(path)
    assert_identical_dicts(loaded, {"byte": np.array([7], np.uint8), "f32": f32, "f64": f64})
    ranges = file_mappings(path)
    assert all(any(begin <= data_pointer(a) < end for begin, end in ranges) for a in loaded.values())
    loaded["f32"][1] = 8.0
    assert loaded["f32"].tolist() == [1.5, 8.0, 3.0]

"""save_tensors / load_tensors / load_metadata round trips: every dtype, shape and memory layout, exactly."""

from __future__ import annotations

import types
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import safetensors.numpy
from hypothesis import given, settings
from hypothesis import strategies as st

import safestructures
from safestructures import _core
from safestructures.frameworks import numpy as np_adapter
from conftest import (
    ALL_DTYPES,
    NATIVE_DTYPES,
    SHAPES,
    SUB_BYTE_DTYPES,
    assert_identical,
    assert_identical_dicts,
    element_count,
    layouts,
    read_header,
    reference_pack,
    reference_unpack,
    sample_array,
    split_file,
    write_file_bytes,
)


def storable(name: str, shape: tuple[int, ...]) -> bool:
    """Whether ``shape`` of dtype ``name`` fills whole bytes (always, except for odd sub-byte element counts)."""
    if name not in SUB_BYTE_DTYPES:
        return True
    return element_count(shape) * SUB_BYTE_DTYPES[name][1] % 8 == 0


DTYPE_SHAPES = [(name, shape) for name in ALL_DTYPES for shape in SHAPES if storable(name, shape)]


# ---------------------------------------------------------------------------------------------------------------------
# Every dtype and shape


@pytest.mark.parametrize(("name", "shape"), DTYPE_SHAPES, ids=[f"{n}-{s}" for n, s in DTYPE_SHAPES])
def test_roundtrip_every_dtype_and_shape(tmp_path: Path, name: str, shape: tuple[int, ...]) -> None:
    array = sample_array(name, shape, seed=len(shape))
    path = tmp_path / "t.safetensors"
    safestructures.save_tensors({"x": array}, path)
    loaded = safestructures.load_tensors(path)
    assert list(loaded) == ["x"]
    assert_identical(loaded["x"], array)
    assert loaded["x"].dtype == ALL_DTYPES[name]
    entry = read_header(path)["x"]
    assert entry["dtype"] == name
    assert entry["shape"] == list(shape)
    bits = SUB_BYTE_DTYPES[name][1] if name in SUB_BYTE_DTYPES else ALL_DTYPES[name].itemsize * 8
    assert entry["data_offsets"] == [0, element_count(shape) * bits // 8]
    assert safestructures.load_metadata(path) is None


@pytest.mark.parametrize("name", sorted(SUB_BYTE_DTYPES))
@pytest.mark.parametrize("shape", [(), (1,), (3,), (5, 1)])
def test_sub_byte_with_partial_last_byte_is_refused(tmp_path: Path, name: str, shape: tuple[int, ...]) -> None:
    path = tmp_path / "t.safetensors"
    with pytest.raises(safestructures.InvalidArgumentError) as info:
        safestructures.save_tensors({"x": sample_array(name, shape)}, path)
    assert info.value.code == "SubByteNotWhole"
    assert name in str(info.value)
    assert not path.exists()


@pytest.mark.parametrize("name", sorted(SUB_BYTE_DTYPES))
def test_sub_byte_file_holds_the_packed_bit_stream(tmp_path: Path, name: str) -> None:
    _dtype, bits = SUB_BYTE_DTYPES[name]
    array = sample_array(name, (4, 6), seed=5)
    path = tmp_path / "t.safetensors"
    safestructures.save_tensors({"x": array}, path)
    _header, data = split_file(path.read_bytes())
    assert data == reference_pack(array.view(np.uint8).reshape(-1), bits)
    assert len(data) == 24 * bits // 8


# ---------------------------------------------------------------------------------------------------------------------
# Memory layouts


@pytest.mark.parametrize("name", sorted(set(ALL_DTYPES) - set(SUB_BYTE_DTYPES)))
def test_non_contiguous_inputs_are_written_in_c_order(tmp_path: Path, name: str) -> None:
    base = sample_array(name, (4, 5, 6), seed=11)
    views = layouts(base)
    path = tmp_path / "t.safetensors"
    safestructures.save_tensors(views, path)
    loaded = safestructures.load_tensors(path)
    assert_identical_dicts(loaded, views)
    _header, data = split_file(path.read_bytes())
    entries = read_header(path)
    for key, view in views.items():
        assert entries[key]["shape"] == list(view.shape)
        begin, end = entries[key]["data_offsets"]
        # Stored little-endian, C order: exactly the bytes of a native C-ordered copy.
        assert data[begin:end] == view.astype(view.dtype.newbyteorder("<")).tobytes(order="C")


@pytest.mark.parametrize("name", sorted(SUB_BYTE_DTYPES))
def test_non_contiguous_sub_byte_inputs(tmp_path: Path, name: str) -> None:
    base = sample_array(name, (4, 4, 4), seed=12)
    views = {"T": base.transpose(1, 2, 0), "neg": base[::-1, :, ::-2], "F": np.asfortranarray(base)}
    path = tmp_path / "t.safetensors"
    safestructures.save_tensors(views, path)
    assert_identical_dicts(safestructures.load_tensors(path), views)


def test_large_strided_array_spanning_many_staging_chunks(tmp_path: Path) -> None:
    # The writer gathers strided data through a 256 KiB staging buffer; contiguous runs at least that long skip it.
    base = np.arange(3 * 700 * 300, dtype=np.float64).reshape(3, 700, 300)
    long_rows = np.arange(5 * 40_000, dtype=np.float64).reshape(5, 40_000)
    views = {"t": base.transpose(2, 1, 0), "s": base[:, ::-3, 1::2], "f": np.asfortranarray(base), "long_rows": long_rows[::-2]}
    path = tmp_path / "t.safetensors"
    safestructures.save_tensors(views, path)
    assert_identical_dicts(safestructures.load_tensors(path), views)


def test_numpy_scalars_are_saved_as_0d_arrays(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    safestructures.save_tensors({"f": np.float32(2.5), "b": np.bool_(True), "i": np.uint64(2**64 - 1)}, path)
    loaded = safestructures.load_tensors(path)
    assert_identical(loaded["f"], np.array(2.5, dtype=np.float32))
    assert_identical(loaded["b"], np.array(True))
    assert_identical(loaded["i"], np.array(2**64 - 1, dtype=np.uint64))
    assert loaded["i"][()] == 2**64 - 1


def test_extreme_values_round_trip(tmp_path: Path) -> None:
    tensors = {}
    for name, dtype in NATIVE_DTYPES.items():
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            tensors[name] = np.array([info.min, info.max, 0, 1], dtype=dtype)
        elif dtype.kind == "f":
            tensors[name] = np.array([np.nan, -np.inf, np.inf, -0.0, np.finfo(dtype).tiny, np.finfo(dtype).max], dtype=dtype)
        elif dtype.kind == "c":
            tensors[name] = np.array([complex(np.nan, -0.0), complex(np.inf, 1), -1j], dtype=dtype)
        else:
            tensors[name] = np.array([True, False], dtype=dtype)
    path = tmp_path / "t.safetensors"
    safestructures.save_tensors(tensors, path)
    assert_identical_dicts(safestructures.load_tensors(path), tensors)
    assert np.signbit(safestructures.load_tensors(path)["F32"][3])


# ---------------------------------------------------------------------------------------------------------------------
# The API around the arrays


@pytest.mark.parametrize("as_path", [str, Path], ids=["str", "Path"])
def test_paths_may_be_str_or_pathlib(tmp_path: Path, small_tensors: dict[str, np.ndarray], as_path: type) -> None:
    path = as_path(tmp_path / "t.safetensors")
    safestructures.save_tensors(small_tensors, path, {"k": "v"})
    assert_identical_dicts(safestructures.load_tensors(path), small_tensors)
    assert safestructures.load_metadata(path) == {"k": "v"}


def test_loaded_dict_follows_the_file_order(tmp_path: Path) -> None:
    # The writer orders tensors by dtype (widest first) then by name; the loaded dict keeps that order.
    tensors = {"b8": np.zeros(1, np.int8), "a8": np.zeros(1, np.uint8), "z64": np.zeros(1, np.float64), "c32": np.zeros(1, np.float32)}
    path = tmp_path / "t.safetensors"
    safestructures.save_tensors(tensors, path)
    assert list(safestructures.load_tensors(path)) == ["z64", "c32", "b8", "a8"]
    assert [name for name in read_header(path) if name != "__metadata__"] == ["z64", "c32", "b8", "a8"]


def test_metadata_round_trip(tmp_path: Path, small_tensors: dict[str, np.ndarray]) -> None:
    metadata = {"format": "np", "": "empty key", "emoji 🎉": "ünïcödé\n\t\"quoted\" \\ \x00 \x1f \u2028", "empty": ""}
    path = tmp_path / "t.safetensors"
    safestructures.save_tensors(small_tensors, path, metadata)
    loaded = safestructures.load_metadata(path)
    assert type(loaded) is dict
    assert loaded == metadata
    assert list(loaded) == sorted(metadata)  # stored (and read back) with sorted keys


def test_metadata_none_and_empty_are_distinct(tmp_path: Path) -> None:
    # Laid out as the reference writer does (without checksums): no __metadata__, or an empty one.
    none_path, empty_path = tmp_path / "none.safetensors", tmp_path / "empty.safetensors"
    safestructures.save_tensors({"x": np.ones(2)}, none_path, checksums=False)
    safestructures.save_tensors({"x": np.ones(2)}, empty_path, {}, checksums=False)
    assert safestructures.load_metadata(none_path) is None
    assert safestructures.load_metadata(empty_path) == {}
    assert "__metadata__" not in read_header(none_path)
    assert read_header(empty_path)["__metadata__"] == {}
    # With checksums, __metadata__ holds them whatever the caller gave: no metadata of the caller's reads as None.
    safestructures.save_tensors({"x": np.ones(2)}, empty_path, {})
    assert safestructures.load_metadata(empty_path) is None
    assert list(read_header(empty_path)["__metadata__"]) == ["__safestructures_checksums__"]


def test_metadata_null_in_file_reads_as_none(tmp_path: Path) -> None:
    path = write_file_bytes(tmp_path / "t.safetensors", {"__metadata__": None, "x": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"\x05")
    assert safestructures.load_metadata(path) is None
    assert_identical(safestructures.load_tensors(path)["x"], np.array([5], np.uint8))


def test_mappings_that_are_not_dicts_are_accepted(tmp_path: Path, small_tensors: dict[str, np.ndarray]) -> None:
    path = tmp_path / "t.safetensors"
    safestructures.save_tensors(types.MappingProxyType(small_tensors), path, types.MappingProxyType({"k": "v"}))
    assert_identical_dicts(safestructures.load_tensors(path), small_tensors)
    assert safestructures.load_metadata(path) == {"k": "v"}


def test_empty_dict_gives_a_valid_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    safestructures.save_tensors({}, path, checksums=False)
    assert path.read_bytes() == b"\x08" + b"\x00" * 7 + b"{}      "
    assert safestructures.load_tensors(path) == {}
    assert safetensors.numpy.load_file(path) == {}


def test_tensor_names_with_any_unicode(tmp_path: Path) -> None:
    tensors = {name: np.full(2, i, dtype=np.int32) for i, name in enumerate(["", " ", "a.b/c:d", "ünï", "𝔘", "\"'\\", "\n\t\x01", "__metadata", "\u2028"])}
    path = tmp_path / "t.safetensors"
    safestructures.save_tensors(tensors, path)
    assert_identical_dicts(safestructures.load_tensors(path), tensors)
    assert_identical_dicts(safetensors.numpy.load_file(path), tensors)


def test_overwriting_a_file(tmp_path: Path, small_tensors: dict[str, np.ndarray]) -> None:
    path = tmp_path / "t.safetensors"
    safestructures.save_tensors({"old": np.zeros(1000)}, path, {"old": "1"})
    safestructures.save_tensors(small_tensors, path)
    assert_identical_dicts(safestructures.load_tensors(path), small_tensors)
    assert safestructures.load_metadata(path) is None


def test_saving_loaded_arrays_over_their_own_file(tmp_path: Path, small_tensors: dict[str, np.ndarray]) -> None:
    path = tmp_path / "t.safetensors"
    safestructures.save_tensors(small_tensors, path)
    loaded = safestructures.load_tensors(path)
    loaded["extra"] = loaded["weight"][:, ::-1]
    safestructures.save_tensors(loaded, path)
    expected = dict(small_tensors, extra=small_tensors["weight"][:, ::-1])
    assert_identical_dicts(safestructures.load_tensors(path), expected)
    assert_identical_dicts(loaded, expected)


def test_fsync_option(tmp_path: Path, small_tensors: dict[str, np.ndarray]) -> None:
    path = tmp_path / "t.safetensors"
    safestructures.save_tensors(small_tensors, path, {"a": "b"}, fsync=True)
    plain = tmp_path / "plain.safetensors"
    safestructures.save_tensors(small_tensors, plain, {"a": "b"})
    assert path.read_bytes() == plain.read_bytes()


def test_relative_path_in_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_tensors: dict[str, np.ndarray]) -> None:
    monkeypatch.chdir(tmp_path)
    safestructures.save_tensors(small_tensors, "rel.safetensors", fsync=True)
    assert_identical_dicts(safestructures.load_tensors("rel.safetensors"), small_tensors)
    assert_identical_dicts(safestructures.load_tensors(tmp_path / "rel.safetensors"), small_tensors)


# ---------------------------------------------------------------------------------------------------------------------
# The extension's helpers


def test_core_dtype_list() -> None:
    assert set(_core.DTYPES) == set(ALL_DTYPES)
    assert len(_core.DTYPES) == len(set(_core.DTYPES)) == 22


def test_write_bytes_equals_the_written_file(tmp_path: Path, small_tensors: dict[str, np.ndarray]) -> None:
    tensors = dict(small_tensors, packed=sample_array("F6_E3M2", (8,)), strided=np.arange(20.0)[::-3])
    path = tmp_path / "t.safetensors"
    safestructures.save_tensors(tensors, path, {"m": "1"})
    entries = [np_adapter.to_entry(name, value) for name, value in tensors.items()]
    assert _core.write_bytes(entries, {"m": "1"}) == path.read_bytes()


@pytest.mark.parametrize("name", sorted(SUB_BYTE_DTYPES))
def test_pack_and_unpack_match_the_reference_bit_stream(name: str) -> None:
    _dtype, bits = SUB_BYTE_DTYPES[name]
    rng = np.random.default_rng(3)
    for count in (0, 8, 16, 40, 4000):
        codes = rng.integers(0, 1 << bits, size=count, dtype=np.uint8).tobytes()
        packed = _core.pack_sub_byte(name, codes)
        assert packed == reference_pack(codes, bits)
        assert _core.unpack_sub_byte(name, packed, count) == codes
        assert reference_unpack(packed, bits, count) == codes


def test_pack_sub_byte_examples() -> None:
    assert _core.pack_sub_byte("F4", bytes([0x1, 0x2, 0xF, 0x0])) == bytes([0x21, 0x0F])
    # 6-bit codes straddle bytes: 0b000001, 0b000010, 0b111111, 0b100000 -> 24 bits little-endian.
    assert _core.pack_sub_byte("F6_E2M3", bytes([1, 2, 63, 32])) == (1 | 2 << 6 | 63 << 12 | 32 << 18).to_bytes(3, "little")


def test_pack_sub_byte_rejects_codes_wider_than_the_type() -> None:
    with pytest.raises(safestructures.InvalidArgumentError) as info:
        _core.pack_sub_byte("F4", bytes([0, 16]))
    assert info.value.code == "InvalidArgument"
    assert "element 1" in str(info.value)


def test_unpack_sub_byte_rejects_a_wrong_size() -> None:
    with pytest.raises(safestructures.SafestructuresError) as info:
        _core.unpack_sub_byte("F4", b"ab", 3)
    assert info.value.code == "SizeMismatch"


# ---------------------------------------------------------------------------------------------------------------------
# Property-based round trip

NAMES = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8).filter(lambda s: s != "__metadata__")
METADATA_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)


@st.composite
def arbitrary_arrays(draw: st.DrawFn) -> np.ndarray:
    """Arrays of any native dtype (either byte order), any shape (0-d and zero-size included), often a strided view."""
    dtype = draw(st.sampled_from(list(NATIVE_DTYPES.values())))
    if dtype.itemsize > 1 and draw(st.booleans()):
        dtype = dtype.newbyteorder(">")
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
    array = draw(hnp.arrays(dtype, shape))
    if array.ndim and draw(st.booleans()):
        array = array[tuple(draw(st.slices(n)) for n in array.shape)]
    if array.ndim > 1 and draw(st.booleans()):
        array = array.transpose(draw(st.permutations(range(array.ndim))))
    return array


@settings(max_examples=150)
@given(
    tensors=st.dictionaries(NAMES, arbitrary_arrays(), max_size=5),
    metadata=st.none() | st.dictionaries(METADATA_TEXT, METADATA_TEXT, max_size=4),
)
def test_property_round_trip(tmp_path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None) -> None:
    path = tmp_path / "h.safetensors"
    safestructures.save_tensors(tensors, path, metadata, checksums=False)
    assert_identical_dicts(safestructures.load_tensors(path), tensors)
    assert safestructures.load_metadata(path) == metadata
    assert_identical_dicts(safetensors.numpy.load_file(path), tensors)
    with safetensors.safe_open(path, framework="numpy") as f:
        assert f.metadata() == metadata
    # With checksums: the same tensors, verified, and the caller's metadata beside them (none given reads as None).
    safestructures.save_tensors(tensors, path, metadata)
    assert_identical_dicts(safestructures.load_tensors(path, verify=True), tensors)
    assert safestructures.load_metadata(path) == (metadata or None)
    assert_identical_dicts(safetensors.numpy.load_file(path), tensors)

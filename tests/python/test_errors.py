"""Errors: missing files, malformed files (with the core's error codes) and everything save_tensors refuses."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors

import safestructures
from safestructures import InvalidArgumentError, InvalidFileError, SafestructuresError, UnsupportedTypeError
from conftest import ALL_DTYPES, make_file_bytes, temporary_files, write_file_bytes


def entry(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def load_error(path: Path) -> InvalidFileError:
    """The InvalidFileError that loading ``path`` raises; load_metadata raises the same one."""
    with pytest.raises(InvalidFileError) as info:
        safestructures.load_tensors(path)
    with pytest.raises(InvalidFileError) as meta_info:
        safestructures.load_metadata(path)
    assert meta_info.value.code == info.value.code
    assert str(meta_info.value) == str(info.value)
    return info.value


# ---------------------------------------------------------------------------------------------------------------------
# The exception classes


def test_exception_hierarchy() -> None:
    assert issubclass(InvalidFileError, SafestructuresError) and issubclass(InvalidFileError, ValueError)
    assert issubclass(InvalidArgumentError, SafestructuresError) and issubclass(InvalidArgumentError, ValueError)
    assert issubclass(UnsupportedTypeError, SafestructuresError) and issubclass(UnsupportedTypeError, TypeError)
    assert issubclass(SafestructuresError, Exception)
    for cls in (SafestructuresError, InvalidFileError, InvalidArgumentError, UnsupportedTypeError):
        assert cls.__module__ == "safestructures"
        assert cls.code is None


# ---------------------------------------------------------------------------------------------------------------------
# Files that cannot be opened


@pytest.mark.parametrize("load", [safestructures.load_tensors, safestructures.load_metadata])
def test_missing_file(tmp_path: Path, load: Any) -> None:
    path = tmp_path / "missing.safetensors"
    with pytest.raises(FileNotFoundError) as info:
        load(path)
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == str(path)
    assert not isinstance(info.value, SafestructuresError)


def test_missing_file_str_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        safestructures.load_tensors(str(tmp_path / "nope" / "x.safetensors"))
    assert info.value.filename == str(tmp_path / "nope" / "x.safetensors")


@pytest.mark.parametrize("load", [safestructures.load_tensors, safestructures.load_metadata])
def test_directory(tmp_path: Path, load: Any) -> None:
    with pytest.raises(IsADirectoryError) as info:
        load(tmp_path)
    assert info.value.errno == errno.EISDIR
    assert info.value.filename == str(tmp_path)


# ---------------------------------------------------------------------------------------------------------------------
# Malformed files


def test_every_truncation_of_a_valid_file_is_invalid(tmp_path: Path, valid_file: Path) -> None:
    data = valid_file.read_bytes()
    assert safestructures.load_metadata(valid_file) == {"format": "np"}  # the full file is valid
    path = tmp_path / "truncated.safetensors"
    codes = set()
    for length in range(len(data)):
        path.write_bytes(data[:length])
        try:
            safestructures.load_tensors(path)
        except InvalidFileError as e:
            assert isinstance(e, ValueError)
            assert e.code is not None
            codes.add(e.code)
        else:
            pytest.fail(f"a file truncated to {length} of {len(data)} bytes loaded")
    assert {"FileTooSmall", "HeaderPastEnd", "DataPastEnd"} <= codes


def test_every_truncation_of_our_own_file_is_invalid(tmp_path: Path, small_tensors: dict[str, np.ndarray]) -> None:
    source = tmp_path / "ours.safetensors"
    safestructures.save_tensors(small_tensors, source, {"k": "v"})
    data = source.read_bytes()
    path = tmp_path / "truncated.safetensors"
    for length in range(len(data)):
        path.write_bytes(data[:length])
        with pytest.raises(InvalidFileError):
            safestructures.load_tensors(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    error = load_error(path)
    assert error.code == "FileTooSmall"
    assert str(path) in str(error)


def test_header_length_too_large(tmp_path: Path) -> None:
    path = write_file_bytes(tmp_path / "t.safetensors", {}, length=100_000_001)
    error = load_error(path)
    assert error.code == "HeaderTooLarge"
    assert "100000001" in str(error)


def test_header_length_past_the_end(tmp_path: Path) -> None:
    path = write_file_bytes(tmp_path / "t.safetensors", {}, length=1000)
    assert load_error(path).code == "HeaderPastEnd"


def test_huge_header_length(tmp_path: Path) -> None:
    path = write_file_bytes(tmp_path / "t.safetensors", {}, length=2**64 - 1)
    assert load_error(path).code == "HeaderTooLarge"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b'{"a":', "HeaderNotJson"),
        (b"not json at all", "HeaderNotJson"),
        (b"", "HeaderNotJson"),
        (b"[1, 2]", "HeaderNotObject"),
        (b'"text"', "HeaderNotObject"),
        (b"{}\x00", "HeaderNulByte"),
        (b"\xef\xbb\xbf{}", "HeaderBom"),
        (b'{"\xff":1}', "HeaderNotUtf8"),
    ],
)
def test_header_not_json(tmp_path: Path, raw: bytes, code: str) -> None:
    path = write_file_bytes(tmp_path / "t.safetensors", None, raw_header=raw)
    assert load_error(path).code == code


def test_header_whitespace_is_accepted(tmp_path: Path) -> None:
    path = write_file_bytes(tmp_path / "t.safetensors", None, b"\x07", raw_header=b' \n\t{"x": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}   \n')
    assert safestructures.load_tensors(path)["x"].tolist() == [7]


def test_size_mismatch(tmp_path: Path) -> None:
    path = write_file_bytes(tmp_path / "t.safetensors", {"ok": entry("U8", [2], 0, 2), "weight": entry("F32", [2], 2, 6)}, bytes(6))
    error = load_error(path)
    assert error.code == "SizeMismatch"
    assert '"weight"' in str(error)
    assert "F32" in str(error)


def test_overlap(tmp_path: Path) -> None:
    path = write_file_bytes(tmp_path / "t.safetensors", {"first": entry("F32", [2], 0, 8), "second": entry("F32", [1], 4, 8)}, bytes(8))
    error = load_error(path)
    assert error.code == "Overlap"
    assert '"second"' in str(error) and '"first"' in str(error)


def test_hole(tmp_path: Path) -> None:
    path = write_file_bytes(tmp_path / "t.safetensors", {"first": entry("F32", [1], 0, 4), "second": entry("F32", [1], 8, 12)}, bytes(12))
    error = load_error(path)
    assert error.code == "Hole"
    assert '"second"' in str(error)


def test_hole_at_the_start(tmp_path: Path) -> None:
    path = write_file_bytes(tmp_path / "t.safetensors", {"late": entry("U8", [1], 1, 2)}, bytes(2))
    error = load_error(path)
    assert error.code == "Hole"
    assert '"late"' in str(error)


def test_trailing_bytes(tmp_path: Path) -> None:
    path = write_file_bytes(tmp_path / "t.safetensors", {"last": entry("F32", [1], 0, 4)}, bytes(6))
    error = load_error(path)
    assert error.code == "TrailingBytes"
    assert '"last"' in str(error)


def test_trailing_bytes_without_tensors(tmp_path: Path) -> None:
    path = write_file_bytes(tmp_path / "t.safetensors", {}, b"junk")
    assert load_error(path).code == "TrailingBytes"


def test_data_past_end(tmp_path: Path) -> None:
    path = write_file_bytes(tmp_path / "t.safetensors", {"big": entry("F64", [4], 0, 32)}, bytes(16))
    error = load_error(path)
    assert error.code == "DataPastEnd"
    assert '"big"' in str(error)


def test_duplicate_tensor_key(tmp_path: Path) -> None:
    raw = b'{"dup":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"dup":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}'
    path = write_file_bytes(tmp_path / "t.safetensors", None, b"\x01\x02", raw_header=raw)
    error = load_error(path)
    assert error.code == "DuplicateKey"
    assert '"dup"' in str(error)


def test_duplicate_metadata_key(tmp_path: Path) -> None:
    raw = b'{"__metadata__":{"k":"a","k":"b"},"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}'
    path = write_file_bytes(tmp_path / "t.safetensors", None, b"\x01", raw_header=raw)
    error = load_error(path)
    assert error.code == "DuplicateKey"
    assert '"k"' in str(error)


def test_duplicate_field(tmp_path: Path) -> None:
    raw = b'{"x":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}}'
    path = write_file_bytes(tmp_path / "t.safetensors", None, b"\x01", raw_header=raw)
    error = load_error(path)
    assert error.code == "DuplicateKey"
    assert '"x"' in str(error)


@pytest.mark.parametrize("dtype", ["F17", "f32", "FLOAT32", "float32", "", "F8_E4M3FN", "C128"])
def test_unknown_dtype(tmp_path: Path, dtype: str) -> None:
    path = write_file_bytes(tmp_path / "t.safetensors", {"odd": entry(dtype, [1], 0, 4)}, bytes(4))
    error = load_error(path)
    assert error.code == "UnknownDtype"
    assert '"odd"' in str(error)


@pytest.mark.parametrize("value", [1, 1.5, True, None, ["a"], {"a": "b"}])
def test_non_string_metadata_value(tmp_path: Path, value: Any) -> None:
    header = {"__metadata__": {"fine": "ok", "bad_key": value}, "x": entry("U8", [1], 0, 1)}
    path = write_file_bytes(tmp_path / "t.safetensors", header, b"\x00")
    error = load_error(path)
    assert error.code == "MetadataNotString"
    assert '"bad_key"' in str(error)


@pytest.mark.parametrize("metadata", [1, "text", ["a"], True])
def test_metadata_not_an_object(tmp_path: Path, metadata: Any) -> None:
    path = write_file_bytes(tmp_path / "t.safetensors", {"__metadata__": metadata}, b"")
    assert load_error(path).code == "MetadataNotObject"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (1, "EntryNotObject"),
        ("F32", "EntryNotObject"),
        ({"shape": [1], "data_offsets": [0, 4]}, "MissingField"),
        ({"dtype": "F32", "data_offsets": [0, 4]}, "MissingField"),
        ({"dtype": "F32", "shape": [1]}, "MissingField"),
        ({"dtype": 5, "shape": [1], "data_offsets": [0, 4]}, "WrongFieldType"),
        ({"dtype": "F32", "shape": 1, "data_offsets": [0, 4]}, "WrongFieldType"),
        ({"dtype": "F32", "shape": ["1"], "data_offsets": [0, 4]}, "WrongFieldType"),
        ({"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}, "NegativeNumber"),
        ({"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}, "FractionalNumber"),
        ({"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}, "FractionalNumber"),
        ({"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}, "InvalidOffsets"),
        ({"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}, "InvalidOffsets"),
        ({"dtype": "F32", "shape": [2**32, 2**32], "data_offsets": [0, 4]}, "ShapeOverflow"),
        ({"dtype": "F64", "shape": [2**62], "data_offsets": [0, 4]}, "ShapeOverflow"),
        ({"dtype": "F4", "shape": [3], "data_offsets": [0, 4]}, "SubByteNotWhole"),
        ({"dtype": "F6_E2M3", "shape": [2], "data_offsets": [0, 4]}, "SubByteNotWhole"),
        ({"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "extra": "ignored"}, None),
    ],
)
def test_malformed_entries(tmp_path: Path, value: Any, code: str | None) -> None:
    path = write_file_bytes(tmp_path / "t.safetensors", {"the_tensor": value}, bytes(4))
    if code is None:
        assert safestructures.load_tensors(path)["the_tensor"].tolist() == [0.0]
        return
    error = load_error(path)
    assert error.code == code
    assert '"the_tensor"' in str(error)


def test_nul_in_tensor_name_in_file(tmp_path: Path) -> None:
    path = write_file_bytes(tmp_path / "t.safetensors", None, b"\x01", raw_header=b'{"a\\u0000b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}')
    assert load_error(path).code == "InvalidName"


def test_error_message_names_the_file(tmp_path: Path) -> None:
    path = write_file_bytes(tmp_path / "named file.safetensors", {"x": entry("F32", [2], 0, 4)}, bytes(4))
    assert str(path) in str(load_error(path))


# ---------------------------------------------------------------------------------------------------------------------
# Saving: what is refused


@pytest.mark.parametrize("value", [[1, 2], 3, 1.5, "text", b"bytes", None, memoryview(b"ab"), {"nested": np.zeros(1)}])
def test_non_array_values(tmp_path: Path, value: Any) -> None:
    with pytest.raises(UnsupportedTypeError) as info:
        safestructures.save_tensors({"good": np.zeros(2), "the_key": value}, tmp_path / "t.safetensors")
    assert '"the_key"' in str(info.value)
    assert type(value).__qualname__ in str(info.value)
    assert isinstance(info.value, TypeError)
    assert not (tmp_path / "t.safetensors").exists()


@pytest.mark.parametrize(
    "array",
    [
        np.array([object(), 1], dtype=object),
        np.array(["a", "bc"]),
        np.array([b"a"]),
        np.zeros(2, np.complex128),
        np.zeros(2, np.longdouble),
        np.zeros(2, np.clongdouble),
        np.zeros(2, "datetime64[s]"),
        np.zeros(2, "timedelta64[s]"),
        np.zeros(2, "V4"),
        np.zeros(2, [("a", "<i4"), ("b", "<f4")]),
    ],
    ids=lambda a: str(a.dtype),
)
def test_unsupported_dtypes(tmp_path: Path, array: np.ndarray) -> None:
    with pytest.raises(UnsupportedTypeError) as info:
        safestructures.save_tensors({"arr": array}, tmp_path / "t.safetensors")
    assert str(array.dtype) in str(info.value)
    assert '"arr"' in str(info.value)


def test_masked_arrays_are_refused(tmp_path: Path) -> None:
    masked = np.ma.masked_array([1.0, 2.0, 3.0], mask=[False, True, False])
    with pytest.raises(UnsupportedTypeError) as info:
        safestructures.save_tensors({"m": masked}, tmp_path / "t.safetensors")
    assert "mask" in str(info.value) and '"m"' in str(info.value)
    # Even without any masked value.
    with pytest.raises(UnsupportedTypeError):
        safestructures.save_tensors({"m": np.ma.masked_array([1.0])}, tmp_path / "t.safetensors")


@pytest.mark.parametrize("name", ["__metadata__", "a\x00b", "\x00", "\ud800", "ok\udfffok"])
def test_invalid_tensor_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        safestructures.save_tensors({"fine": np.zeros(1), name: np.zeros(1)}, tmp_path / "t.safetensors")
    assert info.value.code == "InvalidName"
    assert isinstance(info.value, ValueError)
    assert not (tmp_path / "t.safetensors").exists()
    assert temporary_files(tmp_path) == []


@pytest.mark.parametrize("name", [1, None, b"bytes", ("t",)])
def test_non_str_tensor_names(tmp_path: Path, name: Any) -> None:
    with pytest.raises(TypeError):
        safestructures.save_tensors({name: np.zeros(1)}, tmp_path / "t.safetensors")


@pytest.mark.parametrize("tensors", [[("a", np.zeros(1))], np.zeros(3), None])
def test_tensors_must_be_a_mapping(tmp_path: Path, tensors: Any) -> None:
    with pytest.raises(TypeError):
        safestructures.save_tensors(tensors, tmp_path / "t.safetensors")


@pytest.mark.parametrize("metadata", [{"k": 1}, {1: "v"}, {"k": None}, {"k": b"v"}, {b"k": "v"}, [("k", "v")], "k=v"])
def test_non_str_metadata(tmp_path: Path, metadata: Any) -> None:
    with pytest.raises(TypeError, match="metadata"):
        safestructures.save_tensors({"x": np.zeros(1)}, tmp_path / "t.safetensors", metadata)
    assert not (tmp_path / "t.safetensors").exists()


@pytest.mark.parametrize("metadata", [{"\ud800": "v"}, {"k": "\udfff"}])
def test_metadata_with_lone_surrogates(tmp_path: Path, metadata: dict[str, str]) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        safestructures.save_tensors({"x": np.zeros(1)}, tmp_path / "t.safetensors", metadata)
    assert info.value.code == "InvalidMetadata"


def test_metadata_is_not_mutated(tmp_path: Path) -> None:
    metadata = {"z": "1", "a": "2", "m": "3"}
    snapshot = list(metadata.items())
    safestructures.save_tensors({"x": np.zeros(1)}, tmp_path / "t.safetensors", metadata)
    assert list(metadata.items()) == snapshot
    bad = {"z": "1", "a": 2}
    with pytest.raises(TypeError):
        safestructures.save_tensors({"x": np.zeros(1)}, tmp_path / "t.safetensors", bad)
    assert bad == {"z": "1", "a": 2} and list(bad) == ["z", "a"]


def test_tensors_dict_is_not_mutated(tmp_path: Path, small_tensors: dict[str, np.ndarray]) -> None:
    snapshot = {name: (id(value), value.copy()) for name, value in small_tensors.items()}
    order = list(small_tensors)
    safestructures.save_tensors(small_tensors, tmp_path / "t.safetensors")
    assert list(small_tensors) == order
    for name, (identity, copy) in snapshot.items():
        assert id(small_tensors[name]) == identity
        assert np.array_equal(small_tensors[name], copy)


@pytest.mark.parametrize(
    ("bad_entry", "error"),
    [
        ({"zzz_last": "not an array"}, UnsupportedTypeError),
        ({"zzz_last": np.zeros(2, np.complex128)}, UnsupportedTypeError),
        ({"zzz_last": np.ma.masked_array([1.0])}, UnsupportedTypeError),
        ({"__metadata__": np.zeros(1)}, InvalidArgumentError),
        ({"zz\x00": np.zeros(1)}, InvalidArgumentError),
        ({"zz\ud800": np.zeros(1)}, InvalidArgumentError),
        ({"zzz_f4": np.zeros(3, ALL_DTYPES["F4"])}, InvalidArgumentError),
    ],
    ids=["not-array", "complex128", "masked", "reserved-name", "nul-name", "surrogate-name", "f4-odd"],
)
@pytest.mark.parametrize("as_path", [str, Path], ids=["str", "Path"])
def test_failed_save_leaves_the_target_untouched(tmp_path: Path, small_tensors: dict[str, np.ndarray], bad_entry: dict[str, Any], error: type, as_path: type) -> None:
    target = tmp_path / "model.safetensors"
    safestructures.save_tensors({"original": np.arange(10)}, target, {"version": "1"})
    before = target.read_bytes()
    tensors = {**small_tensors, **bad_entry}
    assert list(tensors)[-1] == next(iter(bad_entry))  # the bad entry comes last
    with pytest.raises(error):
        safestructures.save_tensors(tensors, as_path(target), {"version": "2"})
    assert target.read_bytes() == before
    assert temporary_files(tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]


def test_failed_save_with_bad_metadata_leaves_the_target_untouched(tmp_path: Path, small_tensors: dict[str, np.ndarray]) -> None:
    target = tmp_path / "model.safetensors"
    safestructures.save_tensors(small_tensors, target)
    before = target.read_bytes()
    for metadata in ({"a": "1", "b": 2}, {"a": "1", "b": "\ud800"}):
        with pytest.raises((TypeError, InvalidArgumentError)):
            safestructures.save_tensors({"new": np.ones(5)}, target, metadata)  # type: ignore[arg-type]
        assert target.read_bytes() == before
        assert temporary_files(tmp_path) == []


def test_save_into_a_missing_directory(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "t.safetensors"
    with pytest.raises(FileNotFoundError) as info:
        safestructures.save_tensors({"x": np.zeros(1)}, target)
    assert info.value.filename == str(target)


def test_save_over_a_directory_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "a_directory"
    target.mkdir()
    (target / "inside").write_bytes(b"keep")
    with pytest.raises(IsADirectoryError) as info:
        safestructures.save_tensors({"x": np.zeros(4)}, target)
    assert info.value.filename == str(target)
    assert (target / "inside").read_bytes() == b"keep"
    assert temporary_files(tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == ["a_directory"]


def test_save_into_a_read_only_directory(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o500)
    try:
        with pytest.raises(PermissionError):
            safestructures.save_tensors({"x": np.zeros(1)}, directory / "t.safetensors")
    finally:
        directory.chmod(0o700)


def test_make_file_bytes_helper_is_a_valid_reference_file() -> None:
    # Guards the hand-built files above: the reference reader accepts what make_file_bytes builds.
    data = make_file_bytes({"x": entry("F32", [2], 0, 8)}, np.array([1.0, 2.0], "<f4").tobytes())
    assert [name for name, _ in safetensors.deserialize(data)] == ["x"]


def test_duplicate_tensor_key_spelled_with_escapes(tmp_path: Path) -> None:
    raw = b'{"ab":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"\\u0061b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}'
    path = write_file_bytes(tmp_path / "t.safetensors", None, b"\x01\x02", raw_header=raw)
    error = load_error(path)
    assert error.code == "DuplicateKey"
    assert '"ab"' in str(error)


# ---------------------------------------------------------------------------------------------------------------------
# Valid files numpy cannot hold, and the reference's refusal of -0


@pytest.mark.parametrize("shape", [[0, 2**63], [0, 2**64 - 1], [2**63, 0]])
def test_zero_size_tensor_with_huge_dimension(tmp_path: Path, shape: list[int]) -> None:
    # Valid safetensors (the reference deserializes it), but numpy cannot hold such a shape: a safestructures error
    # naming the tensor is expected, not numpy's bare "Maximum allowed dimension exceeded".
    path = write_file_bytes(tmp_path / "t.safetensors", {"huge": entry("U8", shape, 0, 0)})
    assert safetensors.deserialize(path.read_bytes())[0][0] == "huge"
    assert safestructures.load_metadata(path) is None
    with pytest.raises(SafestructuresError, match='"huge"'):
        safestructures.load_tensors(path)


def test_tensor_with_more_dimensions_than_numpy_allows(tmp_path: Path) -> None:
    path = write_file_bytes(tmp_path / "t.safetensors", {"deep": entry("U8", [1] * 65, 0, 1)}, b"\x01")
    assert safetensors.deserialize(path.read_bytes())[0][0] == "deep"
    with pytest.raises(SafestructuresError, match='"deep"'):
        safestructures.load_tensors(path)


def test_negative_zero_in_shape_is_rejected_like_the_reference(tmp_path: Path) -> None:
    path = write_file_bytes(tmp_path / "t.safetensors", None, raw_header=b'{"x":{"dtype":"U8","shape":[-0],"data_offsets":[0,0]}}')
    with pytest.raises(safetensors.SafetensorError):
        safetensors.deserialize(path.read_bytes())
    with pytest.raises(InvalidFileError):
        safestructures.load_tensors(path)


def test_header_over_the_reader_limit_is_refused_at_save(tmp_path: Path) -> None:
    target = tmp_path / "t.safetensors"
    base = len(b'{"__metadata__":{"k":""},"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}')
    # A metadata value that makes the header one byte longer than the 100,000,000 bytes readers accept.
    with pytest.raises(InvalidArgumentError) as info:
        safestructures.save_tensors({"x": np.zeros(1)}, target, {"k": "v" * (100_000_000 - base + 1)})
    assert info.value.code == "HeaderTooLarge"
    assert not target.exists()
    assert temporary_files(tmp_path) == []

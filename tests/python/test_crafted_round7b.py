"""Crafted inputs of the seventh round's second helper (cases 40 on; docs/security.md's table lists them): torch tensors
saved from lazy conjugate and negative views, and views the torch adapter read differently from numpy. Each attack has
its legitimate twin, which must keep working."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import crafted
import safestructures as ss

torch = pytest.importorskip("torch")


def saved(tmp_path: Path, data: Any) -> Any:
    path = tmp_path / "x.safetensors"
    ss.save_file(data, path)
    return ss.load_file(path, framework="torch")


# --- 40. a lazy conjugate or negative view saved as its memory -----------------------------------------------------------

def test_case_40_a_conjugate_view_is_saved_as_its_value(tmp_path: Path) -> None:
    # Before: the file held x's elements, not their conjugates (x.conj() only sets a bit), so the load gave back x.
    x = torch.tensor([1 + 2j, 3 - 4j], dtype=torch.complex64)
    loaded = saved(tmp_path, {"c": x.conj()})["c"]
    assert loaded.tolist() == [1 - 2j, 3 + 4j] and not loaded.is_conj()


def test_case_40_a_negative_view_is_saved_as_its_value(tmp_path: Path) -> None:
    # x.conj().imag is a negative view of x's imaginary parts: before, saved as the parts themselves (sign lost).
    x = torch.tensor([1 + 2j, 3 - 4j], dtype=torch.complex64)
    imag = x.conj().imag
    assert imag.is_neg()
    assert saved(tmp_path, {"i": imag})["i"].tolist() == [-2.0, 4.0]


def test_case_40_a_conjugate_view_beside_its_base_shares_nothing(tmp_path: Path) -> None:
    # Before: the conjugate view has its base's storage, so it was written as a view of it: both loaded as x.
    x = torch.tensor([1 + 2j, 3 - 4j, 5 + 6j, 7 - 8j], dtype=torch.complex64)
    loaded = saved(tmp_path, {"x": x, "c": x.conj(), "s": x.conj()[::2], "n": x.imag._neg_view(), "r": x.real})
    assert loaded["x"].tolist() == x.tolist()
    assert loaded["c"].tolist() == [1 - 2j, 3 + 4j, 5 - 6j, 7 + 8j]
    assert loaded["s"].tolist() == [1 - 2j, 5 - 6j]
    assert loaded["n"].tolist() == [-2.0, 4.0, -6.0, 8.0]
    assert loaded["r"].tolist() == [1.0, 3.0, 5.0, 7.0]


def test_case_40_a_complex128_conjugate_is_saved(tmp_path: Path) -> None:
    # Before: RuntimeError from torch (view_as_real of an unresolved conjugate), not a safestructures error.
    x = torch.tensor([1 + 2j], dtype=torch.complex128)
    loaded = saved(tmp_path, {"c": x.conj()})["c"]
    assert loaded.dtype == torch.complex128 and loaded.tolist() == [1 - 2j]


def test_case_40_twin_plain_complex_views_keep_sharing(tmp_path: Path) -> None:
    x = torch.tensor([1 + 2j, 3 - 4j, 5 + 6j, 7 - 8j], dtype=torch.complex64)
    loaded = saved(tmp_path, {"x": x, "s": x[::2]})
    assert loaded["s"].tolist() == [1 + 2j, 5 + 6j]
    assert loaded["s"].untyped_storage().data_ptr() == loaded["x"].untyped_storage().data_ptr()


# --- 41. a view of F4 elements ---------------------------------------------------------------------------------------------

F4_VIEW_MESSAGE = ("at $[\"v\"]: a view of tensor \"t\" views F4 elements, which have no torch form: torch holds them in pairs; "
                   "load with framework='numpy'")


def test_case_41_numpy_reads_a_view_in_f4_elements() -> None:
    loaded = ss.load(crafted.f4_view(), framework="numpy")
    assert loaded["t"].astype(np.float32).tolist() == [0.5, 1, 1.5, 2, 3, 4, 6, 0]
    assert loaded["v"].astype(np.float32).tolist() == [1, 1.5]
    assert ss.load(crafted.f4_strided(), framework="numpy")["t"].astype(np.float32).tolist() == [0.5, 1, 1.5, 2]


def test_case_41_torch_refuses_a_view_of_f4_elements() -> None:
    # Before: torch read the view's offset and shape in pairs, giving elements 2 to 5 (numpy: elements 1 and 2).
    with pytest.raises(ss.UnsupportedTypeError) as info:
        ss.load(crafted.f4_view(), framework="torch")
    assert str(info.value) == F4_VIEW_MESSAGE
    with pytest.raises(ss.UnsupportedTypeError) as info:
        ss.load(crafted.f4_strided(), framework="torch")
    assert str(info.value) == F4_VIEW_MESSAGE.replace('$["v"]: a view of tensor', '$["t"]: tensor')


def test_case_41_twin_torch_f4_pairs_round_trip(tmp_path: Path) -> None:
    x = torch.tensor([[0x21, 0x43], [0x65, 0x07]], dtype=torch.uint8).view(torch.float4_e2m1fn_x2)
    loaded = saved(tmp_path, {"x": x, "row": x[1]})
    assert torch.equal(loaded["x"].view(torch.uint8), x.view(torch.uint8))
    assert loaded["row"].view(torch.uint8).tolist() == [0x65, 0x07]


# --- 42. bytes viewed under another dtype's name --------------------------------------------------------------------------

@pytest.mark.parametrize("framework", ["numpy", "torch", "jax"])
def test_case_42_a_dtype_that_is_not_the_stored_one_is_refused_under_a_view(framework: str) -> None:
    # Before: torch ignored the node's dtype and loaded the 16 bytes as uint8 (numpy refused them).
    if framework == "jax":
        pytest.importorskip("jax")
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load(crafted.logical_dtype_view(), framework=framework)
    assert str(info.value) == 'at $["t"]: cannot rebuild tensor "t": ValueError: dtype "<c16" does not match the stored dtype U8'
    assert info.value.code == "SchemaInvalid"


def test_case_42_twin_a_big_endian_dtype_over_its_stored_tensor_loads() -> None:
    node = {"$": "tensor", "name": "t", "fw": "torch", "dtype": ">i4", "shape": [2], "offset": 0, "stride": [2]}
    data = crafted.file_bytes({"t": node}, {"t": ("I32", [4], np.arange(4, dtype="<i4").tobytes())})
    assert ss.load(data, framework="torch")["t"].tolist() == [0, 2]
    assert ss.load(data, framework="numpy")["t"].tolist() == [0, 2]

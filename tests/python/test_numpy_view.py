"""A plain numpy tensor of a load with the defaults is made through numpy's C API (numpy_view.cpp), not by calling
numpy.frombuffer: it must be the array the numpy adapter makes for the same node, whatever holds the file (bytes, a
bytearray, a memoryview, a mapped file), in every dtype, shape and alignment: the same dtype, shape, strides, flags,
bytes and base objects, and it must keep the file's memory alive."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import safestructures
from conftest import ML_DTYPES, NATIVE_DTYPES, SHAPES, data_pointer, file_mappings, sample_array, structured_file_bytes

# Equal to the default device, but not the default object itself: the load takes the adapter's way.
CHECKED_CPU = "".join(["c", "p", "u"])

HOLDERS = {
    "bytes": bytes,
    "bytearray": bytearray,
    "memoryview of bytes": memoryview,
    "memoryview of a bytearray": lambda data: memoryview(bytearray(data)),
}


def _flags(array: np.ndarray) -> dict[str, bool]:
    f = array.flags
    return {"c": f.c_contiguous, "f": f.f_contiguous, "own": f.owndata, "writeable": f.writeable, "aligned": f.aligned}


def _bases(array: np.ndarray) -> list[str]:
    """The types along an array's chain of bases, down to what holds the bytes."""
    chain = []
    base = array.base
    while base is not None:
        chain.append(type(base).__name__)
        base = getattr(base, "base", None) if isinstance(base, np.ndarray) else None
    return chain


def _assert_same_array(fast: Any, checked: Any) -> None:
    assert type(fast) is np.ndarray and type(checked) is np.ndarray
    assert fast.dtype == checked.dtype
    assert fast.shape == checked.shape and fast.strides == checked.strides
    assert _flags(fast) == _flags(checked)
    assert _bases(fast) == _bases(checked)
    assert fast.tobytes() == checked.tobytes()


@pytest.mark.parametrize("holder", list(HOLDERS))
@pytest.mark.parametrize("name", [*NATIVE_DTYPES, *ML_DTYPES])
def test_every_dtype_and_shape_is_the_array_the_adapter_makes(name: str, holder: str) -> None:
    dtype = {**NATIVE_DTYPES, **ML_DTYPES}[name]
    data = {f"s{k}": sample_array(dtype, shape, seed=k) for k, shape in enumerate(SHAPES)}
    saved = HOLDERS[holder](safestructures.save(data))
    fast, checked = safestructures.load(saved), safestructures.load(saved, device=CHECKED_CPU)
    for key, array in data.items():
        _assert_same_array(fast[key], checked[key])
        assert fast[key].tobytes() == array.tobytes() and fast[key].shape == array.shape
        # A view of the caller's buffer, not a copy.
        assert np.shares_memory(fast[key], np.frombuffer(saved, np.uint8)) or fast[key].nbytes == 0


def test_misaligned_tensors_are_flagged_as_numpy_flags_them() -> None:
    # Another writer's file: a byte, then an F32 and an F64 at odd offsets in the data.
    f32, f64 = np.array([1.5, -2.25, 3.0], "<f4"), np.array([[np.pi, -0.0]], "<f8")
    root = {k: {"$": "tensor", "name": k, "fw": "numpy"} for k in ("b", "f32", "f64")}
    tensors = {"b": ("U8", [1], b"\x07"), "f32": ("F32", [3], f32.tobytes()), "f64": ("F64", [1, 2], f64.tobytes())}
    for holder in HOLDERS.values():
        data = holder(structured_file_bytes(root, tensors))
        fast, checked = safestructures.load(data), safestructures.load(data, device=CHECKED_CPU)
        for key in root:
            _assert_same_array(fast[key], checked[key])
        assert fast["f32"].tolist() == f32.tolist() and fast["f64"].tolist() == f64.tolist()
        assert data_pointer(fast["f32"]) % 4 != 0 and not fast["f32"].flags.aligned


def test_arrays_of_bytes_are_read_only_views_that_keep_the_bytes_alive() -> None:
    loaded = safestructures.load(safestructures.save({"t": np.arange(6, dtype=np.int32).reshape(2, 3)}))["t"]
    gc.collect()
    assert loaded.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert loaded.flags.writeable is False
    with pytest.raises(ValueError, match="read-only"):
        loaded[0, 0] = 1
    assert type(loaded.base) is np.ndarray and type(loaded.base.base) is bytes


def test_arrays_of_a_bytearray_hold_an_export_of_it_through_each_view() -> None:
    buffer = bytearray(safestructures.save({"a": np.arange(4, dtype=np.int16).reshape(2, 2), "b": np.arange(3, dtype=np.uint8)}))
    loaded = safestructures.load(buffer)
    assert type(loaded["a"].base.base) is memoryview and loaded["a"].base.base.obj is buffer
    loaded["a"][1, 1] = 40
    assert safestructures.load(bytes(buffer))["a"].tolist() == [[0, 1], [2, 40]]
    for key in ("a", "b"):
        with pytest.raises(BufferError):
            buffer.extend(b"x")
        del loaded[key]
    buffer.extend(b"x")  # no array holds it any longer


def test_arrays_of_a_mapped_file_are_writable_views_that_keep_the_mapping(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    safestructures.save_file({"t": np.arange(12, dtype=np.float64).reshape(3, 4), "n": 1}, path)
    fast = safestructures.load_file(str(path))["t"]
    checked = safestructures.load_file(str(path), device=CHECKED_CPU)["t"]
    _assert_same_array(fast, checked)
    assert _bases(fast) == ["ndarray", "FileBuffer"]
    gc.collect()
    ranges = file_mappings(path)
    assert any(begin <= data_pointer(fast) < end for begin, end in ranges)
    fast[2, 3] = -1.0
    assert safestructures.load_file(str(path))["t"][2, 3] == 11.0  # a private mapping: the file is unchanged
    del fast, checked
    gc.collect()
    assert file_mappings(path) == []


def test_a_load_of_plain_values_does_not_import_numpy() -> None:
    code = ("import sys, safestructures as ss; ss.load(ss.save({'a': [1, 2.5, 'x'], 'b': (None, True)})); "
            "print('numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_first_array_of_a_process_is_made_the_same_way() -> None:
    # A fresh process whose first load meets a tensor: numpy is found then, and the array is the adapter's.
    code = ("import safestructures as ss, numpy as np; d = ss.save({'t': np.arange(6, dtype=np.int8).reshape(3, 2)}); "
            "a = ss.load(d)['t']; b = ss.load(d, device=''.join('cpu'))['t']; "
            "print(a.tolist() == b.tolist(), a.strides == b.strides, a.flags == b.flags, type(a.base.base).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "True", "bytes"]



def test_plain_arrays_are_made_without_calling_numpy_from_python() -> None:
    # With numpy.frombuffer made to fail before safestructures is imported, a load still makes its plain arrays
    # (numpy's C API: under the 1.x ABI as under 2.x, scripts/test_numpy1.sh runs this file with numpy 1.26), whatever
    # the framework and device arguments; a sub-byte tensor, which the adapter packs and unpacks through frombuffer,
    # fails (at its save, which gives the RuntimeError as the cause of an error naming the path).
    code = """
import ml_dtypes, numpy as np
def refuse(*args, **kwargs):
    raise RuntimeError("frombuffer called")
np.frombuffer = refuse
import safestructures as ss
data = ss.save({"t": np.arange(6, dtype=np.float32).reshape(2, 3), "u": [np.ones(4, np.int64)]})
loads = [ss.load(data), ss.load(data, framework="numpy", device="".join(["c", "p", "u"]))]
try:
    ss.load(ss.save(np.zeros(4, ml_dtypes.float4_e2m1fn)))
    sub_byte = "made"
except ss.UnsupportedTypeError as e:
    sub_byte = str(e.__cause__)
print(np.__version__.split(".")[0], [[d["t"].tolist(), d["t"].dtype.name, d["u"][0].tolist()] for d in loads], sub_byte)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    major, rest = out.stdout.strip().split(" ", 1)
    assert major in ("1", "2")
    each = "[[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], 'float32', [1, 1, 1, 1]]"
    assert rest == f"[{each}, {each}] frombuffer called"

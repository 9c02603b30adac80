"""Crafted inputs of the seventh round's second helper (cases 40 on; docs/security.md's table lists them): torch tensors
saved from lazy conjugate and negative views, and views the torch adapter read differently from numpy. Each attack has
its legitimate twin, which must keep working."""

from __future__ import annotations

import subprocess
import sys
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


# --- 43. code the save runs drops what the walk borrowed ------------------------------------------------------------------

def save_in_subprocess(tmp_path: Path, body: str) -> str:
    """Runs ``body`` (with ``ss`` imported and ``path`` a file to save to) in a fresh interpreter: a crash fails the test
    without taking the suite with it. Returns what it printed."""
    code = "import sys\nimport safestructures as ss\npath = sys.argv[1]\n" + body
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "saved.safetensors")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"exit status {result.returncode}: {result.stderr[-3000:]}"
    return result.stdout


FREED_KEY = """
parent = {}
class Swap:
    pass
def swap(obj):
    parent.clear()
    parent["other"] = 0  # the dict keeps its size; the key on the walk's path is freed
    junk = ["Z" * 40 + str(i) for i in range(10000)]
    return {"bad": object()}
ss.register(Swap, to_data=swap, from_data=lambda d: d)
key = "".join(["k"] * 40)
parent[key] = Swap()
del key
try:
    ss.save_file({"root": parent}, path)
except ss.UnsupportedTypeError as e:
    print(e)
"""


def test_case_43_a_key_freed_under_the_walk_is_still_named(tmp_path: Path) -> None:
    # Before: SIGSEGV (the path held the key borrowed from the dict; the message read it after the hook freed it).
    assert save_in_subprocess(tmp_path, FREED_KEY) == (
        f'cannot save an object of type builtins.object at $["root"]["{"k" * 40}"]["bad"]: objects of class builtins.object '
        "are not stored: register the class with safestructures.register (with to_data/from_data, or to save its "
        "attributes), or pass a plugin\n")


FREED_SHARED = """
holder = []
class Drop:
    pass
def drop(obj):
    holder.clear()  # frees x, met twice already: fresh lists may be made at its address
    return [[9, 9] for _ in range(50)]
ss.register(Drop, to_data=drop, from_data=lambda d: d)
x = [1, 2]
holder.extend([x, x])
del x
ss.save_file({"a": holder, "b": Drop()}, path)
loaded = ss.load_file(path)
print(loaded["a"], sum(v == [9, 9] for v in loaded["b"]))
"""


def test_case_43_an_object_freed_under_the_walk_is_not_met_again(tmp_path: Path) -> None:
    # Before: a new list made at the freed list's address was written as a reference to it: "b" loaded holding [1, 2].
    assert save_in_subprocess(tmp_path, FREED_SHARED) == "[[1, 2], [1, 2]] 50\n"


GROWN = """
parent = {}
count = [0]
class Grow:
    pass
def grow(obj):
    count[0] += 1
    parent[f"k{count[0]}"] = Grow()
    return count[0]
ss.register(Grow, to_data=grow, from_data=lambda d: d)
parent["k0"] = Grow()
try:
    ss.save_file({"root": parent}, path)
except ss.UnsupportedTypeError as e:
    print(e, count[0])
"""

DOLLAR = """
d = {}
class Dollar:
    pass
def dollar(obj):
    del d["a"]
    d["$"] = "str"  # the same size, and the key that marks a tagged node
    return 1
ss.register(Dollar, to_data=dollar, from_data=lambda d: d)
d["a"] = Dollar()
d["cp"] = [104, 105]
try:
    ss.save_file({"root": d}, path)
except ss.UnsupportedTypeError as e:
    print(e)
import os
print(os.path.exists(path))
"""


def test_case_43_a_dict_that_grows_while_it_is_saved_is_refused(tmp_path: Path) -> None:
    # Before: each value's to_data added a key the walk then met: the save never ended (memory grew with the dict).
    assert save_in_subprocess(tmp_path, GROWN) == 'cannot save an object of type builtins.dict at $["root"]: the dict changed size while it was saved 1\n'


def test_case_43_a_tag_key_added_while_the_dict_is_saved_is_refused(tmp_path: Path) -> None:
    # Before: the save wrote a file no load accepts ("$" not the first key of a tagged object).
    assert save_in_subprocess(tmp_path, DOLLAR) == 'cannot save an object of type builtins.str at $["root"]: a key changed while the dict was saved\nFalse\n'


def test_case_43_twin_a_list_changed_while_it_is_saved_is_saved(tmp_path: Path) -> None:
    # Lists are read again at each step, as Python iterates them: a hook's change is saved as the list stands.
    body = """
items = []
class Add:
    pass
def add(obj):
    if len(items) < 3:
        items.append(Add())
    return len(items)
ss.register(Add, to_data=add, from_data=lambda d: d)
items.append(Add())
ss.save_file({"l": items, "d": {"x": [1], "y": {"z": 2}}}, path)
print(ss.load_file(path))
"""
    assert save_in_subprocess(tmp_path, body) == "{'l': [2, 3, 3], 'd': {'x': [1], 'y': {'z': 2}}}\n"


# --- 44. a caller's size or device that the parsing of it did not expect -----------------------------------------------

@pytest.mark.parametrize("size", ["9" * 400 + "GB", 10**30])
def test_case_44_a_shard_size_past_64_bits_is_no_limit(tmp_path: Path, size: Any) -> None:
    # Before: OverflowError (a float of 400 digits is infinity) / nanobind's TypeError (the size past 64 bits).
    ss.save_file({"a": np.arange(4.0)}, tmp_path / "d", max_shard_size=size)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["model-00001-of-00001.safetensors", "model.safetensors.index.json"]
    assert ss.load_file(tmp_path / "d")["a"].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_case_44_twin_a_fractional_size_is_exact() -> None:
    from safestructures._sharded import parse_size

    assert parse_size("1.5KB") == 1500 and parse_size("0.1MiB") == 104857 and parse_size(2**64) == 2**64 - 1


def test_case_44_a_device_of_no_registered_backend_is_refused_as_a_device() -> None:
    # Before: ModuleNotFoundError from torch (it looks for the backend's module), not the refusal of the device.
    with pytest.raises(ValueError) as info:
        ss.load(ss.save(np.zeros(2)), framework="torch", device="privateuseone")
    assert str(info.value) == "device 'privateuseone' cannot be used here: No module named 'torch.privateuseone'"


# --- 45. code the save runs frees the memory a tensor or a bytearray is written from --------------------------------------

RESIZED = """
import torch
t = torch.full((1 << 18,), 7.0)
ba = bytearray(b"A" * (1 << 20))
class Change:
    pass
def change(obj):
    if MODE == "bytearray":
        ba.clear()
    elif MODE == "set":
        t.set_(torch.empty(0))
    elif MODE == "data":
        t.data = torch.zeros(3)
    else:  # "resize", and "view": the base of the step view saved
        t.resize_(1 << 24)
    return 1
ss.register(Change, to_data=change, from_data=lambda d: d)
data = {"a": ba if MODE == "bytearray" else t[::2] if MODE == "view" else t, "b": Change()}
try:
    if HOW == "background":
        ss.save_file(data, path, background=True).result()
    elif HOW == "sharded":
        ss.save_file(data, path + ".d", max_shard_size=1 << 19)
    elif HOW == "recorder":
        with ss.Recorder(path) as r:
            r.append(data)
    else:
        ss.save_file(data, path)
except (ss.UnsupportedTypeError, BufferError) as e:
    print(type(e).__name__, str(e).removeprefix(path + ": record 0: "))
import os
print(sorted(os.listdir(os.path.dirname(path))), sorted(os.listdir(path + ".d")) if os.path.isdir(path + ".d") else None)
"""


@pytest.mark.parametrize("how", ["blocking", "background", "sharded", "recorder"])
@pytest.mark.parametrize("mode", ["resize", "set", "data", "view"])
def test_case_45_a_torch_tensor_moved_under_the_save_is_refused(tmp_path: Path, how: str, mode: str) -> None:
    # Before: the writer read the freed memory: OSError EFAULT (the blocking save) or SIGSEGV (the background copy).
    out = save_in_subprocess(tmp_path, f"MODE, HOW = {mode!r}, {how!r}\n" + RESIZED).splitlines()
    assert out[0] == ('UnsupportedTypeError tensor "a" changed while the data was saved: code the save ran (a to_data, a '
                      "__getstate__) resized it, the array it views or its storage")
    # Nothing written (a sharded save's directory, made first, is removed again); a recording keeps its records.
    assert out[1] == {"recorder": "['saved.safetensors'] None"}.get(how, "[] None")


@pytest.mark.parametrize("how", ["blocking", "background", "sharded", "recorder"])
def test_case_45_a_bytearray_cleared_under_the_save_cannot_be(tmp_path: Path, how: str) -> None:
    # Before: the same; now the save holds a buffer export of the bytearray, and the clear() raises BufferError, which
    # leaves the to_data as every exception does, naming the object's path (case 60).
    out = save_in_subprocess(tmp_path, f"MODE, HOW = 'bytearray', {how!r}\n" + RESIZED).splitlines()
    assert out[0] == ('UnsupportedTypeError cannot save an object of type __main__.Change at $["b"]: BufferError: Existing exports '
                      "of data: object cannot be re-sized")
    # Nothing written (a sharded save's directory, made first, is removed again); a recording keeps its records.
    assert out[1] == {"recorder": "['saved.safetensors'] None"}.get(how, "[] None")


def test_case_45_twin_a_bytearray_is_free_again_after_the_save(tmp_path: Path) -> None:
    ba = bytearray(b"A" * (1 << 20))
    ss.save_file({"a": ba}, tmp_path / "x.safetensors")
    ba.clear()  # no export left behind
    future = ss.save_file({"a": bytearray(b"B" * (1 << 20))}, tmp_path / "y.safetensors", background=True)
    future.result()
    assert ss.load_file(tmp_path / "x.safetensors")["a"] == bytearray(b"A" * (1 << 20))
    assert ss.load_file(tmp_path / "y.safetensors")["a"] == bytearray(b"B" * (1 << 20))


def test_case_45_twin_a_torch_tensor_changed_in_place_is_saved_as_it_stands(tmp_path: Path) -> None:
    # Values written in place keep the memory where it was: the save writes them as they are when it writes.
    body = """
import torch
t = torch.zeros(4)
class Fill:
    pass
def fill(obj):
    t.fill_(5.0)
    return 1
ss.register(Fill, to_data=fill, from_data=lambda d: d)
ss.save_file({"a": t, "b": Fill()}, path)
print(ss.load_file(path, framework="torch")["a"].tolist())
"""
    assert save_in_subprocess(tmp_path, body) == "[5.0, 5.0, 5.0, 5.0]\n"


# --- 46. bool elements stored as bytes other than 0 and 1 ------------------------------------------------------------------

BOOL_MESSAGE = 'tensor "t": element {} of a bool tensor holds the byte {}, which is no bool (0 or 1)'


@pytest.mark.parametrize("framework", [None, "numpy", "torch", "jax", "tensorflow"])
def test_case_46_a_bool_byte_past_one_is_refused(framework: str | None) -> None:
    # Before: loaded; numpy and torch read bytes 2 and 255 as True, JAX's where() read them by their low bit (0, 1) and
    # TensorFlow's logical_not gave True for 255.
    if framework in ("jax", "tensorflow"):
        pytest.importorskip(framework)
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load(crafted.bools_past_one(), framework=framework)
    assert str(info.value) == 'at $["t"]: ' + BOOL_MESSAGE.format(2, 2)
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load(crafted.bools_past_one(plain=True), framework=framework)
    assert str(info.value) == BOOL_MESSAGE.format(2, 2)
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load(crafted.bools_past_one_as_bytes(), framework=framework)
    assert str(info.value) == 'at $["t"]: ' + BOOL_MESSAGE.format(1, 7)


def test_case_46_every_reader_refuses_it(tmp_path: Path) -> None:
    path = tmp_path / "b.safetensors"
    path.write_bytes(crafted.bools_past_one(plain=True))
    for read in (lambda: ss.load_file(path), lambda: ss.load_tensors(path), lambda: ss.open(path)["t"].load()):
        with pytest.raises(ss.InvalidFileError) as info:
            read()
        assert str(info.value).endswith(BOOL_MESSAGE.format(2, 2))


def test_case_46_twin_bools_load_as_views() -> None:
    data = crafted.file_bytes({"t": {"$": "tensor", "name": "t", "fw": "numpy"}}, {"t": ("BOOL", [4], bytes([0, 1, 1, 0]))})
    array = ss.load(data)["t"]
    assert array.tolist() == [False, True, True, False] and not array.flags.owndata
    assert ss.load(data, framework="torch")["t"].tolist() == [False, True, True, False]
    assert ss.load(crafted.file_bytes({"t": {"$": "tensor", "name": "t", "fw": "numpy"}}, {"t": ("BOOL", [0], b"")}))["t"].shape == (0,)

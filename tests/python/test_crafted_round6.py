"""Crafted files of the sixth round of attacks (cases 27 on; docs/security.md's table lists them): numpy arrays built
from a file's bytes, recordings continued with mode="a", and the readers' edges. Each attack has its legitimate twin,
which must keep loading; limits on time or memory only in subprocesses (test_crafted_meaning.run_attack)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest

import crafted
import safestructures as ss
from safestructures._cli import main

# --- 27. a numpy str array holding code units past U+10FFFF ---------------------------------------------------------------

CODE_POINT_MESSAGE = ('at $["t"]: cannot rebuild tensor "t": ValueError: element 1 of dtype {dtype} holds 0x110000, which is not a '
                      "Unicode code point (at most 0x10FFFF)")


@pytest.mark.parametrize("dtype", ["<U1", ">U1"])
@pytest.mark.parametrize("route", ["load", "load_file", "open"])
def test_case_27_a_str_array_past_unicode_is_refused(tmp_path: Path, dtype: str, route: str) -> None:
    # Loaded before: reading its second element (indexing, repr, tolist) raised SystemError from numpy.
    data = crafted.str_array_past_unicode(dtype=dtype)
    path = tmp_path / "u.safetensors"
    path.write_bytes(data)
    with pytest.raises(ss.InvalidFileError) as info:
        if route == "load":
            ss.load(data)
        elif route == "load_file":
            ss.load_file(path)
        else:
            with ss.open(path) as f:
                f.load()
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

"""The bytes on disk do not change: every case of the golden corpus (tests/golden/corpus.py: every tag, shared
objects, cycles, a spilled schema, sharded saves, saves to bytes, every framework installed) saved today gives exactly
the bytes stored in tests/golden/files, and every stored file loads back as the value it was saved from, with exact
types. The files were written by tests/golden/make_golden.py; a change of the format must be deliberate, with new
golden files and a note in docs/format.md.
"""

from __future__ import annotations

import importlib.util
import pathlib
import struct
import sys

import pytest

import safestructures

from conftest import run_python_json

GOLDEN = pathlib.Path(__file__).resolve().parents[1] / "golden"
sys.path.insert(0, str(GOLDEN))

import check  # noqa: E402
import corpus  # noqa: E402


def _require(case: corpus.Case) -> None:
    for module in case.requires:
        if importlib.util.find_spec(module.split(".")[0]) is None:
            pytest.skip(f"{module} is not installed")
    if not case.isolated:
        for module in case.requires:
            pytest.importorskip(module)


ISOLATED_CHECK = """
import runpy, sys, warnings
warnings.simplefilter("ignore")  # paddle warns at import (no ccache); the check asserts, it does not warn
sys.argv = [sys.argv[1], sys.argv[2]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("name", list(corpus.CASES))
def test_saving_gives_the_golden_bytes(name: str) -> None:
    case = corpus.CASES[name]
    _require(case)
    if case.isolated:
        assert run_python_json(ISOLATED_CHECK, str(GOLDEN / "check.py"), name, timeout=300) == "ok"
        return
    check.check_resave(name, case)


@pytest.mark.parametrize("name", [name for name, case in corpus.CASES.items() if not case.isolated])
def test_golden_file_loads_as_the_value(name: str) -> None:
    # (An isolated case's load is checked in its process by test_saving_gives_the_golden_bytes.)
    case = corpus.CASES[name]
    _require(case)
    check.check_load(name, case)


def test_the_cpp_golden_file_loads_in_python() -> None:
    # Written by the C++ API (tests/cpp/test_golden_bytes.cpp, which pins its bytes): Python reads the same tree.
    loaded = safestructures.load_file(corpus.FILES / "cpp_value.safetensors", framework="numpy", strict=True)
    assert loaded["scalars"]["ints"][4:6] == [2**63, 2**64 - 1]
    assert loaded["scalars"]["big"][0] == 0x123456789ABCDEF0123456789ABCDEF
    assert struct.pack("<d", loaded["scalars"]["floats"][10]) == struct.pack("<Q", 0x7FF8DEADBEEF0001)
    assert loaded["scalars"]["strs"][4] == "lone \ud800 high"
    assert loaded["keys"][(1, "t", ())] == "tuple" and loaded["dollar"] == {"$": 1, "x": 2}
    assert loaded["tensors"]["transposed"].tolist() == [[0, 4, 8], [1, 5, 9], [2, 6, 10], [3, 7, 11]]
    assert loaded["tensors"]["step"].tolist() == [[0, 2], [4, 6], [8, 10]]
    shared = loaded["shared"]
    assert shared[0] is shared[1] and shared[2] is shared[3] and shared[4] is shared[5] and shared[6] is shared[7]
    assert loaded["tuple"][0] is shared[0] and loaded[7][0] is shared[4]
    assert loaded["cycle"][1] is loaded["cycle"]


def test_every_golden_file_belongs_to_a_case() -> None:
    expected = {corpus.CASES[name].golden_path(name).name for name in corpus.CASES} | {"cpp_value.safetensors"}
    assert {path.name for path in corpus.FILES.iterdir()} == expected

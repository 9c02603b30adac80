"""The C++ API against the Python package: C++ programs, built against the installed CMake package, read what Python
saved and save what Python loads, with exact values, types and dtypes."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import math
import shutil
import subprocess
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import safetensors.numpy

import safestructures as ss

REPO = Path(__file__).resolve().parents[2]


def run(*command: object) -> str:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="session")
def programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Builds the core (incrementally, in build/), installs it into a fresh prefix, and builds examples/cpp and
    tests/cpp/consumer against that prefix with find_package(safestructures)."""
    cmake = shutil.which("cmake")
    assert cmake is not None, "cmake is installed by scripts/setup.sh"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    core_build = REPO / "build" / "pytest-cpp-api"
    work = tmp_path_factory.mktemp("cpp_api")
    prefix = work / "prefix"
    run(cmake, "-S", REPO, "-B", core_build, *generator, "-DCMAKE_BUILD_TYPE=Release", "-DSAFESTRUCTURES_BUILD_PYTHON=OFF",
        "-DSAFESTRUCTURES_BUILD_TESTS=OFF")
    run(cmake, "--build", core_build, "-j4")
    run(cmake, "--install", core_build, "--prefix", prefix)
    found: dict[str, Path] = {}
    for project, names in ((REPO / "examples" / "cpp", ("print_tree", "save_tree")), (REPO / "tests" / "cpp" / "consumer", ("copy_tree",))):
        build = work / project.name
        run(cmake, "-S", project, "-B", build, *generator, f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_BUILD_TYPE=Release")
        run(cmake, "--build", build)
        found.update({name: build / name for name in names})
    return found


@dataclasses.dataclass
class Point:
    x: int
    y: np.ndarray


class Color(enum.Enum):
    RED = 1


def test_cpp_prints_what_python_saved(programs: dict[str, Path], tmp_path: Path) -> None:
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    data = {
        "model": {"layers": [{"weight": w, "bias": np.array([1, -2], dtype=np.int64)}], "tied": w},
        "step": 10,
        "lr": 0.001,
        "tags": ("a", "b"),
        1: None,
        "big": -(2**70),
        "nan": float("nan"),
        "inf": float("-inf"),
        "flag": True,
        "blob": b"hello",
        "bigblob": bytes(range(100)),
        "set": {3, 1, 2},
        "bf16": np.array([1.5], dtype=ml_dtypes.bfloat16),
        "c128": np.array([1 + 2j]),
        "point": Point(3, np.zeros(2)),
        "color": Color.RED,
        "day": datetime.date(2024, 1, 2),
    }
    path = tmp_path / "py.safetensors"
    ss.save_file(data, path, metadata={"run": "r1"})
    assert run(programs["print_tree"], path) == f"""\
metadata run = r1
dict of 17
  "model": dict of 2
    "layers": list of 1
      [0] dict of 2
        "weight": tensor F32 [2, 3] model.layers.0.weight: 0 1 2 3 4 5
        "bias": tensor I64 [2] model.layers.0.bias: 1 -2
    "tied": ref #1 (tensor)
  "step": int 10
  "lr": float 0.001
  "tags": tuple of 2
    [0] str "a"
    [1] str "b"
  key: int 1
    value: None
  "big": bigint -0x400000000000000000
  "nan": float nan
  "inf": float -inf
  "flag": True
  "blob": bytes of 5 bytes
  "bigblob": bytes of 100 bytes
  "set": set of 3
    [0] int 1
    [1] int 2
    [2] int 3
  "bf16": tensor BF16 [1] bf16
  "c128": tensor U8 [16] c128 numpy <c16
  "point": dataclass {Point.__module__}.Point
    fields: dict of 2
      "x": int 3
      "y": tensor F64 [2] point.y: 0 0
  "color": enum {Color.__module__}.Color
    name: str "RED"
    value: int 1
  "day": date
    iso: str "2024-01-02"
"""


def test_cpp_reads_a_plain_safetensors_file(programs: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    safetensors.numpy.save_file({"b": np.array([7], dtype=np.int32), "a": np.ones((1, 2), dtype=np.float64)}, str(path), metadata={"k": "v"})
    assert run(programs["print_tree"], path) == """\
metadata k = v
dict of 2
  "a": tensor F64 [1, 2] a: 1 1
  "b": tensor I32 [1] b: 7
"""


def test_cpp_errors_name_the_path(programs: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    # A schema that refers to a tensor the file lacks: written by hand, as no saver would write it.
    schema = '{"format":"safestructures","version":2,"root":{"a":[{"$":"tensor","name":"gone","fw":"numpy"}]}}'
    safetensors.numpy.save_file({"x": np.zeros(1, dtype=np.uint8)}, str(path), metadata={"__safestructures__": schema})
    result = subprocess.run([str(programs["print_tree"]), str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert result.stderr == 'error (TensorNotFound): at $["a"][0]: the schema refers to tensor "gone", which the file lacks\n'


def test_python_loads_what_cpp_saved(programs: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "cpp.safetensors"
    assert run(programs["save_tree"], path) == f"saved {path}\n"
    data = ss.load_file(path)
    weight = data["model"]["layers"][0]["weight"]
    assert type(weight) is np.ndarray and weight.dtype == np.float32 and weight.shape == (2, 3)
    np.testing.assert_array_equal(weight, [[0.5, -1.0, 2.0], [4.0, 8.0, 16.0]])
    bias = data["model"]["layers"][0]["bias"]
    assert bias.dtype == np.int64
    np.testing.assert_array_equal(bias, [1, 2, 3])
    assert data["model"]["tied"] is weight
    assert list(data) == ["model", "step", "lr", "loss", "name", "done", "note", "betas", "big", 7]
    assert type(data["step"]) is int and data["step"] == 10
    assert type(data["lr"]) is float and data["lr"] == 0.001
    assert math.isnan(data["loss"])
    assert data["name"] == "run-1" and data["done"] is True and data["note"] is None
    assert data["betas"] == (0.9, 0.999) and type(data["betas"]) is tuple
    assert data["big"] == 2**80
    assert data[7] == "an int key"
    # The same data saved by Python gives the same file, byte for byte.
    w = np.array([[0.5, -1.0, 2.0], [4.0, 8.0, 16.0]], dtype=np.float32)
    same = {
        "model": {"layers": [{"weight": w, "bias": np.array([1, 2, 3], dtype=np.int64)}], "tied": w},
        "step": 10,
        "lr": 0.001,
        "loss": float("nan"),
        "name": "run-1",
        "done": True,
        "note": None,
        "betas": (0.9, 0.999),
        "big": 2**80,
        7: "an int key",
    }
    assert path.read_bytes() == ss.save(same, metadata={"written_by": "save_tree"})


def test_cpp_copy_of_a_python_file_is_the_same_file(programs: dict[str, Path], tmp_path: Path) -> None:
    """C++ reads every node of a Python file and saves it again: the two files are identical, so the C++ side reads
    and writes values, tensor names, shared objects and cycles exactly as Python does."""
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    shared = [1, 2]
    cycle: list = []
    cycle.append(cycle)
    big = bytes(range(100))
    t = np.zeros(1, dtype=np.int16)
    data = {
        "model": {"layers": [{"weight": w, "bias": np.array([1, -2], dtype=np.int64)}], "tied": w},
        "lists": [shared, shared, (1, (2.5, "t")), (), [[[[]]]]],
        7: "int key",
        (1, "a"): b"tuple key",
        None: -(2**70),
        "$": 1.0,
        "floats": [0.1, -0.0, 1e300, 5e-324, float("inf"), float("-inf"), float("nan")],
        "strings": ["", "h\u00e9", "\ud800 lone", "ctl\n\x00"],
        "bytes": [b"", b"hi", big, big, bytes(64), bytes(65)],
        "ints": [0, -1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**200],
        "dtypes": [np.arange(3).astype(d) for d in (np.bool_, np.uint8, np.int8, np.int16, np.uint16, np.float16, ml_dtypes.bfloat16,
                                                   np.int32, np.uint32, np.complex64, np.float32, np.float64, np.int64, np.uint64,
                                                   ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2)],
        "shapes": [np.array(2.0, dtype=np.float32), np.zeros((0, 3)), np.ones((2, 1, 2), dtype=np.int8)],
        "names": {(1, "a'b"): t, 1e16: t, 0.0001: t.copy(), 2.5: t.copy(), False: t.copy(), b"x\x00'": t.copy(), 2**70: t.copy(),
                  "ctl\n": t.copy(), "__metadata__": t.copy(), "a.b": t.copy(), "a": {"b": t.copy()}},
        "cycle": cycle,
        "empty": {},
    }
    source = tmp_path / "in.safetensors"
    copy = tmp_path / "out.safetensors"
    ss.save_file(data, source, metadata={"run": "r1", "a": "b"})
    run(programs["copy_tree"], source, copy)
    assert copy.read_bytes() == source.read_bytes()
    back = ss.load_file(copy)
    assert back["lists"][0] is back["lists"][1]
    assert back["cycle"][0] is back["cycle"]
    assert back["strings"][2] == "\ud800 lone"
    assert back[None] == -(2**70)


def test_cpp_copy_refuses_what_its_builder_lacks(programs: dict[str, Path], tmp_path: Path) -> None:
    source = tmp_path / "in.safetensors"
    ss.save_file({"a": [datetime.date(2024, 1, 2)]}, source)
    result = subprocess.run([str(programs["copy_tree"]), str(source), str(tmp_path / "out")], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert result.stderr == 'error (InvalidArgument): at $["a"][0]: copy_tree cannot build a date\n'
    assert not (tmp_path / "out").exists()

"""Shared helpers for the safestructures Python tests.

The test modules import these helpers with ``from conftest import ...`` (pytest puts this directory on sys.path, as
the test directory has no ``__init__.py``). Everything here is independent of safestructures itself: files built by
hand, a reference bit packer and array comparisons, so that the tests never check the library against itself. The one
exception is the ``roundtrip`` fixture of the structured tests, which only drives the public save/load functions.
"""

from __future__ import annotations

import collections
import json
import os
import struct
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Property tests: no deadline (timings vary on a loaded machine), no example database written into the checkout, and a
# modest default number of examples so that the whole suite stays fast.
settings.register_profile(
    "safestructures",
    deadline=None,
    database=None,
    max_examples=50,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
settings.load_profile("safestructures")

# ---------------------------------------------------------------------------------------------------------------------
# Dtype tables (written out here on purpose rather than taken from safestructures.frameworks.numpy).

#: numpy's own dtypes that safetensors.numpy reads and writes, with their safetensors dtype names.
NATIVE_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "I8": np.dtype(np.int8),
    "I16": np.dtype(np.int16),
    "I32": np.dtype(np.int32),
    "I64": np.dtype(np.int64),
    "U8": np.dtype(np.uint8),
    "U16": np.dtype(np.uint16),
    "U32": np.dtype(np.uint32),
    "U64": np.dtype(np.uint64),
    "F16": np.dtype(np.float16),
    "F32": np.dtype(np.float32),
    "F64": np.dtype(np.float64),
    "C64": np.dtype(np.complex64),
}

#: The whole-byte dtypes that numpy only holds through ml_dtypes (safetensors.numpy cannot load them).
ML_DTYPES: dict[str, np.dtype[Any]] = {
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
    "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn),
    "F8_E8M0": np.dtype(ml_dtypes.float8_e8m0fnu),
    "F8_E4M3FNUZ": np.dtype(ml_dtypes.float8_e4m3fnuz),
    "F8_E5M2FNUZ": np.dtype(ml_dtypes.float8_e5m2fnuz),
}

#: Sub-byte dtypes: ml_dtypes keeps one element code per byte, the file packs them; name -> (dtype, bits).
SUB_BYTE_DTYPES: dict[str, tuple[np.dtype[Any], int]] = {
    "F4": (np.dtype(ml_dtypes.float4_e2m1fn), 4),
    "F6_E2M3": (np.dtype(ml_dtypes.float6_e2m3fn), 6),
    "F6_E3M2": (np.dtype(ml_dtypes.float6_e3m2fn), 6),
}

#: Every safetensors dtype name -> the numpy dtype that holds it.
ALL_DTYPES: dict[str, np.dtype[Any]] = {**NATIVE_DTYPES, **ML_DTYPES, **{k: v[0] for k, v in SUB_BYTE_DTYPES.items()}}

#: Shapes worth covering for every dtype: scalar, zero-size (several ways), vector, matrix, 3-d.
SHAPES: list[tuple[int, ...]] = [(), (0,), (0, 3), (3, 0, 2), (1,), (8,), (2, 4), (2, 3, 4)]


def element_count(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def sample_array(dtype: np.dtype[Any] | str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A C-contiguous array of ``dtype`` (a numpy dtype or a safetensors name) with deterministic, varied content.

    Whole-byte types get random bit patterns (NaNs, infinities and negative zeros included), booleans random
    True/False, sub-byte types random codes within their width.
    """
    if isinstance(dtype, str):
        dtype = ALL_DTYPES[dtype]
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    n = element_count(shape)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    for _name, (sub_dtype, bits) in SUB_BYTE_DTYPES.items():
        if dtype == sub_dtype:
            codes = rng.integers(0, 1 << bits, size=n, dtype=np.uint8)
            return codes.view(dtype).reshape(shape)
    raw = rng.integers(0, 256, size=n * dtype.itemsize, dtype=np.uint8)
    return raw.view(dtype).reshape(shape)


def native(array: np.ndarray) -> np.ndarray:
    """``array`` as a C-ordered array in native byte order with the same values."""
    array = np.asarray(array)
    if array.dtype.byteorder not in ("=", "|"):
        array = array.astype(array.dtype.newbyteorder("="))
    return array.copy(order="C")  # not np.ascontiguousarray, which turns 0-d arrays into 1-d ones


def assert_identical(actual: Any, expected: Any) -> None:
    """``actual`` is a numpy array with exactly ``expected``'s values: same shape, native dtype, bitwise equal bytes.

    NaNs (whatever their payload) compare equal to themselves and -0.0 differs from 0.0, since bits are compared.
    """
    expected = native(expected)
    assert isinstance(actual, np.ndarray), type(actual)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.dtype.byteorder in ("=", "|") or actual.dtype.isnative, actual.dtype
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if expected.dtype in NATIVE_DTYPES.values():
        assert np.array_equal(actual, expected, equal_nan=expected.dtype.kind in "fc")
    assert actual.tobytes() == expected.tobytes()


def assert_identical_dicts(actual: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    assert isinstance(actual, dict), type(actual)
    assert set(actual) == set(expected)
    for name, value in expected.items():
        assert_identical(actual[name], value)


def layouts(base: np.ndarray) -> dict[str, np.ndarray]:
    """Views of a 3-d array that are not C-contiguous (plus a big-endian and a broadcast one)."""
    assert base.ndim == 3 and base.flags.c_contiguous
    views = {
        "steps": base[::2, 1:, ::3],
        "transpose": base.transpose(2, 0, 1),
        "negative": base[::-1, :, ::-2],
        "negative_all": base[::-1, ::-1, ::-1],
        "fortran": np.asfortranarray(base),
        "column": base[:, 1, :],
        "inner_contiguous": base[:, ::2, :],
        "broadcast": np.broadcast_to(base[:1, :1, :], (2, 3, base.shape[2])),
        "zero_size_view": base[:, 2:2, :],
        "scalar_view": base[1:2, 2:3, 3:4].reshape(()),
    }
    # numpy's own multi-byte dtypes also come big-endian (ml_dtypes' types have no big-endian form).
    if base.dtype in NATIVE_DTYPES.values() and base.dtype.itemsize > 1:
        big = base.astype(base.dtype.newbyteorder(">"))
        views["big_endian"] = big
        views["big_endian_transposed"] = big.T
    for name in ("steps", "transpose", "negative", "negative_all", "fortran", "column", "inner_contiguous", "broadcast"):
        assert not views[name].flags.c_contiguous, name
    return views


# ---------------------------------------------------------------------------------------------------------------------
# Reference implementations of the container, independent of the library under test.


def reference_pack(codes: np.ndarray | bytes, bits: int) -> bytes:
    """Pack one code per byte into a little-endian bit stream, element 0 in the lowest bits."""
    values = bytes(np.asarray(codes, dtype=np.uint8).tobytes()) if not isinstance(codes, bytes) else codes
    assert len(values) * bits % 8 == 0
    stream = 0
    for i, code in enumerate(values):
        assert code < (1 << bits)
        stream |= code << (i * bits)
    return stream.to_bytes(len(values) * bits // 8, "little")


def reference_unpack(packed: bytes, bits: int, elements: int) -> bytes:
    stream = int.from_bytes(packed, "little")
    mask = (1 << bits) - 1
    return bytes((stream >> (i * bits)) & mask for i in range(elements))


def padded_header(header_json: bytes) -> bytes:
    """The reference writer's padding: spaces up to a multiple of 8 bytes."""
    return header_json + b" " * (-len(header_json) % 8)


def make_file_bytes(header: Any, data: bytes = b"", *, raw_header: bytes | None = None, length: int | None = None) -> bytes:
    """The bytes of a safetensors file built by hand: an 8-byte length, the header, then ``data``.

    ``header`` is JSON-encoded compactly unless ``raw_header`` gives the exact header bytes; ``length`` overrides the
    length prefix (to build files whose prefix lies).
    """
    text = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    prefix = struct.pack("<Q", len(text) if length is None else length)
    return prefix + text + data


def write_file_bytes(path: Path, *args: Any, **kwargs: Any) -> Path:
    path.write_bytes(make_file_bytes(*args, **kwargs))
    return path


def split_file(data: bytes) -> tuple[bytes, bytes]:
    """(header bytes, data buffer) of a safetensors file."""
    (n,) = struct.unpack("<Q", data[:8])
    return data[8 : 8 + n], data[8 + n :]


def read_header(path: Path) -> dict[str, Any]:
    return json.loads(split_file(path.read_bytes())[0])


def temporary_files(directory: Path) -> list[str]:
    """Leftover temporary files of the atomic writer ('.NAME.*.tmp') in ``directory``."""
    return sorted(name for name in os.listdir(directory) if name.startswith(".") and name.endswith(".tmp"))


def file_mappings(path: Path) -> list[tuple[int, int]]:
    """The address ranges of this process's memory mappings of ``path``, from /proc/self/maps."""
    target = os.path.realpath(path)
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].rstrip("\n") == target:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                ranges.append((start, end))
    return ranges


def data_pointer(array: np.ndarray) -> int:
    return int(array.__array_interface__["data"][0])


# ---------------------------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture
def small_tensors() -> dict[str, np.ndarray]:
    """A few tensors of different dtypes and shapes, for tests that need some valid content."""
    return {
        "weight": sample_array("F32", (2, 3), seed=1),
        "bias": sample_array("F64", (3,), seed=2),
        "steps": np.array(7, dtype=np.int64),
        "mask": sample_array("BOOL", (4,), seed=3),
        "empty": np.zeros((0, 3), dtype=np.int16),
    }


@pytest.fixture
def valid_file(tmp_path: Path) -> Path:
    """A small valid file written by hand (two tensors and metadata), independent of the writer under test."""
    a = np.arange(4, dtype="<f4")
    b = np.array([1, 2, 3], dtype="<i2")
    header = {
        "__metadata__": {"format": "np"},
        "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
        "b": {"dtype": "I16", "shape": [3], "data_offsets": [16, 22]},
    }
    return write_file_bytes(tmp_path / "valid.safetensors", header, a.tobytes() + b.tobytes())


# ---------------------------------------------------------------------------------------------------------------------
# Structured files (save/load): the schema document, crafted files, exact comparison of nested data.

#: The metadata key under which structured files keep their schema document.
SCHEMA_KEY = "__safestructures__"


def header_of(data: bytes) -> dict[str, Any]:
    """The parsed JSON header of the bytes of a safetensors file."""
    return json.loads(split_file(data)[0])


def schema_of(data: bytes) -> dict[str, Any]:
    """The schema document of the bytes of a structured file, parsed."""
    return json.loads(header_of(data)["__metadata__"][SCHEMA_KEY])


def schema_document(root: Any, *, version: Any = 2, fmt: Any = "safestructures") -> str:
    """A schema document (JSON text) with ``root`` as its root node."""
    return json.dumps({"format": fmt, "version": version, "root": root}, separators=(",", ":"), ensure_ascii=False)


def structured_file_bytes(
    schema: Any,
    tensors: Mapping[str, tuple[str, list[int], bytes]] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> bytes:
    """A file built by hand around a crafted schema: ``schema`` is the root node (made into a version-2 document) or,
    when a str, the exact text stored under the schema key; ``tensors`` maps names to (dtype, shape, bytes)."""
    text = schema if isinstance(schema, str) else schema_document(schema)
    header: dict[str, Any] = {"__metadata__": {**(metadata or {}), SCHEMA_KEY: text}}
    data = b""
    for name, (dtype, shape, raw) in (tensors or {}).items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    return make_file_bytes(header, data)


def float_bits(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", value))[0]


def float_from_bits(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def _same_atom(actual: Any, expected: Any) -> bool:
    if type(expected) is float:
        return float_bits(actual) == float_bits(expected)
    if type(expected) is complex:
        return float_bits(actual.real) == float_bits(expected.real) and float_bits(actual.imag) == float_bits(expected.imag)
    if isinstance(expected, np.generic):
        return actual.dtype == expected.dtype and actual.dtype.str == expected.dtype.str and value_bytes(actual) == value_bytes(expected)
    if isinstance(expected, np.ndarray):
        return (
            actual.dtype == expected.dtype
            and actual.dtype.str == expected.dtype.str
            and actual.shape == expected.shape
            and value_bytes(actual) == value_bytes(expected)
        )
    if type(expected) in (int, bool, str, bytes, bytearray, type(None)):
        return bool(actual == expected)
    # Everything else (dates, Decimal, paths, ranges...) by repr: it tells apart what == does not (Decimal('-0') from
    # Decimal('0'), a datetime's fold, a timezone's name) and equates what == does not (Decimal('NaN')).
    return repr(actual) == repr(expected)


def assert_same(actual: Any, expected: Any) -> None:
    """``actual`` is ``expected`` rebuilt exactly: the same type at every level (bool is not int, tuple is not list),
    floats and complex numbers bitwise (NaN payloads and -0.0 included), arrays with the same dtype (byte order
    included), shape and bytes, dicts with the same keys in the same order, sets and frozensets holding exactly the
    same elements, deques with the same maxlen, defaultdicts with the same factory.

    Iterative, so that deep data cannot overflow the stack; a pair of containers already compared is not compared again,
    so cycles terminate (identity itself is checked by the tests that care).
    """
    stack: list[tuple[Any, Any, str]] = [(actual, expected, "$")]
    seen: set[tuple[int, int]] = set()
    while stack:
        a, e, where = stack.pop()
        assert type(a) is type(e), f"{where}: {type(a).__name__} is not {type(e).__name__}"
        if isinstance(e, (list, tuple, dict, set, frozenset, collections.deque)):
            if (id(a), id(e)) in seen:
                continue
            seen.add((id(a), id(e)))
        if isinstance(e, (list, tuple, collections.deque)):
            assert len(a) == len(e), f"{where}: length {len(a)} != {len(e)}"
            if isinstance(e, collections.deque):
                assert a.maxlen == e.maxlen, f"{where}: maxlen {a.maxlen} != {e.maxlen}"
            stack.extend((x, y, f"{where}[{i}]") for i, (x, y) in enumerate(zip(a, e)))
        elif isinstance(e, dict):
            assert len(a) == len(e), f"{where}: {len(a)} keys != {len(e)}"
            if isinstance(e, collections.defaultdict):
                assert a.default_factory is e.default_factory, f"{where}: factory {a.default_factory} != {e.default_factory}"
            for i, ((ka, va), (ke, ve)) in enumerate(zip(a.items(), e.items())):
                stack.append((ka, ke, f"{where}.key{i}"))
                stack.append((va, ve, f"{where}[{ke!r}]"))
        elif isinstance(e, (set, frozenset)):
            assert len(a) == len(e), f"{where}: {len(a)} items != {len(e)}"
            remaining = list(a)
            for item in e:
                for k, candidate in enumerate(remaining):
                    try:
                        assert_same(candidate, item)
                    except AssertionError:
                        continue
                    del remaining[k]
                    break
                else:
                    raise AssertionError(f"{where}: {item!r} is missing from {a!r}")
        else:
            assert _same_atom(a, e), f"{where}: {a!r} != {e!r}"


def python_command(code: str, *args: str) -> list[str]:
    """The command line that runs ``code`` (dedented) in a fresh interpreter, warnings as errors, ``args`` as
    sys.argv[1:]."""
    return [sys.executable, "-W", "error", "-c", textwrap.dedent(code), *args]


def run_python(
    code: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Runs ``code`` (dedented) in a fresh interpreter with ``args`` as sys.argv[1:], warnings as errors, and returns the
    finished process: a crash shows as a negative return code instead of taking the test session down."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(python_command(code, *args), capture_output=True, text=True, timeout=timeout, env=full_env)


#: Python source, for scripts run with :func:`run_python`, of ``memory_mb(field)``: a memory figure of the running
#: process from /proc/self/status in MiB, "VmHWM" its peak RSS, "VmRSS" its RSS now. (Not resource.getrusage's ru_maxrss,
#: which on Linux also counts the RSS of the parent the process was started from.)
MEMORY_MB_SOURCE = """
def memory_mb(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise LookupError(field)
"""


def run_python_json(code: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120) -> Any:
    """Runs ``code`` as :func:`run_python` does and returns the JSON value of the last line it printed. A crash (a
    signal), a non-zero exit or running past ``timeout`` seconds fails the test, with the end of the process's output."""
    try:
        result = run_python(code, *args, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the subprocess did not finish within {timeout} s; its output ended with: {str(e.stdout)[-2000:]}")
    assert result.returncode == 0, f"exit status {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    lines = result.stdout.strip().splitlines()
    assert lines, f"the subprocess printed nothing; stderr: {result.stderr[-4000:]}"
    return json.loads(lines[-1])


def start_python(code: str, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """Starts ``code`` (as :func:`run_python` runs it) without waiting for it: for tests that act on a running process.
    Its output is captured (``communicate()`` returns it)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.Popen(python_command(code, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)


def write_pieces(path: Path, *pieces: bytes | tuple[bytes, int]) -> Path:
    """Writes a (possibly large) file from ``pieces``: bytes written as they are, or ``(chunk, count)`` for ``chunk``
    repeated ``count`` times, streamed in pieces of a few MiB so that the file never has to be held in memory."""
    with open(path, "wb") as out:
        for piece in pieces:
            if isinstance(piece, tuple):
                chunk, count = piece
                block = chunk * max(1, (4 << 20) // max(1, len(chunk)))
                per_block = len(block) // len(chunk) if chunk else count
                while count > 0:
                    n = min(count, per_block)
                    out.write(block[: n * len(chunk)])
                    count -= n
            else:
                out.write(piece)
    return path


def nested_sample(seed: int, *, size: int = 4) -> dict[str, Any]:
    """Nested data holding arrays, all different for different ``seed``: dicts (str and non-str keys), lists,
    tuples, sets, bytes, a shared list (stored once, loads as one object), big ints, special floats, and arrays of
    several dtypes (big-endian and one safetensors lacks included) with ``size`` elements or so each."""
    shared = [seed, f"shared-{seed}"]
    return {
        "seed": seed,
        "weights": {
            "w": sample_array("F32", (size, 3), seed=seed),
            "b": sample_array("BF16", (size,), seed=seed + 1),
            "big_endian": np.arange(seed, seed + size, dtype=">i4"),
            "wide": (np.arange(size) + 1j * seed).astype(np.complex128),
        },
        "layers": [{"index": i, "scale": seed / (i + 1), "mask": sample_array("BOOL", (size,), seed=seed + i)} for i in range(3)],
        "pairs": {seed: "int key", (seed, "t"): frozenset({seed, -seed - 1})},
        "tuple": (None, True, float("nan"), -0.0, 2**80 + seed, b"\x00\xff" * (seed % 40 + 1)),
        "shared": shared,
        "again": shared,
        "text": f"seed {seed} \u00e9\u4e2d",
    }


@pytest.fixture(params=["bytes", "file-str", "file-Path"])
def roundtrip(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """``roundtrip(data, **load_options)``: ``data`` saved and loaded back by one of three routes: ``save``/``load``
    (bytes), or ``save_file``/``load_file`` with a str path or with a pathlib.Path."""
    import safestructures

    path = tmp_path / "roundtrip.safestructures"

    def run(data: Any, **options: Any) -> Any:
        if request.param == "bytes":
            return safestructures.load(safestructures.save(data), **options)
        target = str(path) if request.param == "file-str" else path
        safestructures.save_file(data, target)
        return safestructures.load_file(target, **options)

    run.route = request.param  # type: ignore[attr-defined]
    return run


def value_bytes(value: Any) -> bytes:
    """The C-order bytes of an array or numpy scalar that hold its value: for x87 long doubles (80 bits kept in 12 or
    16 bytes) only the 10 significant bytes of each part, since the padding is whatever was in memory."""
    array = np.ascontiguousarray(value)
    part = np.empty(0, dtype=array.dtype).real.dtype
    raw = array.reshape(-1).view(np.uint8)
    if part.kind == "f" and part.itemsize in (12, 16) and np.finfo(part).nmant == 63:
        return raw.reshape(-1, part.itemsize)[:, :10].tobytes()
    return raw.tobytes()


def padding_is_zero(value: Any) -> bool:
    """True when every padding byte of an x87 long double array or scalar is zero (trivially true for other dtypes)."""
    array = np.ascontiguousarray(value)
    part = np.empty(0, dtype=array.dtype).real.dtype
    if not (part.kind == "f" and part.itemsize in (12, 16) and np.finfo(part).nmant == 63):
        return True
    return not array.reshape(-1).view(np.uint8).reshape(-1, part.itemsize)[:, 10:].any()


# ---------------------------------------------------------------------------------------------------------------------
# Framework tensors (torch, TensorFlow, JAX). Nothing here imports a framework at import time: the helpers import one
# only when handed its tensors, or when a test that needs it asks.

#: torch dtypes that have a safetensors dtype: the name of the torch attribute -> the safetensors dtype name.
TORCH_DTYPES: dict[str, str] = {
    "bool": "BOOL",
    "uint8": "U8",
    "uint16": "U16",
    "uint32": "U32",
    "uint64": "U64",
    "int8": "I8",
    "int16": "I16",
    "int32": "I32",
    "int64": "I64",
    "float16": "F16",
    "bfloat16": "BF16",
    "float32": "F32",
    "float64": "F64",
    "complex64": "C64",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
    "float8_e8m0fnu": "F8_E8M0",
    "float8_e4m3fnuz": "F8_E4M3FNUZ",
    "float8_e5m2fnuz": "F8_E5M2FNUZ",
}


def import_framework(name: str) -> Any:
    """``pytest.importorskip(name)`` for a deep-learning framework, once per test module: the module's tests skip where
    it is not installed. Deprecation notices raised by the framework's own import (not by safestructures) are ignored,
    since pytest turns warnings into errors; TensorFlow's C++ start-up logging is quieted."""
    if name == "tensorflow":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        return pytest.importorskip(name)


def framework_name(value: Any) -> str:
    """Which framework a tensor belongs to, from its type's module: "numpy", "torch", "tensorflow" or "jax"."""
    top = type(value).__module__.split(".", 1)[0]
    return {"jaxlib": "jax", "keras": "tensorflow"}.get(top, top)


def tensor_bytes(value: Any) -> bytes:
    """The C-order bytes of a numpy array, torch tensor (any dtype: bool, complex32, float4_e2m1fn_x2, 0-d...),
    TensorFlow tensor or variable, or JAX array: what bitwise comparisons compare (NaN payloads included)."""
    framework = framework_name(value)
    if framework == "torch":
        torch = sys.modules["torch"]
        value = value.detach().cpu()
        if value.is_complex():
            value = torch.view_as_real(value)  # a contiguous copy of complex32 would warn that ComplexHalf is experimental
        return bytes(value.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    if framework == "tensorflow":
        return value_bytes(np.asarray(value.numpy()))
    if framework == "jax":
        return value_bytes(np.asarray(value))
    return value_bytes(value)


def torch_sample(dtype: Any, shape: tuple[int, ...], seed: int = 0) -> Any:
    """A contiguous torch tensor of ``dtype`` with random bit patterns (NaNs, infinities, -0.0 and all for floats;
    0 or 1 for bool), built from bytes so that every torch dtype works, float8, complex32 and float4_e2m1fn_x2 too."""
    import torch

    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=(*shape, dtype.itemsize), dtype=np.uint8)
    if dtype == torch.bool:
        raw %= 2
    return torch.from_numpy(raw.reshape(-1)).view(dtype).reshape(shape)


@pytest.fixture
def jax_x64() -> Any:
    """JAX with 64-bit types enabled (int64, uint64, float64, complex128) for the duration of one test."""
    jax = import_framework("jax")
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield jax
    finally:
        jax.config.update("jax_enable_x64", previous)


# ---------------------------------------------------------------------------------------------------------------------
# User types: the class registry, and what a malicious file would want to reach.


@pytest.fixture
def clean_registry() -> Any:
    """Puts safestructures' process-wide class registry back as it was after the test, so that classes one test
    registers (``safestructures.register``) are not known to the next."""
    from safestructures import _registry

    by_type, by_name = dict(_registry._BY_TYPE), dict(_registry._BY_NAME)
    try:
        yield
    finally:
        _registry._BY_TYPE.clear()
        _registry._BY_TYPE.update(by_type)
        _registry._BY_NAME.clear()
        _registry._BY_NAME.update(by_name)


@pytest.fixture
def call_recorders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replaces what a malicious file would want to reach (os.system, subprocess.Popen, eval, exec,
    importlib.import_module) with recorders that fail when called; returns the list of what was called."""
    import builtins
    import importlib

    called: list[str] = []

    def recorder(name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> None:
            called.append(name)
            raise AssertionError(f"{name} was called")

        return record

    monkeypatch.setattr(os, "system", recorder("os.system"))
    monkeypatch.setattr(subprocess, "Popen", recorder("subprocess.Popen"))
    monkeypatch.setattr(builtins, "eval", recorder("eval"))
    monkeypatch.setattr(builtins, "exec", recorder("exec"))
    monkeypatch.setattr(importlib, "import_module", recorder("importlib.import_module"))
    return called


def tensor_names(data: bytes) -> list[str]:
    """The names of the tensors in the bytes of a safetensors file, in header order (``__metadata__`` left out)."""
    return [name for name in header_of(data) if name != "__metadata__"]


def save_and_load(data: Any, route: str, tmp_path: Path, **options: Any) -> tuple[Any, dict[str, Any]]:
    """``data`` saved and loaded back by ``route`` ("file", "bytes" or "bytearray"), with load ``options``; returns
    (loaded data, the file's parsed header)."""
    import safestructures

    if route == "file":
        path = tmp_path / "data.safetensors"
        safestructures.save_file(data, path)
        return safestructures.load_file(path, **options), read_header(path)
    blob = safestructures.save(data)
    return safestructures.load(bytearray(blob) if route == "bytearray" else blob, **options), header_of(blob)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a process group's rendezvous)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_ranks(main: Any, world: int, *args: Any, timeout: float = 300) -> None:
    """Runs ``main(rank, world, port, *args)`` in ``world`` spawned processes (torch.multiprocessing) and waits for them:
    a rank's exception fails the test with its traceback, running past ``timeout`` seconds fails it too, and the ranks
    still alive then are terminated. ``main`` is a module-level function, which a spawned process can import."""
    import time

    import torch.multiprocessing

    context = torch.multiprocessing.start_processes(main, args=(world, free_port(), *args), nprocs=world, join=False,
                                                    start_method="spawn")
    deadline = time.monotonic() + timeout
    try:
        # join raises ProcessRaisedException with the failing rank's traceback.
        while not context.join(timeout=max(0.1, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                pytest.fail(f"the {world} ranks did not finish within {timeout} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.terminate()
                process.join(5)


def exit_rank() -> None:
    """Ends a rank of run_ranks whose checks all passed, at once: now and then, torch's own teardown at interpreter exit
    aborts the process ("terminate called without an active exception", after the process group is destroyed), which
    would fail the run for nothing the test does."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

"""Regression tests of issue 14's cases in the framework adapters and the writer: tensors over a bytearray hold it (3),
copies and materialised views are charged to max_bytes (4, 5, 15), a file never chooses an import (10), framework
errors come out as safestructures errors (11), and saves remove the temporary files of killed saves (14). Blow-ups run
in subprocesses, judged by their peak memory, never by a timed assertion."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import crafted
import safestructures
from conftest import MEMORY_MB_SOURCE, python_command, run_python_json, temporary_files
from safestructures import InvalidFileError, UnsupportedTypeError

FRAMEWORK_MODULES = ("torch", "tensorflow", "jax", "paddle", "mlx")


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def needs(*modules: str) -> pytest.MarkDecorator:
    missing = [m for m in modules if not installed(m)]
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not installed")


# Imports a framework in a subprocess run with warnings as errors (TensorFlow and paddle warn as they import).
IMPORT_QUIETLY = """
import warnings
def import_quietly(name):
    import importlib
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module(name)
"""


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def limit_error(call: Any) -> InvalidFileError:
    with pytest.raises(InvalidFileError) as info:
        call()
    assert info.value.code == "LimitExceeded", info.value
    return info.value


# --- 3. tensors over a bytearray hold its buffer --------------------------------------------------------------------------


@needs("torch")
@pytest.mark.parametrize("kind", ["bytearray", "memoryview"])
def test_case_03_torch_tensors_hold_the_bytearray_they_view(kind: str) -> None:
    script = """
import json, sys
import numpy as np, torch, safestructures as ss
kind = sys.argv[1]
w = torch.arange(64, dtype=torch.float32)
b = bytearray(ss.save({"w": w, "half": w[::2], "tied": w, "c": torch.arange(3, dtype=torch.float64).to(torch.complex128)}))
start = np.frombuffer(b, np.uint8).ctypes.data
source = memoryview(b) if kind == "memoryview" else b
x = ss.load(source, framework="torch")
inside = [start <= t.data_ptr() < start + len(b) for t in (x["w"], x["half"], x["tied"])]
values = [x["w"].tolist() == w.tolist(), x["half"].tolist() == w[::2].tolist(), x["tied"] is x["w"], x["c"].tolist() == [0j, 1 + 0j, 2 + 0j]]
def clear():
    try:
        b.clear()
        return "cleared"
    except BufferError as e:
        return "BufferError"
while_live = clear()
half = x["half"]
del x, source
while_view_lives = clear()  # a view of the storage holds it too
del half
after = clear()
print(json.dumps([inside, values, while_live, while_view_lives, after, len(b)]))
"""
    inside, values, while_live, while_view_lives, after, size = run_python_json(script, kind, timeout=120)
    assert inside == [True, True, True]  # zero-copy: every tensor is in the bytearray's memory
    assert values == [True, True, True, True]
    assert (while_live, while_view_lives, after, size) == ("BufferError", "BufferError", "cleared", 0)


# --- 5. zero-stride views materialised within the budget ---------------------------------------------------------------------


def jax_view(shape: list[int]) -> bytes:
    """A view saved from jax (base and view both say "fw": "jax") with every stride 0, over one float32 1.5."""
    base = {"$": "tensor", "name": "b", "fw": "jax"}
    view = {"$": "tensor", "storage": "b", "offset": 0, "shape": shape, "stride": [0] * len(shape), "fw": "jax"}
    return crafted.file_bytes({"base": base, "view": view}, {"b": ("F32", [1], struct.pack("<f", 1.5))})


@needs("jax", "tensorflow", "mlx")
def test_case_05_expanded_view_is_refused_beyond_max_bytes(tmp_path: Path) -> None:
    files = {
        "huge_tf": write(tmp_path, "huge.st", crafted.expanded_view([2**30, 2**30])),
        "gib_jax": write(tmp_path, "gib.st", jax_view([16384, 16384])),
        "huge_jax": write(tmp_path, "hugejax.st", jax_view([2**30, 2**30])),
    }
    script = MEMORY_MB_SOURCE + IMPORT_QUIETLY + """
import json, sys
import safestructures as ss
for name in ("tensorflow", "jax", "mlx.core"):
    import_quietly(name)
files = json.loads(sys.argv[1])
before = memory_mb("VmHWM")
out = {}
for key, framework in (("huge_tf", "tensorflow"), ("huge_tf", "mlx"), ("gib_jax", None), ("huge_jax", None), ("gib_jax", "tensorflow")):
    try:
        ss.load_file(files[key], framework=framework)
        out[f"{key}-{framework}"] = "loaded"
    except ss.InvalidFileError as e:
        out[f"{key}-{framework}"] = [e.code, str(e)]
print(json.dumps([out, memory_mb("VmHWM") - before]))
"""
    out, grown_mb = run_python_json(script, json.dumps(files), timeout=300)
    assert grown_mb < 100, out  # nothing near the view's size (1 GiB to 4 EiB) was allocated
    assert set(out) == {"huge_tf-tensorflow", "huge_tf-mlx", "gib_jax-None", "huge_jax-None", "gib_jax-tensorflow"}
    for key, (code, message) in out.items():
        assert code == "LimitExceeded", (key, message)
        assert message.startswith('at $["view"]: a contiguous copy of a view of tensor "b" needs '), (key, message)
        assert "max_bytes limit of 268,43" in message, (key, message)  # 256 MiB plus four times the file
    assert "needs 4,611,686,018,427,387,904 bytes" in out["huge_tf-tensorflow"][1]
    assert "needs 1,073,741,824 bytes" in out["gib_jax-None"][1]


@needs("jax", "tensorflow", "mlx")
def test_case_05_a_reasonable_expanded_view_still_converts(tmp_path: Path) -> None:
    # 4 MiB from 4 bytes: converting copies it twice (a contiguous copy, then the framework's own).
    files = [write(tmp_path, "view.st", crafted.expanded_view([1024, 1024])), write(tmp_path, "jax.st", jax_view([1024, 1024]))]
    script = IMPORT_QUIETLY + """
import json, sys
import numpy as np, safestructures as ss
for name in ("tensorflow", "jax", "mlx.core"):
    import_quietly(name)
view, saved_jax = sys.argv[1:3]
def described(got):
    array = np.asarray(got)
    return [type(got).__module__.split(".")[0], list(array.shape), str(array.dtype), bool((array == 1.5).all())]
out = {framework: described(ss.load_file(view, framework=framework)["view"]) for framework in ("tensorflow", "jax", "mlx")}
out["saved-jax"] = described(ss.load_file(saved_jax)["view"])
for key, limit in (("limit-8MiB", 8 << 20), ("limit-8MiB+4", (8 << 20) + 4)):
    try:
        ss.load_file(view, framework="jax", max_bytes=limit)
        out[key] = "loaded"
    except ss.InvalidFileError as e:
        out[key] = e.code
print(json.dumps(out))
"""
    out = run_python_json(script, *files, timeout=300)
    assert out["tensorflow"] == ["tensorflow", [1024, 1024], "float32", True]
    assert out["jax"][1:] == [[1024, 1024], "float32", True] and out["jax"][0] in ("jax", "jaxlib")
    assert out["mlx"] == ["mlx", [1024, 1024], "float32", True]
    assert out["saved-jax"][1:] == [[1024, 1024], "float32", True] and out["saved-jax"][0] in ("jax", "jaxlib")
    # 4 bytes for the base, 4 MiB for the contiguous copy, 4 MiB for JAX's: 8 MiB + 4 bytes in all.
    assert (out["limit-8MiB"], out["limit-8MiB+4"]) == ("LimitExceeded", "loaded")


@needs("torch")
def test_case_05_views_copied_to_a_device_are_charged() -> None:
    torch = pytest.importorskip("torch")
    data = crafted.expanded_view([4096, 4096])  # 64 MiB from 4 bytes, as torch's expand() saves it
    on_cpu = safestructures.load(data, framework="torch")["view"]
    assert on_cpu.shape == (4096, 4096) and on_cpu.stride() == (0, 0) and on_cpu.dtype == torch.float32
    # The meta device allocates nothing, but a copy there is charged as a copy to any device would be.
    error = limit_error(lambda: safestructures.load(data, framework="torch", device="meta", max_bytes=1 << 20))
    assert str(error).startswith('at $["view"]: the copy on meta of a view of tensor "b" needs 67,108,864 bytes')


# --- 4 and 15. every copy of file bytes is charged ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "framework", "what", "nbytes"),
    [
        ("big-endian", "numpy", "the byte-swapped copy", 1 << 20),
        ("F4", "numpy", "the unpacked F4 copy", 2 << 20),
        pytest.param("plain", "torch", "a copy", 1 << 20, marks=needs("torch")),  # torch cannot view read-only bytes
        pytest.param("plain", "tensorflow", "the tensorflow copy", 1 << 20, marks=needs("tensorflow")),
        pytest.param("plain", "jax", "the jax copy", 1 << 20, marks=needs("jax")),
    ],
)
def test_case_04_each_copy_is_charged_exactly(kind: str, framework: str, what: str, nbytes: int) -> None:
    data = crafted.tensor_named_many_times(kind, nodes=1)
    error = limit_error(lambda: safestructures.load(data, framework=framework, max_bytes=nbytes - 1))
    assert str(error).startswith(f'at $[0]: {what} of tensor "t" needs {nbytes:,} bytes, which would take this load past '
                                 f"its max_bytes limit of {nbytes - 1:,} (0 already used)"), error
    (loaded,) = safestructures.load(data, framework=framework, max_bytes=nbytes)
    assert np.asarray(loaded).nbytes == (nbytes if kind != "F4" else 2 << 20)


@needs("torch")
def test_case_15_torch_copies_of_complex_and_read_only_bytes_are_charged() -> None:
    torch = pytest.importorskip("torch")
    value = torch.arange(4096, dtype=torch.float64).to(torch.complex128)  # stored as U8 bytes with dtype "<c16"
    blob = safestructures.save({"c": value})
    error = limit_error(lambda: safestructures.load(blob, framework="torch", max_bytes=65535))
    assert 'a copy of tensor "c" needs 65,536 bytes' in str(error)
    loaded = safestructures.load(blob, framework="torch", max_bytes=65536)["c"]
    assert loaded.dtype == torch.complex128 and torch.equal(loaded, value)
    # A bytearray is viewed, not copied (where its elements are aligned, as float32 ones are here): nothing is charged.
    floats = torch.arange(4096, dtype=torch.float32)
    assert torch.equal(safestructures.load(bytearray(safestructures.save({"f": floats})), framework="torch", max_bytes=0)["f"], floats)


@pytest.mark.parametrize("kind", ["big-endian", "F4", "plain-torch"])
def test_case_04_one_tensor_named_a_thousand_times_stays_small(kind: str, tmp_path: Path) -> None:
    if kind == "plain-torch" and not installed("torch"):
        pytest.skip("torch not installed")
    path = write(tmp_path, "many.st", crafted.tensor_named_many_times(kind.removesuffix("-torch")))
    script = MEMORY_MB_SOURCE + """
import json, sys
import safestructures as ss
if sys.argv[2] == "torch":
    import torch
data = open(sys.argv[1], "rb").read()
before = memory_mb("VmHWM")
try:
    ss.load(data, framework=sys.argv[2])
    outcome = "loaded"
except ss.InvalidFileError as e:
    outcome = type(e).__name__
print(json.dumps([outcome, memory_mb("VmHWM") - before]))
"""
    outcome, grown_mb = run_python_json(script, path, "torch" if kind == "plain-torch" else "numpy", timeout=300)
    # 1000 copies of 1 MiB (2 MiB unpacked) took 1-2 GB: now the load stops at max_bytes (or at the second node).
    assert outcome == "InvalidFileError"
    assert grown_mb < 600


# --- 10. a file never chooses an import ----------------------------------------------------------------------------------


@needs("torch")
def test_case_10_torch_dtype_and_device_names_resolve_through_fixed_tables() -> None:
    script = """
import json, sys
sys.path.insert(0, sys.argv[1])
import torch, safestructures as ss, crafted
out = {}
for key, node in [
    ("dynamo", {"$": "torch.dtype", "name": "_dynamo"}),
    ("class", {"$": "torch.dtype", "name": "Tensor"}),
    ("device-dynamo", {"$": "torch.device", "type": "_dynamo", "index": None}),
    ("device-mkldnn", {"$": "torch.device", "type": "mkldnn", "index": None}),
    ("device-negative", {"$": "torch.device", "type": "cuda", "index": -1}),
]:
    try:
        ss.load(crafted.file_bytes({"v": node}))
        out[key] = "loaded"
    except ss.InvalidFileError as e:
        out[key] = str(e)
good = ss.load(crafted.file_bytes({"a": {"$": "torch.dtype", "name": "float"}, "b": {"$": "torch.dtype", "name": "bfloat16"},
                                   "d": {"$": "torch.device", "type": "cuda", "index": 1}}))
out["good"] = [good["a"] is torch.float32, good["b"] is torch.bfloat16, good["d"] == torch.device("cuda", 1)]
out["imported"] = sorted(m for m in sys.modules if m.startswith("torch._dynamo"))
print(json.dumps(out))
"""
    out = run_python_json(script, str(Path(__file__).parent), timeout=120)
    assert out["imported"] == []  # getattr(torch, "_dynamo") imported about 800 modules
    assert out["good"] == [True, True, True]
    assert out["dynamo"] == 'at $["v"]: cannot rebuild a torch.dtype: ValueError: \'_dynamo\' is not a torch dtype'
    assert out["class"] == 'at $["v"]: cannot rebuild a torch.dtype: ValueError: \'Tensor\' is not a torch dtype'
    assert out["device-dynamo"] == 'at $["v"]: cannot rebuild a torch.device: ValueError: \'_dynamo\' is not a torch device type'
    assert out["device-mkldnn"].endswith("'mkldnn' is not a torch device type")
    assert out["device-negative"].startswith('at $["v"]: cannot rebuild a torch.device: ValueError: torch cannot make device')


def every_framework_file() -> bytes:
    nodes = {fw: {"$": "tensor", "name": fw, "fw": fw} for fw in ("numpy", *FRAMEWORK_MODULES)}
    return crafted.file_bytes(nodes, {fw: ("F32", [2], struct.pack("<2f", 1.5, -2.0)) for fw in nodes})


def test_case_10_a_default_load_imports_no_framework_a_file_names(tmp_path: Path) -> None:
    path = write(tmp_path, "every.st", every_framework_file())
    script = IMPORT_QUIETLY + """
import json, sys
import safestructures as ss
first = sys.argv[2]
if first != "none":
    import_quietly(first)
loaded = ss.load_file(sys.argv[1])
import numpy as np
kinds = {key: [type(v).__module__.split(".")[0], np.asarray(v).tolist()] for key, v in loaded.items()}
imported = sorted(m for m in ("torch", "tensorflow", "jax", "paddle", "mlx") if m in sys.modules)
print(json.dumps([kinds, imported]))
"""
    kinds, imported = run_python_json(script, path, "none", timeout=120)
    assert imported == []
    assert kinds == {fw: ["numpy", [1.5, -2.0]] for fw in ("numpy", *FRAMEWORK_MODULES)}
    if installed("torch"):
        # A framework the process imported itself gets its tensors back; the others still come back as numpy.
        kinds, imported = run_python_json(script, path, "torch", timeout=120)
        assert imported == ["torch"]
        assert kinds == {fw: ["torch" if fw == "torch" else "numpy", [1.5, -2.0]] for fw in ("numpy", *FRAMEWORK_MODULES)}


@needs("jax")
def test_case_10_a_framework_named_by_the_caller_is_imported(tmp_path: Path) -> None:
    path = write(tmp_path, "every.st", every_framework_file())
    script = """
import json, sys
import safestructures as ss
loaded = ss.load_file(sys.argv[1], framework="jax")
print(json.dumps([sorted({type(v).__module__.split(".")[0] for v in loaded.values()}), "jax" in sys.modules]))
"""
    modules, imported = run_python_json(script, path, timeout=120)
    assert imported is True and modules in (["jax"], ["jaxlib"])


def v1_file(framework_type: str, dtype: str = "F32", raw: bytes = struct.pack("<2f", 1.5, -2.0), shape: tuple[int, ...] = (2,)) -> bytes:
    """A safestructures 1.0.0 file: a list holding one tensor node of ``framework_type``."""
    schema = {"data_type": "list", "value": [{"data_type": framework_type, "value": "0"}]}
    metadata = {"_safestructures_schema_": json.dumps(schema), "_safestructures_schema_version_": "1.0.0"}
    header = json.dumps({"__metadata__": metadata, "0": {"dtype": dtype, "shape": list(shape), "data_offsets": [0, len(raw)]}},
                        separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + raw


@needs("torch", "jax")
def test_case_10_v1_framework_nodes_follow_the_same_rule(tmp_path: Path) -> None:
    files = [write(tmp_path, f"v1-{k}.st", v1_file(t)) for k, t in enumerate(("torch.Tensor", "jaxlib.xla_extension.ArrayImpl",
                                                                                 "tensorflow.python.framework.ops.EagerTensor"))]
    script = IMPORT_QUIETLY + """
import json, sys
import numpy as np, safestructures as ss
files, first = json.loads(sys.argv[1]), sys.argv[2]
if first != "none":
    import_quietly(first)
out = [[type(v).__module__.split(".")[0], np.asarray(v).tolist()] for path in files for v in ss.load_file(path)]
print(json.dumps([out, sorted(m for m in ("torch", "tensorflow", "jax") if m in sys.modules)]))
"""
    out, imported = run_python_json(script, json.dumps(files), "none", timeout=120)
    assert (out, imported) == ([["numpy", [1.5, -2.0]]] * 3, [])
    out, imported = run_python_json(script, json.dumps(files), "jax", timeout=120)
    assert imported == ["jax"] and out[0] == ["numpy", [1.5, -2.0]] and out[2] == ["numpy", [1.5, -2.0]]
    assert out[1][0] in ("jax", "jaxlib") and out[1][1] == [1.5, -2.0]


# --- 11. framework errors come out as safestructures errors --------------------------------------------------------------


@needs("jax")
def test_case_11_f6_as_jax_is_an_unsupported_type_error() -> None:
    import jax  # noqa: F401  (a 1.0.0 jax node loads as jax only once jax is imported)

    with pytest.raises(UnsupportedTypeError) as info:
        safestructures.load(crafted.f6_tensor(), framework="jax")
    assert str(info.value).startswith('at $["t"]: tensor "t" of dtype float6_e2m3fn cannot be built as a jax tensor '
                                      "(JaxRuntimeError: ")
    assert str(info.value).endswith("load with framework='numpy'")
    with pytest.raises(UnsupportedTypeError) as info:
        safestructures.load(v1_file("jaxlib.xla_extension.ArrayImpl", "F6_E2M3", b"\0" * 3, (4,)))
    assert str(info.value).startswith('tensor "0" of dtype float6_e2m3fn cannot be built as a jax tensor (JaxRuntimeError: ')


@needs("torch")
def test_case_11_a_view_torch_refuses_is_an_unsupported_type_error() -> None:
    base = {"$": "tensor", "name": "b", "fw": "torch"}
    view = {"$": "tensor", "storage": "b", "offset": 3, "shape": [4], "stride": [-1], "fw": "torch"}
    data = crafted.file_bytes({"base": base, "view": view}, {"b": ("F32", [4], struct.pack("<4f", 1, 2, 3, 4))})
    assert safestructures.load(data, framework="numpy")["view"].tolist() == [4.0, 3.0, 2.0, 1.0]
    with pytest.raises(UnsupportedTypeError) as info:
        safestructures.load(data, framework="torch")
    assert str(info.value).startswith('at $["view"]: a view of tensor "b" of dtype torch.float32 cannot be built as a '
                                      "torch tensor (RuntimeError: 'as_strided: Negative strides")


# --- 14. temporary files of killed saves --------------------------------------------------------------------------------

# A save of a 512 MiB tensor that takes no memory (a broadcast array, gathered element by element): slow enough to be
# stopped or killed part way.
SLOW_SAVE = """
import sys
import numpy as np, safestructures as ss
ss.save_file({"big": np.broadcast_to(np.float32(float(sys.argv[2])), (1 << 27,))}, sys.argv[1])
"""


def start_slow_save(target: Path, value: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(python_command(SLOW_SAVE, str(target), str(value)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_temporary(directory: Path, known: list[str], child: subprocess.Popen[bytes]) -> str:
    """The name of the temporary file `child` is writing, once it holds 8 MiB."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for name in temporary_files(directory):
            if name not in known and (directory / name).stat().st_size >= 8 << 20:
                return name
        assert child.poll() is None, child.communicate()
        time.sleep(0.002)
    pytest.fail("the save did not start writing within 120 s")


def test_case_14_a_save_removes_the_temporary_files_of_killed_saves_only(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    killed = start_slow_save(target, 1.0)
    killed_temp = wait_for_temporary(tmp_path, [], killed)
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=60)
    assert temporary_files(tmp_path) == [killed_temp]  # what every killed save used to leave, forever
    stopped = start_slow_save(target, 2.0)
    stopped_temp = wait_for_temporary(tmp_path, [killed_temp], stopped)
    stopped.send_signal(signal.SIGSTOP)
    try:
        safestructures.save_file({"small": np.arange(3)}, target)
        # The killed save's file is gone; the stopped one's (a live process, holding the file's lock) is untouched.
        assert temporary_files(tmp_path) == [stopped_temp]
        assert safestructures.load_file(target)["small"].tolist() == [0, 1, 2]
    finally:
        stopped.send_signal(signal.SIGCONT)
    _, stderr = stopped.communicate(timeout=120)
    assert stopped.returncode == 0, stderr
    assert temporary_files(tmp_path) == []
    big = safestructures.load_file(target)["big"]
    assert big.shape == (1 << 27,) and big.dtype == np.float32 and float(big[0]) == float(big[-1]) == 2.0
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]

"""Tensors of several frameworks in one structure: each back in its own framework, or all converted to the one asked
for with exact dtypes; loading where a framework is missing; the import staying light; files exchanged with the
reference safetensors library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from conftest import (
    ALL_DTYPES,
    ML_DTYPES,
    NATIVE_DTYPES,
    TORCH_DTYPES,
    framework_name,
    header_of,
    import_framework,
    native,
    read_header,
    run_python,
    sample_array,
    tensor_bytes,
    torch_sample,
)

torch = import_framework("torch")
tf = import_framework("tensorflow")
jax = import_framework("jax")

import safestructures  # noqa: E402
from safestructures import UnsupportedTypeError, FrameworkNotAvailableError, InvalidFileError, SafestructuresError  # noqa: E402

TORCH_TO_NUMPY = {getattr(torch, name): ALL_DTYPES[stored] for name, stored in TORCH_DTYPES.items()}
TORCH_TO_NUMPY[torch.complex128] = np.dtype(np.complex128)
NUMPY_TO_TORCH = {dtype: torch_dtype for torch_dtype, dtype in TORCH_TO_NUMPY.items()}

#: Whole-byte safetensors dtypes and F4, in every framework that has them; F6 (no framework but numpy has it) apart.
DTYPE_NAMES = [*NATIVE_DTYPES, *ML_DTYPES, "F4"]


def canonical(value: Any) -> np.ndarray:
    """A tensor of any framework as the C-ordered, native-order numpy array of the same values and exact dtype."""
    framework = framework_name(value)
    if framework == "torch":
        value = value.detach()
        raw = np.frombuffer(tensor_bytes(value), dtype=np.uint8)
        return raw.view(TORCH_TO_NUMPY[value.dtype]).reshape(tuple(value.shape))
    if framework == "tensorflow":
        return native(value.numpy())
    return native(np.asarray(value))


def assert_converted(actual: Any, original: Any, target: str) -> None:
    """``actual`` is ``original`` loaded as a ``target`` tensor: that framework's type and counterpart dtype, the same
    shape and bitwise equal values."""
    assert framework_name(actual) == target, (type(actual), target)
    expected = canonical(original)
    if target == "numpy":
        assert type(actual) is np.ndarray
        # numpy keeps the exact dtype, byte order included.
        wanted = original.dtype if framework_name(original) == "numpy" else expected.dtype
        assert actual.dtype == wanted and actual.dtype.str == np.dtype(wanted).str, (actual.dtype, wanted)
    elif target == "torch":
        assert type(actual) in (torch.Tensor, torch.nn.Parameter)
        assert actual.dtype == NUMPY_TO_TORCH[expected.dtype], (actual.dtype, expected.dtype)
    elif target == "tensorflow":
        assert isinstance(actual, (tf.Tensor, tf.Variable))
        assert actual.dtype == tf.as_dtype(expected.dtype), (actual.dtype, expected.dtype)
    else:
        assert isinstance(actual, jax.Array)
        assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert tuple(actual.shape) == expected.shape
    got = canonical(actual)
    assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes()


def sources(name: str, shape: tuple[int, ...] = (2, 4), seed: int = 0) -> dict[str, Any]:
    """A tensor of safetensors dtype ``name`` from each framework that has it (random bits, NaNs included)."""
    array = sample_array(name, shape, seed)
    out: dict[str, Any] = {"numpy": array}
    torch_names = {stored: torch_name for torch_name, stored in TORCH_DTYPES.items()}
    if name in torch_names:
        out["torch"] = torch_sample(getattr(torch, torch_names[name]), shape, seed)
    try:
        tf_dtype = tf.as_dtype(array.dtype)
    except TypeError:
        tf_dtype = None
    if tf_dtype is not None:
        out["tensorflow"] = tf.constant(array)
    if array.dtype.itemsize < 8 or jax.config.jax_enable_x64:
        out["jax"] = jax.device_put(array)
    return out


def supported(target: str, dtype: np.dtype[Any]) -> bool:
    """Whether ``target`` has a counterpart of numpy dtype ``dtype`` (not whether safestructures converts it)."""
    if target == "torch":
        return dtype in NUMPY_TO_TORCH
    if target == "tensorflow":
        return dtype != ALL_DTYPES["F8_E8M0"]
    return True


def mixed_structure(jax_64: bool) -> dict[str, Any]:
    """Tensors of every dtype from every framework, extra dtypes (complex128, int4, big-endian), parameters and
    variables, torch views, and plain Python values."""
    data: dict[str, Any] = {"step": 7, "name": "run", "dtypes": {}}
    for k, name in enumerate(DTYPE_NAMES):
        data["dtypes"][name] = sources(name, seed=k)
    data["extra"] = {
        "c128_numpy": sample_array(np.complex128, (3,), 1),
        "c128_torch": torch_sample(torch.complex128, (3,), 2),
        "c128_tf": tf.constant(sample_array(np.complex128, (3,), 3)),
        "int4_numpy": np.arange(-8, 8, dtype=np.int8).astype(ml_dtypes.int4).reshape(4, 4),
        "int4_tf": tf.constant(np.arange(-4, 4, dtype=np.int8).astype(ml_dtypes.int4)),
        "int4_jax": jax.device_put(np.arange(0, 6, dtype=np.int8).astype(ml_dtypes.int4)),
        "big_endian": (np.arange(6) * 100_000).astype(">i4").reshape(2, 3),
        "scalar": torch.tensor(2.5, dtype=torch.bfloat16),
        "empty": tf.zeros((0, 3), tf.float16),
    }
    assert data["extra"]["big_endian"].dtype.byteorder == ">"
    if jax_64:
        data["extra"]["c128_jax"] = jax.device_put(sample_array(np.complex128, (3,), 4))
    base = torch_sample(torch.float32, (4, 6), seed=5)
    data["shared"] = {
        "base": base,
        "rows": base[1:3],
        "column": base[:, 2],
        "T": base.T,
        "param": torch.nn.Parameter(torch_sample(torch.bfloat16, (3,), seed=6), requires_grad=False),
        "variable": tf.Variable(sample_array("F8_E4M3", (2,), 7), trainable=False),
    }
    data["shared"]["param_again"] = data["shared"]["param"]
    return data


def leaves(data: Any, path: str = "$") -> list[tuple[str, Any]]:
    """(path, tensor) for every tensor in nested dicts."""
    if isinstance(data, dict):
        return [leaf for key, value in data.items() for leaf in leaves(value, f"{path}.{key}")]
    if framework_name(data) in ("numpy", "torch", "tensorflow", "jax"):
        return [(path, data)]
    return []


def get(data: Any, path: str) -> Any:
    for key in path.split(".")[1:]:
        data = data[key]
    return data


def drop(data: dict[str, Any], keep: Any) -> dict[str, Any]:
    """A copy of nested dicts holding only the tensors for which ``keep(tensor)`` is true (and every other value)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out[key] = drop(value, keep)
        elif not leaves(value) or keep(value):
            out[key] = value
    return out


def route_load(data: Any, route: str, tmp_path: Path, **options: Any) -> Any:
    if route == "file":
        path = tmp_path / "mixed.safetensors"
        safestructures.save_file(data, path)
        return safestructures.load_file(path, **options)
    blob = safestructures.save(data)
    return safestructures.load(bytearray(blob) if route == "bytearray" else blob, **options)


ROUTES = ["bytearray", "bytes", "file"]


# ---------------------------------------------------------------------------------------------------------------------
# framework=None and framework=X


@pytest.mark.parametrize("route", ROUTES)
def test_each_tensor_comes_back_in_its_own_framework(route: str, tmp_path: Path, jax_x64: Any) -> None:
    data = mixed_structure(jax_64=True)
    loaded = route_load(data, route, tmp_path)
    assert loaded["step"] == 7 and loaded["name"] == "run"
    for path, original in leaves(data):
        actual = get(loaded, path)
        assert type(actual) is type(original), (path, type(actual), type(original))
        assert actual.dtype == original.dtype, path
        assert tuple(actual.shape) == tuple(original.shape), path
        assert tensor_bytes(actual) == tensor_bytes(original), path
    shared = loaded["shared"]
    assert shared["param_again"] is shared["param"] and not shared["param"].requires_grad
    assert isinstance(shared["variable"], tf.Variable) and not shared["variable"].trainable
    for key in ("rows", "column", "T"):
        assert shared[key].untyped_storage().data_ptr() == shared["base"].untyped_storage().data_ptr(), key


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("target", ["numpy", "torch", "tensorflow", "jax"])
def test_every_tensor_converts_to_the_framework_asked_for(target: str, route: str, tmp_path: Path, jax_x64: Any) -> None:
    data = drop(mixed_structure(jax_64=True), lambda t: supported(target, canonical(t).dtype))
    loaded = route_load(data, route, tmp_path, framework=target)
    checked = 0
    for path, original in leaves(data):
        assert_converted(get(loaded, path), original, target)
        checked += 1
    assert checked > 60
    shared = loaded["shared"]
    assert shared["param_again"] is shared["param"]
    if target == "torch":
        # torch's own kinds survive a torch load; a tf.Variable becomes a plain tensor.
        assert type(shared["param"]) is torch.nn.Parameter and not shared["param"].requires_grad
        assert type(shared["variable"]) is torch.Tensor
    elif target == "tensorflow":
        assert isinstance(shared["variable"], tf.Variable) and not shared["variable"].trainable
        assert not isinstance(shared["param"], tf.Variable)
    if target in ("numpy", "torch"):
        # Views of one storage come back as views in numpy and torch.
        base = shared["base"]
        for key in ("rows", "column", "T"):
            if target == "numpy":
                assert np.shares_memory(shared[key], base), key
            else:
                assert shared[key].untyped_storage().data_ptr() == base.untyped_storage().data_ptr(), key


def test_conversion_to_jax_without_x64_for_32_bit_dtypes() -> None:
    assert not jax.config.jax_enable_x64
    wide = {np.dtype(t) for t in (np.int64, np.uint64, np.float64, np.complex128)}
    data = drop(mixed_structure(jax_64=False), lambda t: canonical(t).dtype not in wide)
    loaded = safestructures.load(safestructures.save(data), framework="jax")
    for path, original in leaves(data):
        assert_converted(get(loaded, path), original, "jax")


def test_bfloat16_and_float8_exact_in_every_framework() -> None:
    # Spelled out for the dtypes numpy only has through ml_dtypes.
    expected = {
        "BF16": (torch.bfloat16, tf.bfloat16, ml_dtypes.bfloat16),
        "F8_E4M3": (torch.float8_e4m3fn, tf.dtypes.experimental.float8_e4m3fn, ml_dtypes.float8_e4m3fn),
        "F8_E5M2": (torch.float8_e5m2, tf.dtypes.experimental.float8_e5m2, ml_dtypes.float8_e5m2),
        "F8_E4M3FNUZ": (torch.float8_e4m3fnuz, tf.dtypes.experimental.float8_e4m3fnuz, ml_dtypes.float8_e4m3fnuz),
        "F8_E5M2FNUZ": (torch.float8_e5m2fnuz, tf.dtypes.experimental.float8_e5m2fnuz, ml_dtypes.float8_e5m2fnuz),
        "F8_E8M0": (torch.float8_e8m0fnu, None, ml_dtypes.float8_e8m0fnu),
    }
    for name, (torch_dtype, tf_dtype, np_dtype) in expected.items():
        original = torch_sample(torch_dtype, (16, 16), seed=1)  # every bit pattern likely, NaNs included
        blob = safestructures.save({"x": original})
        assert header_of(blob)["x"]["dtype"] == name
        as_numpy = safestructures.load(blob, framework="numpy")["x"]
        assert as_numpy.dtype == np.dtype(np_dtype) and as_numpy.tobytes() == tensor_bytes(original)
        as_jax = safestructures.load(blob, framework="jax")["x"]
        assert as_jax.dtype == np.dtype(np_dtype) and tensor_bytes(as_jax) == tensor_bytes(original)
        if tf_dtype is not None:
            as_tf = safestructures.load(blob, framework="tensorflow")["x"]
            assert as_tf.dtype == tf_dtype and tensor_bytes(as_tf) == tensor_bytes(original)
        back = safestructures.load(safestructures.save({"x": as_numpy}), framework="torch")["x"]
        assert back.dtype == torch_dtype and tensor_bytes(back) == tensor_bytes(original)


def test_torch_float4_x2_converts_to_one_code_per_element() -> None:
    packed = torch_sample(torch.float4_e2m1fn_x2, (2, 3), seed=4)
    raw = np.frombuffer(tensor_bytes(packed), dtype=np.uint8).reshape(2, 3)
    codes = np.stack([raw & 0x0F, raw >> 4], axis=-1).reshape(2, 6)  # element 0 in the low nibble
    blob = safestructures.save({"x": packed})
    as_numpy = safestructures.load(blob, framework="numpy")["x"]
    assert as_numpy.dtype == ml_dtypes.float4_e2m1fn and as_numpy.shape == (2, 6)
    assert as_numpy.view(np.uint8).tolist() == codes.tolist()
    for target in ("tensorflow", "jax"):
        converted = safestructures.load(blob, framework=target)["x"]
        assert tuple(converted.shape) == (2, 6) and canonical(converted).view(np.uint8).tolist() == codes.tolist()
    assert tensor_bytes(safestructures.load(blob, framework="torch")["x"]) == tensor_bytes(packed)


@pytest.mark.parametrize(
    "target, value, error, reason",
    [
        ("tensorflow", lambda: sample_array("F8_E8M0", (2,)), UnsupportedTypeError, "TensorFlow has no tensor of dtype float8_e8m0fnu"),
        ("tensorflow", lambda: torch_sample(torch.float8_e8m0fnu, (2,)), UnsupportedTypeError, "TensorFlow has no tensor of dtype float8_e8m0fnu"),
        ("torch", lambda: sample_array("F4", (2, 3)), UnsupportedTypeError, "float4_e2m1fn_x2 needs an even last dimension"),
        ("torch", lambda: sample_array("F6_E2M3", (4,)), UnsupportedTypeError, "safetensors dtype F6_E2M3 has no torch dtype"),
        ("torch", lambda: np.zeros(3, ml_dtypes.int4), UnsupportedTypeError, "numpy dtype int4 has no torch dtype"),
        ("numpy", lambda: torch_sample(torch.complex32, (2,)), UnsupportedTypeError, "torch.complex32 has no numpy dtype"),
        ("jax", lambda: sample_array("F6_E3M2", (4,)), UnsupportedTypeError, 'tensor "a.0" of dtype float6_e3m2fn cannot be built as a jax tensor'),
    ],
    ids=["f8e8m0-numpy-tf", "f8e8m0-torch-tf", "f4-torch", "f6-torch", "int4-torch", "complex32-numpy", "f6-jax"],
)
def test_conversions_a_framework_cannot_hold_raise(target: str, value: Any, error: type, reason: str) -> None:
    blob = safestructures.save({"a": [value()]})
    # A dtype the target framework lacks is an UnsupportedTypeError naming the path (whatever the framework raises, as
    # JAX's JaxRuntimeError for float6), a numpy dtype torch has no dtype for included: the file is not broken.
    with pytest.raises(error) as info:
        safestructures.load(blob, framework=target)
    assert str(info.value).startswith('at $["a"][0]: ')
    assert reason in str(info.value)


# ---------------------------------------------------------------------------------------------------------------------
# A framework that is not installed


def expected_arrays(data: dict[str, Any]) -> dict[str, list[Any]]:
    """{key: [numpy dtype name, shape, hex bytes]} of each tensor's values, for a subprocess to compare with."""
    return {key: [canonical(t).dtype.name, list(canonical(t).shape), canonical(t).tobytes().hex()] for key, t in data.items()}


def torch_file(tmp_path: Path) -> tuple[Path, Path]:
    base = torch_sample(torch.float32, (4, 6), seed=1)
    tensors = {
        "base": base,
        "rows": base[1:3],
        "step": base[::2, ::3],
        "T": base.T,
        "param": torch.nn.Parameter(torch_sample(torch.bfloat16, (3, 2), seed=2)),
        "frozen": torch.nn.Parameter(torch_sample(torch.float8_e4m3fn, (5,), seed=3), requires_grad=False),
        "grad": torch_sample(torch.float64, (2,), seed=4).requires_grad_(True),
        "c128": torch_sample(torch.complex128, (2,), seed=5),
        "e8m0": torch_sample(torch.float8_e8m0fnu, (3,), seed=6),
        "u64": torch_sample(torch.uint64, (2,), seed=7),
        "scalar": torch.tensor(True),
        "empty": torch.zeros(0, 3, dtype=torch.int16),
    }
    path = tmp_path / "torch.safetensors"
    safestructures.save_file({"tensors": tensors, "tied": tensors["param"], "step": 3}, path)
    expected = tmp_path / "expected.json"
    expected.write_text(json.dumps(expected_arrays(tensors)))
    return path, expected


def test_torch_file_loads_as_numpy_where_torch_cannot_be_imported(tmp_path: Path) -> None:
    path, expected = torch_file(tmp_path)
    result = run_python(
        """
        import json, sys
        sys.modules["torch"] = None  # import torch now raises ModuleNotFoundError
        import numpy as np
        import safestructures

        data = safestructures.load_file(sys.argv[1], framework="numpy")
        expected = json.loads(open(sys.argv[2]).read())
        assert data["step"] == 3
        assert data["tied"] is data["tensors"]["param"]
        for key, (dtype, shape, raw) in expected.items():
            array = data["tensors"][key]
            assert type(array) is np.ndarray, key
            assert (array.dtype.name, list(array.shape)) == (dtype, shape), (key, array.dtype, array.shape)
            assert np.ascontiguousarray(array).tobytes().hex() == raw, key
        assert np.shares_memory(data["tensors"]["rows"], data["tensors"]["base"])

        # framework=None asks for torch tensors: a clear error, which is also an ImportError.
        try:
            safestructures.load_file(sys.argv[1])
        except safestructures.FrameworkNotAvailableError as e:
            assert isinstance(e, safestructures.SafestructuresError) and isinstance(e, ImportError)
            message = str(e)
            assert "tensors were asked for as torch, which is not installed here" in message, message
            assert "framework='numpy'" in message, message
        else:
            raise AssertionError("framework=None loaded torch tensors without torch")
        assert sys.modules["torch"] is None
        print("OK")
        """,
        str(path),
        str(expected),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("OK"), result.stdout


def test_asking_for_a_missing_framework_fails_before_reading(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    result = run_python(
        """
        import sys
        sys.modules["tensorflow"] = None
        import safestructures

        for target in (sys.argv[1] + "/missing.safetensors", sys.argv[2]):
            try:
                safestructures.load_file(target, framework="tensorflow")
            except safestructures.FrameworkNotAvailableError as e:
                assert isinstance(e, safestructures.SafestructuresError) and isinstance(e, ImportError)
                assert type(e).__module__ == "safestructures"
                message = str(e)
                assert message.startswith("tensors were asked for as tensorflow, which is not installed here"), message
                assert "framework='numpy'" in message, message
        for blob in (b"junk", bytearray(b"junk")):
            try:
                safestructures.load(blob, framework="tensorflow")
            except safestructures.FrameworkNotAvailableError:
                pass
        print("OK")
        """,
        str(tmp_path),
        str(garbage),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK", result.stdout


BLOCKED = ("torch", "tensorflow", "jax", "jaxlib", "keras")


def test_import_and_numpy_loads_never_import_a_framework(tmp_path: Path) -> None:
    path, expected = torch_file(tmp_path)
    tf_path = tmp_path / "tf.safetensors"
    safestructures.save_file({"t": tf.constant([1.5, 2.5], tf.bfloat16), "v": tf.Variable([1, 2])}, tf_path)
    jax_path = tmp_path / "jax.safetensors"
    safestructures.save_file({"j": jax.device_put(np.arange(4, dtype=np.int8).astype(ml_dtypes.int4))}, jax_path)
    result = run_python(
        f"""
        import sys
        attempts = []

        class Watch:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {BLOCKED!r}:
                    attempts.append(name)
                return None

        sys.meta_path.insert(0, Watch())
        import safestructures
        assert attempts == [], attempts
        import numpy as np
        for path in sys.argv[1:]:
            loaded = safestructures.load_file(path, framework="numpy")
            assert loaded
        blob = safestructures.save({{"a": np.ones(3), "b": [np.float32(2.0), {{"c": np.arange(4)}}]}})
        assert safestructures.load(blob)["b"][1]["c"].tolist() == [0, 1, 2, 3]
        assert attempts == [], attempts
        assert not [name for name in sys.modules if name.split(".")[0] in {BLOCKED!r}]
        print("OK")
        """,
        str(path),
        str(tf_path),
        str(jax_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK", result.stdout


# ---------------------------------------------------------------------------------------------------------------------
# The reference safetensors library

st_torch = pytest.importorskip("safetensors.torch")
safetensors = pytest.importorskip("safetensors")


def test_files_of_safetensors_torch_load_as_torch_tensors(tmp_path: Path) -> None:
    tensors = {name: torch_sample(getattr(torch, name), (3, 4), seed=k) for k, name in enumerate(TORCH_DTYPES)}
    tensors["scalar"] = torch.tensor(-1.5)
    tensors["empty"] = torch.zeros(2, 0, dtype=torch.bfloat16)
    path = tmp_path / "reference.safetensors"
    st_torch.save_file(tensors, str(path), metadata={"format": "pt"})
    loaded = safestructures.load_file(path, framework="torch")
    assert type(loaded) is dict and set(loaded) == set(tensors)
    for key, tensor in tensors.items():
        actual = loaded[key]
        assert type(actual) is torch.Tensor and actual.dtype == tensor.dtype and actual.shape == tensor.shape, key
        assert tensor_bytes(actual) == tensor_bytes(tensor), key
    # A plain file loads as numpy by default.
    as_numpy = safestructures.load_file(path)
    for key, tensor in tensors.items():
        assert type(as_numpy[key]) is np.ndarray and as_numpy[key].tobytes() == tensor_bytes(tensor), key


def test_float4_x2_of_safetensors_torch_loads_as_torch(tmp_path: Path) -> None:
    packed = torch_sample(torch.float4_e2m1fn_x2, (2, 3), seed=1)
    path = tmp_path / "f4.safetensors"
    st_torch.save_file({"f4x2": packed}, str(path))
    assert read_header(path)["f4x2"] == {"dtype": "F4", "shape": [2, 6], "data_offsets": [0, 6]}
    assert st_torch.load_file(str(path))["f4x2"].dtype == torch.float4_e2m1fn_x2
    loaded = safestructures.load_file(path, framework="torch")["f4x2"]
    assert loaded.dtype == torch.float4_e2m1fn_x2 and loaded.shape == (2, 3)
    assert tensor_bytes(loaded) == tensor_bytes(packed)


def test_our_torch_files_load_in_safetensors_torch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    exp_avg = [torch_sample(torch.bfloat16, (4, 3), seed=1), torch_sample(torch.float8_e5m2, (4,), seed=2)]
    data = {
        "model": model.state_dict(),
        "optimizer": {"state": {0: {"exp_avg": exp_avg[0]}, 1: {"exp_avg": exp_avg[1]}}, "lr": 0.1},
        "params": dict(model.named_parameters()),  # views of the state dict's tensors: no data of their own
        "packed": torch_sample(torch.float4_e2m1fn_x2, (2, 2), seed=3),
        "u64": torch_sample(torch.uint64, (3,), seed=4),
    }
    path = tmp_path / "ours.safetensors"
    safestructures.save_file(data, path)
    loaded = st_torch.load_file(str(path))
    expected = {
        "model.0.weight": model.state_dict()["0.weight"],
        "model.0.bias": model.state_dict()["0.bias"],
        "model.1.weight": model.state_dict()["1.weight"],
        "model.1.bias": model.state_dict()["1.bias"],
        "optimizer.state.0.exp_avg": exp_avg[0],
        "optimizer.state.1.exp_avg": exp_avg[1],
        "packed": data["packed"],
        "u64": data["u64"],
    }
    assert set(loaded) == set(expected)
    for key, tensor in expected.items():
        assert loaded[key].dtype == tensor.dtype and loaded[key].shape == tensor.shape, key
        assert tensor_bytes(loaded[key]) == tensor_bytes(tensor), key
    with safetensors.safe_open(str(path), framework="pt") as f:
        assert "__safestructures__" in f.metadata()
    assert set(read_header(path)) == set(expected) | {"__metadata__"}
    # And the structure is still ours to load.
    ours = safestructures.load_file(path)
    assert ours["optimizer"]["lr"] == 0.1 and type(ours["params"]["0.weight"]) is torch.nn.Parameter


def test_framework_errors_are_safestructures_errors() -> None:
    assert issubclass(FrameworkNotAvailableError, SafestructuresError)
    assert issubclass(FrameworkNotAvailableError, ImportError)
    with pytest.raises(ValueError, match="unknown framework 'mxnet'"):
        safestructures.load(safestructures.save({"a": np.ones(1)}), framework="mxnet")

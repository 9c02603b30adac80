"""PaddlePaddle and MLX tensors: exact dtypes both ways, and loading in the other frameworks.

paddle kills a process that has imported TensorFlow (a segmentation fault at import), so its tests run in fresh
interpreters; MLX lives beside the other frameworks and is tested in the test process.
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import safestructures
from conftest import run_python

NUMPY_DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64", "complex64"]

needs_paddle = pytest.mark.skipif(importlib.util.find_spec("paddle") is None, reason="paddle is not installed")

PADDLE_PRELUDE = """
import warnings
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import paddle
import ml_dtypes, numpy as np
import safestructures
from safestructures import UnsupportedTypeError

def sample(dtype, shape=(2, 3)):
    values = np.random.default_rng(7).standard_normal(shape) * 10
    return (values > 0) if np.dtype(dtype) == np.bool_ else values.astype(dtype)
"""


def run_paddle(body: str) -> None:
    result = run_python(PADDLE_PRELUDE + body + "\nprint('ok')\n")
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


@needs_paddle
def test_paddle_tensors_round_trip() -> None:
    run_paddle(f"""
for dtype in {NUMPY_DTYPES + ["complex128", "bfloat16"]!r}:
    array = sample(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)
    tensor = paddle.to_tensor(array.view(np.uint16) if dtype == "bfloat16" else array)
    loaded = safestructures.load(safestructures.save({{"t": tensor, "nested": [tensor]}}))
    for value in (loaded["t"], loaded["nested"][0]):
        assert type(value) is type(tensor), dtype
        assert value.dtype == tensor.dtype and list(value.shape) == list(tensor.shape), dtype
        assert value.numpy().tobytes() == tensor.numpy().tobytes(), dtype
        assert value.stop_gradient is True
    as_numpy = safestructures.load(safestructures.save(tensor), framework="numpy")
    assert as_numpy.dtype == array.dtype and as_numpy.tobytes() == array.tobytes(), dtype
""")


@needs_paddle
def test_paddle_gradient_flag_and_refusals() -> None:
    run_paddle("""
loaded = safestructures.load(safestructures.save(paddle.to_tensor([1.0, 2.0], stop_gradient=False)))
assert loaded.stop_gradient is False
# paddle reads a numpy uint16 array as bfloat16 bits: refused rather than silently changed.
blob = safestructures.save({"u": np.arange(3, dtype=np.uint16)})
try:
    safestructures.load(blob, framework="paddle")
    raise AssertionError("uint16 loaded into paddle")
except UnsupportedTypeError as e:
    assert str(e).startswith('at $["u"]: paddle has no tensor of dtype uint16'), e
""")


@needs_paddle
def test_paddle_mlx_and_numpy_cross_load() -> None:
    run_paddle("""
import mlx.core as mx
data = {"p": paddle.to_tensor(sample("float32")), "m": mx.array(sample("int16")), "n": sample("float64")}
blob = safestructures.save(data)
loaded = safestructures.load(blob)
assert type(loaded["p"]) is type(data["p"]) and type(loaded["m"]) is type(data["m"]) and type(loaded["n"]) is np.ndarray
as_paddle = safestructures.load(blob, framework="paddle")
assert all(type(v) is type(data["p"]) for v in as_paddle.values())
assert as_paddle["m"].dtype == paddle.int16 and as_paddle["n"].dtype == paddle.float64
""")


@needs_paddle
def test_paddle_after_tensorflow_is_refused_not_a_crash() -> None:
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("tensorflow is not installed")
    result = run_python("""
import warnings
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import tensorflow
import numpy as np, safestructures
try:
    safestructures.load(safestructures.save(np.zeros(2)), framework="paddle")
except safestructures.FrameworkNotAvailableError as e:
    print("refused:", e)
""")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "refused: paddle cannot be imported after tensorflow" in result.stdout


with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    mx = pytest.importorskip("mlx.core")


def sample(dtype: Any, shape: tuple[int, ...] = (2, 3)) -> np.ndarray:
    values = np.random.default_rng(7).standard_normal(shape) * 10
    return (values > 0) if np.dtype(dtype) == np.bool_ else values.astype(dtype)


@pytest.mark.parametrize("dtype", [*NUMPY_DTYPES, "uint16", "uint32", "uint64", "bfloat16"])
def test_mlx_arrays_round_trip(dtype: str) -> None:
    array = sample(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)
    value = mx.array(array, dtype=getattr(mx, "bool_" if dtype == "bool" else dtype))
    loaded = safestructures.load(safestructures.save({"a": value}))["a"]
    assert type(loaded) is type(value) and loaded.dtype == value.dtype and loaded.shape == value.shape
    assert bool(mx.array_equal(loaded, value, equal_nan=True))
    as_numpy = safestructures.load(safestructures.save(value), framework="numpy")
    assert as_numpy.dtype == array.dtype and as_numpy.tobytes() == array.tobytes()


def test_mlx_keeps_float64() -> None:
    # mx.array(np.float64 array) alone would narrow to float32.
    value = mx.array(np.array([0.1, 1e300]), dtype=mx.float64)
    loaded = safestructures.load(safestructures.save(value))
    assert loaded.dtype == mx.float64 and np.array(loaded).tolist() == [0.1, 1e300]


def test_mlx_refuses_what_it_lacks() -> None:
    with pytest.raises(safestructures.UnsupportedTypeError, match="MLX has no array of dtype complex128"):
        safestructures.load(safestructures.save({"c": np.zeros(2, np.complex128)}), framework="mlx")

"""PaddlePaddle and MLX tensors: exact dtypes both ways, and loading in the other frameworks."""

from __future__ import annotations

import warnings
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import safestructures
from safestructures import UnsupportedTypeError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    paddle = pytest.importorskip("paddle")
    mx = pytest.importorskip("mlx.core")

NUMPY_DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64", "complex64"]


def sample(dtype: Any, shape: tuple[int, ...] = (2, 3)) -> np.ndarray:
    rng = np.random.default_rng(7)
    values = rng.standard_normal(shape) * 10
    return (values > 0) if np.dtype(dtype) == np.bool_ else values.astype(dtype)


@pytest.mark.parametrize("dtype", [*NUMPY_DTYPES, "complex128", "bfloat16"])
def test_paddle_tensors_round_trip(dtype: str) -> None:
    array = sample(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)
    tensor = paddle.to_tensor(array.view(np.uint16) if dtype == "bfloat16" else array)
    loaded = safestructures.load(safestructures.save({"t": tensor, "nested": [tensor]}))
    for value in (loaded["t"], loaded["nested"][0]):
        assert type(value) is type(tensor)
        assert value.dtype == tensor.dtype and list(value.shape) == list(tensor.shape)
        assert value.numpy().tobytes() == tensor.numpy().tobytes()
        assert value.stop_gradient is True
    as_numpy = safestructures.load(safestructures.save(tensor), framework="numpy")
    assert as_numpy.dtype == array.dtype and as_numpy.tobytes() == array.tobytes()


def test_paddle_gradient_flag_is_kept() -> None:
    tensor = paddle.to_tensor([1.0, 2.0], stop_gradient=False)
    loaded = safestructures.load(safestructures.save(tensor))
    assert loaded.stop_gradient is False


def test_paddle_refuses_what_it_would_misread() -> None:
    # paddle reads a numpy uint16 array as bfloat16 bits: refused rather than silently changed.
    blob = safestructures.save({"u": np.arange(3, dtype=np.uint16), "f8": np.zeros(2, ml_dtypes.float8_e4m3fn)})
    with pytest.raises(UnsupportedTypeError, match=r'at \$\["u"\]: paddle has no tensor of dtype uint16'):
        safestructures.load(blob, framework="paddle")


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


def test_cross_loading_between_paddle_mlx_and_numpy() -> None:
    data = {"p": paddle.to_tensor(sample("float32")), "m": mx.array(sample("int16")), "n": sample("float64")}
    blob = safestructures.save(data)
    loaded = safestructures.load(blob)
    assert type(loaded["p"]) is type(data["p"]) and type(loaded["m"]) is type(data["m"]) and type(loaded["n"]) is np.ndarray
    as_mlx = safestructures.load(blob, framework="mlx")
    assert all(type(v) is type(data["m"]) for v in as_mlx.values())
    assert as_mlx["p"].dtype == mx.float32 and as_mlx["n"].dtype == mx.float64
    as_paddle = safestructures.load(blob, framework="paddle")
    assert all(type(v) is type(data["p"]) for v in as_paddle.values())
    assert as_paddle["m"].dtype == paddle.int16 and as_paddle["n"].dtype == paddle.float64

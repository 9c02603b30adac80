"""TensorFlow eager tensors and variables in nested data: every dtype TensorFlow shares with the format, with its exact
tf dtype; tf.Variable with its trainable flag; the tensors that cannot be stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from conftest import save_and_load, SUB_BYTE_DTYPES, import_framework, sample_array, schema_of, tensor_bytes

tf = import_framework("tensorflow")

import safestructures  # noqa: E402
from safestructures import UnsupportedTypeError  # noqa: E402

#: tf dtype name -> the header dtype it is stored as (U8: raw bytes, with the numpy dtype in the schema).
STORED = {
    "bool": "BOOL",
    "int8": "I8",
    "int16": "I16",
    "int32": "I32",
    "int64": "I64",
    "uint8": "U8",
    "uint16": "U16",
    "uint32": "U32",
    "uint64": "U64",
    "float16": "F16",
    "bfloat16": "BF16",
    "float32": "F32",
    "float64": "F64",
    "complex64": "C64",
    "complex128": "U8",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
    "float8_e4m3fnuz": "F8_E4M3FNUZ",
    "float8_e5m2fnuz": "F8_E5M2FNUZ",
    "float8_e4m3b11fnuz": "U8",
    "float4_e2m1fn": "F4",
    "int4": "U8",
    "uint4": "U8",
    "int2": "U8",
    "uint2": "U8",
}


def tf_dtype(name: str) -> Any:
    return getattr(tf, name, None) or getattr(tf.dtypes.experimental, name, None)


#: The dtypes this TensorFlow has (float8, float4 and the small ints are under tf.dtypes.experimental).
DTYPES = [name for name in STORED if tf_dtype(name) is not None]

ROUTES = ["bytearray", "bytes", "file"]


def sample(name: str, shape: tuple[int, ...], seed: int = 0) -> Any:
    """An eager tensor of the named dtype with random bit patterns (NaNs included) or, for the small ints, random
    values in range."""
    dtype = np.dtype(tf_dtype(name).as_numpy_dtype)
    if name in ("int4", "uint4", "int2", "uint2"):
        info = ml_dtypes.iinfo(dtype)
        array = np.random.default_rng(seed).integers(int(info.min), int(info.max) + 1, size=shape).astype(dtype)
    elif name == "float4_e2m1fn":
        array = sample_array(SUB_BYTE_DTYPES["F4"][0], shape, seed)
    else:
        array = sample_array(dtype, shape, seed)
    tensor = tf.constant(array)
    assert tensor.dtype == tf_dtype(name)
    return tensor


roundtrip = save_and_load


def assert_same_tf(actual: Any, expected: Any) -> None:
    """Same type (EagerTensor, or a variable), tf dtype, shape and bytes; on the CPU."""
    assert type(actual) is type(expected), (type(actual), type(expected))
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert tuple(actual.shape) == tuple(expected.shape)
    assert actual.device.endswith("CPU:0"), actual.device
    assert tensor_bytes(actual) == tensor_bytes(expected)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("name", DTYPES)
def test_every_dtype_round_trips_as_an_eager_tensor(name: str, route: str, tmp_path: Path) -> None:
    tensor = sample(name, (3, 4), seed=len(name))
    loaded, header = roundtrip({"t": tensor, "same": [tensor]}, route, tmp_path)
    assert_same_tf(loaded["t"], tensor)
    assert type(loaded["t"]).__name__ == "EagerTensor"
    assert loaded["same"][0] is loaded["t"]
    assert header["t"]["dtype"] == STORED[name]
    node = schema_of(safestructures.save({"t": tensor}))["root"]["t"]
    assert node["fw"] == "tensorflow" and "variable" not in node


@pytest.mark.parametrize("shape", [(), (0,), (2, 0, 3), (1,)], ids=str)
@pytest.mark.parametrize("name", DTYPES)
def test_scalar_and_zero_size_tensors(name: str, shape: tuple[int, ...], tmp_path: Path) -> None:
    if name == "float4_e2m1fn" and shape in ((), (1,)):
        # A single 4-bit element does not fill a byte: refused, like the numpy array it goes through.
        with pytest.raises(safestructures.InvalidArgumentError, match="do not fill a whole number of bytes"):
            safestructures.save({"t": sample(name, shape)})
        return
    tensor = sample(name, shape, seed=5)
    for route in ROUTES:
        loaded, _header = roundtrip({"t": tensor}, route, tmp_path)
        assert_same_tf(loaded["t"], tensor)


def test_strided_values_come_through_numpy() -> None:
    base = sample("bfloat16", (4, 6), seed=2)
    data = {"T": tf.transpose(base), "slice": base[::2, 1::3], "broadcast": tf.broadcast_to(base[0], (3, 6))}
    loaded = safestructures.load(safestructures.save(data))
    for key, tensor in data.items():
        assert_same_tf(loaded[key], tensor)


@pytest.mark.parametrize("trainable", [True, False])
@pytest.mark.parametrize("route", ROUTES)
def test_variables_round_trip_with_their_trainable_flag(trainable: bool, route: str, tmp_path: Path) -> None:
    data = {
        "float": tf.Variable(sample("float32", (2, 3), seed=1), trainable=trainable),
        "bf16": tf.Variable(sample("bfloat16", (4,), seed=2), trainable=trainable),
        "complex128": tf.Variable(sample("complex128", (2,), seed=3), trainable=trainable),
        "int_scalar": tf.Variable(7, dtype=tf.int64, trainable=trainable),
        "empty": tf.Variable(tf.zeros((0, 2), tf.float16), trainable=trainable),
    }
    data["same"] = data["float"]
    loaded, _header = roundtrip(data, route, tmp_path)
    for key, variable in data.items():
        assert isinstance(loaded[key], tf.Variable), key
        assert_same_tf(loaded[key], variable)
        assert loaded[key].trainable is trainable, key
    assert loaded["same"] is loaded["float"]
    node = schema_of(safestructures.save({"v": data["float"]}))["root"]["v"]
    assert (node["fw"], node["variable"], node["trainable"]) == ("tensorflow", True, trainable)
    # The loaded variables are independent, assignable copies.
    before = tensor_bytes(data["float"])
    loaded["float"].assign(tf.fill((2, 3), 2.5))
    assert loaded["float"].numpy().tolist() == [[2.5] * 3] * 2
    assert tensor_bytes(data["float"]) == before


def test_tensors_and_variables_side_by_side() -> None:
    tensor = sample("float16", (3,), seed=4)
    variable = tf.Variable(tensor)
    loaded = safestructures.load(safestructures.save({"tensor": tensor, "variable": variable}))
    assert type(loaded["tensor"]) is type(tensor) and not isinstance(loaded["tensor"], tf.Variable)
    assert isinstance(loaded["variable"], tf.Variable) and loaded["variable"].trainable
    assert tensor_bytes(loaded["tensor"]) == tensor_bytes(loaded["variable"]) == tensor_bytes(tensor)


@pytest.mark.parametrize(
    "make",
    [
        lambda: tf.constant(["a", "bc"]),
        lambda: tf.constant(b"scalar"),
        lambda: tf.Variable(["s"]),
        lambda: tf.zeros((0,), tf.string),
    ],
    ids=["strings", "scalar-string", "string-variable", "empty-strings"],
)
def test_string_tensors_are_refused_naming_the_path(make: Any) -> None:
    value = make()
    with pytest.raises(UnsupportedTypeError) as info:
        safestructures.save({"a": [1, {"b": value}]})
    message = str(info.value)
    assert '$["a"][1]["b"]' in message
    assert "TensorFlow tensors of dtype string are not stored" in message


def test_composite_tensors_are_refused() -> None:
    for value in (tf.ragged.constant([[1], [2, 3]]), tf.sparse.SparseTensor([[0, 0]], [1.0], [2, 2])):
        with pytest.raises(UnsupportedTypeError, match=rf"{type(value).__qualname__} at \$\[\"x\"\]"):
            safestructures.save({"x": value})

"""JAX arrays in nested data: every dtype JAX has that the format stores, back as jax.Array with the same dtype and
bitwise values.

64-bit dtypes (int64, uint64, float64, complex128) exist in JAX only with x64 mode on: their tests turn it on for their
duration (the ``jax_x64`` fixture); every other dtype is tested with JAX's default (x64 off).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from conftest import save_and_load, SUB_BYTE_DTYPES, import_framework, sample_array, schema_of, tensor_bytes

jax = import_framework("jax")
jnp = import_framework("jax.numpy")

import safestructures  # noqa: E402
from safestructures import UnsupportedTypeError  # noqa: E402

#: jax dtype name -> the header dtype it is stored as (U8: raw bytes, with the numpy dtype in the schema).
STORED_32 = {
    "bool": "BOOL",
    "int8": "I8",
    "int16": "I16",
    "int32": "I32",
    "uint8": "U8",
    "uint16": "U16",
    "uint32": "U32",
    "float16": "F16",
    "bfloat16": "BF16",
    "float32": "F32",
    "complex64": "C64",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
    "float8_e4m3fnuz": "F8_E4M3FNUZ",
    "float8_e5m2fnuz": "F8_E5M2FNUZ",
    "float8_e8m0fnu": "F8_E8M0",
    "float8_e4m3b11fnuz": "U8",
    "float8_e3m4": "U8",
    "float8_e4m3": "U8",
    "float4_e2m1fn": "F4",
    "int4": "U8",
    "uint4": "U8",
    "int2": "U8",
    "uint2": "U8",
}
STORED_64 = {"int64": "I64", "uint64": "U64", "float64": "F64", "complex128": "U8"}

#: The dtypes this JAX has.
DTYPES_32 = [name for name in STORED_32 if hasattr(jnp, name)]
DTYPES_64 = [name for name in STORED_64 if hasattr(jnp, name)]

ROUTES = ["bytearray", "bytes", "file"]


def sample(name: str, shape: tuple[int, ...], seed: int = 0) -> Any:
    """A jax.Array of the named dtype with random bit patterns (NaNs included) or, for the small ints, random values
    in range."""
    dtype = np.dtype(getattr(jnp, name))
    if name in ("int4", "uint4", "int2", "uint2"):
        info = ml_dtypes.iinfo(dtype)
        array = np.random.default_rng(seed).integers(int(info.min), int(info.max) + 1, size=shape).astype(dtype)
    elif name == "float4_e2m1fn":
        array = sample_array(SUB_BYTE_DTYPES["F4"][0], shape, seed)
    else:
        array = sample_array(dtype, shape, seed)
    value = jax.device_put(array)
    assert value.dtype == dtype, (value.dtype, dtype)
    assert tensor_bytes(value) == array.tobytes()
    return value


roundtrip = save_and_load


def assert_same_jax(actual: Any, expected: Any) -> None:
    assert isinstance(actual, jax.Array), type(actual)
    assert type(actual) is type(expected), (type(actual), type(expected))
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape
    assert tensor_bytes(actual) == tensor_bytes(expected)


def check_dtype(name: str, stored: str, route: str, tmp_path: Path) -> None:
    value = sample(name, (3, 4), seed=len(name))
    loaded, header = roundtrip({"a": value, "same": (value,)}, route, tmp_path)
    assert_same_jax(loaded["a"], value)
    assert loaded["same"][0] is loaded["a"]
    assert header["a"]["dtype"] == stored
    node = schema_of(safestructures.save({"a": value}))["root"]["a"]
    assert node["fw"] == "jax"
    if stored == "U8" and name != "uint8":
        # Stored as raw bytes, the exact dtype and shape in the schema.
        assert node["dtype"] in (name, np.dtype(getattr(jnp, name)).str) and node["shape"] == [3, 4]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("name", DTYPES_32)
def test_every_dtype_round_trips_as_a_jax_array(name: str, route: str, tmp_path: Path) -> None:
    assert not jax.config.jax_enable_x64
    check_dtype(name, STORED_32[name], route, tmp_path)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("name", DTYPES_64)
def test_64_bit_dtypes_round_trip_in_x64_mode(name: str, route: str, tmp_path: Path, jax_x64: Any) -> None:
    check_dtype(name, STORED_64[name], route, tmp_path)


@pytest.mark.parametrize("shape", [(), (0,), (2, 0, 3), (2,)], ids=str)
@pytest.mark.parametrize("name", DTYPES_32 + DTYPES_64)
def test_scalar_and_zero_size_arrays(name: str, shape: tuple[int, ...], tmp_path: Path, jax_x64: Any) -> None:
    if name == "float4_e2m1fn" and shape == ():
        with pytest.raises(safestructures.InvalidArgumentError, match="do not fill a whole number of bytes"):
            safestructures.save({"a": sample(name, shape)})
        return
    value = sample(name, shape, seed=9)
    for route in ROUTES:
        loaded, _header = roundtrip({"a": value}, route, tmp_path)
        assert_same_jax(loaded["a"], value)


def test_loaded_arrays_are_on_the_default_device() -> None:
    value = sample("bfloat16", (2, 3))
    loaded = safestructures.load(safestructures.save([value]))[0]
    assert loaded.devices() == {jax.devices()[0]}
    assert jnp.array_equal(loaded + 1, value + 1)


def test_key_arrays_and_tracers_are_refused() -> None:
    with pytest.raises(UnsupportedTypeError, match=r'PRNGKeyArray at \$\["k"\]\[0\]'):
        safestructures.save({"k": [jax.random.key(0)]})

    @jax.jit
    def save_inside(x: Any) -> Any:
        safestructures.save({"x": x})
        return x

    with pytest.raises(UnsupportedTypeError, match=r'Tracer at \$\["x"\]'):
        save_inside(jnp.ones(2))


def test_64_bit_tensors_without_x64_are_not_silently_narrowed() -> None:
    assert not jax.config.jax_enable_x64
    blob = safestructures.save({"big": np.array([2**40, -3], dtype=np.int64)})
    # Either exact (int64 values kept) or a clear error; never other values.
    try:
        loaded = safestructures.load(blob, framework="jax")["big"]
    except safestructures.SafestructuresError as e:
        assert "x64" in str(e)
        return
    assert loaded.dtype == np.int64 and np.asarray(loaded).tolist() == [2**40, -3]

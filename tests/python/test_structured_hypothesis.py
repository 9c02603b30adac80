"""Property tests: random nested data round-trips exactly, through bytes and through files."""

from __future__ import annotations

import collections
import datetime
import math
import pathlib
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import safestructures
from conftest import assert_same, float_bits, float_from_bits

# ---------------------------------------------------------------------------------------------------------------------
# Floats: every bit pattern


@given(st.floats(allow_nan=False))
@settings(max_examples=300)
def test_every_finite_or_infinite_float(value: float) -> None:
    loaded = safestructures.load(safestructures.save([value, {"k": value}]))
    assert type(loaded[0]) is float
    assert float_bits(loaded[0]) == float_bits(value)
    assert float_bits(loaded[1]["k"]) == float_bits(value)


@given(st.integers(min_value=0, max_value=2**64 - 1))
@settings(max_examples=300)
def test_every_float_bit_pattern(bits: int) -> None:
    value = float_from_bits(bits)
    loaded = safestructures.load(safestructures.save([value, complex(value, -value)]))
    assert float_bits(loaded[0]) == bits
    assert float_bits(loaded[1].real) == bits
    assert float_bits(loaded[1].imag) == float_bits(-value)


@given(st.integers(min_value=0, max_value=2**11 - 1), st.integers(min_value=0, max_value=2**52 - 1), st.booleans())
@settings(max_examples=100)
def test_float_exponent_edges(exponent: int, mantissa: int, negative: bool) -> None:
    # Subnormals, values next to powers of two and NaN payloads, drawn evenly across exponents.
    bits = (int(negative) << 63) | (exponent << 52) | mantissa
    assert float_bits(safestructures.load(safestructures.save(float_from_bits(bits)))) == bits


@given(st.integers())
@settings(max_examples=200)
def test_ints(value: int) -> None:
    loaded = safestructures.load(safestructures.save([value, -value, value << 200]))
    assert loaded == [value, -value, value << 200] and all(type(x) is int for x in loaded)


@given(st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF)))
@settings(max_examples=200)
def test_any_text(value: str) -> None:
    # codec=None: surrogates included.
    loaded = safestructures.load(safestructures.save([value, {value: 1, "after": 2}]))
    assert type(loaded[0]) is str and loaded[0] == value
    assert list(loaded[1]) == ([value, "after"] if value != "after" else ["after"])
    assert all(type(k) is str for k in loaded[1])


# ---------------------------------------------------------------------------------------------------------------------
# Nested structures

ATOMS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(),  # NaN and infinities included
    st.builds(float_from_bits, st.integers(min_value=0x7FF0000000000001, max_value=0x7FFFFFFFFFFFFFFF)),  # NaN payloads
    st.complex_numbers(),
    st.text(alphabet=st.characters(codec=None), max_size=8),  # surrogates included
    st.binary(max_size=80),  # inline and tensor-backed
    st.binary(max_size=80).map(bytearray),
)

FIXED_ZONES = st.builds(
    datetime.timezone,
    st.timedeltas(min_value=datetime.timedelta(hours=-23), max_value=datetime.timedelta(hours=23)),
) | st.builds(
    datetime.timezone,
    st.timedeltas(min_value=datetime.timedelta(hours=-23), max_value=datetime.timedelta(hours=23)),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=5),
)

# Every other type the format stores, as leaves of the nested data.
OTHER_ATOMS = st.one_of(
    st.datetimes(timezones=st.none() | FIXED_ZONES, allow_imaginary=False).flatmap(lambda d: st.sampled_from([d, d.replace(fold=1)])),
    st.dates(),
    st.times(timezones=st.none() | FIXED_ZONES),
    st.timedeltas(),
    FIXED_ZONES,
    st.decimals(allow_nan=True, allow_infinity=True),
    st.fractions(),
    st.uuids(),
    st.builds(range, st.integers(-(2**70), 2**70), st.integers(-(2**70), 2**70), st.integers(1, 2**40) | st.integers(-(2**40), -1)),
    st.builds(slice, st.none() | st.integers(), st.none() | st.integers(), st.none() | st.integers()),
    st.just(Ellipsis),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\0"), max_size=10).map(pathlib.PurePosixPath),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\0"), max_size=10).map(pathlib.PureWindowsPath),
    st.sampled_from(["<f2", "<f4", "<f8", "<i1", "<u8", "|b1", "<c8", "<c16", "<M8[ns]", "<m8[s]"]).flatmap(
        lambda dt: hnp.from_dtype(np.dtype(dt))
    ),
)

HASHABLE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(alphabet=st.characters(codec=None), max_size=6), st.binary(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3).map(tuple), st.frozensets(inner, max_size=3)),
    max_leaves=6,
)

ARRAYS = hnp.arrays(
    dtype=st.sampled_from(["<f4", "<f8", "<i2", "<u8", "|b1", "<c8", "<c16", ">i4", ">f8", "<U3", "|S2", "|u1", "<M8[s]"]).map(np.dtype),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3),
    elements=None,
)


def containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(HASHABLE, inner, max_size=4),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
        st.sets(HASHABLE, max_size=4),
        st.frozensets(HASHABLE, max_size=4),
        st.dictionaries(HASHABLE, inner, max_size=3).map(collections.OrderedDict),
        st.tuples(st.lists(inner, max_size=3), st.none() | st.integers(min_value=3, max_value=6)).map(lambda t: collections.deque(t[0], maxlen=t[1])),
        st.dictionaries(HASHABLE, st.integers(), max_size=4).map(collections.Counter),
        st.tuples(st.sampled_from([None, list, int, set, dict]), st.dictionaries(HASHABLE, inner, max_size=3)).map(
            lambda t: collections.defaultdict(t[0], t[1])
        ),
    )


DATA = st.recursive(st.one_of(ATOMS, OTHER_ATOMS, ARRAYS), containers, max_leaves=20)


@given(DATA)
@settings(max_examples=150)
def test_nested_data_round_trips_through_bytes(data: Any) -> None:
    payload = safestructures.save(data)
    assert_same(safestructures.load(payload), data)
    assert safestructures.save(data) == payload  # deterministic


@given(data=DATA)
@settings(max_examples=40)
def test_nested_data_round_trips_through_a_file(tmp_path: Path, data: Any) -> None:
    path = tmp_path / "h.safetensors"
    safestructures.save_file(data, path)
    assert_same(safestructures.load_file(path), data)


@given(st.lists(ARRAYS, min_size=1, max_size=4))
@settings(max_examples=60)
def test_arrays_round_trip(arrays: list[np.ndarray]) -> None:
    loaded = safestructures.load(safestructures.save(arrays))
    for actual, expected in zip(loaded, arrays):
        assert type(actual) is np.ndarray
        assert actual.dtype.str == expected.dtype.str and actual.shape == expected.shape
        assert actual.tobytes() == expected.tobytes()


# ---------------------------------------------------------------------------------------------------------------------
# The comparison helper itself


def test_assert_same_is_strict() -> None:
    nan = float("nan")
    assert_same([nan, {"a": (1, 2.0)}], [nan, {"a": (1, 2.0)}])
    assert_same({nan}, {float("nan")})
    for actual, expected in [
        (1, True),
        (1.0, 1),
        ([1], (1,)),
        (0.0, -0.0),
        (float_from_bits(0x7FF8000000000001), nan),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
        ({1}, {True}),
        (np.zeros(2, "<i4"), np.zeros(2, ">i4")),
        (np.zeros(2), np.zeros((2, 1))),
        (collections.deque([1], maxlen=2), collections.deque([1])),
        (collections.defaultdict(list), collections.defaultdict(set)),
        (bytearray(b"a"), b"a"),
        (np.float32(1), np.float64(1)),
    ]:
        with pytest.raises(AssertionError):
            assert_same(actual, expected)


def test_assert_same_handles_deep_and_cyclic_data() -> None:
    deep: list[Any] = []
    for _ in range(50_000):
        deep = [deep]
    assert_same(deep, deep)
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    assert_same(cyclic, cyclic)
    assert math.isnan(struct.unpack("<d", struct.pack("<d", float("nan")))[0])

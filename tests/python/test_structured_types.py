"""Every type the structured API stores comes back with its exact type and value, through bytes and through files."""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import math
import pathlib
import struct
import uuid
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from safetensors import safe_open

import safestructures
from safestructures import UnsupportedTypeError
from conftest import (
    SUB_BYTE_DTYPES,
    padding_is_zero,
    value_bytes,
    assert_same,
    float_bits,
    float_from_bits,
    header_of,
    layouts,
    sample_array,
    schema_of,
)

try:
    import zoneinfo

    PARIS: Any = zoneinfo.ZoneInfo("Europe/Paris")
except Exception:  # no zoneinfo module or no time zone database
    PARIS = None


def check(roundtrip: Any, value: Any) -> Any:
    """Round-trips ``value`` alone and inside a container; both come back exactly. Returns the lone value loaded."""
    loaded = roundtrip(value)
    assert type(loaded) is type(value)
    assert_same(loaded, value)
    nested = roundtrip({"k": [value, (value,)]})
    assert_same(nested, {"k": [value, (value,)]})
    return loaded


# ---------------------------------------------------------------------------------------------------------------------
# Scalars


def test_none_at_the_root(roundtrip: Any) -> None:
    assert roundtrip(None) is None


def test_none_inside_containers(roundtrip: Any) -> None:
    loaded = roundtrip([None, {"n": None}, (None,)])
    assert loaded[0] is None and loaded[1]["n"] is None and loaded[2][0] is None


@pytest.mark.parametrize("value", [True, False])
def test_bool(roundtrip: Any, value: bool) -> None:
    loaded = check(roundtrip, value)
    assert loaded is value
    assert [type(x) for x in roundtrip([value, int(value)])] == [bool, int]


INTS = [0, 1, -1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**64, 2**64 - 1, 2**1000 + 12345, -(2**1000)]


@pytest.mark.parametrize("value", INTS, ids=lambda v: hex(v)[:24])
def test_int(roundtrip: Any, value: int) -> None:
    assert check(roundtrip, value) == value


def test_ten_thousand_digit_ints(roundtrip: Any) -> None:
    # Over Python's default int <-> decimal str limit (4300 digits): the library must not go through decimal text.
    big = 7 * 10**9999 + 123456789
    assert big.bit_length() > 33000
    loaded = roundtrip([big, -big, big])
    assert all(type(x) is int for x in loaded)
    assert loaded[0] == big and loaded[1] == -big and loaded[2] == big


FLOATS = [0.0, 1.0, 0.1, -2.5, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308, 1e16, 1e-7, 123456789.0, 2.0**53, 2.0**53 + 2]


@pytest.mark.parametrize("value", FLOATS, ids=repr)
def test_finite_floats(roundtrip: Any, value: float) -> None:
    loaded = check(roundtrip, value)
    assert float_bits(loaded) == float_bits(value)


def test_negative_zero_keeps_its_sign(roundtrip: Any) -> None:
    loaded = roundtrip([-0.0, 0.0])
    assert type(loaded[0]) is float and math.copysign(1.0, loaded[0]) == -1.0
    assert math.copysign(1.0, loaded[1]) == 1.0


@pytest.mark.parametrize(
    "bits",
    [
        0x7FF8000000000000,  # the canonical quiet NaN
        0xFFF8000000000000,  # negative NaN
        0x7FF8000000000001,  # quiet NaN with a payload
        0x7FF0000000000001,  # signalling NaN
        0xFFFFFFFFFFFFFFFF,  # every bit set
        0x7FF0000000000000,  # inf
        0xFFF0000000000000,  # -inf
    ],
    ids=hex,
)
def test_non_finite_floats_bitwise(roundtrip: Any, bits: int) -> None:
    value = float_from_bits(bits)
    loaded = roundtrip([value, {"v": value}])
    assert type(loaded[0]) is float
    assert float_bits(loaded[0]) == bits
    assert float_bits(loaded[1]["v"]) == bits


def test_nan_and_infinities_by_value(roundtrip: Any) -> None:
    loaded = roundtrip([float("nan"), -float("nan"), float("inf"), -float("inf")])
    assert math.isnan(loaded[0]) and math.copysign(1.0, loaded[0]) == 1.0
    assert math.isnan(loaded[1]) and math.copysign(1.0, loaded[1]) == -1.0
    assert loaded[2] == math.inf and loaded[3] == -math.inf


@pytest.mark.parametrize(
    "value",
    [0j, 1 + 2j, complex(-0.0, -0.0), complex(math.inf, -math.inf), complex(math.nan, 1.0), complex(1.0, -math.nan), complex(5e-324, 1e308)],
    ids=repr,
)
def test_complex(roundtrip: Any, value: complex) -> None:
    loaded = check(roundtrip, value)
    assert float_bits(loaded.real) == float_bits(value.real)
    assert float_bits(loaded.imag) == float_bits(value.imag)


STRINGS = [
    "",
    "plain",
    "$",
    "a\x00b",
    "\x00",
    "tab\tnewline\nquote\"backslash\\",
    "\x7f\x1f\u2028\u2029",
    "ünïcödé ✓ 中文 العربية",
    "🙂👩‍👩‍👧‍👦",
    "\U0010ffff",
    "\ud800",
    "\udfff",
    "a\ud800b\udfffc",
    "\udfff\ud800",  # reversed pair: not a valid surrogate pair
    "\ud83d\ude42",  # a valid pair written as two code points: stays two code points in Python
    "mixed 🙂 \ud800 \x00",
    "x" * 10_000,
]


@pytest.mark.parametrize("value", STRINGS, ids=lambda s: ascii(s)[:30])
def test_str(roundtrip: Any, value: str) -> None:
    loaded = check(roundtrip, value)
    assert [ord(c) for c in loaded] == [ord(c) for c in value]


@pytest.mark.parametrize("cls", [bytes, bytearray])
@pytest.mark.parametrize("size", [0, 1, 2, 3, 63, 64])
def test_small_bytes_are_inline(roundtrip: Any, cls: type, size: int) -> None:
    value = cls(range(size))
    loaded = check(roundtrip, value)
    assert loaded == value
    data = safestructures.save({"b": value})
    assert [name for name in header_of(data) if name != "__metadata__"] == []  # no tensor: base64 in the schema


@pytest.mark.parametrize("cls", [bytes, bytearray])
@pytest.mark.parametrize("size", [65, 1000])
def test_large_bytes_are_u8_tensors(tmp_path: Path, roundtrip: Any, cls: type, size: int) -> None:
    value = cls((i * 7 + 3) % 256 for i in range(size))
    loaded = check(roundtrip, value)
    assert loaded == value
    path = tmp_path / "bytes.safetensors"
    safestructures.save_file({"blob": value}, path)
    with safe_open(str(path), framework="np") as f:
        assert list(f.keys()) == ["blob"]
        tensor = f.get_tensor("blob")
    assert tensor.dtype == np.uint8 and tensor.shape == (size,)
    assert tensor.tobytes() == bytes(value)
    assert schema_of(path.read_bytes())["root"] == {"blob": {"$": cls.__name__, "tensor": "blob"}}


def test_loaded_bytearray_is_an_independent_copy() -> None:
    data = bytearray(safestructures.save({"b": bytearray(b"x" * 100)}))
    loaded = safestructures.load(data)["b"]
    loaded[0] = ord("y")
    assert safestructures.load(bytes(data))["b"] == bytearray(b"x" * 100)


# ---------------------------------------------------------------------------------------------------------------------
# Containers


@pytest.mark.parametrize(
    "value",
    [[], [1, [2, [3]]], (), (1,), ((),), (1, "a", None, (2.5,)), [(), []], ([], {})],
    ids=repr,
)
def test_lists_and_tuples(roundtrip: Any, value: Any) -> None:
    check(roundtrip, value)


def test_dict_with_any_hashable_keys_keeps_order(roundtrip: Any) -> None:
    value = {1: "a", "1": "b", (1, 2): 3, None: 4, 1.5: 5}
    loaded = check(roundtrip, value)
    assert list(loaded) == [1, "1", (1, 2), None, 1.5]
    assert [type(k) for k in loaded] == [int, str, tuple, type(None), float]


def test_dict_with_more_kinds_of_keys(roundtrip: Any) -> None:
    value = {
        True: "bool",
        2**70: "big",
        -0.0: "negative zero",
        b"bytes": 1,
        frozenset({1, 2}): 2,
        (1, (2, (3,))): 3,
        "\ud800": 4,
        decimal.Decimal("1.5"): 5,
        datetime.date(2020, 1, 2): 6,
        ...: 7,
        1 + 2j: 8,
        np.int8(3): 9,
    }
    loaded = check(roundtrip, value)
    assert [type(k) for k in loaded] == [type(k) for k in value]
    assert math.copysign(1.0, list(loaded)[2]) == -1.0


def test_dict_with_a_dollar_key(roundtrip: Any) -> None:
    for value in ({"$": "list", "items": [1]}, {"$": "ref", "#": 1}, {"a": 1, "$": 2}, {"$": {"$": "$"}}):
        loaded = check(roundtrip, value)
        assert list(loaded) == list(value)


def test_plain_str_dicts_keep_their_order(roundtrip: Any) -> None:
    keys = ["zeta", "alpha", "", "m", "\x00", "é", "10", "9", "Z", "a.b"]
    value = {k: i for i, k in enumerate(keys)}
    loaded = check(roundtrip, value)
    assert list(loaded) == keys
    assert list(roundtrip({"b": {"y": 1, "x": 2}, "a": 0})["b"]) == ["y", "x"]


@pytest.mark.parametrize(
    "value",
    [
        set(),
        frozenset(),
        {1, 2, 3},
        {"b", "a", "c"},
        frozenset({"x", 1, None, (1, "a"), 2.5, b"b", frozenset({3})}),  # items that do not sort
        {1, "1", (1,), 7},
        {float("inf"), -1.5, 0.0},
        frozenset({frozenset(), frozenset({frozenset()})}),
    ],
    ids=repr,
)
def test_sets_and_frozensets(roundtrip: Any, value: Any) -> None:
    check(roundtrip, value)


def test_set_holding_a_nan(roundtrip: Any) -> None:
    nan = float_from_bits(0xFFF8000000000042)
    loaded = roundtrip({nan, 1.0})
    assert type(loaded) is set and len(loaded) == 2
    assert sorted(float_bits(x) for x in loaded) == sorted([float_bits(1.0), 0xFFF8000000000042])


@pytest.mark.parametrize(
    "value",
    [range(0), range(5), range(-3, 10, 4), range(10, -10, -3), range(2**70, 2**71, 2**65), slice(None), slice(1, 2, 3), slice("a", None, (1, 2)), ...],
    ids=repr,
)
def test_range_slice_ellipsis(roundtrip: Any, value: Any) -> None:
    loaded = check(roundtrip, value)
    if value is ...:
        assert loaded is ...


def test_slice_fields_keep_their_types(roundtrip: Any) -> None:
    loaded = roundtrip(slice(1.5, [1, 2], {"k": None}))
    assert_same(loaded.start, 1.5)
    assert_same(loaded.stop, [1, 2])
    assert_same(loaded.step, {"k": None})


# ---------------------------------------------------------------------------------------------------------------------
# collections


def test_ordered_dict_keeps_order(roundtrip: Any) -> None:
    value = collections.OrderedDict([("z", 1), ("a", 2), (3, [4]), ((1,), None)])
    value.move_to_end("z")
    loaded = check(roundtrip, value)
    assert list(loaded) == ["a", 3, (1,), "z"]
    assert type(roundtrip(collections.OrderedDict())) is collections.OrderedDict


@pytest.mark.parametrize("factory", [list, int, set, dict, None, str, tuple, collections.OrderedDict, collections.Counter, collections.deque])
def test_defaultdict_keeps_its_factory(roundtrip: Any, factory: Any) -> None:
    value: collections.defaultdict[Any, Any] = collections.defaultdict(factory)
    value["a"] = 1
    value[2] = [3]
    loaded = check(roundtrip, value)
    assert loaded.default_factory is factory
    if factory is not None:
        assert type(loaded["missing"]) is factory
        assert "missing" in loaded
    else:
        with pytest.raises(KeyError):
            loaded["missing"]


def test_defaultdict_with_a_lambda_factory_is_refused() -> None:
    value = collections.defaultdict(lambda: 0, {"a": 1})
    with pytest.raises(UnsupportedTypeError) as info:
        safestructures.save({"top": [0, value]})
    assert 'at $["top"][1]' in str(info.value)
    assert "collections.defaultdict" in str(info.value)
    assert "default_factory" in str(info.value)


@pytest.mark.parametrize("maxlen", [None, 0, 3, 10])
def test_deque_keeps_maxlen(roundtrip: Any, maxlen: int | None) -> None:
    value = collections.deque([1, "two", (3,), [4]], maxlen=maxlen)
    loaded = check(roundtrip, value)
    assert loaded.maxlen == maxlen
    assert list(loaded) == list(value)


def test_counter(roundtrip: Any) -> None:
    value = collections.Counter("abracadabra")
    value["zero"] = 0
    value["negative"] = -2
    value[(1, 2)] = 5
    loaded = check(roundtrip, value)
    assert list(loaded.items()) == list(value.items())
    assert type(roundtrip(collections.Counter())) is collections.Counter


# ---------------------------------------------------------------------------------------------------------------------
# Dates and times


UTC = datetime.timezone.utc
NAMED = datetime.timezone(datetime.timedelta(hours=-5, minutes=-30), "name")
DATETIMES = [
    datetime.datetime(2020, 1, 2, 3, 4, 5),
    datetime.datetime(2020, 1, 2, 3, 4, 5, 678901),
    datetime.datetime(1, 1, 1),
    datetime.datetime(9999, 12, 31, 23, 59, 59, 999999),
    datetime.datetime(2020, 1, 2, tzinfo=UTC),
    datetime.datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=NAMED),
    datetime.datetime(2020, 1, 2, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=45, seconds=7, microseconds=9))),
    datetime.datetime(2020, 1, 2, fold=1),
]


@pytest.mark.parametrize("value", DATETIMES, ids=repr)
def test_datetime(roundtrip: Any, value: datetime.datetime) -> None:
    loaded = check(roundtrip, value)
    assert loaded.fold == value.fold and loaded.microsecond == value.microsecond
    assert loaded.utcoffset() == value.utcoffset() and loaded.tzname() == value.tzname()


@pytest.mark.skipif(PARIS is None, reason="no zoneinfo time zone database")
@pytest.mark.parametrize("fold", [0, 1])
def test_datetime_with_zoneinfo(roundtrip: Any, fold: int) -> None:
    value = datetime.datetime(2021, 10, 31, 2, 30, 5, 123456, tzinfo=PARIS, fold=fold)  # the ambiguous hour
    loaded = check(roundtrip, value)
    assert type(loaded.tzinfo) is type(PARIS) and loaded.tzinfo.key == "Europe/Paris"
    assert loaded.tzinfo is PARIS  # ZoneInfo instances are cached by key
    assert loaded.fold == fold and loaded.utcoffset() == value.utcoffset()
    assert loaded.utcoffset() == datetime.timedelta(hours=2 - fold)


@pytest.mark.parametrize(
    "value",
    [datetime.date(2020, 2, 29), datetime.date(1, 1, 1), datetime.date(9999, 12, 31)],
    ids=repr,
)
def test_date(roundtrip: Any, value: datetime.date) -> None:
    check(roundtrip, value)


@pytest.mark.parametrize(
    "value",
    [
        datetime.time(),
        datetime.time(23, 59, 59, 999999),
        datetime.time(1, 2, 3, 4, tzinfo=UTC),
        datetime.time(1, 2, 3, tzinfo=NAMED, fold=1),
        datetime.time(12, fold=1),
    ],
    ids=repr,
)
def test_time(roundtrip: Any, value: datetime.time) -> None:
    loaded = check(roundtrip, value)
    assert loaded.fold == value.fold and loaded.tzinfo == value.tzinfo


@pytest.mark.parametrize(
    "value",
    [
        datetime.timedelta(),
        datetime.timedelta(days=-1),
        datetime.timedelta(microseconds=-1),
        datetime.timedelta(days=-3, seconds=5, microseconds=7),
        datetime.timedelta(days=999999999, seconds=86399, microseconds=999999),
        datetime.timedelta.min,
    ],
    ids=repr,
)
def test_timedelta(roundtrip: Any, value: datetime.timedelta) -> None:
    check(roundtrip, value)


def test_timezones(roundtrip: Any) -> None:
    unnamed = datetime.timezone(datetime.timedelta(hours=3))
    explicit_default_name = datetime.timezone(datetime.timedelta(hours=3), "UTC+03:00")
    loaded = roundtrip([UTC, NAMED, unnamed, explicit_default_name, datetime.timezone.min, datetime.timezone.max])
    assert loaded[0] is datetime.timezone.utc
    assert_same(loaded, [UTC, NAMED, unnamed, explicit_default_name, datetime.timezone.min, datetime.timezone.max])
    assert loaded[1].tzname(None) == "name"
    assert loaded[2].tzname(None) == "UTC+03:00"
    assert roundtrip(UTC) is datetime.timezone.utc


# ---------------------------------------------------------------------------------------------------------------------
# Numbers, ids and paths


@pytest.mark.parametrize("text", ["0", "-0", "1.20E+5", "0.1", "NaN", "-NaN", "sNaN", "-sNaN42", "Infinity", "-Infinity", "1E-1000000", "3.14159265358979323846264338327950288419716939937510"])
def test_decimal(roundtrip: Any, text: str) -> None:
    value = decimal.Decimal(text)
    loaded = check(roundtrip, value)
    assert str(loaded) == str(value)
    assert loaded.as_tuple() == value.as_tuple()


@pytest.mark.parametrize("value", [fractions.Fraction(0), fractions.Fraction(-1, 3), fractions.Fraction(2**100, 3**70)], ids=repr)
def test_fraction(roundtrip: Any, value: fractions.Fraction) -> None:
    loaded = check(roundtrip, value)
    assert (loaded.numerator, loaded.denominator) == (value.numerator, value.denominator)


@pytest.mark.parametrize("value", [uuid.UUID(int=0), uuid.UUID("12345678-1234-5678-1234-567812345678"), uuid.UUID(int=2**128 - 1)], ids=str)
def test_uuid(roundtrip: Any, value: uuid.UUID) -> None:
    check(roundtrip, value)


@pytest.mark.parametrize(
    "value",
    [
        pathlib.PurePosixPath("/a/b c/ü.txt"),
        pathlib.PurePosixPath("relative"),
        pathlib.PosixPath("/tmp/x"),
        pathlib.PureWindowsPath(r"C:\Users\x\file.txt"),
        pathlib.PureWindowsPath(r"\\server\share\x"),
    ],
    ids=repr,
)
def test_paths(roundtrip: Any, value: pathlib.PurePath) -> None:
    loaded = check(roundtrip, value)
    assert str(loaded) == str(value)


# ---------------------------------------------------------------------------------------------------------------------
# numpy arrays


def assert_array_exact(actual: Any, expected: np.ndarray) -> None:
    """Same class, dtype (byte order included), shape and C-order bytes."""
    assert type(actual) is np.ndarray, type(actual)
    assert actual.dtype == expected.dtype and actual.dtype.str == expected.dtype.str, (actual.dtype.str, expected.dtype.str)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert value_bytes(actual) == value_bytes(expected)
    # Long double padding is never taken from memory into the file.
    assert padding_is_zero(actual)


def varied(dtype: Any, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """An array of ``dtype`` with varied valid contents (random bit patterns where every pattern is valid)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    rng = np.random.default_rng(seed)
    if dtype.kind == "U":
        chars = ["a", "é", "中", "🙂", "\x00", "z"]
        return np.array(["".join(rng.choice(chars, size=dtype.itemsize // 4 - i % 2)) for i in range(n)], dtype=dtype).reshape(shape)
    if dtype.kind == "S":
        return np.array([bytes(rng.integers(0, 256, size=dtype.itemsize, dtype=np.uint8)) for _ in range(n)], dtype=dtype).reshape(shape)
    if dtype.kind in "Mm":
        values = rng.integers(-(2**40), 2**40, size=n, dtype=np.int64)
        values[:1] = np.iinfo(np.int64).min  # NaT
        return values.view(dtype.newbyteorder("=")).astype(dtype).reshape(shape)
    if dtype == np.longdouble or dtype == np.clongdouble:
        # The 80-bit format leaves padding bytes that numpy does not define: build values arithmetically.
        values = (rng.standard_normal(n) * 10.0 ** rng.integers(-300, 300, size=n)).astype(np.longdouble) / 3
        values[:1] = np.nan
        return (values + (values * 1j if dtype.kind == "c" else 0)).astype(dtype).reshape(shape)
    if dtype.name in ("int4", "uint4", "int2", "uint2"):
        info = ml_dtypes.iinfo(dtype)
        return rng.integers(int(info.min), int(info.max) + 1, size=n).astype(dtype).reshape(shape)
    if dtype == np.bool_ or any(dtype == sub for sub, _bits in SUB_BYTE_DTYPES.values()):
        return sample_array(dtype, shape, seed)
    raw = rng.integers(0, 256, size=n * dtype.itemsize, dtype=np.uint8)
    return raw.view(dtype).reshape(shape)


ARRAY_DTYPES: list[Any] = [
    np.bool_,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
    np.complex64,
    np.complex128,
    np.longdouble,
    np.clongdouble,
    "<U5",
    "S3",
    "datetime64[ns]",
    "timedelta64[s]",
    ml_dtypes.bfloat16,
    ml_dtypes.float8_e4m3fn,
    ml_dtypes.float8_e5m2,
    ml_dtypes.float8_e8m0fnu,
    ml_dtypes.float8_e4m3fnuz,
    ml_dtypes.float8_e5m2fnuz,
    ml_dtypes.float4_e2m1fn,
    ml_dtypes.float6_e2m3fn,
    ml_dtypes.float6_e3m2fn,
    ml_dtypes.int4,
    ml_dtypes.uint4,
    ">i4",
    ">f8",
    ">u2",
    ">c8",
    ">c16",
    ">U3",
    ">M8[s]",
]
ARRAY_SHAPES = [(), (0,), (4,), (2, 0, 3), (2, 4), (3, 1, 4)]


@pytest.mark.parametrize("dtype", ARRAY_DTYPES, ids=lambda d: np.dtype(d).str if np.dtype(d).kind != "V" else np.dtype(d).name)
def test_arrays_of_every_dtype(roundtrip: Any, dtype: Any) -> None:
    # Sub-byte dtypes need whole bytes: their 0-d arrays (one element) are refused, see below.
    shapes = [s for s in ARRAY_SHAPES if s != ()] if any(np.dtype(dtype) == d for d, _ in SUB_BYTE_DTYPES.values()) else ARRAY_SHAPES
    arrays = {f"s{i}": varied(dtype, shape, seed=i) for i, shape in enumerate(shapes)}
    loaded = roundtrip(arrays)
    assert list(loaded) == list(arrays)
    for name, array in arrays.items():
        assert_array_exact(loaded[name], array)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.complex64, np.complex128, ml_dtypes.bfloat16, ml_dtypes.float8_e5m2, "<U2", ml_dtypes.int4])
def test_non_contiguous_arrays(roundtrip: Any, dtype: Any) -> None:
    base = varied(dtype, (4, 5, 6), seed=3)
    views = layouts(base)
    loaded = roundtrip(views)
    for name, view in views.items():
        actual = loaded[name]
        assert type(actual) is np.ndarray, name
        assert actual.dtype.str == view.dtype.str, name
        assert actual.shape == view.shape, name
        assert actual.tobytes() == view.tobytes(), name


@pytest.mark.parametrize("count", [2, 4, 8, 30])
def test_float4_even_counts(roundtrip: Any, count: int) -> None:
    value = sample_array(ml_dtypes.float4_e2m1fn, (count,), seed=count)
    assert_array_exact(roundtrip(value), value)


@pytest.mark.parametrize("dtype", [ml_dtypes.float6_e2m3fn, ml_dtypes.float6_e3m2fn])
@pytest.mark.parametrize("shape", [(4,), (2, 2), (12,), (3, 4, 2)])
def test_float6_counts_multiple_of_four(roundtrip: Any, dtype: Any, shape: tuple[int, ...]) -> None:
    value = sample_array(dtype, shape, seed=len(shape))
    assert_array_exact(roundtrip(value), value)


@pytest.mark.parametrize(("dtype", "count"), [(ml_dtypes.float4_e2m1fn, 3), (ml_dtypes.float6_e2m3fn, 2), (ml_dtypes.float6_e3m2fn, 5)])
def test_sub_byte_arrays_with_a_partial_last_byte_are_refused(dtype: Any, count: int) -> None:
    with pytest.raises(safestructures.InvalidArgumentError) as info:
        safestructures.save({"a": [np.zeros(count, dtype)]})
    assert info.value.code == "SubByteNotWhole"
    assert "do not fill a whole number of bytes" in str(info.value)


def test_sub_byte_refusal_names_the_path() -> None:
    with pytest.raises(safestructures.InvalidArgumentError) as info:
        safestructures.save({"a": [np.zeros(3, ml_dtypes.float4_e2m1fn)]})
    assert '$["a"][0]' in str(info.value) or '"a.0"' in str(info.value)


def test_big_endian_arrays_come_back_big_endian(roundtrip: Any) -> None:
    values = {">i4": np.arange(-5, 7, dtype=">i4").reshape(3, 4), ">f8": np.array([1.5, -0.0, np.inf, np.nan], dtype=">f8"), ">u8": np.array(2**64 - 1, dtype=">u8")}
    loaded = roundtrip(values)
    for key, value in values.items():
        assert loaded[key].dtype.str == key
        assert_array_exact(loaded[key], value)
        assert loaded[key].tolist() == value.tolist() or key == ">f8"


def test_fortran_order_and_memmap(roundtrip: Any, tmp_path: Path) -> None:
    fortran = np.asfortranarray(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    memmap = np.memmap(tmp_path / "m.bin", dtype=np.int16, mode="w+", shape=(3, 2))
    memmap[:] = [[1, 2], [3, 4], [5, 6]]
    loaded = roundtrip({"f": fortran, "m": memmap})
    assert_array_exact(loaded["f"], np.ascontiguousarray(fortran))
    assert loaded["f"].flags.c_contiguous
    assert_array_exact(loaded["m"], np.asarray(memmap))
    del memmap


# ---------------------------------------------------------------------------------------------------------------------
# numpy scalars

NUMPY_SCALARS = [
    np.float32(0.1),
    np.float32(-0.0),
    np.float32(np.inf),
    np.float16(0.1),
    np.float16(65504),
    np.float64(0.1),
    np.float64(5e-324),
    np.int8(-128),
    np.int8(127),
    np.int16(-3),
    np.int32(2**31 - 1),
    np.int64(-(2**63)),
    np.uint8(255),
    np.uint16(65535),
    np.uint32(2**32 - 1),
    np.uint64(2**64 - 1),
    np.bool_(True),
    np.bool_(False),
    np.complex64(1.5 - 2j),
    np.complex128(complex(0.1, -0.0)),
    np.complex128(complex(np.nan, np.inf)),
    np.longdouble(1) / np.longdouble(3),
    np.longdouble("1e4000"),
    np.clongdouble(1 + 1j) / 3,
    np.datetime64("2020-01-02T03:04:05.123456789"),
    np.datetime64("2020-01", "M"),
    np.datetime64("NaT"),
    np.timedelta64(-5, "us"),
    np.timedelta64(7, "D"),
    np.str_("héllo 🙂"),
    np.bytes_(b"ab\x00c"),
    ml_dtypes.bfloat16(1.5),
    ml_dtypes.bfloat16(-0.0),
    ml_dtypes.float8_e4m3fn(0.5),
    ml_dtypes.float8_e5m2(-3.0),
]


@pytest.mark.parametrize("value", NUMPY_SCALARS, ids=lambda v: f"{np.asarray(v).dtype.str}-{v!r}"[:40])
def test_numpy_scalars(roundtrip: Any, value: Any) -> None:
    loaded = check(roundtrip, value)
    assert type(loaded) is type(value)
    assert loaded.dtype == value.dtype and loaded.dtype.str == value.dtype.str
    # A scalar object's long double padding is not set by numpy, so only the value's bytes are compared.
    assert value_bytes(loaded) == value_bytes(value)


def test_float32_scalar_is_exact(roundtrip: Any) -> None:
    loaded = roundtrip(np.float32(0.1))
    assert type(loaded) is np.float32
    assert loaded == np.float32(0.1) and float(loaded) != 0.1
    assert struct.pack("<f", loaded) == struct.pack("<f", np.float32(0.1))


@pytest.mark.parametrize("value", [np.str_(""), np.bytes_(b"")], ids=["str_", "bytes_"])
def test_empty_numpy_string_scalars(value: Any) -> None:
    data = safestructures.save([value])
    loaded = safestructures.load(data)[0]
    assert type(loaded) is type(value) and loaded == value


@pytest.mark.parametrize(
    ("raw", "dtype"),
    [(b"\x01\x7c", np.float16), (b"\x01\x00\xc0\xff", np.float32), (struct.pack("<Q", 0xFFF0000000000123), np.float64)],
    ids=["f2-snan", "f4-qnan-payload", "f8-snan"],
)
def test_numpy_nan_scalars_with_payloads(roundtrip: Any, raw: bytes, dtype: Any) -> None:
    value = np.frombuffer(raw, dtype)[0]
    assert roundtrip(value).tobytes() == raw


@pytest.mark.parametrize(
    ("raw", "dtype"),
    [(b"\x01\x00\x80\x7f", np.float32), (b"\xc1\x7f", ml_dtypes.bfloat16), (b"\x7f", ml_dtypes.float8_e5m2)],
    ids=["f4-snan", "bf16-payload", "f8e5m2-payload"],
)
def test_numpy_nan_scalars_keep_every_bit(raw: bytes, dtype: Any) -> None:
    value = np.frombuffer(raw, dtype)[0]
    assert safestructures.load(safestructures.save(value)).tobytes() == raw


# ---------------------------------------------------------------------------------------------------------------------
# Refused arrays and scalars


@pytest.mark.parametrize(
    "value",
    [
        np.array([object(), 1], dtype=object),
        np.array([1, 2], dtype=object),
        np.zeros(2, [("a", "<i4"), ("b", "<f4")]),
        np.zeros(3, "V4"),
        np.void(b"ab"),
        np.zeros(1, [("a", "<i4")])[0],
        np.ma.masked_array([1.0, 2.0], mask=[False, True]),
        np.arange(3).view(type("ArraySubclass", (np.ndarray,), {})),
    ],
    ids=["object", "object-ints", "structured", "void", "void-scalar", "record-scalar", "masked", "subclass"],
)
def test_object_and_structured_arrays_are_refused(value: Any) -> None:
    with pytest.raises(UnsupportedTypeError) as info:
        safestructures.save({"a": [0, 1, 2, value]})
    assert isinstance(info.value, TypeError)
    assert 'at $["a"][3]' in str(info.value)
    assert type(value).__name__ in str(info.value)

"""The golden corpus: every value whose saved bytes tests/golden/files pins, shared by make_golden.py and the test.

Each case builds its value afresh (deterministically: no randomness, no clocks) and names how it is saved: to a file,
to bytes in memory, or as a sharded folder, with its metadata and plugins. The classes the values use live here, so a
load can be given them (``types=``) and every value comes back with its exact types.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import fractions
import pathlib
import re
import struct
import typing
import uuid
import warnings
import zoneinfo
from collections.abc import Callable
from typing import Any

import safestructures as ss

FILES = pathlib.Path(__file__).resolve().parent / "files"

#: The key of a sharded save's id in the index's and every shard's metadata (format.md section 7). The id is
#: os.urandom's, different on every save and with no option to fix it, so the comparison replaces its value (24
#: lowercase hex digits, the same length) by zeros in the saved files and in the golden ones alike.
SAVE_ID_KEY = "__safestructures_save__"
FIXED_SAVE_ID = "0" * 24


@dataclasses.dataclass(frozen=True)
class Case:
    """One value of the corpus and how it is saved and loaded."""

    build: Callable[[], Any]
    #: "file" (save_file to NAME.safetensors), "bytes" (save() to NAME.bytes.safetensors), "sharded" (a folder NAME/).
    kind: str = "file"
    metadata: dict[str, str] | None = None
    plugins: tuple[type, ...] = ()
    max_shard_size: int | None = None
    #: Modules the case needs (skipped where one is not importable).
    requires: tuple[str, ...] = ()
    #: Run in a fresh interpreter: paddle kills a process that has imported TensorFlow (a segmentation fault at import).
    isolated: bool = False
    #: Stored compressed with lzma (a spilled schema takes tens of MB that compress to almost nothing).
    compressed: bool = False

    def golden_path(self, name: str) -> pathlib.Path:
        """Where the golden file (or folder) of case ``name`` lives."""
        suffix = {"file": ".safetensors", "bytes": ".bytes.safetensors", "sharded": ""}[self.kind]
        return FILES / (name + suffix + (".xz" if self.compressed else ""))


# --- classes the corpus saves ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Point:
    """A plain dataclass."""

    x: int
    y: float
    label: str = "p"
    hidden: list[int] = dataclasses.field(default_factory=list, init=False)


@dataclasses.dataclass(frozen=True)
class FrozenPair:
    """A frozen dataclass holding arbitrary values."""

    first: Any
    second: Any


@dataclasses.dataclass
class OutputDict(collections.OrderedDict):
    """A dataclass that is also an OrderedDict (like transformers' model outputs)."""

    logits: Any = None
    loss: float | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None:
                self[field.name] = value


Coordinate = collections.namedtuple("Coordinate", ["lat", "lon"])


class TypedRow(typing.NamedTuple):
    """A typing.NamedTuple."""

    key: str
    value: int = 0


class Color(enum.Enum):
    """A plain enum."""

    RED = 1
    GREEN = "green"
    BLUE = (2, 3)


class Access(enum.IntFlag):
    """A flag enum, saved combined as ``R|W``."""

    R = 4
    W = 2
    X = 1


class Level(enum.IntEnum):
    """An int enum."""

    LOW = 1
    HIGH = 10


class TaggedDict(dict):
    """A dict subclass with an instance attribute."""


class TaggedList(list):
    """A list subclass."""


class TaggedInt(int):
    """An int subclass."""


class TaggedStr(str):
    """A str subclass."""


class TaggedTuple(tuple):
    """A tuple subclass."""


class Slotted:
    """A registered plain class with __slots__."""

    __slots__ = ("a", "b")

    def __init__(self, a: Any, b: Any) -> None:
        self.a, self.b = a, b


class Plain:
    """A registered plain class, saved through its __dict__."""

    def __init__(self, name: str, payload: Any) -> None:
        self.name, self.payload = name, payload


class Interval:
    """A class registered with to_data/from_data (an ``ext`` node)."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high


class Renamed:
    """A class registered under a name of its own."""

    def __init__(self, v: Any) -> None:
        self.v = v


ss.register(Slotted)
ss.register(Plain)
ss.register(Interval, to_data=lambda i: [i.low, i.high], from_data=lambda d: Interval(d[0], d[1]))
ss.register(Renamed, name="golden.Renamed")
for _cls in (TaggedDict, TaggedList, TaggedInt, TaggedStr, TaggedTuple):
    ss.register(_cls)


class Temperature:
    """The type a 1.0.0-style plugin handles."""

    def __init__(self, kelvin: float, label: str) -> None:
        self.kelvin, self.label = kelvin, label


class TemperatureProcessor(ss.DataProcessor):
    """A 1.0.0-style plugin with a nested array and extra fields (docs/plugins.md)."""

    data_type = Temperature

    def serialize(self, data: Temperature) -> Any:
        import numpy as np

        return {"kelvin": data.kelvin, "history": self.serializer.serialize(np.array([data.kelvin, 1.5]))}

    def serialize_extra(self, data: Temperature) -> dict[str, Any]:
        return {"label": data.label}

    def deserialize(self, serialized: Any, label: str | None = None) -> Temperature:
        self.serializer.deserialize(serialized["history"])
        return Temperature(serialized["kelvin"], label or "")


#: Every class a golden file names, passed to loads as ``types=``.
TYPES = (Point, FrozenPair, OutputDict, Coordinate, TypedRow, Color, Access, Level, TaggedDict, TaggedList, TaggedInt,
         TaggedStr, TaggedTuple, Slotted, Plain, Interval, Renamed)


def nan_with_payload(bits: int) -> float:
    """The float whose IEEE bits are ``bits`` (a NaN keeps its sign and payload through struct)."""
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


# --- builders -------------------------------------------------------------------------------------------------------


def scalars() -> Any:
    return {
        "none": None, "true": True, "false": False,
        "ints": [0, 1, -1, 2**31, -(2**63), 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 3**200, -(7**150), 10**4400],
        "floats": [0.0, -0.0, 1.0, 0.1, 1e300, -1e-300, 5e-324, 1.7976931348623157e308, float("inf"), float("-inf"),
                   float("nan"), nan_with_payload(0xFFF8000000000000), nan_with_payload(0x7FF0000000000001),
                   nan_with_payload(0x7FF8DEADBEEF0001)],
        "strs": ["", "plain", "h\u00e9llo \u4e16\u754c \U0001F600", "ctl\x00\x01\x1f\"\\/\b\f\n\r\t\x7f",
                 "lone \ud800 high", "\udfff", "pair \ud83d\ude00 as surrogates"],
        "complex": [complex(1, -2), complex(-0.0, float("inf")), complex(float("nan"), 0.5)],
        "ellipsis": ...,
    }


def containers() -> Any:
    return {
        "list": [1, [2, [3, []]]],
        "tuple": (1, ("a", ()), (None,)),
        "set": {3, 1, 2},
        "set_str": {"b", "a", "c"},
        "frozenset": frozenset({(1, 2), (0, 5)}),
        "empty": [[], (), set(), frozenset(), {}, "", b"", bytearray()],
        "nested_dict": {"a": {"b": {"c": {}}}},
        "dollar_key": {"$": 1, "x": 2},
        "non_str_keys": {1: "int", 2.5: "float", None: "none", (1, "t"): "tuple", frozenset({9}): "fs", b"k": "bytes",
                         False: "bool", "s": "str", 2**70: "big", complex(1, 1): "complex", ...: "ellipsis"},
        "ordered": collections.OrderedDict([("z", 1), ("a", 2), (3, "three")]),
        "counter": collections.Counter({"x": 3, "y": -1, 7: 2}),
        "defaultdict_list": collections.defaultdict(list, {"a": [1]}),
        "defaultdict_none": collections.defaultdict(None, {1: 2}),
        "defaultdict_counter": collections.defaultdict(collections.Counter, {"k": collections.Counter("aab")}),
        "deque": collections.deque([1, "two", 3.0]),
        "deque_maxlen": collections.deque([1, 2, 3], maxlen=5),
        "deque_zero": collections.deque([], maxlen=0),
    }


def bytes_values() -> Any:
    return {
        "small": b"\x00\x01binary\xff",
        "exactly_64": bytes(range(64)),
        "large": bytes(range(256)) * 3,
        "bytearray_small": bytearray(b"mutable"),
        "bytearray_large": bytearray(range(200)),
    }


def stdlib_values() -> Any:
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    return {
        "range": [range(10), range(-5, 20, 3), range(0)],
        "slice": [slice(None), slice(1, 10, 2), slice("a", None, (1, 2))],
        "datetime_naive": datetime.datetime(2024, 2, 29, 23, 59, 58, 123456),
        "datetime_utc": datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc),
        "datetime_offset": datetime.datetime(1999, 12, 31, 12, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=-5, minutes=-30), "EST-ish")),
        "datetime_zone_fold": datetime.datetime(2023, 10, 29, 2, 30, tzinfo=paris, fold=1),
        "date": datetime.date(1, 1, 1),
        "time": datetime.time(13, 14, 15, 16),
        "time_tz": datetime.time(1, 2, tzinfo=datetime.timezone(datetime.timedelta(seconds=3600))),
        "timedelta": [datetime.timedelta(days=-3, seconds=5, microseconds=7), datetime.timedelta.max],
        "timezone": [datetime.timezone.utc, datetime.timezone(datetime.timedelta(hours=9), "JST")],
        "zoneinfo": paris,
        "decimal": [decimal.Decimal("3.14159265358979323846264338327950288"), decimal.Decimal("-0"),
                    decimal.Decimal("NaN"), decimal.Decimal("-Infinity"), decimal.Decimal("1E+999")],
        "fraction": [fractions.Fraction(1, 3), fractions.Fraction(-(10**30), 7)],
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "paths": [pathlib.PurePosixPath("/a/b c"), pathlib.PureWindowsPath(r"C:\x\y"), pathlib.PosixPath("rel/p")],
    }


def classes() -> Any:
    point = Point(1, 2.5)
    point.hidden.append(7)
    tagged = TaggedDict(a=1)
    tagged.note = "attr"
    return {
        "dataclass": point,
        "frozen": FrozenPair((1, 2), {"k": [None]}),
        "output": OutputDict(logits=[1.0, 2.0], loss=0.5),
        "namedtuple": Coordinate(1.5, -2.5),
        "typed_namedtuple": TypedRow("k", 3),
        "enums": [Color.RED, Color.GREEN, Color.BLUE, Access.R | Access.W, Access(0), Level.HIGH],
        "subclasses": [tagged, TaggedList([1, 2]), TaggedInt(5), TaggedStr("s"), TaggedTuple((1, "x"))],
        "slotted": Slotted([1], "b"),
        "plain": Plain("p", {"nested": (1, 2)}),
        "ext": Interval(0.5, 1.5),
        "renamed": Renamed(None),
    }


def references() -> Any:
    shared_list = [1, 2]
    shared_dict = {"k": "v"}
    shared_tuple = (shared_list, "t")
    shared_bytes = bytes(range(100))
    shared_bytearray = bytearray(b"ba")
    shared_set = {1, 2}
    shared_deque = collections.deque([0])
    cycle: list[Any] = [0]
    cycle.append(cycle)
    dict_cycle: dict[str, Any] = {}
    dict_cycle["self"] = dict_cycle
    mutual_a: list[Any] = []
    mutual_b: dict[str, Any] = {"a": mutual_a}
    mutual_a.append(mutual_b)
    point = Point(0, 0.0)
    return {
        "list_twice": [shared_list, shared_list],
        "dict_twice": {"a": shared_dict, "b": shared_dict},
        "tuple_twice": [shared_tuple, shared_tuple],
        "bytes_twice": [shared_bytes, shared_bytes],
        "bytearray_twice": [shared_bytearray, shared_bytearray],
        "set_twice": [shared_set, shared_set],
        "deque_twice": [shared_deque, shared_deque],
        "dataclass_twice": [point, point],
        "cycle": cycle,
        "dict_cycle": dict_cycle,
        "mutual": mutual_b,
        "cycle_through_tuple": [(mutual_a,)],
    }


def self_containing_list() -> Any:
    root: list[Any] = []
    root.append(root)
    return root


def numpy_values() -> Any:
    import ml_dtypes
    import numpy as np

    arrays: dict[str, Any] = {}
    for dtype in ("bool", "uint8", "int8", "int16", "uint16", "float16", "int32", "uint32", "float32", "complex64",
                  "float64", "int64", "uint64"):
        arrays[dtype] = (np.arange(12) % 5).astype(dtype).reshape(3, 4)
    for name in ("bfloat16", "float8_e5m2", "float8_e4m3fn", "float8_e8m0fnu", "float8_e4m3fnuz", "float8_e5m2fnuz",
                 "float4_e2m1fn", "float6_e2m3fn", "float6_e3m2fn", "int4", "uint4", "int2", "uint2", "float8_e3m4",
                 "float8_e4m3", "float8_e4m3b11fnuz"):
        if hasattr(ml_dtypes, name):
            arrays["ml_" + name] = np.array([0, 1, 1, 0, 1, 1, 0, 1], dtype=np.float32).reshape(2, 4).astype(getattr(ml_dtypes, name))
    arrays["big_endian_i4"] = np.arange(6, dtype=">i4").reshape(2, 3)
    arrays["big_endian_f8"] = np.array([1.5, -0.0, np.nan], dtype=">f8")
    arrays["complex128"] = np.array([1 + 2j, -3j])
    arrays["longdouble"] = np.array([1.25, -2.0], dtype=np.longdouble)
    arrays["unicode"] = np.array(["ab", "\u00e9", ""])
    arrays["bytes_S"] = np.array([b"x", b"yz"])
    arrays["datetime64"] = np.array(["2020-01-01T00:00", "NaT"], dtype="datetime64[ns]")
    arrays["timedelta64"] = np.array([1, -2], dtype="timedelta64[s]")
    arrays["scalar_0d"] = np.array(3.5, dtype=np.float32)
    arrays["empty"] = np.zeros((0, 3), dtype=np.int16)
    arrays["fortran"] = np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3))
    arrays["strided"] = np.arange(20, dtype=np.int32)[::3]
    arrays["nan_payload"] = np.array([nan_with_payload(0x7FF8DEADBEEF0001), np.nan], dtype=np.float64)
    base = np.arange(4, dtype=np.float32)
    arrays["shared_a"] = base
    arrays["shared_b"] = base
    scalars_ = [np.float32(1.5), np.float64(-0.0), np.int8(-3), np.uint64(2**64 - 1), np.bool_(True), np.float16(0.1),
                np.complex64(1 - 1j), np.complex128(2 + 3j), np.longdouble(1.5), np.float64(np.nan),
                np.float64(nan_with_payload(0x7FF8DEADBEEF0001)), np.str_("np str"), np.bytes_(b"np bytes"),
                np.datetime64("2021-03-04", "D"), np.timedelta64(5, "ms"), ml_dtypes.bfloat16(2.5),
                ml_dtypes.float8_e4m3fn(0.5), ml_dtypes.int4(-3)]
    return {"arrays": arrays, "scalars": scalars_}


def torch_values() -> Any:
    import torch

    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    weight = torch.nn.Parameter(torch.ones(2, 3, dtype=torch.float32))
    frozen = torch.nn.Parameter(torch.zeros(2, dtype=torch.float16), requires_grad=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "ComplexHalf support is experimental"
        complex32 = torch.zeros(2, dtype=torch.complex32)
    values: dict[str, Any] = {
        "dtypes": {str(dtype).removeprefix("torch."): (torch.arange(6) % 4).to(dtype)
                   for dtype in (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
                                 torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64,
                                 torch.complex128, torch.uint16, torch.uint32, torch.uint64, torch.float8_e5m2,
                                 torch.float8_e4m3fn)},
        "complex32": complex32,
        "base": base,
        "row_view": base[1],
        "step_view": base[:, ::2],
        "transpose": base.t(),
        "tied": [weight, weight],
        "frozen": frozen,
        "requires_grad": torch.ones(3, requires_grad=True),
        "scalar": torch.tensor(7, dtype=torch.int64),
        "chunk": torch.arange(10, dtype=torch.int32)[2:5],
        "meta": [torch.float16, torch.bfloat16, torch.device("cpu"), torch.device("cuda", 1), torch.Size([2, 3]), torch.Size([])],
    }
    return values


def tensorflow_values() -> Any:
    import tensorflow as tf

    shared = tf.constant([1.0, 2.0])
    return {
        "f32": tf.constant([[1.0, 2.0], [3.0, 4.0]]),
        "i64": tf.constant([1, 2, 3], dtype=tf.int64),
        "bf16": tf.constant([1.5, -2.0], dtype=tf.bfloat16),
        "bool": tf.constant([True, False]),
        "variable": tf.Variable([0.5, 0.25], trainable=False),
        "trainable": tf.Variable([1], dtype=tf.int32),
        "shared": [shared, shared],
    }


def jax_values() -> Any:
    import jax.numpy as jnp

    shared = jnp.arange(3, dtype=jnp.int32)
    return {
        "f32": jnp.arange(6, dtype=jnp.float32).reshape(2, 3),
        "bf16": jnp.array([1.0, 2.5], dtype=jnp.bfloat16),
        "i8": jnp.array([-1, 2], dtype=jnp.int8),
        "shared": [shared, shared],
    }


def paddle_values() -> Any:
    import paddle

    grad = paddle.to_tensor([1.0, 2.0])
    grad.stop_gradient = False
    return {
        "f32": paddle.to_tensor([[1.0, 2.0]], dtype="float32"),
        "i64": paddle.to_tensor([1, 2, 3], dtype="int64"),
        "bf16": paddle.to_tensor([1.5, 2.0], dtype="bfloat16"),
        "grad": grad,
    }


def mlx_values() -> Any:
    import mlx.core as mx

    return {
        "f32": mx.array([[1.0, 2.0], [3.0, 4.0]], dtype=mx.float32),
        "i16": mx.array([1, -2], dtype=mx.int16),
        "bf16": mx.array([0.5, 1.0], dtype=mx.bfloat16),
        "bool": mx.array([True, False]),
    }


def plugin_values() -> Any:
    return [Temperature(300.0, "room"), {"t": Temperature(1.5, "")}]


def spilled_schema() -> Any:
    import numpy as np

    # Each backslash is 2 bytes in the schema and 4 in the header's escaped metadata: 25,000,001 of them take the
    # header past its 100,000,000-byte limit, so the schema moves into a tensor beside the data's own tensors.
    return {"text": "\\" * 25_000_001, "w": np.arange(4, dtype=np.float32), "b": np.arange(3, dtype=np.int64)}


def sharded_model() -> Any:
    import numpy as np

    layer = np.arange(64, dtype=np.float32).reshape(8, 8)
    return {
        "layers": [{"weight": layer + i, "bias": np.full(8, i, dtype=np.float16)} for i in range(3)],
        "tied": layer,
        "big": np.arange(300, dtype=np.int64),
        "step": 10,
        "note": "sharded",
    }


def mixed() -> Any:
    """The format.md 5.1 example, with metadata."""
    import numpy as np

    w = np.array([[1, 2], [3, 4]], dtype=np.float32)
    b = np.array([5, 6], dtype=np.float32)
    return {"model": {"layers": [{"weight": w, "bias": b}], "tied": w}, "step": 10, "lr": 0.001, "tags": ("a", "b"), 1: None}


def name_collisions() -> Any:
    import numpy as np

    one = np.ones(1, dtype=np.uint8)
    return {"a.b": one.copy(), "a": {"b": one.copy()}, "root": one.copy(), "__metadata__": one.copy(),
            "__safestructures_schema__": one.copy(), "ctl\nname": one.copy(), 1: [one.copy()], "1": [one.copy()]}


CASES: dict[str, Case] = {
    "scalars": Case(scalars),
    "containers": Case(containers),
    "bytes_values": Case(bytes_values),
    "stdlib": Case(stdlib_values),
    "classes": Case(classes),
    "references": Case(references),
    "self_containing_list": Case(self_containing_list),
    "root_int": Case(lambda: 2**80),
    "root_none": Case(lambda: None),
    "metadata": Case(lambda: {"x": 1}, metadata={"run": "r1", "z": "last", "a": "first", "unicode \u00e9": "\u4e16\n\"q\""}),
    "metadata_empty": Case(lambda: [1], metadata={}),
    "numpy": Case(numpy_values, requires=("numpy", "ml_dtypes")),
    "numpy_root_tensor": Case(lambda: __import__("numpy").arange(5, dtype="int16"), requires=("numpy",)),
    "format_example": Case(mixed, metadata={"run": "r1"}, requires=("numpy",)),
    "name_collisions": Case(name_collisions, requires=("numpy",)),
    "numpy_in_memory": Case(numpy_values, kind="bytes", metadata={"k": "v"}, requires=("numpy", "ml_dtypes")),
    "scalars_in_memory": Case(scalars, kind="bytes"),
    "references_in_memory": Case(references, kind="bytes"),
    "plugin": Case(plugin_values, plugins=(TemperatureProcessor,), requires=("numpy",)),
    "spilled_schema": Case(spilled_schema, compressed=True, requires=("numpy",)),
    "sharded": Case(sharded_model, kind="sharded", max_shard_size=700, metadata={"run": "r2"}, requires=("numpy",)),
    "sharded_no_tensors": Case(lambda: {"a": [1, 2]}, kind="sharded", max_shard_size=1000),
    "torch": Case(torch_values, requires=("torch",)),
    "torch_sharded": Case(torch_values, kind="sharded", max_shard_size=200, requires=("torch",)),
    "tensorflow": Case(tensorflow_values, requires=("tensorflow",)),
    "jax": Case(jax_values, requires=("jax",)),
    "paddle": Case(paddle_values, requires=("paddle",), isolated=True),
    "mlx": Case(mlx_values, requires=("mlx.core",)),
}


def save_case(case: Case, target: pathlib.Path) -> None:
    """Save ``case`` as it is stored in the golden files, at ``target`` (a file, or a folder for a sharded save),
    uncompressed, with a sharded save's id fixed (see fix_save_id). Without checksums: the golden files pin the bytes
    of everything else, as they were before checksums existed (tests/python/test_checksums.py pins the checksums
    against an independent XXH3), and a sharded save's checksums cover its random id."""
    value = case.build()
    plugins = list(case.plugins) or None
    if case.kind == "bytes":
        target.write_bytes(ss.save(value, case.metadata, plugins, checksums=False))
    elif case.kind == "sharded":
        ss.save_file(value, target, case.metadata, plugins, max_shard_size=case.max_shard_size, checksums=False)
        fix_save_id(target)
    else:
        ss.save_file(value, target, case.metadata, plugins, checksums=False)


def fix_save_id(folder: pathlib.Path) -> None:
    """Replace the random id of the sharded save in ``folder`` by FIXED_SAVE_ID, in the index and in every shard: the
    only bytes of a sharded save that differ from one save to the next. Exactly one occurrence per file is replaced,
    right after its key, so nothing else can be hidden by it."""
    index = folder / "model.safetensors.index.json"
    found = re.search(rb'"%s": "([0-9a-f]{24})"' % SAVE_ID_KEY.encode(), index.read_bytes())
    assert found, "the index holds no save id"
    save_id = found.group(1)
    for path in folder.iterdir():
        data = path.read_bytes()
        pattern = rb'("%s": ?")%s"' % (SAVE_ID_KEY.encode(), save_id)
        fixed, count = re.subn(pattern, rb'\g<1>%s"' % FIXED_SAVE_ID.encode(), data)
        assert count == 1 and data.count(save_id) == 1, f"{path.name}: the save id occurs {data.count(save_id)} times"
        path.write_bytes(fixed)

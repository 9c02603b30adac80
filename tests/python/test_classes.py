"""User classes: dataclasses, named tuples, enums and subclasses of built-in types saved with no set-up, and classes
made known with ``register`` (with or without to_data/from_data). Without being told about a class, a load gives a
generic stand-in holding the same data; told (``types=`` or ``register``), it gives the exact class back, rebuilt
without running ``__init__``, ``__post_init__`` or ``__new__`` overrides."""

from __future__ import annotations

import collections
import dataclasses
import enum
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

import safestructures as ss
from safestructures import NamedRecord, Record, SafestructuresError, UnknownTypeError, UnsupportedTypeError
from conftest import assert_same, import_framework, schema_of, structured_file_bytes, tensor_names

pytestmark = pytest.mark.usefixtures("clean_registry")

#: What constructors ran: every __init__, __post_init__ and __new__ below appends to it.
CALLS: list[str] = []


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    CALLS.clear()


def load_counting(blob: bytes, **options: Any) -> Any:
    """``ss.load(blob, **options)``, asserting that no constructor of the classes of this module ran meanwhile."""
    CALLS.clear()
    loaded = ss.load(blob, **options)
    assert CALLS == [], f"constructors ran during the load: {CALLS}"
    return loaded


def qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def unregister(cls: type) -> None:
    """Removes a registration (there is no public way to; the clean_registry fixture restores the registry)."""
    from safestructures import _registry

    registration = _registry._BY_TYPE.pop(cls)
    del _registry._BY_NAME[registration.name]


# ---------------------------------------------------------------------------------------------------------------------
# Dataclasses


@dataclasses.dataclass
class Point:
    x: int
    y: float
    label: str = "p"

    def __post_init__(self) -> None:
        CALLS.append("Point.__post_init__")


@dataclasses.dataclass(frozen=True)
class FrozenPoint:
    x: int
    y: float

    def __post_init__(self) -> None:
        CALLS.append("FrozenPoint.__post_init__")


@dataclasses.dataclass(slots=True)
class SlotPoint:
    x: int
    y: float

    def __post_init__(self) -> None:
        CALLS.append("SlotPoint.__post_init__")


@dataclasses.dataclass(frozen=True, slots=True)
class FrozenSlotPoint:
    x: int
    tags: tuple

    def __post_init__(self) -> None:
        CALLS.append("FrozenSlotPoint.__post_init__")


@dataclasses.dataclass
class Line:
    start: Point
    end: FrozenPoint
    meta: dict


@dataclasses.dataclass
class Totals:
    parts: list
    total: int = dataclasses.field(init=False)
    tags: list = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        CALLS.append("Totals.__post_init__")
        self.total = sum(self.parts)


@dataclasses.dataclass
class Animal:
    name: str
    legs: int = 4


@dataclasses.dataclass
class Dog(Animal):
    breed: str = "mixed"
    tricks: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass(init=False)
class HandWritten:
    a: int
    b: list

    def __init__(self, a: int, b: list) -> None:
        CALLS.append("HandWritten.__init__")
        self.a, self.b = a, b


DATACLASSES: dict[str, tuple[type, Any]] = {
    "plain": (Point, lambda: Point(3, -1.5, "origin")),
    "frozen": (FrozenPoint, lambda: FrozenPoint(1, 2.5)),
    "slots": (SlotPoint, lambda: SlotPoint(7, 0.25)),
    "frozen-slots": (FrozenSlotPoint, lambda: FrozenSlotPoint(9, ("a", 1))),
    "init-false-default-factory": (Totals, lambda: Totals([1, 2, 3], tags=["t"])),
    "inherited": (Dog, lambda: Dog("rex", breed="collie", tricks=["sit"])),
    "hand-written-init": (HandWritten, lambda: HandWritten(5, [None, True])),
}


def field_values(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def assert_same_dataclass(actual: Any, expected: Any) -> None:
    assert type(actual) is type(expected)
    assert_same(field_values(actual), field_values(expected))
    assert actual == expected


@pytest.mark.parametrize("case", DATACLASSES, ids=list(DATACLASSES))
def test_dataclass_without_registration_gives_a_record(case: str) -> None:
    cls, make = DATACLASSES[case]
    obj = make()
    blob = ss.save({"a": {"b": obj}})
    node = schema_of(blob)["root"]["a"]["b"]
    assert node["$"] == "dataclass" and node["type"] == qualified(cls)
    record = load_counting(blob)["a"]["b"]
    assert type(record) is Record
    assert record.type_name == qualified(cls)
    expected = field_values(obj)
    assert list(record) == list(expected) == list(record.keys())
    assert_same(record.asdict(), expected)
    for name, value in expected.items():
        assert_same(getattr(record, name), value)
        assert_same(record[name], value)
        assert name in record
    assert len(record) == len(expected)
    assert record == Record(qualified(cls), expected)
    assert record != Record("other.Name", expected)
    with pytest.raises(AttributeError, match="no field 'missing'"):
        record.missing
    with pytest.raises(KeyError):
        record["missing"]


@pytest.mark.parametrize("case", DATACLASSES, ids=list(DATACLASSES))
def test_dataclass_with_types_comes_back_exactly_without_constructors(case: str) -> None:
    cls, make = DATACLASSES[case]
    obj = make()
    loaded = load_counting(ss.save({"a": [obj]}), types=[cls])
    assert_same_dataclass(loaded["a"][0], obj)


@pytest.mark.parametrize("case", DATACLASSES, ids=list(DATACLASSES))
def test_dataclass_registered_comes_back_exactly(case: str) -> None:
    cls, make = DATACLASSES[case]
    obj = make()
    assert ss.register(cls) is cls
    blob = ss.save(obj)
    assert schema_of(blob)["root"]["type"] == qualified(cls)
    assert_same_dataclass(load_counting(blob), obj)
    assert_same_dataclass(load_counting(blob, strict=True), obj)


@pytest.mark.parametrize("case", DATACLASSES, ids=list(DATACLASSES))
def test_dataclass_strict_without_registration_names_class_and_path(case: str) -> None:
    cls, make = DATACLASSES[case]
    blob = ss.save({"a": {"b": make()}})
    with pytest.raises(UnknownTypeError) as info:
        ss.load(blob, strict=True)
    assert isinstance(info.value, SafestructuresError) and isinstance(info.value, LookupError)
    message = str(info.value)
    assert message.startswith('at $["a"]["b"]: ')
    assert repr(qualified(cls)) in message


def test_record_fields_named_like_its_methods_are_items() -> None:
    @dataclasses.dataclass
    class Awkward:
        items: list
        keys: tuple
        type_name: str
        _type: int

    record = ss.load(ss.save(Awkward([1], (2,), "t", 3)))
    assert record.type_name == qualified(Awkward)  # the property wins over the field of that name...
    assert callable(record.items) and callable(record.keys)
    # ...item access reaches every field.
    assert record["items"] == [1] and record["keys"] == (2,) and record["type_name"] == "t" and record["_type"] == 3
    assert record.asdict() == {"items": [1], "keys": (2,), "type_name": "t", "_type": 3}


def test_frozen_and_slotted_dataclasses_are_really_frozen_and_slotted_after_loading() -> None:
    frozen = load_counting(ss.save(FrozenSlotPoint(1, (2,))), types=[FrozenSlotPoint])
    assert not hasattr(frozen, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        frozen.x = 2  # type: ignore[misc]
    slotted = load_counting(ss.save(SlotPoint(1, 2.0)), types=[SlotPoint])
    assert not hasattr(slotted, "__dict__")
    slotted.x = 5
    assert slotted.x == 5
    with pytest.raises(AttributeError):
        slotted.other = 1  # type: ignore[attr-defined]


def test_nested_dataclasses() -> None:
    line = Line(Point(0, 0.5), FrozenPoint(1, 1.5), {"color": "red", "width": 2})
    blob = ss.save({"line": line})
    generic = load_counting(blob)["line"]
    assert type(generic) is Record and generic.type_name == qualified(Line)
    assert type(generic.start) is Record and generic.start.type_name == qualified(Point)
    assert generic.start.asdict() == {"x": 0, "y": 0.5, "label": "p"}
    assert type(generic["end"]) is Record and generic["end"]["y"] == 1.5
    assert generic.meta == {"color": "red", "width": 2}

    # Only the outer class given: the inner ones stay records; all of them given: all exact.
    partly = load_counting(blob, types=[Line])["line"]
    assert type(partly) is Line and type(partly.start) is Record and type(partly.end) is Record
    exact = load_counting(blob, types=[Line, Point, FrozenPoint])["line"]
    assert_same_dataclass(exact, line)
    assert type(exact.start) is Point and type(exact.end) is FrozenPoint

    with pytest.raises(UnknownTypeError, match=r"at \$\[\"line\"\]\[\"start\"\]: .*Point"):
        ss.load(blob, types=[Line], strict=True)


def test_field_init_false_and_default_factory_come_from_the_file() -> None:
    obj = Totals([4, 5], tags=["x"])
    obj.total = 100  # differs from what __post_init__ computes: the file's value must win
    loaded = load_counting(ss.save(obj), types=[Totals])
    assert loaded.total == 100 and loaded.parts == [4, 5] and loaded.tags == ["x"]
    default = load_counting(ss.save(Totals([1])), types=[Totals])
    assert default.tags == [] and default.total == 1


def test_an_unset_init_false_field_is_left_unset() -> None:
    obj = Totals.__new__(Totals)
    obj.parts = [1]
    obj.tags = []
    blob = ss.save(obj)
    assert list(schema_of(blob)["root"]["fields"]) == ["parts", "tags"]
    loaded = load_counting(blob, types=[Totals])
    assert loaded.parts == [1] and not hasattr(loaded, "total")


def test_inherited_fields_keep_their_order() -> None:
    dog = Dog("rex", 3, "pug", ["roll"])
    blob = ss.save(dog)
    assert list(schema_of(blob)["root"]["fields"]) == ["name", "legs", "breed", "tricks"]
    record = ss.load(blob)
    assert record.asdict() == {"name": "rex", "legs": 3, "breed": "pug", "tricks": ["roll"]}
    # Passing the base class does not resolve the subclass.
    assert type(ss.load(blob, types=[Animal])) is Record
    assert_same_dataclass(load_counting(blob, types=[Dog]), dog)


def test_dataclass_fields_holding_arrays_and_tensors() -> None:
    torch = import_framework("torch")

    @dataclasses.dataclass
    class Config:
        w: Any
        t: Any
        scale: float = 1.0

    cfg = Config(np.arange(6, dtype=np.float32).reshape(2, 3), torch.arange(4, dtype=torch.int16), 0.5)
    blob = ss.save({"cfg": cfg})
    assert sorted(tensor_names(blob)) == ["cfg.t", "cfg.w"]
    fields = schema_of(blob)["root"]["cfg"]["fields"]
    assert fields["w"] == {"$": "tensor", "name": "cfg.w", "fw": "numpy"}
    assert fields["t"] == {"$": "tensor", "name": "cfg.t", "fw": "torch"}

    record = ss.load(blob)["cfg"]
    assert type(record) is Record
    assert_same(record.w, cfg.w)
    assert type(record.t) is torch.Tensor and record.t.dtype == torch.int16 and torch.equal(record.t, cfg.t)

    loaded = ss.load(blob, types=[Config])["cfg"]
    assert type(loaded) is Config and loaded.scale == 0.5
    assert_same(loaded.w, cfg.w)
    assert type(loaded.t) is torch.Tensor and loaded.t.dtype == torch.int16 and torch.equal(loaded.t, cfg.t)


def test_dataclass_reached_twice_is_stored_once_and_loads_as_one_object() -> None:
    shared = Point(1, 2.0)
    data = {"a": shared, "b": [shared], "c": {"d": shared}}
    blob = ss.save(data)
    root = schema_of(blob)["root"]
    assert root["a"]["$"] == "dataclass" and root["a"]["#"] == 1
    assert root["b"] == [{"$": "ref", "#": 1}] and root["c"]["d"] == {"$": "ref", "#": 1}
    generic = ss.load(blob)
    assert generic["a"] is generic["b"][0] is generic["c"]["d"]
    exact = load_counting(blob, types=[Point])
    assert type(exact["a"]) is Point and exact["a"] is exact["b"][0] is exact["c"]["d"]


def test_two_equal_dataclasses_stay_two_objects() -> None:
    loaded = ss.load(ss.save([Point(1, 2.0), Point(1, 2.0)]), types=[Point])
    assert loaded[0] == loaded[1] and loaded[0] is not loaded[1]


def test_a_cycle_through_a_dataclass_is_refused_on_save() -> None:
    @dataclasses.dataclass
    class Node:
        children: list

    node = Node([])
    node.children.append(node)
    with pytest.raises(UnsupportedTypeError, match=r"cycle at \$\[\"tree\"\]\[\"children\"\]\[0\].*Node"):
        ss.save({"tree": node})
    # A cycle through a dict held by a dataclass field is refused too.
    holder = Node([{}])
    holder.children[0]["back"] = holder
    with pytest.raises(UnsupportedTypeError, match="cycle"):
        ss.save(holder)


# ---------------------------------------------------------------------------------------------------------------------
# Named tuples

Pair = collections.namedtuple("Pair", ["left", "right"])


class Coord(NamedTuple):
    lat: float
    lon: float = 0.0


class CountingPair(collections.namedtuple("CountingPairBase", "left right")):
    __slots__ = ()

    def __new__(cls, left: Any, right: Any) -> CountingPair:
        CALLS.append("CountingPair.__new__")
        return super().__new__(cls, left, right)


NAMEDTUPLES: dict[str, tuple[type, Any]] = {
    "collections": (Pair, lambda: Pair([1, 2], {"k": None})),
    "typing": (Coord, lambda: Coord(48.85, 2.35)),
    "overridden-new": (CountingPair, lambda: CountingPair("a", b"b")),
}


@pytest.mark.parametrize("case", NAMEDTUPLES, ids=list(NAMEDTUPLES))
def test_named_tuple_without_registration_gives_a_named_record(case: str) -> None:
    cls, make = NAMEDTUPLES[case]
    obj = make()
    blob = ss.save({"a": obj})
    node = schema_of(blob)["root"]["a"]
    assert (node["$"], node["type"], node["fields"]) == ("namedtuple", qualified(cls), list(cls._fields))
    record = load_counting(blob)["a"]
    assert type(record) is NamedRecord and isinstance(record, tuple)
    assert record == tuple(obj) and tuple(record) == tuple(obj)
    assert record.type_name == qualified(cls)
    assert record._fields == cls._fields
    for name in cls._fields:
        assert_same(getattr(record, name), getattr(obj, name))
    assert record._asdict() == obj._asdict()
    assert type(record._asdict()) is dict
    assert repr(record) == repr(obj)
    with pytest.raises(AttributeError, match="no field 'nope'"):
        record.nope
    # A NamedRecord unpacks and indexes like the tuple it stands for.
    first, second = record
    assert_same(first, obj[0])
    assert_same(record[1], obj[1])


@pytest.mark.parametrize("case", NAMEDTUPLES, ids=list(NAMEDTUPLES))
def test_named_tuple_with_types_and_register(case: str) -> None:
    cls, make = NAMEDTUPLES[case]
    obj = make()
    blob = ss.save({"a": obj})
    loaded = load_counting(blob, types=[cls])["a"]
    assert type(loaded) is cls and loaded == obj
    assert_same(tuple(loaded), tuple(obj))
    with pytest.raises(UnknownTypeError, match=r'^at \$\["a"\]: .*' + cls.__qualname__):
        ss.load(blob, strict=True)
    ss.register(cls)
    registered = load_counting(blob, strict=True)["a"]
    assert type(registered) is cls and registered == obj


def test_named_record_pickles_and_compares_as_a_tuple() -> None:
    import pickle

    record = ss.load(ss.save(Coord(1.0, 2.0)))
    assert record == (1.0, 2.0) and hash(record) == hash((1.0, 2.0))
    again = pickle.loads(pickle.dumps(record))
    assert type(again) is NamedRecord and again.type_name == record.type_name and again.lat == 1.0


# ---------------------------------------------------------------------------------------------------------------------
# Enums


class Color(enum.Enum):
    RED = "r"
    GREEN = (0, 255, 0)


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 10


class Perm(enum.Flag):
    R = 4
    W = 2
    X = 1


class Mode(enum.StrEnum):
    READ = "read"
    WRITE = "write"


ENUM_MEMBERS: dict[str, tuple[type, Any, Any]] = {
    "enum-str": (Color, Color.RED, "r"),
    "enum-tuple": (Color, Color.GREEN, (0, 255, 0)),
    "intenum": (Level, Level.HIGH, 10),
    "flag-single": (Perm, Perm.R, 4),
    "flag-combined": (Perm, Perm.R | Perm.W, 6),
    "flag-all": (Perm, Perm.R | Perm.W | Perm.X, 7),
    "flag-empty": (Perm, Perm(0), 0),
    "strenum": (Mode, Mode.WRITE, "write"),
}


@pytest.mark.parametrize("case", ENUM_MEMBERS, ids=list(ENUM_MEMBERS))
def test_enum_member_without_registration_gives_its_value(case: str) -> None:
    cls, member, value = ENUM_MEMBERS[case]
    blob = ss.save({"a": {"b": member}})
    node = schema_of(blob)["root"]["a"]["b"]
    assert node["$"] == "enum" and node["type"] == qualified(cls)
    loaded = load_counting(blob)["a"]["b"]
    assert_same(loaded, value)  # the raw value, of its own exact type (int, not an IntEnum)
    with pytest.raises(UnknownTypeError, match=r'^at \$\["a"\]\["b"\]: .*' + qualified(cls)):
        ss.load(blob, strict=True)


@pytest.mark.parametrize("case", ENUM_MEMBERS, ids=list(ENUM_MEMBERS))
def test_enum_member_with_types_and_register_is_the_member(case: str) -> None:
    cls, member, _value = ENUM_MEMBERS[case]
    blob = ss.save([member, {"again": member}])
    loaded = load_counting(blob, types=[cls])
    assert loaded[0] is member and loaded[1]["again"] is member
    ss.register(cls)
    assert load_counting(blob, strict=True)[0] is member


def test_combined_flag_is_stored_with_its_value() -> None:
    node = schema_of(ss.save(Perm.R | Perm.W))["root"]
    assert node["value"] == 6 and node["type"] == qualified(Perm)


def test_enum_member_is_found_by_name_first_then_by_value() -> None:
    # A file from a version of the enum whose values changed still loads its members by name.
    by_name = structured_file_bytes({"$": "enum", "type": qualified(Level), "name": "LOW", "value": 99})
    assert ss.load(by_name, types=[Level]) is Level.LOW
    by_value = structured_file_bytes({"$": "enum", "type": qualified(Level), "name": "OLD_NAME", "value": 10})
    assert ss.load(by_value, types=[Level]) is Level.HIGH
    neither = structured_file_bytes({"$": "enum", "type": qualified(Level), "name": "OLD_NAME", "value": 99})
    with pytest.raises(ss.InvalidFileError, match=r"^at \$: .*99"):
        ss.load(neither, types=[Level])


# ---------------------------------------------------------------------------------------------------------------------
# Subclasses of built-in types, with extra instance attributes


def counting(base: type) -> type:
    """A subclass of ``base`` whose __new__ (and __init__, for mutable bases) record that they ran."""
    namespace: dict[str, Any] = {}

    def __new__(cls: type, *args: Any, **kwargs: Any) -> Any:
        CALLS.append(f"{cls.__name__}.__new__")
        return super(sub, cls).__new__(cls, *args, **kwargs)  # type: ignore[misc]

    namespace["__new__"] = __new__
    if base in (dict, list, set, bytearray, collections.OrderedDict, collections.Counter):

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            CALLS.append(f"{type(self).__name__}.__init__")
            super(sub, self).__init__(*args, **kwargs)  # type: ignore[misc]

        namespace["__init__"] = __init__
    name = f"My{base.__name__[0].upper()}{base.__name__[1:]}"
    sub = type(name, (base,), {**namespace, "__module__": __name__, "__qualname__": name})
    return sub


MyDict = counting(dict)
MyList = counting(list)
MyTuple = counting(tuple)
MySet = counting(set)
MyFrozenset = counting(frozenset)
MyInt = counting(int)
MyFloat = counting(float)
MyStr = counting(str)
MyBytes = counting(bytes)
MyBytearray = counting(bytearray)
MyComplex = counting(complex)
MyOrderedDict = counting(collections.OrderedDict)
MyCounter = counting(collections.Counter)

BUILTIN_SUBCLASSES: dict[str, tuple[type, type, Any]] = {
    "dict": (MyDict, dict, {"a": 1, 2: [3]}),
    "list": (MyList, list, [1, "two", None]),
    "tuple": (MyTuple, tuple, (1, (2,), "3")),
    "set": (MySet, set, {1, 2, 3}),
    "frozenset": (MyFrozenset, frozenset, frozenset({"x", "y"})),
    "int": (MyInt, int, -(2**70)),
    "float": (MyFloat, float, -0.0),
    "str": (MyStr, str, "héllo"),
    "bytes": (MyBytes, bytes, b"\x00\xff"),
    "bytearray": (MyBytearray, bytearray, bytearray(b"ab")),
    "complex": (MyComplex, complex, 1 - 2j),
    "OrderedDict": (MyOrderedDict, collections.OrderedDict, collections.OrderedDict([("z", 1), ("a", 2)])),
    "Counter": (MyCounter, collections.Counter, collections.Counter("abracadabra")),
}


def make_subclass_instance(case: str) -> tuple[type, type, Any, Any]:
    cls, base, value = BUILTIN_SUBCLASSES[case]
    obj = cls(value)
    obj.note = "extra"
    obj.weights = np.arange(3, dtype=np.int8)
    CALLS.clear()
    return cls, base, value, obj


def assert_base_value(actual: Any, base: type, value: Any) -> None:
    assert isinstance(actual, base)
    assert_same(base(actual) if base is not collections.Counter else collections.Counter(dict(actual)), value)
    if base in (dict, collections.OrderedDict, collections.Counter):
        assert list(actual.items()) == list(value.items())


@pytest.mark.parametrize("case", BUILTIN_SUBCLASSES, ids=list(BUILTIN_SUBCLASSES))
def test_builtin_subclass_without_registration_gives_a_generic_subclass(case: str) -> None:
    cls, base, value, obj = make_subclass_instance(case)
    blob = ss.save({"a": {"b": obj}})
    node = schema_of(blob)["root"]["a"]["b"]
    assert node["$"] == "object" and node["type"] == qualified(cls) and node["base"] == base.__name__
    assert tensor_names(blob) == ["a.b.weights"]
    loaded = load_counting(blob)["a"]["b"]
    assert type(loaded) is not base and type(loaded) is not cls
    assert type(loaded).__mro__[1] is base
    assert_base_value(loaded, base, value)
    assert loaded == value
    assert loaded.type_name == qualified(cls)
    assert loaded.note == "extra"
    assert_same(loaded.weights, obj.weights)
    # The same generic class stands for every subclass of that base.
    other = load_counting(ss.save(obj))
    assert type(other) is type(loaded)


@pytest.mark.parametrize("case", BUILTIN_SUBCLASSES, ids=list(BUILTIN_SUBCLASSES))
def test_builtin_subclass_with_types_comes_back_exactly_without_constructors(case: str) -> None:
    cls, base, value, obj = make_subclass_instance(case)
    blob = ss.save({"a": {"b": obj}})
    loaded = load_counting(blob, types=[cls])["a"]["b"]
    assert type(loaded) is cls
    assert_base_value(loaded, base, value)
    assert loaded == obj
    assert loaded.note == "extra"
    assert_same(loaded.weights, obj.weights)
    assert vars(loaded).keys() == {"note", "weights"}


@pytest.mark.parametrize("case", BUILTIN_SUBCLASSES, ids=list(BUILTIN_SUBCLASSES))
def test_builtin_subclass_registered_and_strict(case: str) -> None:
    cls, base, value, obj = make_subclass_instance(case)
    blob = ss.save({"a": {"b": obj}})
    with pytest.raises(UnknownTypeError, match=r'^at \$\["a"\]\["b"\]: .*' + cls.__qualname__):
        ss.load(blob, strict=True)
    ss.register(cls)
    loaded = load_counting(blob, strict=True)["a"]["b"]
    assert type(loaded) is cls and loaded == obj and loaded.note == "extra"


def test_builtin_subclass_without_attributes_stores_no_attrs() -> None:
    node = schema_of(ss.save(MyList([1])))["root"]
    assert node == {"$": "object", "type": qualified(MyList), "base": "list", "value": [1]}
    loaded = ss.load(ss.save(MyList([1])), types=[MyList])
    assert type(loaded) is MyList and loaded == [1] and vars(loaded) == {}


def test_dict_subclass_keeps_its_items_and_attributes_apart() -> None:
    obj = MyDict({"note": "item"})
    obj.note = "attribute"
    loaded = ss.load(ss.save(obj), types=[MyDict])
    assert loaded["note"] == "item" and loaded.note == "attribute"
    generic = ss.load(ss.save(obj))
    assert generic["note"] == "item" and generic.note == "attribute"


class Shouty(dict):  # type: ignore[type-arg]
    """Overrides item assignment: loading must fill the dict through dict's own methods."""

    def __setitem__(self, key: Any, value: Any) -> None:
        CALLS.append("Shouty.__setitem__")
        super().__setitem__(key.upper(), value)


def test_builtin_subclass_is_filled_without_its_overrides() -> None:
    obj = Shouty()
    obj["A"] = 1
    CALLS.clear()
    loaded = load_counting(ss.save(obj), types=[Shouty])
    assert type(loaded) is Shouty and dict(loaded) == {"A": 1}


class NeedsArgument(dict):  # type: ignore[type-arg]
    def __new__(cls, size: int) -> NeedsArgument:
        CALLS.append("NeedsArgument.__new__")
        return super().__new__(cls)

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size


def test_builtin_subclass_whose_new_takes_arguments_loads() -> None:
    obj = NeedsArgument(3)
    obj["k"] = "v"
    loaded = load_counting(ss.save(obj), types=[NeedsArgument])
    assert type(loaded) is NeedsArgument and loaded == {"k": "v"} and loaded.size == 3


# ---------------------------------------------------------------------------------------------------------------------
# register: decorator, names, plain classes, to_data/from_data


def test_register_as_a_decorator_with_and_without_a_name() -> None:
    @ss.register
    @dataclasses.dataclass
    class Plain:
        a: int

    @ss.register(name="project.Renamed")
    @dataclasses.dataclass
    class Renamed:
        b: str

    blob = ss.save({"p": Plain(1), "r": Renamed("x")})
    root = schema_of(blob)["root"]
    assert root["p"]["type"] == qualified(Plain)
    assert root["r"]["type"] == "project.Renamed"
    loaded = ss.load(blob, strict=True)
    assert type(loaded["p"]) is Plain and loaded["p"] == Plain(1)
    assert type(loaded["r"]) is Renamed and loaded["r"] == Renamed("x")


def test_renamed_class_keeps_loading_after_it_moves() -> None:
    @dataclasses.dataclass
    class Version1:
        a: int

    ss.register(Version1, name="project.Thing")
    blob = ss.save([Version1(1)])
    # "The class moved": a different class object takes over the stored name.
    unregister(Version1)

    @dataclasses.dataclass
    class Version2:
        a: int

    ss.register(Version2, name="project.Thing")
    loaded = ss.load(blob, strict=True)
    assert type(loaded[0]) is Version2 and loaded[0].a == 1
    # Unregistered, the stand-in carries the stored name.
    unregister(Version2)
    assert ss.load(blob)[0].type_name == "project.Thing"
    with pytest.raises(UnknownTypeError, match=r"^at \$\[0\]: .*'project\.Thing'"):
        ss.load(blob, strict=True)


def test_types_uses_the_registered_name() -> None:
    @dataclasses.dataclass
    class Named:
        a: int

    ss.register(Named, name="project.Named")
    blob = ss.save(Named(2))
    assert schema_of(blob)["root"]["type"] == "project.Named"
    assert type(ss.load(blob, types=[Named], strict=True)) is Named


def test_reregistering_a_class_under_a_new_name_moves_it() -> None:
    @dataclasses.dataclass
    class Moving:
        a: int

    ss.register(Moving, name="old.Moving")
    old_blob = ss.save(Moving(1))
    assert ss.register(Moving, name="new.Moving") is Moving
    ss.register(Moving, name="new.Moving")  # the same registration again is fine
    new_blob = ss.save(Moving(1))
    assert schema_of(new_blob)["root"]["type"] == "new.Moving"
    assert type(ss.load(new_blob, strict=True)) is Moving
    with pytest.raises(UnknownTypeError, match="old.Moving"):
        ss.load(old_blob, strict=True)


class Tokenizer:
    def __init__(self, vocab: dict[str, int]) -> None:
        CALLS.append("Tokenizer.__init__")
        self.vocab = dict(vocab)
        self.size = len(vocab)
        self.table = np.arange(len(vocab), dtype=np.int32)


class Slotted:
    __slots__ = ("a", "b", "unset")

    def __init__(self, a: Any, b: Any) -> None:
        CALLS.append("Slotted.__init__")
        self.a, self.b = a, b


class SlottedChild(Slotted):
    __slots__ = ("c",)

    def __init__(self, a: Any, b: Any, c: Any) -> None:
        super().__init__(a, b)
        self.c = c


class Mixed(Slotted):
    """Slots from the base class and a __dict__ of its own."""

    def __init__(self) -> None:
        super().__init__(1, 2)
        self.extra = "dict"


def test_registered_plain_class_round_trips_through_its_dict() -> None:
    ss.register(Tokenizer)
    tok = Tokenizer({"a": 0, "b": 1})
    blob = ss.save({"tok": tok})
    node = schema_of(blob)["root"]["tok"]
    assert node["$"] == "object" and node["type"] == qualified(Tokenizer) and "base" not in node
    assert tensor_names(blob) == ["tok.table"]
    loaded = load_counting(blob, strict=True)["tok"]
    assert type(loaded) is Tokenizer
    assert loaded.vocab == {"a": 0, "b": 1} and loaded.size == 2
    assert_same(loaded.table, tok.table)
    assert vars(loaded).keys() == vars(tok).keys()


def test_plain_class_not_registered_loads_as_a_record() -> None:
    ss.register(Tokenizer)
    blob = ss.save(Tokenizer({"a": 0}))
    unregister(Tokenizer)
    record = load_counting(blob)
    assert type(record) is Record and record.type_name == qualified(Tokenizer)
    assert record.vocab == {"a": 0} and record.size == 1
    # types= is enough to rebuild it, without the registry.
    assert type(load_counting(blob, types=[Tokenizer])) is Tokenizer


@pytest.mark.parametrize(
    ("make", "attributes"),
    [
        (lambda: Slotted([1], "b"), {"a": [1], "b": "b"}),
        (lambda: SlottedChild(1, 2, 3), {"a": 1, "b": 2, "c": 3}),
        (lambda: Mixed(), {"a": 1, "b": 2, "extra": "dict"}),
    ],
    ids=["slots", "inherited-slots", "slots-and-dict"],
)
def test_registered_plain_class_round_trips_through_its_slots(make: Any, attributes: dict[str, Any]) -> None:
    obj = make()
    cls = type(obj)
    ss.register(cls)
    blob = ss.save(obj)
    assert schema_of(blob)["root"]["attrs"] == attributes
    loaded = load_counting(blob)
    assert type(loaded) is cls
    for name, value in attributes.items():
        assert getattr(loaded, name) == value
    assert not hasattr(loaded, "unset")


class Interval:
    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high


class Embedding:
    def __init__(self, name: str, weight: Any) -> None:
        self.name, self.weight = name, weight


def test_register_with_to_data_and_from_data() -> None:
    ss.register(Interval, name="project.Interval", to_data=lambda i: [i.low, i.high], from_data=lambda d: Interval(*d))
    blob = ss.save({"range": Interval(0.5, 2.0)})
    assert schema_of(blob)["root"]["range"] == {"$": "ext", "type": "project.Interval", "data": [0.5, 2.0]}
    back = ss.load(blob, strict=True)["range"]
    assert type(back) is Interval and (back.low, back.high) == (0.5, 2.0)


def test_to_data_may_hold_tensors() -> None:
    torch = import_framework("torch")
    seen: list[Any] = []

    def from_data(data: Any) -> Embedding:
        seen.append(data)
        return Embedding(data["name"], data["weight"])

    ss.register(Embedding, to_data=lambda e: {"name": e.name, "weight": e.weight}, from_data=from_data)
    emb = Embedding("tok", torch.arange(6, dtype=torch.float16).reshape(3, 2))
    arr = Embedding("np", np.ones((2, 2), np.float64))
    blob = ss.save({"emb": emb, "arr": arr, "same": emb})
    assert sorted(tensor_names(blob)) == ["arr.weight", "emb.weight"]
    loaded = ss.load(blob)
    assert type(loaded["emb"]) is Embedding and loaded["emb"] is loaded["same"]
    assert loaded["emb"].weight.dtype == torch.float16 and torch.equal(loaded["emb"].weight, emb.weight)
    assert_same(loaded["arr"].weight, arr.weight)
    assert len(seen) == 2  # from_data ran once per object, not once per reference

    # Without the registration: a record holding the data.
    unregister(Embedding)
    record = ss.load(blob)["arr"]
    assert type(record) is Record and record.type_name == qualified(Embedding)
    assert record.data["name"] == "np"
    assert_same(record.data["weight"], arr.weight)
    with pytest.raises(UnknownTypeError, match=r'^at \$\["emb"\]'):
        ss.load(blob, strict=True)


def test_ext_node_for_a_class_known_only_through_types_is_an_invalid_file() -> None:
    ss.register(Interval, to_data=lambda i: [i.low, i.high], from_data=lambda d: Interval(*d))
    blob = ss.save([Interval(1, 2)])
    unregister(Interval)
    with pytest.raises(ss.InvalidFileError, match=r"^at \$\[0\]: .*from_data"):
        ss.load(blob, types=[Interval])


@pytest.mark.parametrize(
    "kwargs",
    [{"to_data": lambda x: x}, {"from_data": lambda x: x}],
    ids=["only-to_data", "only-from_data"],
)
def test_register_needs_both_functions_or_neither(kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError, match="both to_data and from_data"):
        ss.register(Interval, **kwargs)
    with pytest.raises(TypeError, match="both to_data and from_data"):
        ss.register(**kwargs)(Interval)
    with pytest.raises(UnsupportedTypeError):
        ss.save(Interval(1, 2))  # nothing was registered


def test_registering_one_name_for_two_classes_is_refused() -> None:
    ss.register(Interval, name="project.Shared")
    with pytest.raises(ValueError, match="'project.Shared' is already registered"):
        ss.register(Embedding, name="project.Shared")
    # The first registration is intact.
    assert type(ss.load(ss.save(Interval(1, 2)), strict=True)) is Interval


def test_register_refuses_what_is_not_a_class_or_a_name() -> None:
    with pytest.raises(TypeError, match="takes a class"):
        ss.register(Interval(1, 2))  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="non-empty str"):
        ss.register(Interval, name="")
    with pytest.raises(TypeError, match="types must be classes"):
        ss.load(ss.save(1), types=[Point(1, 1.0)])  # type: ignore[list-item]


def test_unregistered_plain_class_is_refused_naming_class_path_and_register() -> None:
    with pytest.raises(UnsupportedTypeError) as info:
        ss.save({"a": {"b": [Interval(1, 2)]}})
    message = str(info.value)
    assert qualified(Interval) in message
    assert '$["a"]["b"][0]' in message
    assert "register" in message
    assert isinstance(info.value, TypeError)


def test_unregistered_plain_class_inside_a_dataclass_names_the_field_path() -> None:
    with pytest.raises(UnsupportedTypeError, match=r'\$\["a"\]\["meta"\]\["k"\].*Interval'):
        ss.save({"a": Line(Point(0, 0.0), FrozenPoint(0, 0.0), {"k": Interval(0, 1)})})


def test_classes_through_files(tmp_path: Path) -> None:
    data = {
        "point": Point(1, 2.0),
        "pair": Pair(1, 2),
        "perm": Perm.R | Perm.X,
        "dict": MyDict({"a": 1}),
    }
    CALLS.clear()
    path = tmp_path / "classes.safestructures"
    ss.save_file(data, path)
    loaded = ss.load_file(path, types=[Point, Pair, Perm, MyDict])
    assert CALLS == []
    assert type(loaded["point"]) is Point and loaded["point"] == data["point"]
    assert type(loaded["pair"]) is Pair and loaded["pair"] == (1, 2)
    assert loaded["perm"] is Perm.R | Perm.X
    assert type(loaded["dict"]) is MyDict and loaded["dict"] == {"a": 1}
    generic = ss.load_file(str(path))
    assert type(generic["point"]) is Record and type(generic["pair"]) is NamedRecord and generic["perm"] == 5
    with pytest.raises(UnknownTypeError):
        ss.load_file(path, types=[Point, Pair, Perm], strict=True)


@dataclasses.dataclass
class WithNew:
    a: int

    def __new__(cls, a: int) -> WithNew:
        CALLS.append("WithNew.__new__")
        return super().__new__(cls)


def test_dataclass_whose_new_takes_arguments_loads_without_calling_it() -> None:
    obj = WithNew(1)
    CALLS.clear()
    loaded = load_counting(ss.save(obj), types=[WithNew])
    assert type(loaded) is WithNew and loaded.a == 1
    assert "WithNew.__new__" not in CALLS

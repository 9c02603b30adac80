"""Shared references and cycles: an object reached twice is stored once and loads back as one object."""

from __future__ import annotations

import collections
from typing import Any

import numpy as np
import pytest

import safestructures
from safestructures import UnsupportedTypeError
from conftest import assert_same, header_of, schema_of


def tensor_names(data: bytes) -> list[str]:
    return [name for name in header_of(data) if name != "__metadata__"]


SHARED_FACTORIES = {
    "list": lambda: [1, [2]],
    "dict": lambda: {"a": 1},
    "dict-pairs": lambda: {1: "a"},
    "array": lambda: np.arange(6, dtype=np.float32).reshape(2, 3),
    "array-big-endian": lambda: np.arange(3, dtype=">i4"),
    "array-complex128": lambda: np.ones(2, np.complex128),
    "set": lambda: {1, 2},
    "frozenset": lambda: frozenset({"a"}),
    "tuple": lambda: tuple([1, "x"]),  # not a code constant: each call makes a new tuple
    "OrderedDict": lambda: collections.OrderedDict(a=1),
    "defaultdict": lambda: collections.defaultdict(list, a=[1]),
    "deque": lambda: collections.deque([1], maxlen=4),
    "Counter": lambda: collections.Counter("aab"),
    "bytes-large": lambda: bytes(range(100)),
    "bytearray-large": lambda: bytearray(100),
}


@pytest.mark.parametrize("kind", list(SHARED_FACTORIES))
def test_object_reached_twice_loads_as_one_object(roundtrip: Any, kind: str) -> None:
    shared = SHARED_FACTORIES[kind]()
    other = SHARED_FACTORIES[kind]()  # equal but distinct: stays distinct
    data = {"first": [shared, other], "deep": {"x": (shared,)}, "again": shared}
    loaded = roundtrip(data)
    assert_same(loaded, data)
    assert loaded["first"][0] is loaded["deep"]["x"][0] is loaded["again"]
    assert loaded["first"][1] is not loaded["first"][0]


def test_shared_schema_uses_refs() -> None:
    shared = [1]
    schema = schema_of(safestructures.save([shared, shared, {"k": shared}]))
    assert schema["root"] == [
        {"$": "list", "#": 1, "items": [1]},
        {"$": "ref", "#": 1},
        {"k": {"$": "ref", "#": 1}},
    ]


def test_shared_tuple_as_key_and_value(roundtrip: Any) -> None:
    key = (1, 2)
    loaded = roundtrip({key: key, "other": key})
    first_key = next(iter(loaded))
    assert first_key == (1, 2) and loaded[first_key] is first_key and loaded["other"] is first_key


def test_shared_frozenset_key(roundtrip: Any) -> None:
    key = frozenset({1, "a"})
    loaded = roundtrip([{key: 1}, {key: 2}, key])
    k0, k1 = next(iter(loaded[0])), next(iter(loaded[1]))
    assert k0 is k1 is loaded[2]


def test_array_referenced_twice_is_stored_once(roundtrip: Any) -> None:
    array = np.arange(12, dtype=np.int32).reshape(3, 4)
    data = safestructures.save({"a": array, "b": [array, array], "c": array.copy()})
    assert sorted(tensor_names(data)) == ["a", "c"]
    assert header_of(data)["a"]["shape"] == [3, 4]
    loaded = safestructures.load(data)
    assert loaded["a"] is loaded["b"][0] is loaded["b"][1]
    assert loaded["c"] is not loaded["a"]
    assert np.array_equal(loaded["c"], array)
    again = roundtrip({"a": array, "b": array})
    assert again["a"] is again["b"]


def test_large_bytes_referenced_twice_are_stored_once() -> None:
    blob = b"\x01" * 1000
    data = safestructures.save([blob, {"x": blob}])
    assert tensor_names(data) == ["0"]
    loaded = safestructures.load(data)
    assert loaded[0] is loaded[1]["x"]


def test_views_of_one_buffer_are_separate_tensors() -> None:
    base = np.arange(10, dtype=np.int64)
    data = safestructures.save({"base": base, "view": base[2:5]})
    assert sorted(tensor_names(data)) == ["base", "view"]
    loaded = safestructures.load(data)
    assert loaded["view"].tolist() == [2, 3, 4]
    assert not np.shares_memory(loaded["base"], loaded["view"])


def test_small_bytearray_reached_twice_loads_as_one_object() -> None:
    shared = bytearray(b"ab")
    loaded = safestructures.load(safestructures.save([shared, shared]))
    assert loaded[0] is loaded[1]


def test_small_bytes_reached_twice_load_equal() -> None:
    # Inline bytes are immutable and not tracked: equal values, identity not kept (documented by this test).
    shared = b"ab"
    loaded = safestructures.load(safestructures.save([shared, shared]))
    assert loaded == [b"ab", b"ab"] and type(loaded[0]) is bytes


# ---------------------------------------------------------------------------------------------------------------------
# Cycles


def test_list_containing_itself(roundtrip: Any) -> None:
    x: list[Any] = [1]
    x.append(x)
    loaded = roundtrip(x)
    assert type(loaded) is list and len(loaded) == 2
    assert loaded[0] == 1 and loaded[1] is loaded


def test_list_containing_itself_schema() -> None:
    x: list[Any] = []
    x.append(x)
    assert schema_of(safestructures.save(x))["root"] == {"$": "list", "#": 1, "items": [{"$": "ref", "#": 1}]}


@pytest.mark.parametrize("key", ["me", 1, (1, "t"), "$"])
def test_dict_containing_itself(roundtrip: Any, key: Any) -> None:
    x: dict[Any, Any] = {"before": 0}
    x[key] = x
    loaded = roundtrip(x)
    assert type(loaded) is dict and list(loaded) == ["before", key]
    assert loaded[key] is loaded


def test_mutual_cycle_between_a_list_and_a_dict(roundtrip: Any) -> None:
    lst: list[Any] = [0]
    dct: dict[str, Any] = {"list": lst}
    lst.append(dct)
    loaded = roundtrip({"l": lst, "d": dct})
    assert loaded["l"][1] is loaded["d"]
    assert loaded["d"]["list"] is loaded["l"]
    assert loaded["l"][0] == 0


def test_longer_cycle(roundtrip: Any) -> None:
    a: list[Any] = []
    b: dict[int, Any] = {}
    c = collections.OrderedDict()
    d = collections.deque()
    a.append(b)
    b[1] = c
    c["d"] = d
    d.append(a)
    loaded = roundtrip(a)
    assert loaded[0][1]["d"][0] is loaded
    assert [type(loaded), type(loaded[0]), type(loaded[0][1]), type(loaded[0][1]["d"])] == [list, dict, collections.OrderedDict, collections.deque]


@pytest.mark.parametrize(
    "make",
    [
        lambda: collections.OrderedDict(),
        lambda: collections.defaultdict(list),
        lambda: collections.Counter(),
    ],
    ids=["OrderedDict", "defaultdict", "Counter"],
)
def test_mapping_containing_itself(roundtrip: Any, make: Any) -> None:
    x = make()
    x["self"] = x
    loaded = roundtrip(x)
    assert type(loaded) is type(x) and loaded["self"] is loaded


def test_deque_containing_itself(roundtrip: Any) -> None:
    x: collections.deque[Any] = collections.deque(maxlen=5)
    x.append(1)
    x.append(x)
    loaded = roundtrip(x)
    assert loaded.maxlen == 5 and loaded[0] == 1 and loaded[1] is loaded


def test_cycle_through_a_tuple_reached_first_is_refused() -> None:
    t: tuple[list[Any]] = ([],)
    t[0].append(t)
    with pytest.raises(UnsupportedTypeError) as info:
        safestructures.save(t)
    assert isinstance(info.value, TypeError)
    message = str(info.value)
    assert message.startswith("cannot save the reference cycle at $[0][0]")
    assert "immutable tuple" in message and "before its own items" in message


def test_cycle_through_a_tuple_inside_a_list_is_refused() -> None:
    # [t]: the outer list is reached first, but it is not part of the cycle; inside the cycle the tuple still comes
    # before the list, so it would have to be built before its own items: refused, with the path of the back edge.
    t: tuple[list[Any]] = ([],)
    t[0].append(t)
    with pytest.raises(UnsupportedTypeError) as info:
        safestructures.save([t])
    assert str(info.value).startswith("cannot save the reference cycle at $[0][0][0]: it runs through an immutable tuple")


def test_cycle_through_a_tuple_reached_from_its_list_round_trips(roundtrip: Any) -> None:
    # The same cycle entered at the list: the list is built first, then the tuple refers back to it.
    t: tuple[list[Any]] = ([],)
    t[0].append(t)
    loaded = roundtrip(t[0])
    assert type(loaded) is list and type(loaded[0]) is tuple
    assert loaded[0][0] is loaded
    both = roundtrip({"list": t[0], "tuple": t})
    assert both["tuple"] is both["list"][0] and both["tuple"][0] is both["list"]
    with pytest.raises(UnsupportedTypeError):
        safestructures.save({"tuple": t, "list": t[0]})  # order matters: the tuple first is refused


def test_tuple_reached_twice_without_a_cycle(roundtrip: Any) -> None:
    t = (1, [2])
    loaded = roundtrip([t, (t, t)])
    assert loaded[0] is loaded[1][0] is loaded[1][1]


def test_empty_tuples_and_frozensets_are_not_refs() -> None:
    schema = schema_of(safestructures.save([(), ()]))
    assert schema["root"] == [{"$": "tuple", "items": []}, {"$": "tuple", "items": []}]


def test_cycle_through_a_slice(roundtrip: Any) -> None:
    lst: list[Any] = []
    lst.append(slice(0, lst))
    loaded = roundtrip(lst)
    assert type(loaded[0]) is slice and loaded[0].stop is loaded


def test_refs_inside_arrays_fields_and_sets(roundtrip: Any) -> None:
    shared = (1, 2)
    array = np.zeros(3)
    data = {"set": {shared, "x"}, "frozen": frozenset({shared}), "arrays": [array, {"again": array}], "t": shared}
    loaded = roundtrip(data)
    assert_same(loaded, data)
    assert next(x for x in loaded["set"] if x != "x") is loaded["t"]
    assert next(iter(loaded["frozen"])) is loaded["t"]
    assert loaded["arrays"][1]["again"] is loaded["arrays"][0]

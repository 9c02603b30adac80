"""Lazy access (``safestructures.open``): walking a file's tree from its header and schema alone, loading any part of
it (shared objects, cycles and storage views that live elsewhere in the file included), the errors, and the proof
that the tensors a load does not ask for are not read (their pages stay out of the page cache)."""

from __future__ import annotations

import collections
import ctypes
import dataclasses
import enum
import glob
import json
import mmap
import os
import struct
import time
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import safestructures as ss
from safestructures import InvalidArgumentError, InvalidFileError, UnknownTypeError
from conftest import (
    assert_same,
    import_framework,
    make_file_bytes,
    schema_document,
    structured_file_bytes,
    write_pieces,
)

torch = import_framework("torch")


@dataclasses.dataclass
class Point:
    x: int
    values: Any


class Pair(typing.NamedTuple):
    left: int
    right: Any


class Color(enum.Enum):
    RED = 1
    GREEN = 2


class MyDict(dict):  # a subclass of a built-in: saved as an "object" node with a dict base
    pass


TYPES = [Point, Pair, Color, MyDict]


def sample() -> dict[str, Any]:
    """One value of every kind of node, at a key of its own."""
    base = torch.arange(12, dtype=torch.float32)
    return {
        "dict": {"x": 1, "y": [2]},
        "list": [1, "a", None],
        "tuple": (1, 2.5),
        "set": {3, 1, 2},
        "frozenset": frozenset({"q"}),
        "dataclass": Point(1, np.arange(3, dtype=np.float64)),
        "namedtuple": Pair(1, [2]),
        "enum": Color.GREEN,
        "object": MyDict(a=1),
        "ordered": collections.OrderedDict([(1, "one"), ("k", 2)]),
        "default": collections.defaultdict(list, {(1, 2): [3]}),
        "short_bytes": b"ab",
        "long_bytes": bytes(range(100)),
        "bytearray": bytearray(b"xyz"),
        "numpy": np.arange(6, dtype=np.int16).reshape(2, 3),
        "big_endian": np.arange(3, dtype=">i4"),
        "complex128": np.array([1 + 2j, -3j], dtype=np.complex128),
        "torch": torch.ones(2, 3, dtype=torch.bfloat16),
        "base": base,
        "view": base[::2],
        "big_int": 2**80,
        "nan": float("nan"),
        "none": None,
        "true": True,
        "float": 1.5,
        "str": "text",
        "int": 7,
    }


#: key -> (kind, is_container, len or None)
KINDS: dict[str, tuple[str, bool, int | None]] = {
    "dict": ("dict", True, 2),
    "list": ("list", True, 3),
    "tuple": ("tuple", True, 2),
    "set": ("set", True, 3),
    "frozenset": ("frozenset", True, 1),
    "dataclass": ("dataclass", True, 2),
    "namedtuple": ("namedtuple", True, 2),
    "enum": ("enum", False, None),
    "object": ("object", True, 1),
    "ordered": ("OrderedDict", True, 2),
    "default": ("defaultdict", True, 1),
    "short_bytes": ("bytes", False, None),
    "long_bytes": ("bytes", False, None),
    "bytearray": ("bytearray", False, None),
    "numpy": ("tensor", False, None),
    "big_endian": ("tensor", False, None),
    "complex128": ("tensor", False, None),
    "torch": ("tensor", False, None),
    "base": ("tensor", False, None),
    "view": ("tensor", False, None),
    "big_int": ("int", False, None),
    "nan": ("float", False, None),
    "none": ("none", False, None),
    "true": ("bool", False, None),
    "float": ("float", False, None),
    "str": ("str", False, None),
    "int": ("int", False, None),
}

#: key -> (dtype, shape, nbytes, framework, tensor_name) of the tensor and bytes nodes.
TENSOR_INFO: dict[str, tuple[Any, Any, Any, Any, Any]] = {
    "numpy": ("int16", (2, 3), 12, "numpy", "numpy"),
    "big_endian": (">i4", (3,), 12, "numpy", "big_endian"),
    "complex128": ("<c16", (2,), 32, "numpy", "complex128"),
    "torch": ("bfloat16", (2, 3), 12, "torch", "torch"),
    "base": ("float32", (12,), 48, "torch", "base"),
    # A view of base's storage: no data of its own, no tensor of its own.
    "view": ("float32", (6,), 0, "torch", None),
    "short_bytes": (None, None, 2, None, None),
    "long_bytes": (None, None, 100, None, "long_bytes"),
    "bytearray": (None, None, 3, None, None),
    "int": (None, None, None, None, None),
    "dict": (None, None, None, None, None),
}


@pytest.fixture
def sample_file(tmp_path: Path) -> Path:
    path = tmp_path / "sample.safetensors"
    ss.save_file(sample(), path, metadata={"run": "r1"})
    return path


def assert_same_torch(actual: Any, expected: Any) -> None:
    assert type(actual) is type(expected), (type(actual), type(expected))
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    assert actual.requires_grad == expected.requires_grad
    assert torch.equal(actual, expected)


def assert_same_value(actual: Any, expected: Any) -> None:
    """assert_same, with torch tensors compared as tensors (assert_same knows numpy only)."""
    if isinstance(expected, torch.Tensor):
        assert_same_torch(actual, expected)
    else:
        assert_same(actual, expected)


# ---------------------------------------------------------------------------------------------------------------------
# Walking


def test_root_keys_len_iteration_and_metadata(sample_file: Path) -> None:
    with ss.open(sample_file) as f:
        assert type(f) is ss.SafeFile
        assert f.keys() == list(sample())
        assert len(f) == len(sample())
        assert list(f) == list(sample())
        assert "dict" in f and "missing" not in f
        assert f.metadata == {"run": "r1"}
        assert repr(f) == f"<safestructures file {sample_file}: 7 tensors>"
        assert f.tree.kind == "dict" and f.tree.path == "" and f.tree.path_text == "$"


@pytest.mark.parametrize("key", list(KINDS))
def test_every_kind_of_node(sample_file: Path, key: str) -> None:
    kind, container, length = KINDS[key]
    with ss.open(sample_file) as f:
        node = f[key]
        assert type(node) is ss.Node
        assert node.kind == kind
        assert node.is_container is container
        assert node.path == key and node.path_text == f'$["{key}"]'
        if container:
            assert len(node) == length
            assert repr(node).startswith(f"<Node {kind}") and repr(node).endswith(f" len={length} at {key}>")
        else:
            with pytest.raises(TypeError, match=r"has no length"):
                len(node)
            with pytest.raises(TypeError, match=r"is not iterable"):
                iter(node)
            with pytest.raises(TypeError, match=r"has no children"):
                node.keys()
            with pytest.raises(TypeError, match=r"has no children"):
                node.items()
            with pytest.raises(TypeError, match=r"has no children"):
                _ = "x" in node


def test_type_names(sample_file: Path) -> None:
    with ss.open(sample_file) as f:
        assert f["dataclass"].type_name == f"{__name__}.Point"
        assert f["namedtuple"].type_name == f"{__name__}.Pair"
        assert f["enum"].type_name == f"{__name__}.Color"
        assert f["object"].type_name == f"{__name__}.MyDict"
        assert f["dict"].type_name is None and f["numpy"].type_name is None


@pytest.mark.parametrize("key", list(TENSOR_INFO))
def test_tensor_and_bytes_properties(sample_file: Path, key: str) -> None:
    dtype, shape, nbytes, framework, tensor_name = TENSOR_INFO[key]
    with ss.open(sample_file) as f:
        node = f[key]
        assert node.dtype == dtype
        assert node.shape == shape
        assert node.nbytes == nbytes
        assert node.framework == framework
        assert node.tensor_name == tensor_name


def test_tensor_table_exact(sample_file: Path) -> None:
    with ss.open(sample_file) as f:
        table = f.tensors()
    assert sorted(table.items()) == sorted(
        {
            "dataclass.values": ("F64", (3,), 24),
            "long_bytes": ("U8", (100,), 100),
            "numpy": ("I16", (2, 3), 12),
            "big_endian": ("I32", (3,), 12),
            "complex128": ("U8", (32,), 32),
            "torch": ("BF16", (2, 3), 12),
            "base": ("F32", (12,), 48),
        }.items()
    )


def test_container_children(sample_file: Path) -> None:
    with ss.open(sample_file) as f:
        d = f["dict"]
        assert d.keys() == ["x", "y"] and list(d) == ["x", "y"]
        assert [k for k, _ in d.items()] == ["x", "y"]
        assert [n.kind for n in d.values()] == ["int", "list"]
        assert [n.path for _, n in d.items()] == ["dict.x", "dict.y"]
        assert "x" in d and "z" not in d
        lst = f["list"]
        children = list(lst)
        assert [n.kind for n in children] == ["int", "str", "none"]
        assert [n.path for n in children] == ["list.0", "list.1", "list.2"]
        assert [n.kind for n in lst.values()] == ["int", "str", "none"]
        assert lst[-1].path == "list.2" and lst[-3].path == "list.0"
        # A sequence's children are nodes, not keys.
        assert 1 not in lst
        with pytest.raises(TypeError, match=r"has indices, not keys"):
            lst.keys()
        with pytest.raises(TypeError, match=r"indexed by int, not str"):
            lst["0"]
        assert [n.kind for n in f["set"]] == ["int", "int", "int"]
        assert f["dataclass"].keys() == ["x", "values"]
        assert f["dataclass"]["values"].path == "dataclass.values"
        assert f["namedtuple"].keys() == ["left", "right"]
        assert f["namedtuple"][1].kind == "list" and f["namedtuple"]["right"].kind == "list"
        assert f["object"].keys() == ["a"]
        # Non-str keys keep their type: 1 is not "1", (1, 2) is a tuple key.
        assert f["ordered"].keys() == [1, "k"]
        assert 1 in f["ordered"] and "1" not in f["ordered"]
        assert f["ordered"][1].path == "ordered.1" and f["ordered"][1].path_text == '$["ordered"][1]'
        assert f["default"].keys() == [(1, 2)]
        assert f["default"][(1, 2)].kind == "list"


def test_repr(sample_file: Path) -> None:
    with ss.open(sample_file) as f:
        assert repr(f.tree) == f"<Node dict len={len(sample())} at <root>>"
        assert repr(f["numpy"]) == "<Node tensor int16[2, 3] at numpy>"
        assert repr(f["view"]) == "<Node tensor float32[6] at view>"
        assert repr(f["list"][0]) == "<Node int at list.0>"
        assert repr(f["dataclass"]) == f"<Node dataclass {__name__}.Point len=2 at dataclass>"
        assert repr(f["enum"]) == "<Node enum at enum>"


def test_describe_is_exact_and_reads_no_tensor(tmp_path: Path) -> None:
    path = tmp_path / "d.safetensors"
    ss.save_file({"a": {"w": np.zeros((2, 3), np.float32)}, "l": [1, "x", float("inf")], "b": b"ab", "k": {None: None}}, path)
    with ss.open(path) as f:
        assert f.tree.describe() == {
            "kind": "dict",
            "len": 4,
            "items": [
                ["a", {"kind": "dict", "len": 1, "items": [
                    ["w", {"kind": "tensor", "dtype": "float32", "shape": [2, 3], "nbytes": 24, "framework": "numpy", "tensor": "a.w"}],
                ]}],
                ["l", {"kind": "list", "len": 3, "items": [
                    {"kind": "int", "value": 1}, {"kind": "str", "value": "x"}, {"kind": "float", "value": "inf"},
                ]}],
                ["b", {"kind": "bytes", "nbytes": 2}],
                ["k", {"kind": "dict", "len": 1, "items": [[None, {"kind": "none", "value": None}]]}],
            ],
        }
        assert f.tree.describe(max_depth=1) == {
            "kind": "dict",
            "len": 4,
            "items": [
                ["a", {"kind": "dict", "len": 1}],
                ["l", {"kind": "list", "len": 3}],
                ["b", {"kind": "bytes", "nbytes": 2}],
                ["k", {"kind": "dict", "len": 1}],
            ],
        }
        assert f.tree.describe(max_depth=0) == {"kind": "dict", "len": 4}
        assert f["a"]["w"].describe() == {"kind": "tensor", "dtype": "float32", "shape": [2, 3], "nbytes": 24,
                                          "framework": "numpy", "tensor": "a.w"}
        json.dumps(f.tree.describe())  # JSON-ready


def test_describe_of_the_deepest_data(tmp_path: Path) -> None:
    path = tmp_path / "deep.safetensors"
    data: Any = "leaf"
    for _ in range(999):
        data = [data]
    ss.save_file(data, path)
    with ss.open(path) as f:
        described = f.tree.describe()
    for _ in range(999):
        assert described["kind"] == "list" and described["len"] == 1
        (described,) = described["items"]
    assert described == {"kind": "str", "value": "leaf"}


def test_describe_of_every_kind(sample_file: Path) -> None:
    with ss.open(sample_file) as f:
        described = dict(f.tree.describe()["items"])
    assert described["view"] == {"kind": "tensor", "dtype": "float32", "shape": [6], "nbytes": 0, "framework": "torch"}
    assert described["big_int"] == {"kind": "int", "value": 2**80}
    assert described["nan"] == {"kind": "float", "value": "nan"}
    assert described["enum"] == {"kind": "enum", "type": f"{__name__}.Color", "value": 2}
    assert described["dataclass"]["type"] == f"{__name__}.Point" and described["dataclass"]["len"] == 2
    assert described["default"]["items"] == [["(1, 2)", {"kind": "list", "len": 1, "items": [{"kind": "int", "value": 3}]}]]
    assert described["long_bytes"] == {"kind": "bytes", "nbytes": 100}


# ---------------------------------------------------------------------------------------------------------------------
# Loading parts


@pytest.mark.parametrize("key", list(KINDS))
def test_load_every_kind_equals_the_full_load(sample_file: Path, key: str) -> None:
    full = ss.load_file(sample_file, types=TYPES)
    with ss.open(sample_file, types=TYPES) as f:
        by_path = f.load(key)
        by_node = f[key].load()
        by_tuple = f.load((key,))
    for loaded in (by_path, by_node, by_tuple):
        assert_same_value(loaded, full[key])
        assert_same_value(loaded, sample()[key])


def test_load_without_types_gives_records_as_the_full_load_does(sample_file: Path) -> None:
    full = ss.load_file(sample_file)
    with ss.open(sample_file) as f:
        for key in ("dataclass", "namedtuple", "object", "enum"):
            loaded = f.load(key)
            assert type(loaded) is type(full[key])
            assert repr(loaded) == repr(full[key])
        assert type(f.load("dataclass")) is ss.Record and type(f.load("namedtuple")) is ss.NamedRecord
        assert f.load("enum") == 2
    with ss.open(sample_file, strict=True) as f:
        with pytest.raises(UnknownTypeError, match=r'at \$\["dataclass"\]: .*Point') as e:
            f.load("dataclass")
        assert e.value.code is None


def test_whole_file_load_equals_load_file(sample_file: Path) -> None:
    full = ss.load_file(sample_file, types=TYPES)
    with ss.open(sample_file, types=TYPES) as f:
        everything = f.load()
        assert f.tree.load().keys() == everything.keys()
    assert list(everything) == list(full)
    for key in full:
        assert_same_value(everything[key], full[key])
    assert everything["view"].untyped_storage().data_ptr() == everything["base"].untyped_storage().data_ptr()


def test_dotted_tuple_and_negative_paths(tmp_path: Path) -> None:
    path = tmp_path / "p.safetensors"
    data = {
        "model": {"layers": [{"w": np.full(2, i, np.float32)} for i in range(3)]},
        "by_int": {1: "one", "1": "text one"},
        "pairs": {(1, "a"): "tuple key"},
        "nt": Pair(5, ["r"]),
        "dotted": {"a.b": {"c": 1}, "a": {"x": 2}},
    }
    ss.save_file(data, path)
    with ss.open(path) as f:
        assert_same(f.load("model.layers.1.w"), np.full(2, 1, np.float32))
        assert_same(f.load(("model", "layers", 1, "w")), np.full(2, 1, np.float32))
        assert_same(f.load("model.layers.-1.w"), np.full(2, 2, np.float32))
        assert f.node("model.layers.-1").path == "model.layers.2"
        assert f["model"]["layers"][0]["w"].path == "model.layers.0.w"
        assert f.node("") .path == "" and f.node(()).kind == "dict"
        # A tuple path keeps key types: 1 and "1" are different keys; a dotted path matches the text of either, the
        # str key where both write the same text (as `safestructures get` does).
        assert f.load(("by_int", 1)) == "one"
        assert f.load(("by_int", "1")) == "text one"
        assert f.load("by_int.1") == "text one"
        assert f.node(("by_int", 1)).path_text == '$["by_int"][1]'
        assert f.load(("pairs", (1, "a"))) == "tuple key"
        assert f.load("nt.0") == 5 and f.load("nt.left") == 5 and f.load("nt.right.0") == "r"
        assert f.load("nt.-1") == ["r"]
        # Keys holding dots: the longest run of segments that is a key first, shorter ones when that leads nowhere.
        assert f.load("dotted.a.x") == 2
        assert f.load("dotted.a.b.c") == 1
        assert f.load(("dotted", "a.b", "c")) == 1


def test_state_dict_keys_with_dots_by_their_tensor_names(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    sd = model.state_dict()
    path = tmp_path / "sd.safetensors"
    ss.save_file({"model": sd}, path)
    with ss.open(path) as f:
        names = sorted(f.tensors())
        assert names == ["model.0.bias", "model.0.weight", "model.2.bias", "model.2.weight"]
        # Each tensor name is also a path to its tensor.
        for name in names:
            assert_same_torch(f.load(name), sd[name[len("model."):]])
        assert f["model"].keys() == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_shared_tensor_defined_elsewhere(tmp_path: Path) -> None:
    w = np.arange(4, dtype=np.float32)
    path = tmp_path / "s.safetensors"
    ss.save_file({"a": w, "b": w, "c": [w, {"d": w}]}, path)
    with ss.open(path) as f:
        assert sorted(f.tensors()) == ["a"]
        # "b" is a reference: the node reads as the tensor it refers to.
        assert f["b"].kind == "tensor" and f["b"].tensor_name == "a" and f["b"].path == "b"
        assert_same(f.load("b"), w)
        c = f.load("c")
        assert_same(c, [w, {"d": w}])
        assert c[0] is c[1]["d"]


def test_shared_list_defined_elsewhere(tmp_path: Path) -> None:
    shared = [1, [2, 3]]
    path = tmp_path / "s.safetensors"
    ss.save_file({"first": shared, "holder": {"again": shared, "twice": [shared, shared]}}, path)
    with ss.open(path) as f:
        holder = f.load("holder")
        assert holder == {"again": [1, [2, 3]], "twice": [[1, [2, 3]], [1, [2, 3]]]}
        assert holder["again"] is holder["twice"][0] is holder["twice"][1]
        assert f["holder"]["again"].kind == "list" and len(f["holder"]["again"]) == 2
        assert f.load("holder.again.1") == [2, 3]


def test_cycles(tmp_path: Path) -> None:
    loop: list[Any] = []
    loop.append(loop)
    inner: list[Any] = []
    inner.append({"x": inner})
    path = tmp_path / "c.safetensors"
    ss.save_file({"loop": loop, "inner": inner}, path)
    with ss.open(path) as f:
        l = f.load("loop")
        assert type(l) is list and len(l) == 1 and l[0] is l
        assert f.load("loop.0") is not None and f.load("loop.0")[0][0] is not None
        again = f.load("loop.0.0.0")
        assert again[0] is again
        # Loading a node inside the cycle gives the object the cycle holds: d["x"][0] is d itself.
        d = f.load("inner.0")
        assert type(d) is dict and d["x"][0] is d
        x = f.load("inner.0.x")
        assert x[0]["x"] is x


def test_cycle_through_a_shared_tuple(tmp_path: Path) -> None:
    holder: list[Any] = []
    t = (holder,)
    holder.append({"t": t, "t2": t})
    path = tmp_path / "c.safetensors"
    ss.save_file({"l": holder}, path)
    with ss.open(path) as f:
        loaded_t = f.load("l.0.t")
        assert type(loaded_t) is tuple and loaded_t[0][0]["t"] is loaded_t and loaded_t[0][0]["t2"] is loaded_t
        d = f.load("l.0")
        assert d["t"][0][0] is d and d["t"] is d["t2"]


def test_torch_views_of_a_base_defined_in_another_part(tmp_path: Path) -> None:
    t = torch.arange(12, dtype=torch.float32)
    data = {"base": t, "view": t[::2], "chunk": t.view(3, 4)[:, 1:3], "deep": {"v": t[1::3]}}
    path = tmp_path / "v.safetensors"
    ss.save_file(data, path)
    with ss.open(path) as f:
        assert list(f.tensors()) == ["base"]
        assert_same_torch(f.load("view"), t[::2])
        assert_same_torch(f.load("chunk"), t.view(3, 4)[:, 1:3])
        assert_same_torch(f.load("deep.v"), t[1::3])
        deep = f.load("deep")
        assert_same_torch(deep["v"], t[1::3])
        # Views come back as views of one storage, as in a full load.
        view = f.load("view")
        assert view.stride() == (2,) and view.untyped_storage().nbytes() == 48
        as_numpy = f.load("view", framework="numpy")
        assert type(as_numpy) is np.ndarray and as_numpy.dtype == np.float32
        assert as_numpy.tolist() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        assert f.load("deep", framework="numpy")["v"].tolist() == [1.0, 4.0, 7.0, 10.0]


def test_views_of_a_segment_that_is_itself_a_view(tmp_path: Path) -> None:
    # Nothing saves t itself: v1 writes the segment of t it spans, and the later views of that stretch view v1's tensor.
    t = torch.arange(40, dtype=torch.int64)
    data = {"v1": t[::2], "v2": t[::4], "rows": t.view(8, 5)[:, 1:3], "block": t.view(8, 5)[2:4, 1:2]}
    path = tmp_path / "segments.safetensors"
    ss.save_file(data, path)
    with ss.open(path) as f:
        assert f.tensors() == {"v1": ("I64", (39,), 312)}
        assert (f["v1"].tensor_name, f["v1"].nbytes, f["v1"].shape) == ("v1", 312, (20,))
        assert (f["v2"].tensor_name, f["v2"].nbytes, f["v2"].shape) == (None, 0, (10,))
        for key, expected in data.items():
            loaded = f.load(key)
            assert_same_torch(loaded, expected)
            assert loaded.stride() == expected.stride()
            assert f.load(key, framework="numpy").tolist() == expected.tolist()


class Ext:
    def __init__(self, w: Any) -> None:
        self.w = w


class Plain:
    def __init__(self) -> None:
        self.a = np.ones(2)
        self.b = [1]


class MyList(list):
    pass


def test_registered_classes_and_other_kinds(tmp_path: Path, clean_registry: Any) -> None:
    ss.register(Ext, to_data=lambda e: {"w": e.w, "k": 1}, from_data=lambda d: Ext(d["w"]))
    ss.register(Plain)
    ss.register(MyList)
    data = {
        "ext": Ext(np.arange(3)), "plain": Plain(), "mylist": MyList([1, np.zeros(2)]),
        "deque": collections.deque([1, 2], maxlen=5), "counter": collections.Counter("aab"), "range": range(3),
        "complex": 1 + 2j,
    }
    path = tmp_path / "kinds.safetensors"
    ss.save_file(data, path)
    with ss.open(path) as f:
        kinds = {key: (f[key].kind, f[key].is_container) for key in data}
        assert kinds == {
            "ext": ("ext", True), "plain": ("object", True), "mylist": ("object", True), "deque": ("deque", True),
            "counter": ("Counter", True), "range": ("range", False), "complex": ("complex", False),
        }
        # Wrapper fields (data, attrs, value) do not appear in paths, as in tensor names.
        assert f["ext"].keys() == ["w", "k"] and f["ext"]["w"].tensor_name == "ext.w"
        assert f["plain"].keys() == ["a", "b"] and f["plain"]["a"].path == "plain.a"
        assert len(f["mylist"]) == 2 and f["mylist"][1].tensor_name == "mylist.1"
        assert_same(f.load("ext.w"), np.arange(3))
        assert_same(f.load("plain.a"), np.ones(2))
        assert_same(f.load("mylist.1"), np.zeros(2))
        assert f.load("deque.-1") == 2 and f.load("counter.a") == 2
        ext = f.load("ext")
        assert type(ext) is Ext
        assert_same(ext.w, np.arange(3))
        plain = f.load("plain")
        assert type(plain) is Plain and plain.b == [1]
        mylist = f.load("mylist")
        assert type(mylist) is MyList and mylist[0] == 1
        assert_same(f.load("deque"), data["deque"])
        assert_same(f.load("counter"), data["counter"])
        assert f.load("range") == range(3) and f.load("complex") == 1 + 2j
        assert f["range"].describe() == {"kind": "range", "value": "range(0, 3)"}


def test_tied_weights_of_a_module_state_dict(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Embedding(5, 3), torch.nn.Linear(3, 5, bias=False))
    model[1].weight = model[0].weight
    sd = model.state_dict()
    path = tmp_path / "m.safetensors"
    ss.save_file({"sd": sd, "params": list(model.parameters())}, path)
    with ss.open(path) as f:
        assert list(f.tensors()) == ["sd.0.weight"]
        assert f["sd"]["1.weight"].tensor_name is None and f["sd"]["1.weight"].nbytes == 0
        tied = f.load("sd.1.weight")
        assert_same_torch(tied, sd["1.weight"])
        params = f.load("params")
        assert type(params) is list and len(params) == 1
        assert type(params[0]) is torch.nn.Parameter and params[0].requires_grad is True
        assert torch.equal(params[0], sd["0.weight"])
        loaded_sd = f.load("sd")
        assert type(loaded_sd) is collections.OrderedDict
        assert loaded_sd["0.weight"].data_ptr() == loaded_sd["1.weight"].data_ptr()


class Temperature:
    def __init__(self, kelvin: float, history: Any) -> None:
        self.kelvin, self.history = kelvin, history


class TemperatureProcessor(ss.DataProcessor):
    data_type = Temperature

    def serialize(self, data: Temperature) -> dict[str, Any]:
        return {"kelvin": data.kelvin, "history": self.serializer.serialize(data.history), "list": [1, self.serializer.serialize((2, 3))]}

    def deserialize(self, serialized: Any, **kwargs: Any) -> Temperature:
        return Temperature(serialized["kelvin"], self.serializer.deserialize(serialized["history"]))


def test_plugin_value_with_nested_values(tmp_path: Path) -> None:
    path = tmp_path / "plugin.safetensors"
    history = np.array([1.0, 2.0])
    data = {"t": Temperature(300.5, history), "u": Temperature(1.0, [1, (2, 3)]), "other": np.zeros(3)}
    ss.save_file(data, path, plugins=[TemperatureProcessor])
    with ss.open(path, plugins=[TemperatureProcessor]) as f:
        assert f["t"].kind == "plugin" and f["t"].type_name == f"{__name__}.Temperature"
        assert f["t"].keys() == ["kelvin", "history", "list"]
        loaded = f.load("t")
        assert type(loaded) is Temperature and loaded.kelvin == 300.5
        assert_same(loaded.history, history)
        # The values the plugin passed to its serializer are walked and loaded as themselves.
        node = f["t"]["history"]
        assert (node.kind, node.dtype, node.shape, node.tensor_name) == ("tensor", "float64", (2,), "t.history")
        assert_same(f.load("t.history"), history)
        assert f["u"]["history"].kind == "list" and len(f["u"]["history"]) == 2
        assert f.load("u.history") == [1, (2, 3)] and f.load("u.history.1") == (2, 3)
        assert f.load("t.kelvin") == 300.5
        # A part of the plugin's value that holds nested values loads with each of them as itself.
        assert f.load("t.list") == [1, (2, 3)] and f.load("t.list.1") == (2, 3)
        assert [n.kind for n in f["t"]["list"]] == ["int", "tuple"]
        assert f["u"].describe()["items"][1] == ["history", {"kind": "list", "len": 2, "items": [
            {"kind": "int", "value": 1},
            {"kind": "tuple", "len": 2, "items": [{"kind": "int", "value": 2}, {"kind": "int", "value": 3}]},
        ]}]
    with ss.open(path) as f:
        record = f.load("t")
        assert type(record) is ss.Record


def test_framework_and_device_overrides(tmp_path: Path) -> None:
    path = tmp_path / "fw.safetensors"
    ss.save_file({"t": torch.arange(3, dtype=torch.int32), "n": np.arange(2, dtype=np.int64)}, path)
    with ss.open(path) as f:
        assert type(f.load("t")) is torch.Tensor and type(f.load("n")) is np.ndarray
        assert type(f.load("t", framework="numpy")) is np.ndarray
        assert type(f["n"].load(framework="torch")) is torch.Tensor
        assert f.load("t", device="cpu").device == torch.device("cpu")
    with ss.open(path, framework="numpy") as f:
        # The framework given to open() applies to f.load and node.load alike, unless a load overrides it.
        for loaded in (f.load("t"), f["t"].load(), f.load()["t"]):
            assert type(loaded) is np.ndarray and loaded.dtype == np.int32 and loaded.tolist() == [0, 1, 2]
        assert type(f["t"].load(framework=None)) is torch.Tensor
        assert type(f["n"].load(framework="torch")) is torch.Tensor
    with pytest.raises(ValueError, match=r"unknown framework"):
        ss.open(path, framework="nope")
    # Devices: "meta" stands for any device here (it needs no accelerator); open's device applies unless overridden.
    with ss.open(path, device="meta") as f:
        assert f.load("t").device == torch.device("meta") and f["t"].load().device == torch.device("meta")
        assert f.load("t", device="cpu").device == torch.device("cpu")
        assert type(f.load("n")) is np.ndarray  # numpy arrays stay on the CPU
    with ss.open(path) as f:
        moved = f["t"].load(device="meta")
        assert moved.device == torch.device("meta") and moved.dtype == torch.int32 and moved.shape == (3,)
        with pytest.raises(ValueError, match=r"applies to torch tensors"):
            f.load("t", framework="numpy", device="meta")
    with pytest.raises(ValueError, match=r"device 'nope' cannot be used here"):
        ss.open(path, device="nope")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
def test_parts_load_onto_cuda(tmp_path: Path) -> None:
    t = torch.arange(12, dtype=torch.float32)
    path = tmp_path / "cuda.safetensors"
    ss.save_file({"base": t, "view": t[::2], "n": np.arange(2)}, path)
    with ss.open(path, device="cuda") as f:
        view = f.load("view")
        assert view.device.type == "cuda" and torch.equal(view.cpu(), t[::2])
        assert f.load("view", device="cpu").device == torch.device("cpu")
        assert type(f.load("n")) is np.ndarray


def test_open_files_keep_their_schema_while_other_files_are_parsed(tmp_path: Path) -> None:
    # The core reuses a thread's JSON parser between loads once no parsed schema views its strings: an open file's
    # schema must stay intact while other schemas are parsed.
    first, other = tmp_path / "first.safetensors", tmp_path / "other.safetensors"
    ss.save_file({"alpha": {"beta": "gamma"}, "delta": [1, "epsilon"]}, first)
    ss.save_file({"zzzzz": {"yyyy": "xxxxx"}, "wwwww": [2, "vvvvvvv"]}, other)
    with ss.open(first) as f:
        for _ in range(3):
            ss.load_file(other)
            with ss.open(other) as g:
                assert g.keys() == ["zzzzz", "wwwww"]
        assert f.keys() == ["alpha", "delta"]
        assert f["alpha"].keys() == ["beta"] and f.load("alpha.beta") == "gamma" and f.load("delta.1") == "epsilon"


def test_loaded_tensors_outlive_close(tmp_path: Path) -> None:
    path = tmp_path / "c.safetensors"
    ss.save_file({"a": np.arange(5, dtype=np.int64)}, path)
    with ss.open(path) as f:
        a = f.load("a")
    assert a.tolist() == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------------------------------------------------------------
# Errors


def lookup_error(kind: type[Exception], action: Any) -> str:
    with pytest.raises(kind) as e:
        action()
    assert type(e.value) is kind
    return e.value.args[0]


def test_lookup_errors_name_the_path(sample_file: Path) -> None:
    with ss.open(sample_file) as f:
        assert lookup_error(KeyError, lambda: f.load("missing")) == "'missing' is not a key of the dict at $"
        assert lookup_error(KeyError, lambda: f.load("dict.nope")) == """'nope' is not a key of the dict at $["dict"]"""
        assert lookup_error(KeyError, lambda: f["zz"]) == "'zz' is not a key of the dict at $"
        assert lookup_error(KeyError, lambda: f.node(("ordered", "1"))) == """'1' is not a key of the OrderedDict at $["ordered"]"""
        assert lookup_error(KeyError, lambda: f.node(("default", [1, 2]))) == """[1, 2] is not a key of the defaultdict at $["default"]"""
        assert lookup_error(IndexError, lambda: f.load("list.3")) == """index 3 is out of range for the list of 3 items at $["list"]"""
        assert lookup_error(IndexError, lambda: f["list"][-4]) == """index -4 is out of range for the list of 3 items at $["list"]"""
        assert lookup_error(IndexError, lambda: f.load("namedtuple.2")) == """index 2 is out of range for the namedtuple of 2 items at $["namedtuple"]"""
        assert lookup_error(KeyError, lambda: f.load("list.x")) == """$["list"] is a list: 'x' is not an index"""
        assert lookup_error(KeyError, lambda: f.load("numpy.0")) == """$["numpy"] is a tensor, which has no child '0'"""
        assert lookup_error(KeyError, lambda: f.load("dict.x.y")) == """$["dict"]["x"] is a int, which has no child 'y'"""
        assert lookup_error(KeyError, lambda: f.node(("int", "x"))) == """$["int"] is a int, which has no child 'x'"""
        assert lookup_error(TypeError, lambda: f["numpy"][0]) == """tensor node at $["numpy"] has no children"""
        assert lookup_error(TypeError, lambda: f["list"]["0"]) == """list node at $["list"] is indexed by int, not str"""


def test_use_after_close(sample_file: Path) -> None:
    f = ss.open(sample_file)
    node = f["dict"]
    f.close()
    for action in (lambda: f["dict"], lambda: f.load("dict"), lambda: node.load(), lambda: len(node), lambda: f.keys()):
        with pytest.raises(InvalidArgumentError, match=r"is closed"):
            action()
    assert repr(f) == f"<safestructures file {sample_file}: closed>"
    f.close()  # closing twice is harmless


@pytest.mark.parametrize("path", sorted(glob.glob(str(Path(__file__).parent.parent / "data" / "v1" / "*.safetensors"))))
def test_v1_files_are_refused_with_a_pointer_to_load_file(path: str) -> None:
    with pytest.raises(InvalidFileError, match=r"safestructures 1\.0\.0.*load_file"):
        ss.open(path)
    ss.load_file(path)  # which reads it


def test_a_plain_safetensors_file_opens_as_a_dict_of_tensors(tmp_path: Path) -> None:
    from safetensors.numpy import save_file as st_save_file

    path = tmp_path / "plain.safetensors"
    tensors = {"model.embed.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, 2], dtype=np.int8)}
    st_save_file(tensors, str(path), metadata={"format": "np"})
    with ss.open(path) as f:
        assert f.metadata == {"format": "np"}
        assert sorted(f.keys()) == ["b", "model.embed.weight"]
        node = f["model.embed.weight"]
        assert (node.kind, node.dtype, node.shape, node.nbytes, node.framework) == ("tensor", "float32", (2, 3), 24, "numpy")
        # The name, dots and all, is the path.
        assert_same(f.load("model.embed.weight"), tensors["model.embed.weight"])
        assert_same(f.load("b"), tensors["b"])
        assert type(f.load("b", framework="torch")) is torch.Tensor
        whole = f.load()
        assert sorted(whole) == sorted(tensors)
        for name, value in tensors.items():
            assert_same(whole[name], value)


def test_truncated_file(sample_file: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(sample_file.read_bytes()[:-10])
    with pytest.raises(InvalidFileError, match=r"cut\.safetensors: .*past the end") as e:
        ss.open(cut)
    assert e.value.code == "DataPastEnd"
    short = tmp_path / "short.safetensors"
    short.write_bytes(sample_file.read_bytes()[:100])
    with pytest.raises(InvalidFileError, match=r"short\.safetensors"):
        ss.open(short)
    with pytest.raises(FileNotFoundError):
        ss.open(tmp_path / "absent.safetensors")


def test_schema_naming_a_missing_tensor(tmp_path: Path) -> None:
    path = tmp_path / "missing.safetensors"
    raw = np.arange(2, dtype="<f4").tobytes()
    path.write_bytes(structured_file_bytes(
        {"ok": {"$": "tensor", "name": "ok", "fw": "numpy"}, "gone": {"x": {"$": "tensor", "name": "nope", "fw": "numpy"}}},
        {"ok": ("F32", [2], raw)},
    ))
    with ss.open(path) as f:
        assert f.load("ok").tolist() == [0.0, 1.0]  # the rest of the file still loads
        assert f["gone"]["x"].kind == "tensor"
        for action in (lambda: f.load("gone.x"), lambda: f.load("gone"), lambda: f.load(), lambda: f["gone"]["x"].dtype,
                       lambda: f["gone"]["x"].describe()):
            with pytest.raises(InvalidFileError, match=r'missing\.safetensors: at \$\["gone"\]\["x"\]: the schema refers to tensor "nope", which the file lacks') as e:
                action()
            assert e.value.code == "TensorNotFound"


def test_crafted_schemas(tmp_path: Path) -> None:
    path = tmp_path / "crafted.safetensors"
    # A reference to an id nothing defines, and a cycle through a tuple (which a save refuses to write).
    path.write_bytes(structured_file_bytes({
        "undefined": {"$": "ref", "#": 7},
        "tuple": {"$": "tuple", "#": 1, "items": [{"d": {"$": "ref", "#": 1}}]},
        "fine": [1],
    }))
    with ss.open(path) as f:
        assert f.load("fine") == [1]
        with pytest.raises(InvalidFileError, match=r'at \$\["undefined"\]: ref to #7, which is not defined before this point'):
            f["undefined"]
        with pytest.raises(InvalidFileError, match=r"ref to #1, which is (part of a cycle through an immutable object|not defined)") as e:
            f.load("tuple.0")
        assert e.value.code == "SchemaInvalid"
    with pytest.raises(InvalidFileError, match=r'at \$\["undefined"\]: ref to #7, which is not defined'):
        ss.load_file(path)
    # A "nested" node outside any plugin value is refused by partial loads as by full ones.
    nested = tmp_path / "nested.safetensors"
    nested.write_bytes(structured_file_bytes({"a": [{"$": "nested", "v": 1}]}))
    with ss.open(nested) as f:
        for action in (lambda: f.load("a"), lambda: f.load()):
            with pytest.raises(InvalidFileError, match=r'at \$\["a"\]\[0\]: a "nested" node may only appear inside a plugin'):
                action()
    # A "nested" node that defines an id its own value refers to: walking it stops with an error instead of looping.
    looping = tmp_path / "looping.safetensors"
    looping.write_bytes(structured_file_bytes({"a": {"$": "nested", "#": 1, "v": {"$": "ref", "#": 1}}}))
    with ss.open(looping) as f:
        with pytest.raises(InvalidFileError, match=r'at \$\["a"\]: ref to #1, which is not defined before this point') as e:
            f["a"]
        assert e.value.code == "SchemaInvalid"
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(structured_file_bytes('{"format":"safestructures","version":2,"root":'))
    with pytest.raises(InvalidFileError, match=r"bad\.safetensors") as e:
        ss.open(bad)
    assert e.value.code == "SchemaNotJson"
    future = tmp_path / "future.safetensors"
    future.write_bytes(structured_file_bytes(schema_document(1, version=3)))
    with pytest.raises(InvalidFileError) as e:
        ss.open(future)
    assert e.value.code == "SchemaVersion"


def test_schema_spilled_into_a_tensor(tmp_path: Path) -> None:
    document = schema_document({"w": {"$": "tensor", "name": "w", "fw": "numpy"}, "n": [1, 2]}).encode()
    pointer = '{"format":"safestructures","version":2,"spill":"__safestructures_schema__"}'
    path = tmp_path / "spilled.safetensors"
    path.write_bytes(structured_file_bytes(pointer, {
        "__safestructures_schema__": ("U8", [len(document)], document),
        "w": ("I16", [2], np.array([5, -5], "<i2").tobytes()),
    }))
    with ss.open(path) as f:
        assert f.keys() == ["w", "n"]
        # The spill tensor holds the schema, not data.
        assert f.tensors() == {"w": ("I16", (2,), 4)}
        assert_same(f.load("w"), np.array([5, -5], np.int16))
        assert f.load("n.1") == 2
    assert_same(ss.load_file(path), {"w": np.array([5, -5], np.int16), "n": [1, 2]})


def test_limits_apply_when_opening_and_to_each_load(tmp_path: Path) -> None:
    path = tmp_path / "deep.safetensors"
    data: Any = 0
    for _ in range(60):
        data = [data]
    ss.save_file({"d": data}, path)
    # Nesting that the JSON parser's own limit (3 levels per allowed level) refuses, at open.
    with pytest.raises(InvalidFileError) as e:
        ss.open(path, max_depth=10)
    assert e.value.code == "NestingTooDeep"
    with pytest.raises(InvalidFileError) as e:
        ss.open(path, max_nodes=5)
    assert e.value.code == "TooManyNodes"
    with ss.open(path, max_depth=40) as f:
        # Levels are counted from the part loaded: the whole is too deep, a part 30 levels down is not.
        with pytest.raises(InvalidFileError, match=r"deeper than the limit of 40 levels") as e:
            f.load("d")
        assert e.value.code == "NestingTooDeep"
        part = f.load("d" + ".0" * 30)
        expected = data
        for _ in range(30):
            expected = expected[0]
        assert part == expected


# ---------------------------------------------------------------------------------------------------------------------
# The proof: what a load does not ask for is not read


def test_one_leaf_out_of_10000_builds_one_tensor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from safestructures import frameworks

    path = tmp_path / "many.safetensors"
    ss.save_file({"layers": [{"w": np.full(4, i, np.int32)} for i in range(10_000)]}, path)
    made: list[str] = []
    real = frameworks.make_tensor

    def counting(*args: Any) -> Any:
        made.append(args[5].get("name"))
        return real(*args)

    monkeypatch.setattr(frameworks, "make_tensor", counting)
    with ss.open(path) as f:
        assert len(f["layers"]) == 10_000
        assert f["layers"][1234]["w"].shape == (4,)
        assert made == []  # walking builds nothing
        assert f.load("layers.1234.w").tolist() == [1234] * 4
    assert made == ["layers.1234.w"]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_pages(path: Path) -> np.ndarray:
    """One bool per page of ``path``: whether it is in the page cache (mincore on a fresh mapping of the file, which
    reports the page cache whether or not any process has the page mapped)."""
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert addr is not None and addr != ctypes.c_void_p(-1).value, ctypes.get_errno()
        try:
            vec = (ctypes.c_ubyte * ((size + PAGE - 1) // PAGE))()
            assert _libc.mincore(addr, size, vec) == 0, ctypes.get_errno()
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)
    return (np.frombuffer(bytes(vec), np.uint8) & 1).astype(bool)


def drop_from_page_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def readahead_bytes(path: Path) -> int:
    """The kernel's readahead window for the device holding ``path`` (read_ahead_kb), 128 KiB when unknown."""
    dev = os.stat(path).st_dev
    try:
        with open(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}/bdi/read_ahead_kb") as f:
            return int(f.read()) * 1024
    except (OSError, ValueError):
        return 128 * 1024


def test_unrequested_tensors_are_not_read(tmp_path: Path) -> None:
    """10,000 tensors of 16 KiB (a 164 MB file, written by hand, on disk: tmpfs cannot evict pages). With the file out
    of the page cache, open() and the load of one leaf bring in the header and that leaf; every other page the kernel
    reads is readahead around those two places, at most a few readahead windows, whatever the file's size."""
    n, per = 10_000, 16 * 1024
    # Build the file by hand: the schema is a list of dicts, tensor i holds the byte value i % 251 throughout.
    items = [{"w": {"$": "tensor", "name": f"layers.{i}.w", "fw": "numpy"}} for i in range(n)]
    header: dict[str, Any] = {"__metadata__": {"__safestructures__": schema_document({"layers": items})}}
    for i in range(n):
        header[f"layers.{i}.w"] = {"dtype": "U8", "shape": [per], "data_offsets": [i * per, (i + 1) * per]}
    head = make_file_bytes(header)
    path = tmp_path / "big.safetensors"
    write_pieces(path, head, *((bytes([i % 251]) * per, 1) for i in range(n)))
    size = os.path.getsize(path)
    data_start = len(head)
    assert size == data_start + n * per

    drop_from_page_cache(path)
    if resident_pages(path).any():
        pytest.skip(f"the page cache of {path} cannot be dropped here (a filesystem such as tmpfs keeps it)")

    leaf = 5000
    begin, end = data_start + leaf * per, data_start + (leaf + 1) * per
    start = time.perf_counter()
    with ss.open(path) as f:
        value = f.load(f"layers.{leaf}.w")
        opened_and_loaded = time.perf_counter() - start
        assert value.shape == (per,) and value.dtype == np.uint8
        assert int(value.min()) == int(value.max()) == leaf % 251  # touches every page of the leaf
        pages = resident_pages(path)

    leaf_pages = np.zeros_like(pages)
    leaf_pages[begin // PAGE : (end + PAGE - 1) // PAGE] = True
    header_pages = np.zeros_like(pages)
    header_pages[: (data_start + PAGE - 1) // PAGE] = True
    assert pages[leaf_pages].all(), "the loaded leaf's pages are resident"
    outside = pages & ~leaf_pages & ~header_pages
    outside_bytes = int(outside.sum()) * PAGE
    window = readahead_bytes(path)
    print(f"\nfile {size} bytes ({n} tensors of {per}), header {data_start} bytes; resident after open + one leaf: "
          f"{int(pages.sum()) * PAGE} bytes, of which {outside_bytes} outside the header and the leaf "
          f"(readahead window {window} bytes)")
    # Readahead brings in neighbours of the two places read, a window or so each, never the file.
    assert outside_bytes <= 4 * window + 2 * 1024 * 1024
    if 8 * window <= size:  # (a machine with a window of tens of MB would read a quarter of this file by readahead)
        assert outside_bytes < size // 4
    # A tensor far from both (the last one) was not read at all.
    assert not pages[(data_start + (n - 1) * per) // PAGE :].any()

    drop_from_page_cache(path)
    start = time.perf_counter()
    full = ss.load_file(path)
    assert sum(int(full["layers"][i]["w"][0]) for i in range(n)) == sum(i % 251 for i in range(n))  # reads one page of each
    full_load = time.perf_counter() - start
    print(f"open + one leaf: {opened_and_loaded * 1000:.1f} ms; load_file + one byte of every tensor: {full_load * 1000:.1f} ms "
          "(cold page cache both times)")
    del full
    path.unlink()  # pytest keeps the last runs' directories: not 164 MB each


def test_describe_names_a_container_met_again_by_its_first_path(tmp_path: Path) -> None:
    # A cycle would never end, and a shared container would be described once per place: the first place is expanded.
    loop: list[Any] = []
    loop.append(loop)
    shared = {"x": 1}
    path = tmp_path / "c.safetensors"
    ss.save_file({"l": loop, "again": loop, "s": (shared, shared)}, path)
    with ss.open(path) as f:
        assert f.tree.describe() == {
            "kind": "dict", "len": 3, "items": [
                ["l", {"kind": "list", "len": 1, "items": [{"kind": "list", "same_as": "l"}]}],
                ["again", {"kind": "list", "same_as": "l"}],
                ["s", {"kind": "tuple", "len": 2, "items": [
                    {"kind": "dict", "len": 1, "items": [["x", {"kind": "int", "value": 1}]]},
                    {"kind": "dict", "same_as": "s.0"},
                ]}],
            ],
        }


def test_a_plain_file_with_many_tensors_is_walked_without_loading(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    ss.save_tensors({f"t{i}": np.full(2, i, np.float32) for i in range(2000)}, path)
    with ss.open(path) as f:
        # In the file's order (the writer sorts names), as load_file gives them.
        assert f.keys() == sorted(f"t{i}" for i in range(2000)) == list(ss.load_file(path))
        assert f["t1999"].shape == (2,) and f["t1999"].dtype == "float32"
        assert f.load("t7").tolist() == [7.0, 7.0]

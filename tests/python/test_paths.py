"""One rule for paths: ``SafeFile.node`` (and ``load``), ``safestructures get`` over a file's schema, and ``get`` over
values already loaded (files without a schema tree) all walk a path with ``_paths.walk``, so they reach the same node,
or stop at the same place. In a mapping, the longest run of dotted parts that is a key is taken first."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safestructures as ss
from safestructures._cli import main
from safestructures._cli_tree import PathNotFound, _split, find_value
from safestructures._paths import Exact, Miss, by_text, index_of

Pair = collections.namedtuple("Pair", ["left", "right"])

DATA: dict[Any, Any] = {
    "a": {"b": 1},
    "a.b": 2,
    # "p.q" leads to a dict without "r": the walk goes back to "p" -> "q.r"
    "deep": {"p.q": {"s": 3}, "p": {"q.r": 4, "q": {"r": 5}}},
    "keys": {1: "int one", 2.5: "two and a half", (1, "x"): "tuple key", "1": "str one"},
    "nt": Pair(left=np.arange(3, dtype=np.int16), right={"x.y": "dotted in a named tuple"}),
    "list": [10, {"k": 20}],
}

# (path, the value there, its path as node() writes it)
REACHED = [
    ("a.b", 2, "a.b"),  # the key "a.b", not "a" -> "b"
    ("a", {"b": 1}, "a"),
    ("deep.p.q.s", 3, "deep.p.q.s"),  # the longest key first
    ("deep.p.q.r", 4, "deep.p.q.r"),  # "p.q" leads nowhere: "p", then its longest key "q.r"
    ("keys.1", "str one", "keys.1"),  # a str key before an int key of the same text
    ("keys.2.5", "two and a half", "keys.2.5"),  # a float key by its text, dot and all
    ("keys.(1, 'x')", "tuple key", "keys.(1, 'x')"),
    ("nt.right.x.y", "dotted in a named tuple", "nt.right.x.y"),
    ("nt.1.x.y", "dotted in a named tuple", "nt.1.x.y"),  # a named tuple's item by index
    ("nt.-1.x.y", "dotted in a named tuple", "nt.1.x.y"),
    ("list.-1.k", 20, "list.1.k"),
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("paths") / "paths.safetensors"
    ss.save_file(DATA, path)
    return path


def get(capsys: pytest.CaptureFixture[str], path: Path, where: str) -> tuple[int, str, str]:
    status = main(["get", str(path), where, "--json"])
    out, err = capsys.readouterr()
    return status, out, err


def as_json(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value


@pytest.mark.parametrize(("where", "value", "node_path"), REACHED, ids=[r[0] for r in REACHED])
def test_node_get_and_the_value_walk_reach_the_same_node(saved: Path, capsys: pytest.CaptureFixture[str], where: str,
                                                         value: Any, node_path: str) -> None:
    import json

    with ss.open(saved) as f:
        node = f.node(where)
        assert (node.path, node.load()) == (node_path, value)
    status, out, err = get(capsys, saved, where)
    assert (status, json.loads(out), err) == (0, value, "")
    loaded = ss.load_file(saved)
    found_path, found = find_value(loaded, _split(where))
    assert (".".join(map(str, found_path)), found) == (node_path, value)


def test_a_named_tuple_by_field_name_and_index(saved: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with ss.open(saved) as f:
        assert f.node("nt.0").path == "nt.0" and f.node("nt.left").path == "nt.left"
        assert f.load("nt.0").tolist() == f.load("nt.left").tolist() == [0, 1, 2]
        assert f.load("nt.0").dtype == np.int16
    assert get(capsys, saved, "nt.left") == (0, "[0, 1, 2]\n", "")
    assert get(capsys, saved, "nt.0") == (0, "[0, 1, 2]\n", "")


# (path, node()'s error, get's message): both name the place where the walk that got furthest stopped, the first
# tried (the longest keys) of those that got as far
MISSED = [
    ("deep.p.q.zz", KeyError, """'zz' is not a key of the dict at $["deep"]["p.q"]""",
     """no key 'zz' at $["deep"]["p.q"] (a dict of 1 item: 's')"""),
    ("deep.p.q.r.t", KeyError, """$["deep"]["p"]["q.r"] is a int, which has no child 't'""",
     """$["deep"]["p"]["q.r"] is an int, which has no key 't'"""),
    ("a.b.c", KeyError, """$["a.b"] is a int, which has no child 'c'""", """$["a.b"] is an int, which has no key 'c'"""),
    ("list.5", IndexError, """index 5 is out of range for the list of 2 items at $["list"]""",
     """index 5 is out of range at $["list"] (a list of 2 items)"""),
    ("list.k", KeyError, """$["list"] is a list: 'k' is not an index""", """$["list"] is a list: 'k' is not an index"""),
    ("nt.2", IndexError, """index 2 is out of range for the namedtuple of 2 items at $["nt"]""",
     """index 2 is out of range at $["nt"] (a namedtuple of 2 items)"""),
    ("list." + "9" * 5000, KeyError, """$["list"] is a list: '""" + "9" * 5000 + """' is not an index""",
     """$["list"] is a list: '""" + "9" * 5000 + """' is not an index"""),
]


@pytest.mark.parametrize(("where", "error", "says", "get_says"), MISSED, ids=[m[0][:12] for m in MISSED])
def test_node_and_get_stop_at_the_same_place(saved: Path, capsys: pytest.CaptureFixture[str], where: str,
                                             error: type[LookupError], says: str, get_says: str) -> None:
    with ss.open(saved) as f, pytest.raises(error) as info:
        f.node(where)
    assert type(info.value) is error and info.value.args == (says,)
    assert get(capsys, saved, where) == (1, "", f"safestructures get: {get_says}\n")
    with pytest.raises(PathNotFound) as found:
        find_value(ss.load_file(saved), _split(where))
    assert str(found.value) == get_says


def test_the_text_of_keys() -> None:
    texts, longest = by_text([(1, "a"), ("1", "b"), (2.5, "c"), ("x.y.z", "d"), (1.0, "e")])
    assert texts == {"1": ("1", "b"), "2.5": (2.5, "c"), "x.y.z": ("x.y.z", "d"), "1.0": (1.0, "e")}
    assert longest == 3
    # an int key and a str key: the str one, whichever is first
    assert by_text([("7", "s"), (7, "i")])[0] == {"7": ("7", "s")}
    assert by_text([(True, "t"), ("True", "s")])[0] == {"True": ("True", "s")}
    assert by_text([]) == ({}, 1)
    assert [index_of(p) for p in ("0", "-3", "007", "x", "", "1.5", "+1", " 1", "١")] == [0, -3, 7, None, None, None, None, None, None]
    assert index_of("9" * 4000) == int("9" * 4000) and index_of("9" * 4001) is None


def test_the_two_words_of_a_miss() -> None:
    miss = Miss(2, "key", ("a", 1), "dict", Exact("k"), 7, ("x", 2, 3.5, None, (1,)))
    assert type(miss.error()) is KeyError and miss.error().args == ("""'k' is not a key of the dict at $["a"][1]""",)
    assert miss.text() == """no key 'k' at $["a"][1] (a dict of 7 items: 'x', 2, 3.5, None, (1,), ...)"""
    empty = Miss(0, "key", (), "OrderedDict", "k")
    assert empty.text() == "no key 'k' at $ (an OrderedDict of 0 items)"


def test_a_path_of_thousands_of_parts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A dict that holds itself: a path as long as one likes goes as deep, past Python's recursion limit (the walks
    # were recursive: RecursionError).
    data: dict[str, Any] = {"x": 1, "a.a": None}
    data["a"] = data["a.a"] = data
    path = tmp_path / "deep.safetensors"
    ss.save_file(data, path)
    with ss.open(path) as f:
        found = f.node("a." * 3001 + "x")
        # As messages write them, the middle of a path of more than 24 parts counted (case 121); path stays whole.
        assert found.path_text == "$" + '["a.a"]' * 10 + "[... 1482 more ...]" + '["a.a"]' * 8 + '["a"]["x"]'
        assert found.path == "a.a." * 1500 + "a.x" and found.load() == 1
        with pytest.raises(KeyError) as info:
            f.node("a." * 3001 + "zz")
    assert info.value.args == ("'zz' is not a key of the dict at $" + '["a.a"]' * 10 + "[... 1481 more ...]" + '["a.a"]' * 9 + '["a"]',)
    assert get(capsys, path, "a." * 3001 + "x") == (0, "1\n", "")
    status, out, err = get(capsys, path, "a." * 3001 + "zz")
    assert (status, out, err) == (1, "", "safestructures get: no key 'zz' at $" + '["a.a"]' * 10 + "[... 1481 more ...]"
                                  + '["a.a"]' * 9 + """["a"] (a dict of 3 items: 'x', 'a.a', 'a')\n""")

"""The walks' fast paths (issue 21) keep the format's promises: an object held only by its container is written once
and never as a reference, while one held anywhere else is still shared and cycles are still refused or kept; strings
of every kind render as JSON reads them back; loaded tuples of scalars are left untracked by the garbage collector."""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest

import safestructures
from safestructures import UnsupportedTypeError
from conftest import schema_of


def ids_in(node: Any) -> list[int]:
    """Every reference id defined or used in a schema node."""
    if isinstance(node, dict):
        own = [node["#"]] if "#" in node else []
        return own + [i for value in node.values() for i in ids_in(value)]
    if isinstance(node, list):
        return [i for item in node for i in ids_in(item)]
    return []


def test_containers_held_only_by_their_parent_are_plain() -> None:
    data = {"records": [{"a": [1, k], "t": (3, k), "d": {"x": None}} for k in range(3)]}  # (3, k): a new tuple each
    root = schema_of(safestructures.save(data))["root"]
    assert ids_in(root) == []
    assert root == {"records": [{"a": [1, k], "t": {"$": "tuple", "items": [3, k]}, "d": {"x": None}} for k in range(3)]}


def test_an_object_inside_unshared_containers_is_still_shared() -> None:
    inner = [1]
    data = [{"first": inner}, ({"second": inner},)]
    del inner  # held by the two dicts only, which are each held by one container
    loaded = safestructures.load(safestructures.save(data))
    assert loaded == [{"first": [1]}, ({"second": [1]},)]
    assert loaded[0]["first"] is loaded[1][0]["second"]
    root = schema_of(safestructures.save(data))["root"]
    assert root[0] == {"first": {"$": "list", "#": 1, "items": [1]}}
    assert root[1] == {"$": "tuple", "items": [{"second": {"$": "ref", "#": 1}}]}


def test_cycles_through_unshared_containers_are_kept_or_refused() -> None:
    outer: list[Any] = []
    outer.append([outer])  # the inner list is held only by `outer`; `outer` by the inner list and this name
    loaded = safestructures.load(safestructures.save(outer))
    assert loaded[0][0] is loaded
    # The list is held only by the tuple, which it holds in turn: met first, the tuple cannot be rebuilt before it.
    through_tuple: tuple[list[Any]] = ([],)
    through_tuple[0].append(through_tuple)
    with pytest.raises(UnsupportedTypeError, match=r"reference cycle at \$\[0\]\[0\]: it runs through an immutable tuple"):
        safestructures.save(through_tuple)
    # Met first, a list held only by its cycle's tuple closes the cycle itself: it loads back.
    through_list: list[Any] = []
    through_list.append((through_list,))
    loaded_list = safestructures.load(safestructures.save(through_list))
    assert loaded_list[0][0] is loaded_list


@pytest.mark.parametrize("text", ["", "k", "a\"b\\c", "line\nbreak\ttab\x01\x1f", "é€😀", "x" * 15, "y" * 16, "z" * 17,
                                  "quote \" and backslash \\ past sixteen bytes " * 3, "\x7f\x00"])
def test_strings_render_as_json_reads_them(text: str) -> None:
    data = {text: text, "list": [text, {text: [text]}]}
    saved = safestructures.save(data)
    assert schema_of(saved)["root"] == json.loads(json.dumps(data))
    assert safestructures.load(saved) == data


def test_loaded_tuples_of_scalars_are_untracked() -> None:
    loaded = safestructures.load(safestructures.save({"scalars": (1, "a", 2.5, None), "nested": ([1],), "empty": ()}))
    assert loaded == {"scalars": (1, "a", 2.5, None), "nested": ([1],), "empty": ()}
    assert not gc.is_tracked(loaded["scalars"])
    assert gc.is_tracked(loaded["nested"])
    # A list may still close a cycle through the tracked tuple: the collector must see it.
    loaded["nested"][0].append(loaded["nested"])
    assert gc.is_tracked(loaded["nested"][0])

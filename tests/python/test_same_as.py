"""One rule for when a description names a node met again by its first path (``same_as``) rather than describing it
again: ``Node.describe`` and ``inspect`` over a file's nodes, ``inspect`` over values loaded whole (files without a
schema tree), and ``get``'s JSON (``$same_as``, ``$cycle``) all ask ``_lazy_schema.met_again``. An empty tuple has no
identity of its own: a save never writes it as a reference, and a load hands out one for all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import safestructures as ss
from safestructures._cli_render import _describe_value, _to_json
from safestructures._lazy_schema import describe


def shared_and_cyclic() -> dict[str, Any]:
    shared = [1, {"deep": [2]}]
    cycle: list[Any] = [0]
    cycle.append(cycle)
    inside: dict[str, Any] = {"name": "d"}
    inside["self"] = inside
    empty_set = frozenset()
    pair = (3, shared)
    return {"a": shared, "b": shared, "cycle": cycle, "inside": inside, "e1": (), "e2": (), "nested": {"x": ((), ())},
            "f1": empty_set, "f2": empty_set, "p1": pair, "p2": [pair, pair], "l1": [], "l2": []}


# path -> the first path it is named by; every other container of the data is described in full
SAME_AS = {"b": "a", "cycle.1": "cycle", "inside.self": "inside", "f2": "f1", "p1.1": "a", "p2.0": "p1", "p2.1": "p1"}


def same_as_of(description: dict[str, Any], path: str = "", out: dict[str, str] | None = None) -> dict[str, str]:
    """{path: same_as} of every node a description names by its first path."""
    out = {} if out is None else out
    if "same_as" in description:
        out[path] = description["same_as"]
    for n, item in enumerate(description.get("items", [])):
        key, child = (str(n), item) if isinstance(item, dict) else (str(item[0]), item[1])
        same_as_of(child, f"{path}.{key}" if path else key, out)
    return out


def json_same_as(value: Any, path: str = "", out: dict[str, str] | None = None) -> dict[str, str]:
    """{path: first path} of every ``$same_as`` and ``$cycle`` of get's JSON."""
    out = {} if out is None else out
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("$same_as", "$cycle"):
        out[path] = next(iter(value.values()))
    elif isinstance(value, dict):
        for k, v in value.items():
            json_same_as(v, f"{path}.{k}" if path else k, out)
    elif isinstance(value, list):
        for n, v in enumerate(value):
            json_same_as(v, f"{path}.{n}" if path else str(n), out)
    return out


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("same_as") / "shared.safetensors"
    ss.save_file(shared_and_cyclic(), path)
    return path


def test_nodes_and_loaded_values_are_named_again_at_the_same_places(saved: Path) -> None:
    with ss.open(saved) as f:
        of_nodes = same_as_of(f.tree.describe())
        # inspect's walk of the nodes: every reference named, tensors and all (there are none here)
        of_commands = same_as_of(describe(f._schema, f._document().root, (), None, f.tree._find_tensor, commands=True))
    loaded = ss.load_file(saved)
    assert loaded["e1"] is loaded["e2"]  # one empty tuple for all, as Python hands it out
    of_values = same_as_of(_describe_value(loaded, (), None, None, False, {}))
    assert of_nodes == of_commands == of_values == SAME_AS
    assert json_same_as(_to_json(loaded, (), False)) == SAME_AS


def test_a_node_met_again_is_described_once(saved: Path) -> None:
    with ss.open(saved) as f:
        tree = dict(f.tree.describe()["items"])
    loaded = ss.load_file(saved)
    values = dict(_describe_value(loaded, (), None, None, False, {})["items"])
    # Node.describe names it only; inspect's descriptions keep its kind and size
    assert tree["b"] == {"kind": "list", "same_as": "a"}
    assert values["b"] == {"kind": "list", "len": 2, "same_as": "a"}
    for described in (tree, values):
        assert described["e2"] == {"kind": "tuple", "len": 0, "items": []}
        assert described["a"]["items"][1]["items"][0][1]["items"] == [{"kind": "int", "value": 2}]
    json = _to_json(loaded, (), False)
    assert (json["e1"], json["e2"], json["nested"], json["cycle"]) == ([], [], {"x": [[], []]}, [0, {"$cycle": "cycle"}])

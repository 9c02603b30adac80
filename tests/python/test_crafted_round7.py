"""Crafted files of the seventh round's lead (docs/security.md cases 47 to 51): JSON objects, mappings or sets holding
a key twice (readers that keep the first of two and readers that keep the last, Python's json or a dict built pair by
pair, would read different data from one file, so every reader refuses them), schemas naming the tensors the format
reserves, parts loaded alone that the whole load refuses, and files holding the schemas of both versions. Each attack
has its legitimate twin, which must keep loading."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import crafted
import safestructures as ss
from safestructures._cli import main

HEAD = '{"format":"safestructures","version":2,"root":'


def schema_file(root_text: str, tensors: dict[str, tuple[str, list[int], bytes]] | None = None) -> bytes:
    """A file whose schema's root is the JSON text ``root_text``, as written (json.dumps cannot write a key twice)."""
    return crafted.metadata_file({crafted.SCHEMA_KEY: HEAD + root_text + "}"}, tensors)


def refusal(route: str, data: bytes, path: Path) -> ss.InvalidFileError:
    """What reading ``data`` by ``route`` raises: ``load`` of the bytes, or ``load_file``, ``open().load()``, or
    ``open().keys()`` of them written at ``path``."""
    path.write_bytes(data)
    with pytest.raises(ss.InvalidFileError) as info:
        if route == "load":
            ss.load(data)
        elif route == "load_file":
            ss.load_file(path)
        else:
            with ss.open(path) as f:
                f.load() if route == "open" else f.keys()
    return info.value


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(args))
    return status, out.getvalue(), err.getvalue()


# --- 47. a JSON object of the schema holding a key twice --------------------------------------------------------------------

# (the root as written, where the object is, the key). Before: every one loaded, as the first of the two (a list [1], a
# list though Python's json reads a tuple, "A", ref #1); Python's json, and any tool reading the schema with it, reads
# the last.
KEY_TWICE = [
    ('{"$":"list","items":[1],"items":[2]}', '$["root"]', "items"),
    ('{"$":"list","\\u0024":"tuple","items":[1]}', '$["root"]', "$"),
    ('{"a":[{"$":"str","cp":[65],"cp":[66]}]}', '$["root"]["a"][0]', "cp"),
    ('[{"$":"list","#":1,"items":[]},{"$":"ref","#":1,"#":2}]', '$["root"][1]', "#"),
    ('{"k":1,"k\\u0000":2,"k":3}', '$["root"]', "k"),
]


@pytest.mark.parametrize("route", ["load", "load_file", "open", "keys"])
@pytest.mark.parametrize(("root", "where", "key"), KEY_TWICE, ids=["items", "tag", "cp", "ref-id", "plain"])
def test_case_47_a_schema_object_holding_a_key_twice_is_refused(tmp_path: Path, route: str, root: str, where: str, key: str) -> None:
    path = tmp_path / "k.safetensors"
    error = refusal(route, schema_file(root), path)
    prefix = "" if route == "load" else f"{path}: "
    assert str(error) == prefix + f"the schema's JSON object at {where} holds the key {json.dumps(key)} twice"
    assert error.code == "DuplicateKey"


def test_case_47_the_command_line_says_so(tmp_path: Path) -> None:
    path = tmp_path / "k.safetensors"
    path.write_bytes(schema_file(KEY_TWICE[0][0]))
    for command in ("inspect", "verify"):
        status, out, err = cli(command, str(path))
        assert status == 1 and out == ""
        assert err == f"safestructures {command}: {path}: the schema's JSON object at $[\"root\"] holds the key \"items\" twice\n"


def test_case_47_an_index_holding_a_key_twice_is_refused(tmp_path: Path) -> None:
    # Before: a sharded folder's index mapping a tensor twice loaded the shard of the last mapping (Python's json).
    folder = tmp_path / "m"
    ss.save_file({"a": np.arange(4.0), "b": [1, 2]}, folder, max_shard_size=16)
    index = folder / "model.safetensors.index.json"
    text = index.read_text()
    index.write_text(text.replace('"weight_map": {', '"weight_map": {"a": "model-00009-of-00009.safetensors", ', 1))
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load_file(folder)
    assert str(info.value) == f'{index}: a JSON object holds the key "a" twice' and info.value.code == "DuplicateKey"


def test_case_47_a_1_0_0_schema_holding_a_key_twice_is_refused() -> None:
    text = '{"type":"list","value":[{"type":"int","value":1}],"value":[]}'
    blob = crafted.metadata_file({"_safestructures_schema_": text, "_safestructures_schema_version_": "1.0.0"},
                                 {"null": ("I64", [1], b"\0" * 8)})
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load(blob)
    assert str(info.value) == 'a JSON object holds the key "value" twice' and info.value.code == "DuplicateKey"


def test_case_47_twins_keys_that_differ_load(tmp_path: Path) -> None:
    # Keys differing in one escaped character, in case, or by a NUL; an object of more keys than are compared pairwise.
    root = '{"k":1,"K":2,"k\\u0000":3,"\\u006b\\u0001":4,' + ",".join(f'"w{k}":{k}' for k in range(40)) + "}"
    back = ss.load(schema_file(root))
    assert list(back)[:4] == ["k", "K", "k\0", "k\x01"] and [back[k] for k in ("k", "K", "k\0", "k\x01")] == [1, 2, 3, 4]
    assert len(back) == 44 and back["w39"] == 39
    data = {"a": {"items": [1], "$": "x", "#": 2}, "cp": [65, 66], "t": np.arange(3, dtype=np.int8)}
    path = tmp_path / "t.safetensors"
    ss.save_file(data, path)
    for loaded in (ss.load_file(path), ss.load(path.read_bytes()), ss.open(path).load()):
        assert loaded["a"] == {"items": [1], "$": "x", "#": 2} and loaded["cp"] == [65, 66]
        assert loaded["t"].dtype == np.int8 and loaded["t"].tolist() == [0, 1, 2]


# --- 48. a mapping's pairs or a set's items holding two equal keys -----------------------------------------------------------

# (the root, where, what is said). Before: loads kept the last pair ({"s": 2}; {1: 2}) or one item ({1}), while
# open().keys() listed both keys and the C++ API refused the first.
EQUAL_KEYS = [
    ({"$": "dict", "items": [["s", 1], ["s", 2]]}, "$", 'a mapping holds the key "s" twice'),
    ({"x": {"$": "OrderedDict", "items": [[True, 1], [1, 2]]}}, '$["x"]', "a mapping holds the key 1 twice"),
    ({"$": "dict", "items": [[1, 1], [1.0, 2]]}, "$", "the key of pair 1 equals an earlier key of the mapping"),
    ({"$": "dict", "items": [[1, 1], [{"$": "int", "hex": "0x1"}, 2]]}, "$", "the key of pair 1 equals an earlier key of the mapping"),
    ({"$": "defaultdict", "factory": "list", "items": [["a", []], ["a", [1]]]}, "$", 'a mapping holds the key "a" twice'),
    ({"$": "Counter", "items": [["a", 1], ["b", 2], ["a", 3]]}, "$", 'a mapping holds the key "a" twice'),
    ({"$": "dict", "items": [[{"$": "tuple", "items": [1, "a"]}, 1], [{"$": "tuple", "items": [1, "a"]}, 2]]}, "$",
     "the key of pair 1 equals an earlier key of the mapping"),
]


@pytest.mark.parametrize("route", ["load", "load_file", "open", "keys"])
@pytest.mark.parametrize(("root", "where", "what"), EQUAL_KEYS, ids=["str", "bool-int", "int-float", "bigint", "defaultdict", "Counter",
                                                                 "tuple"])
def test_case_48_a_mapping_holding_equal_keys_is_refused(tmp_path: Path, route: str, root: Any, where: str, what: str) -> None:
    path = tmp_path / "m.safetensors"
    if route == "keys" and where != "$":
        with ss.open(path.write_bytes(crafted.file_bytes(root)) and path) as f, pytest.raises(ss.InvalidFileError) as info:
            f["x"].keys()
        error = info.value
    else:
        error = refusal(route, crafted.file_bytes(root), path)
    prefix = "" if route == "load" else f"{path}: "
    assert str(error) == prefix + f"at {where}: {what}" and error.code == "SchemaInvalid"


@pytest.mark.parametrize("tag", ["set", "frozenset"])
@pytest.mark.parametrize(("items", "why"), [([1, 1], "holds the item 1 twice"), (["a", 2, "a"], 'holds the item "a" twice'),
                                            ([1, 1.0], "item 1 equals an earlier item"), ([0, False], "item 1 equals an earlier item")])
def test_case_48_a_set_holding_equal_items_is_refused(tmp_path: Path, tag: str, items: list[Any], why: str) -> None:
    message = f'at $["s"]: a {tag} {why}' if why.startswith("holds") else f'at $["s"]: {why} of the {tag}'
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load(crafted.file_bytes({"s": {"$": tag, "items": items}}))
    assert str(info.value) == message and info.value.code == "SchemaInvalid"
    # The lazy API lists (or reads alone) no item of a set a load refuses, where its string or int items say so.
    path = tmp_path / "s.safetensors"
    path.write_bytes(crafted.file_bytes({"s": {"$": tag, "items": items}}))
    with ss.open(path) as f:
        if why.startswith("holds"):
            with pytest.raises(ss.InvalidFileError, match=re.escape(message)):
                f["s"][0].load()
        else:
            assert f["s"][0].load() == items[0]  # only a load can tell 1 from 1.0


def test_case_48_twins_distinct_keys_and_items_load(tmp_path: Path) -> None:
    from collections import Counter, OrderedDict, defaultdict
    data = {"d": {1: "int", "1": "str", 1.5: "float", (1, "a"): "tuple", None: "none", 2**70: "big"},
            "o": OrderedDict([(True, 1), (2, 2)]), "c": Counter("abca"), "dd": defaultdict(list, {"a": [1]}),
            "s": {1, "1", 2.5, (1, 2)}, "f": frozenset({0, "0"})}
    path = tmp_path / "k.safetensors"
    ss.save_file(data, path)
    with ss.open(path) as f:
        assert f["d"].keys() == [1, "1", 1.5, (1, "a"), None, 2**70]
        lazy = f.load()
    for back in (ss.load_file(path), ss.load(path.read_bytes()), lazy):
        assert back == data
        assert type(back["o"]) is OrderedDict and type(back["c"]) is Counter and type(back["dd"]) is defaultdict
        assert back["dd"].default_factory is list and type(back["f"]) is frozenset


# --- 49. a schema naming a tensor the format reserves -----------------------------------------------------------------------

PADDING, SPILL = "__safestructures_padding__", "__safestructures_schema__"
RESERVED_MESSAGE = {PADDING: f'tensor "{PADDING}" is a recording\'s padding, which the format reserves: no value is stored in it',
                    SPILL: f'tensor "{SPILL}" holds the spilled schema, which the format reserves: no value is stored in it'}


def recording_naming_its_padding(node: str) -> bytes:
    schema = crafted.ENVELOPE + '"root":[[' + node + "]]}"
    return crafted.recording_bytes_with({PADDING: ("U8", [4096], b"\0" * 4096)}, schema)


@pytest.mark.parametrize("node", [f'{{"$":"tensor","name":"{PADDING}","fw":"numpy"}}', f'{{"$":"bytes","tensor":"{PADDING}"}}',
                                  f'{{"$":"tensor","storage":"{PADDING}","dtype":"uint8","shape":[2],"offset":0,"strides":[1]}}'],
                         ids=["tensor", "bytes", "view"])
@pytest.mark.parametrize("route", ["load", "load_file", "open"])
def test_case_49_a_recording_naming_its_padding_is_refused(tmp_path: Path, node: str, route: str) -> None:
    # Before: loaded as 4096 zero bytes; one Recorder(mode="a").append later the header had grown into the padding,
    # and the file no longer loaded ("refers to tensor ..., which the file lacks"): the append lost the records.
    path = tmp_path / "r.safetensors"
    error = refusal(route, recording_naming_its_padding(node), path)
    prefix = "" if route == "load" else f"{path}: "
    assert str(error) == prefix + "at $[0][0]: " + RESERVED_MESSAGE[PADDING] and error.code == "SchemaInvalid"


def test_case_49_a_spilled_schema_naming_its_own_tensor_is_refused() -> None:
    document = crafted.ENVELOPE + '"root":{"s":{"$":"bytes","tensor":"' + SPILL + '"}}}'
    pointer = crafted.ENVELOPE + '"spill":"' + SPILL + '"}'
    data = crafted.metadata_file({crafted.SCHEMA_KEY: pointer}, {SPILL: ("U8", [len(document)], document.encode())})
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load(data)
    assert str(info.value) == 'at $["s"]: ' + RESERVED_MESSAGE[SPILL] and info.value.code == "SchemaInvalid"


def test_case_49_twins_plain_files_and_recordings_load(tmp_path: Path) -> None:
    # A plain safetensors file may name its tensors anything, these names included.
    plain = crafted.metadata_file({}, {PADDING: ("U8", [2], b"\1\2"), SPILL: ("I16", [1], b"\3\0")})
    back = ss.load(plain)
    assert list(back) == [PADDING, SPILL] and back[PADDING].tolist() == [1, 2] and back[SPILL].dtype == np.int16
    # A recording whose header has grown into its padding goes on loading and continuing.
    path = tmp_path / "r.safetensors"
    with ss.Recorder(path, header_room=4096) as rec:
        for k in range(200):
            rec["s"].append({"k": k, "a": np.full(3, k, dtype=np.int32)})
    with ss.Recorder(path, mode="a") as rec:
        rec["s"].append({"k": 200, "a": np.full(3, 200, dtype=np.int32)})
    records = ss.load_file(path)["s"]
    assert len(records) == 201 and records[200]["k"] == 200 and records[200]["a"].tolist() == [200, 200, 200]


# --- 50. a part loaded or shown alone that the whole load refuses ----------------------------------------------------------

REF_BEFORE_DEFINITION = {"x": {"$": "ref", "#": 1}, "y": {"$": "list", "#": 1, "items": [5]}}
REF_MESSAGE = 'at $["x"]: ref to #1, which is not defined before this point'


def test_case_50_a_reference_before_its_definition_is_refused_alone_too(tmp_path: Path) -> None:
    # Before: the whole load refused the file, while open()["x"], its load() and inspect followed the reference to
    # the list defined after it ([5]).
    path = tmp_path / "r.safetensors"
    path.write_bytes(crafted.file_bytes(REF_BEFORE_DEFINITION))
    with pytest.raises(ss.InvalidFileError) as whole:
        ss.load_file(path)
    assert str(whole.value) == f"{path}: {REF_MESSAGE}"
    with ss.open(path) as f:
        for part in (lambda: f["x"], lambda: f.load("x"), lambda: f.node("x").kind):
            with pytest.raises(ss.InvalidFileError) as info:
                part()
            assert str(info.value) == f"{path}: {REF_MESSAGE}" and info.value.code == "SchemaInvalid"
        assert f.load("y") == [5]
    for command in (["inspect", str(path)], ["get", str(path), "x"]):
        status, out, err = cli(*command)
        assert status == 1 and out == "" and err == f"safestructures {command[0]}: {path}: {REF_MESSAGE}\n"


def test_case_50_a_view_of_a_tensor_named_after_it_is_refused_alone_too(tmp_path: Path) -> None:
    # Before: the whole load refused the view; open()["b"].load() built tensor "a" first and returned the view.
    root = {"b": {"$": "tensor", "fw": "numpy", "storage": "a", "offset": 4, "shape": [4], "stride": [1]},
            "a": {"$": "tensor", "name": "a", "fw": "numpy"}}
    path = tmp_path / "v.safetensors"
    path.write_bytes(crafted.file_bytes(root, {"a": ("F32", [3, 4], np.arange(12, dtype="<f4").tobytes())}))
    message = 'at $["b"]: cannot rebuild a tensor view: ValueError: the tensor views storage "a", which is not defined before it'
    with pytest.raises(ss.InvalidFileError) as whole:
        ss.load_file(path)
    assert str(whole.value) == f"{path}: {message}"
    with ss.open(path) as f, pytest.raises(ss.InvalidFileError) as info:
        f["b"].load()
    assert str(info.value) == f"{path}: {message}"


def test_case_50_twins_parts_of_a_saved_file_load_alone(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    shared = [1, 2]
    data = {"a": base, "b": base[1], "s": shared, "t": shared, "me": []}
    data["me"].append(data["me"])
    path = tmp_path / "p.safetensors"
    ss.save_file(data, path)
    with ss.open(path) as f:
        view = f["b"].load()
        assert type(view) is torch.Tensor and view.tolist() == [4.0, 5.0, 6.0, 7.0]
        assert f["t"].load() == [1, 2] and f.load("t") == [1, 2]
        me = f["me"].load()
        assert type(me) is list and me[0] is me


# --- 51. a file holding a schema of both versions -------------------------------------------------------------------------

def test_case_51_a_file_holding_both_schemas_is_refused(tmp_path: Path) -> None:
    # Before: every route read the version 2 schema ({"from": "v2"}), while safestructures 1.0.0, which reads its own
    # key alone, read {"from": "v1"} from the same file.
    v2 = json.dumps({"format": "safestructures", "version": 2, "root": {"from": "v2"}})
    v1 = json.dumps({"type": "dict", "value": {"from": {"type": "str", "value": "v1"}}})
    data = crafted.metadata_file({crafted.SCHEMA_KEY: v2, "_safestructures_schema_": v1, "_safestructures_schema_version_": "1.0.0"},
                                 {"null": ("I64", [1], b"\0" * 8)})
    path = tmp_path / "both.safetensors"
    message = ('the file holds both a schema ("__safestructures__") and a 1.0.0 schema ("_safestructures_schema_"), which the two '
               "versions would read as different data")
    for route in ("load", "load_file", "open"):
        error = refusal(route, data, path)
        assert str(error) == ("" if route == "load" else f"{path}: ") + message and error.code == "SchemaInvalid"
    status, out, err = cli("inspect", str(path))
    assert status == 1 and out == "" and err == f"safestructures inspect: {path}: {message}\n"

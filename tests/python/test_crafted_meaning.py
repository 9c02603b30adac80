"""Files crafted to attack a structure's meaning (issue 14): lone surrogates where messages echo them, keys built from
shared references, one tensor named by many nodes, colliding hashes, walks that built leaves one by one, classes
forged through another node kind. Each attack runs in a fresh interpreter with a timeout and an address-space cap,
and reports its outcome and its peak memory; each has a legitimate twin that must keep loading."""

from __future__ import annotations

import collections
import enum
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import safestructures as ss
from conftest import MEMORY_MB_SOURCE
import crafted

TESTS_DIR = Path(__file__).resolve().parent

#: Runs the attack (a function body using ``path``), capped at 6 GiB of address space so that a regression cannot take
#: the machine down, and prints what happened with the peak RSS.
PROBE = MEMORY_MB_SOURCE + r"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
sys.path.insert(0, sys.argv[2])
import safestructures as ss
path = sys.argv[1]
start = time.perf_counter()
try:
    result = attack(path)
    outcome = {"outcome": "ok", "result": result}
except ss.SafestructuresError as e:
    outcome = {"outcome": "refused", "class": type(e).__name__, "code": e.code, "message": str(e)[:3000]}
except BaseException as e:
    outcome = {"outcome": "escaped", "class": type(e).__name__, "message": str(e)[:3000]}
outcome.update(seconds=time.perf_counter() - start, peak_mb=memory_mb("VmHWM"))
print(json.dumps(outcome))
"""


def run_attack(tmp_path: Path, data: bytes, body: str, *, timeout: float = 60) -> dict[str, Any]:
    """Writes ``data`` to a file and runs ``def attack(path): <body>`` on it in a fresh interpreter; a crash, a hang past
    ``timeout`` or an exception other than a safestructures error fails the test."""
    path = tmp_path / "crafted.safetensors"
    path.write_bytes(data)
    code = "def attack(path):\n" + "\n".join("    " + line for line in body.strip().splitlines()) + "\n" + PROBE
    try:
        result = subprocess.run([sys.executable, "-W", "error", "-c", code, str(path), str(TESTS_DIR)], capture_output=True,
                                text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the attack ran past {timeout} s")
    assert result.returncode == 0, f"exit status {result.returncode}: {result.stderr[-3000:]}"
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["outcome"] != "escaped", outcome
    return outcome


def refused(outcome: dict[str, Any], code: str, fragment: str, peak_mb: float = 400) -> None:
    assert outcome["outcome"] == "refused", outcome
    assert outcome["class"] == "InvalidFileError" and outcome["code"] == code, outcome
    assert fragment in outcome["message"], outcome["message"]
    assert outcome["peak_mb"] < peak_mb, outcome


# --- 1. a lone surrogate where a message echoes it ----------------------------------------------------------------------

LOAD_ROUTES = {
    "load": "ss.load(open(path, 'rb').read())",
    "load_file": "ss.load_file(path)",
    "open-load": "ss.open(path).load()",
    "open-describe": "ss.open(path).tree.describe()",
}


@pytest.mark.parametrize("route", sorted(LOAD_ROUTES))
@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("surrogate_scalar_dtype", 'at $[0]: cannot rebuild a npscalar: ValueError: dtype "\\ud800" is not one that safestructures stores'),
        # A tensor's fields are plain JSON, so a tagged str (the only way to a lone surrogate) never reaches a dtype.
        ("surrogate_tensor_dtype", 'at $["t"]: a tensor\'s field "dtype" must be a JSON scalar or an array of scalars'),
        ("surrogate_torch_dtype", 'at $["t"]: a tensor\'s field "dtype" must be a JSON scalar or an array of scalars'),
    ],
)
def test_case_01_a_lone_surrogate_in_a_message_is_escaped(tmp_path: Path, case: str, message: str, route: str) -> None:
    outcome = run_attack(tmp_path, getattr(crafted, case)(), LOAD_ROUTES[route])
    if route == "open-describe" and case != "surrogate_scalar_dtype":
        # describe() reads a tensor's fields without building it: nothing to refuse, nothing echoed.
        assert outcome["outcome"] == "ok", outcome
        return
    assert outcome["outcome"] == "refused", outcome
    assert message in outcome["message"]


@pytest.mark.parametrize("command", [["verify"], ["inspect"], ["inspect", "--json"], ["get", "", "--json"]])
def test_case_01_the_command_line_reports_a_lone_surrogate(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "crafted.safetensors"
    path.write_bytes(crafted.surrogate_scalar_dtype())
    result = subprocess.run([sys.executable, "-m", "safestructures", command[0], str(path), *command[1:]], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1, result
    assert "\\ud800" in result.stderr and "Traceback" not in result.stderr


def test_case_01_every_field_a_constructor_reads_may_hold_a_lone_surrogate(tmp_path: Path) -> None:
    outcome = run_attack(tmp_path, crafted.surrogate_in_every_field(), """
import torch  # so that the torch values are built, not refused for want of torch
out = []
for k in range(12):
    try:
        out.append(repr(ss.open(path).load(str(k))))
    except ss.InvalidFileError as e:
        out.append(e.code)
return out
""")
    assert outcome["outcome"] == "ok", outcome
    # Only the unresolved classes load (as stand-ins holding the text: a record, the enum's value, a plugin's record);
    # every other node is refused.
    result = outcome["result"]
    assert result[0] == "Record('\\ud800')" and result[1] == "'\\ud800'" and result[11] == "Record('\\ud800', value=1)"
    assert result[2:11] == ["SchemaInvalid"] * 9


# --- 2. hashing a key built from shared references ----------------------------------------------------------------------

@pytest.mark.parametrize("position", ["set", "frozenset", "dict", "Counter"])
def test_case_02_a_key_that_expands_exponentially_is_refused(tmp_path: Path, position: str) -> None:
    # 40 levels: 2.6 KB, whose hashing would walk 2**40 nodes (about two hours) on 1.0 and on main before the fix.
    outcome = run_attack(tmp_path, crafted.hashed_expansion(40, position), "ss.load_file(path)")
    refused(outcome, "LimitExceeded", "built from shared references that expand to")
    assert "hashing the keys of this file would walk more than its limit" in outcome["message"]


def test_case_02_keys_that_share_objects_still_load() -> None:
    pair = ("layer", 1)
    inner = (pair, pair)
    data = {inner: 1, (inner, pair): 2, frozenset([inner]): 3, "s": {inner, (inner, inner)}}
    back = ss.load(ss.save(data))
    assert back == data
    keys = list(back)
    assert keys[0][0] is keys[0][1] and keys[1][0] is keys[0]


def test_case_02_the_hashing_budget_grows_with_the_file() -> None:
    # A tuple shared 16 levels deep expands to about 700,000 tape nodes, hashed twice: past the budget alone (16
    # nodes of hashing per schema node, plus 2**20), but the same key in a file that is large for other reasons loads.
    key = crafted.doubling("tuple", 16)
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load(crafted.file_bytes({"$": "set", "items": [key]}))
    assert info.value.code == "LimitExceeded"
    loaded = ss.load(crafted.file_bytes({"$": "dict", "items": [[key, list(range(100_000))]]}))
    (only,) = loaded
    assert only[0] is only[1] and len(loaded[only]) == 100_000


# --- 4 and 15. one tensor named by many nodes -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["bytes", "bytearray", "big-endian", "F4", "plain"])
@pytest.mark.parametrize("framework", ["None", "'numpy'", "'torch'"])
def test_case_04_a_tensor_named_by_a_second_node_is_refused(tmp_path: Path, kind: str, framework: str) -> None:
    # 1,000 nodes naming one 1 MiB tensor: each a copy (1.5-2 GB before the fix).
    body = f"ss.load(open(path, 'rb').read(), framework={framework})"
    outcome = run_attack(tmp_path, crafted.tensor_named_many_times(kind), body)
    refused(outcome, "SchemaInvalid", 'at $[1]: tensor "t" is named by a second node (an object stored once and met again is a "ref")',
            peak_mb=600 if framework == "'torch'" else 200)


def test_case_04_bytes_shared_by_reference_are_built_once() -> None:
    blob = b"x" * 100
    data = {"a": blob, "b": [blob, bytearray(blob)]}
    with _opened(ss.save(data)) as f:
        part = f.load("b")
        assert part == [blob, bytearray(blob)] and type(part[1]) is bytearray
        whole = f.load()
        assert whole["b"][0] is whole["a"] and whole == data


class _opened:
    """A file of ``data`` opened lazily, removed on exit."""

    def __init__(self, data: bytes) -> None:
        import tempfile

        fd, self.path = tempfile.mkstemp(suffix=".safetensors")
        os.write(fd, data)
        os.close(fd)
        self.file = ss.open(self.path)

    def __enter__(self) -> ss.SafeFile:
        return self.file

    def __exit__(self, *exc: object) -> None:
        self.file.close()
        os.remove(self.path)


# --- 6. keys that all hash alike ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("container", ["dict", "set", "Counter", "OrderedDict"])
def test_case_06_a_run_of_colliding_keys_is_refused(tmp_path: Path, container: str) -> None:
    # 50,000 big ints k * (2**61 - 1), all hashing to 0 (3.3 MB took 20.7 s before the fix).
    outcome = run_attack(tmp_path, crafted.colliding_keys(50_000, container), "ss.load_file(path)")
    what = "item" if container == "set" else "key"
    refused(outcome, "LimitExceeded", f"more than 32 {what}s of this container have the same hash value (0), which would make building it quadratic")
    assert outcome["message"].endswith(f"at $[32]: more than 32 {what}s of this container have the same hash value (0), "
                                       "which would make building it quadratic")


def test_case_06_thirty_two_colliding_keys_still_load() -> None:
    keys = [k * (2**61 - 1) for k in range(1, 33)]
    loaded = ss.load(ss.save({k: k for k in keys}))
    assert list(loaded) == keys and all(hash(k) == 0 for k in loaded)


# --- 8. walks that built every leaf on its own ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("case", "body"),
    [
        ("ellipsis", "d = ss.open(path).tree.describe(); return [len(d['items']), d['items'][0]]"),
        ("tuple-keys", "k = ss.open(path).keys(); return [len(k), list(k[0]), list(k[-1])]"),
        ("empty-lists", "d = ss.open(path).tree.describe(); return [len(d['items']), d['items'][-1]]"),
    ],
)
def test_case_08_walks_are_linear_in_the_schema(tmp_path: Path, case: str, body: str) -> None:
    # Quadratic before: 2.5 MB of Ellipsis took 54 s to describe, 20k tuple keys 3.4 s to list.
    if case == "ellipsis":
        data, expected = crafted.many_leaves(150_000, {"$": "Ellipsis"}), [150_000, {"kind": "Ellipsis", "value": "Ellipsis"}]
    elif case == "tuple-keys":
        data, expected = crafted.many_tuple_keys(80_000), [80_000, [0], [79_999]]
    else:
        data, expected = crafted.many_leaves(300_000, []), [300_000, {"kind": "list", "len": 0, "items": []}]
    outcome = run_attack(tmp_path, data, body, timeout=45)
    assert outcome["outcome"] == "ok" and outcome["result"] == expected, outcome
    assert outcome["peak_mb"] < 1024, outcome


def test_case_08_describe_renders_shared_structure_under_a_leaf_in_bounded_work(tmp_path: Path) -> None:
    # A slice holding a tuple of 27 doubling levels: its repr expanded 2**27 nodes (34 s, 1.95 GB) before the fix.
    outcome = run_attack(tmp_path, crafted.shared_under_leaf(27, "slice"), "return ss.open(path).tree.describe()")
    assert outcome["outcome"] == "ok", outcome
    assert outcome["result"]["items"][0][1] == {"kind": "slice", "value": "slice((((...), (...)), ((...), (...))), None, None)"}
    assert outcome["peak_mb"] < 400


def test_case_08_describe_shows_large_values_by_their_size() -> None:
    from fractions import Fraction

    data = {"big": 7**6000, "frac": Fraction(7**6000, 2**20000 + 1), "nan": float("nan")}
    with _opened(ss.save(data)) as f:
        items = dict((k, v["value"]) for k, v in f.tree.describe()["items"])
    assert items == {"big": "<int of 16,845 bits>", "frac": "Fraction(<int of 16,845 bits>, <int of 20,001 bits>)", "nan": "nan"}


# --- 11. errors outside the contract -----------------------------------------------------------------------------------------

def test_case_11_a_framework_error_on_a_plain_file_is_an_invalid_file(tmp_path: Path) -> None:
    # A plain safetensors file holding an F6 tensor, asked for as JAX: JAX's own error escaped before.
    pytest.importorskip("jax")
    header = {"t": {"dtype": "F6_E2M3", "shape": [4], "data_offsets": [0, 3]}}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    data = len(text).to_bytes(8, "little") + text + b"\0\0\0"
    outcome = run_attack(tmp_path, data, "ss.load_file(path, framework='jax')")
    assert outcome["outcome"] == "refused" and outcome["class"] == "UnsupportedTypeError", outcome
    assert 'tensor "t" of dtype float6_e2m3fn cannot be built as a jax tensor (JaxRuntimeError: ' in outcome["message"], outcome


# --- 13. classes forged through another node kind --------------------------------------------------------------------------

class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Interval:
    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high


@pytest.fixture
def registered() -> Any:
    ss.register(Level, name="t.Level")
    ss.register(Interval, name="t.Interval", to_data=lambda i: [i.low, i.high], from_data=lambda d: Interval(*d))
    yield
    from safestructures import _registry

    for name in ("t.Level", "t.Interval"):
        registration = _registry._BY_NAME.pop(name)
        _registry._BY_TYPE.pop(registration.cls)


@pytest.mark.usefixtures("registered")
@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"$": "object", "type": "t.Level", "base": "int", "value": 999},
         "at $: cannot rebuild a object: TypeError: class 't.Level' is saved as 'enum' nodes; the file names it in 'object' node"),
        ({"$": "object", "type": "t.Level"},
         "at $: cannot rebuild a object: TypeError: class 't.Level' is saved as 'enum' nodes; the file names it in 'object' node"),
        ({"$": "object", "type": "t.Interval", "attrs": {"low": 5, "high": 1}},
         "at $: cannot rebuild a object: TypeError: class 't.Interval' is saved as 'ext' nodes; the file names it in 'object' node"),
        ({"$": "enum", "type": "t.Level", "name": "NONE", "value": [1]},
         "at $: cannot rebuild a enum: ValueError: enum 't.Level' has no member named 'NONE' or of value [1]"),
    ],
    ids=["int-enum-as-object", "enum-without-attrs", "to_data-class-as-object", "enum-value-not-a-member"],
)
def test_case_13_a_registered_class_is_built_only_from_its_own_node_kind(node: dict[str, Any], message: str) -> None:
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load(crafted.file_bytes(node))
    assert str(info.value) == message and info.value.code == "SchemaInvalid"


@pytest.mark.usefixtures("registered")
def test_case_13_registered_classes_still_load_through_their_own_nodes() -> None:
    back = ss.load(ss.save([Level.HIGH, Interval(1, 2), Level(1)]))
    assert back[0] is Level.HIGH and back[2] is Level.LOW
    assert type(back[1]) is Interval and (back[1].low, back[1].high) == (1, 2)
    # A member found by its value when its name is gone (a combined flag's name, a renamed member).
    node = {"$": "enum", "type": "t.Level", "name": "OLD_HIGH", "value": 2}
    assert ss.load(crafted.file_bytes(node)) is Level.HIGH


class Tags(set):
    pass


class Book(collections.OrderedDict):  # type: ignore[type-arg]
    pass


def test_case_13_a_subclass_value_must_have_its_base_type() -> None:
    ss.register(Tags, name="t.Tags")
    ss.register(Book, name="t.Book")
    try:
        key = crafted.doubling("tuple", 40)
        with pytest.raises(ss.InvalidFileError, match="the value of a set subclass must be a set, not list"):
            ss.load(crafted.file_bytes({"$": "object", "type": "t.Tags", "base": "set", "value": [key]}))
        # One OrderedDict handed to many subclass nodes would be rehashed by each.
        shared = {"$": "OrderedDict", "#": 1, "items": [[1, 2]]}
        with pytest.raises(ss.InvalidFileError) as info:
            ss.load(crafted.file_bytes([{"$": "object", "type": "t.Book", "base": "OrderedDict", "value": shared},
                                        {"$": "object", "type": "t.Book", "base": "OrderedDict", "value": crafted.ref(1)}]))
        assert str(info.value) == 'at $[1]: the field "value" of a "object" node describes that node alone and cannot be a "ref"'
        back = ss.load(ss.save([Tags({1, 2}), Book(a=1)]))
        assert type(back[0]) is Tags and back[0] == {1, 2} and type(back[1]) is Book and back[1] == {"a": 1}
    finally:
        from safestructures import _registry

        for name in ("t.Tags", "t.Book"):
            _registry._BY_TYPE.pop(_registry._BY_NAME.pop(name).cls)


def test_case_13_a_view_field_that_is_a_reference_is_refused() -> None:
    shape = {"$": "list", "#": 1, "items": list(range(3))}
    root = [{"$": "tensor", "name": "b", "fw": "numpy"},
            {"$": "tensor", "storage": "b", "offset": 0, "shape": shape, "stride": [0, 0, 0]}]
    with pytest.raises(ss.InvalidFileError, match='a tensor\'s field "shape" must be a JSON scalar or an array of scalars'):
        ss.load(crafted.file_bytes(root, {"b": ("F32", [1], bytes(4))}))
    assert np.array_equal(ss.load(ss.save(np.zeros(3)))[...], np.zeros(3))

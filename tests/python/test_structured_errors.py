"""Errors of the structured API: what cannot be saved, nesting limits, and crafted files that must be refused without
importing or calling anything."""

from __future__ import annotations

import collections
import datetime
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import safestructures
from safestructures import InvalidArgumentError, InvalidFileError, SafestructuresError, UnsupportedTypeError
from conftest import (
    assert_same,
    float_from_bits,
    run_python,
    schema_document,
    structured_file_bytes,
)

try:
    import zoneinfo

    zoneinfo.ZoneInfo("UTC")
    HAVE_ZONEINFO = True
except Exception:
    HAVE_ZONEINFO = False


class Plain:
    pass


class DictSubclass(dict):  # type: ignore[type-arg]
    pass


class ListSubclass(list):  # type: ignore[type-arg]
    pass


class IntSubclass(int):
    pass


class CustomTz(datetime.tzinfo):
    def utcoffset(self, dt: Any) -> datetime.timedelta:
        return datetime.timedelta(hours=1)


def generator() -> Any:
    yield 1


# ---------------------------------------------------------------------------------------------------------------------
# Unsupported objects


@pytest.mark.parametrize(
    ("make", "type_name"),
    [
        (lambda: object(), "builtins.object"),
        (lambda: (lambda: 1), "builtins.function"),
        (lambda: Plain(), f"{__name__}.Plain"),
        (lambda: generator(), "builtins.generator"),
        (lambda: os, "builtins.module"),
        (lambda: memoryview(b"ab"), "builtins.memoryview"),
        (lambda: Plain, "builtins.type"),
        (lambda: NotImplemented, "NotImplementedType"),
        (lambda: iter([1]), "list_iterator"),
    ],
    ids=["object", "lambda", "instance", "generator", "module", "memoryview", "class", "NotImplemented", "iterator"],
)
def test_unsupported_objects_name_their_type_and_path(tmp_path: Path, make: Any, type_name: str) -> None:
    with pytest.raises(UnsupportedTypeError) as info:
        safestructures.save({"a": [0, 1, 2, make()]})
    error = info.value
    assert isinstance(error, TypeError) and isinstance(error, SafestructuresError)
    assert error.code is None
    message = str(error)
    assert message.startswith("cannot save an object of type ")
    assert type_name in message
    assert message.split(" at ", 1)[1].startswith('$["a"][3]')
    target = tmp_path / "t.safetensors"
    with pytest.raises(UnsupportedTypeError) as file_info:
        safestructures.save_file({"a": [0, 1, 2, make()]}, target)
    assert str(file_info.value) == message
    assert not target.exists()


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ([Plain()], "$[0]"),
        ({"k": {"nested": (1, [2, Plain()])}}, '$["k"]["nested"][1][1]'),
        ({'quote"and\nnewline': Plain()}, '$["quote\\"and\\nnewline"]'),
        ({1: {(1, "x"): [Plain()]}}, "$[1][(1, 'x')][0]"),
        ({None: Plain()}, "$[None]"),
        ({"$": Plain()}, '$["$"]'),
        (collections.OrderedDict(a=[Plain()]), '$["a"][0]'),
        (collections.deque([0, Plain()]), "$[1]"),
        (collections.Counter({"c": Plain()}), '$["c"]'),
        (collections.defaultdict(list, {"d": Plain()}), '$["d"]'),
        ((1, Plain()), "$[1]"),
        ({Plain()}, "$[0]"),
        (frozenset({Plain()}), "$[0]"),
        (slice(1, Plain()), "$.stop"),
        ([datetime.datetime(2020, 1, 1, tzinfo=CustomTz())], "$[0].tz"),
        ([datetime.time(1, tzinfo=CustomTz())], "$[0].tz"),
        ({"z": complex(1, 2), "bad": {"x": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, Plain()]}}, '$["bad"]["x"][11]'),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_unsupported_paths(data: Any, path: str) -> None:
    with pytest.raises(UnsupportedTypeError) as info:
        safestructures.save(data)
    message = str(info.value)
    assert message.split(" at ", 1)[1].split(":", 1)[0] == path, message


def test_unsupported_dict_key_is_named_by_its_repr() -> None:
    key = Plain()
    with pytest.raises(UnsupportedTypeError) as info:
        safestructures.save({key: 1})
    assert f"at $[{key!r}]" in str(info.value)


def test_zoneinfo_from_a_file_object_is_refused(tmp_path: Path) -> None:
    if not HAVE_ZONEINFO:
        pytest.skip("no zoneinfo time zone database")
    source = Path(zoneinfo.TZPATH[0]) / "UTC" if zoneinfo.TZPATH else None
    if source is None or not source.exists():
        pytest.skip("no time zone file to read")
    with source.open("rb") as f:
        tz = zoneinfo.ZoneInfo.from_file(f)
    with pytest.raises(UnsupportedTypeError) as info:
        safestructures.save([datetime.datetime(2020, 1, 1, tzinfo=tz)])
    assert "at $[0].tz" in str(info.value) and "no key" in str(info.value)


# ---------------------------------------------------------------------------------------------------------------------
# Nesting limits


def nested_lists(depth: int) -> list[Any]:
    """``depth`` levels of lists: [[...[]...]]."""
    x: list[Any] = []
    for _ in range(depth - 1):
        x = [x]
    return x


def list_depth(x: Any) -> int:
    depth = 0
    while type(x) is list:
        depth += 1
        x = x[0] if x else None
    return depth


@pytest.mark.parametrize("route", ["bytes", "file"])
def test_a_thousand_levels_save_and_load(tmp_path: Path, route: str) -> None:
    data = nested_lists(1000)
    if route == "bytes":
        loaded = safestructures.load(safestructures.save(data))
    else:
        safestructures.save_file(data, tmp_path / "deep.safetensors")
        loaded = safestructures.load_file(tmp_path / "deep.safetensors")
    assert list_depth(loaded) == 1000


@pytest.mark.parametrize(
    "make",
    [
        nested_lists,
        lambda n: _wrap(n, lambda x: {"k": x}, {}),
        lambda n: _wrap(n, lambda x: {1: x}, {}),
        lambda n: _wrap(n, lambda x: (x, 1), (0,)),
        lambda n: _wrap(n, lambda x: collections.OrderedDict(k=x), collections.OrderedDict()),
        lambda n: _wrap(n, lambda x: collections.deque([x]), collections.deque()),
        lambda n: _wrap(n, lambda x: frozenset({x}), frozenset({0})),
        lambda n: _alternate(n),
    ],
    ids=["list", "dict", "dict-pairs", "tuple", "OrderedDict", "deque", "frozenset", "mixed"],
)
def test_one_level_too_deep_is_refused_on_save(tmp_path: Path, make: Any) -> None:
    assert safestructures.load(safestructures.save(make(1000))) is not None
    with pytest.raises(InvalidArgumentError) as info:
        safestructures.save(make(1001), max_depth=1000)
    assert info.value.code == "NestingTooDeep"
    assert "limit of 1000 levels" in str(info.value)
    assert " at $[" in str(info.value)
    target = tmp_path / "deep.safetensors"
    with pytest.raises(InvalidArgumentError) as file_info:
        safestructures.save_file(make(1001), target)
    assert file_info.value.code == "NestingTooDeep"
    assert not target.exists()


def _alternate(depth: int) -> Any:
    """Lists and dicts in turn, ``depth`` levels."""
    x: Any = []
    for level in range(depth - 1):
        x = [x] if level % 2 else {"k": x}
    return x


def _wrap(depth: int, wrap: Any, innermost: Any) -> Any:
    x = innermost
    for _ in range(depth - 1):
        x = wrap(x)
    return x


def test_max_depth_is_configurable_on_save() -> None:
    safestructures.save(nested_lists(10), max_depth=10)
    with pytest.raises(InvalidArgumentError) as info:
        safestructures.save(nested_lists(11), max_depth=10)
    assert info.value.code == "NestingTooDeep" and "limit of 10 levels" in str(info.value)
    assert list_depth(safestructures.load(safestructures.save(nested_lists(1500), max_depth=1500), max_depth=1500)) == 1500


def test_file_saved_with_a_high_limit_is_refused_with_the_default(tmp_path: Path) -> None:
    path = tmp_path / "deep.safetensors"
    safestructures.save_file(nested_lists(5000), path, max_depth=5000)
    with pytest.raises(InvalidFileError) as info:
        safestructures.load_file(path)
    assert info.value.code == "NestingTooDeep"
    assert str(path) in str(info.value)
    with pytest.raises(InvalidFileError) as bytes_info:
        safestructures.load(path.read_bytes())
    assert bytes_info.value.code == "NestingTooDeep"
    assert list_depth(safestructures.load_file(path, max_depth=5000)) == 5000


def test_max_depth_is_configurable_on_load() -> None:
    payload = safestructures.save(nested_lists(100))
    with pytest.raises(InvalidFileError) as info:
        safestructures.load(payload, max_depth=10)
    assert info.value.code == "NestingTooDeep"
    assert list_depth(safestructures.load(payload, max_depth=100)) == 100


def test_load_limit_matches_the_save_limit() -> None:
    payload = safestructures.save(nested_lists(1001), max_depth=2000)
    with pytest.raises(InvalidFileError) as info:
        safestructures.load(payload, max_depth=1000)
    assert info.value.code == "NestingTooDeep"
    assert "limit of 1000 levels" in str(info.value)
    assert list_depth(safestructures.load(payload, max_depth=1001)) == 1001
    pairs = safestructures.save(_wrap(1001, lambda x: {1: x}, {}), max_depth=1001)
    with pytest.raises(InvalidFileError):
        safestructures.load(pairs, max_depth=1000)
    assert safestructures.load(pairs, max_depth=1001) is not None


def test_empty_innermost_tuple_counts_as_a_level() -> None:
    with pytest.raises(InvalidArgumentError):
        safestructures.save(_wrap(1001, lambda x: (x,), ()), max_depth=1000)


def test_nested_slices_respect_max_depth() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        # 1001 slices around None: one level more than the limit.
        safestructures.save(_wrap(1002, lambda x: slice(x), None), max_depth=1000)
    assert info.value.code == "NestingTooDeep"


def test_what_saves_within_the_limit_loads_within_it() -> None:
    aware = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    data = _wrap(1000, lambda x: [x], aware)  # 999 lists, then the datetime
    try:
        payload = safestructures.save(data)
    except InvalidArgumentError:
        return  # refusing at save time is fine too
    assert_same(safestructures.load(payload), data)


def test_max_nodes_and_max_header_size_on_load() -> None:
    payload = safestructures.save(list(range(100)))
    with pytest.raises(InvalidFileError) as info:
        safestructures.load(payload, max_nodes=50)
    assert info.value.code == "TooManyNodes"
    with pytest.raises(InvalidFileError) as header_info:
        safestructures.load(payload, max_header_size=50)
    assert header_info.value.code == "HeaderTooLarge"
    assert safestructures.load(payload, max_nodes=1000) == list(range(100))


DEEP_SCRIPT = """
    import json, struct, sys
    import safestructures
    kind, depth = sys.argv[1], int(sys.argv[2])
    max_depth = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    try:
        if kind == "save-list":
            x = []
            for _ in range(depth):
                x = [x]
            safestructures.save(x, max_depth=max_depth)
        elif kind == "save-slice":
            x = None
            for _ in range(depth):
                x = slice(x)
            safestructures.save(x, max_depth=max_depth)
        elif kind == "load":
            doc = '{"format":"safestructures","version":2,"root":' + "[" * depth + "]" * depth + "}"
            header = json.dumps({"__metadata__": {"__safestructures__": doc}}).encode()
            safestructures.load(struct.pack("<Q", len(header)) + header, max_depth=max_depth)
        print("OK")
    except safestructures.SafestructuresError as e:
        print("ERROR", type(e).__name__, e.code)
"""


def run_deep(*args: str) -> subprocess.CompletedProcess[str]:
    return run_python(DEEP_SCRIPT, *args)


def test_hundred_thousand_levels_are_refused_cleanly_on_save() -> None:
    result = run_deep("save-list", "100000")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ERROR InvalidArgumentError NestingTooDeep"


def test_hundred_thousand_levels_are_refused_cleanly_on_load() -> None:
    result = run_deep("load", "100000")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ERROR InvalidFileError NestingTooDeep"


def test_hundred_thousand_nested_slices_do_not_crash() -> None:
    result = run_deep("save-slice", "100000")
    assert result.returncode == 0, (result.returncode, result.stderr[-500:])
    assert result.stdout.strip() == "ERROR InvalidArgumentError NestingTooDeep"


@pytest.mark.parametrize("kind", ["save-list", "load"])
def test_raised_max_depth_does_not_crash(kind: str) -> None:
    result = run_deep(kind, "100000", "1000000")
    assert result.returncode == 0, (result.returncode, result.stderr[-500:])


# ---------------------------------------------------------------------------------------------------------------------
# Crafted files


def ref(n: Any) -> dict[str, Any]:
    return {"$": "ref", "#": n}


U8_TENSOR = {"t": ("U8", [8], bytes(8))}

CRAFTED: list[tuple[str, Any, Any, str, str]] = [
    # (id, schema root or raw document text, tensors, code, message fragment)
    ("unknown-tag", {"$": "nope"}, None, "SchemaInvalid", 'unknown tag "nope"'),
    ("unknown-tag-dotted", [1, {"$": "os.system", "args": ["echo hi"]}], None, "SchemaInvalid", 'at $[1]: unknown tag "os.system"'),
    ("tag-not-a-string", {"$": 1}, None, "SchemaInvalid", '"$" must be the first key'),
    ("ref-undefined", [1, ref(5)], None, "SchemaInvalid", "at $[1]: ref to #5, which is not defined"),
    ("ref-to-itself", ref(1), None, "SchemaInvalid", "ref to #1, which is not defined"),
    ("ref-zero", [ref(0)], None, "SchemaInvalid", "ref to #0"),
    ("ref-negative", [ref(-1)], None, "SchemaInvalid", "ref to #-1"),
    ("ref-huge", [ref(2**62)], None, "SchemaInvalid", "which is not defined"),
    ("ref-not-int", [ref("1")], None, "SchemaInvalid", 'a ref needs an integer "#"'),
    ("ref-into-own-tuple", {"$": "tuple", "#": 1, "items": [ref(1)]}, None, "SchemaInvalid", "at $[0]: ref to #1"),
    ("ref-into-own-set", {"$": "set", "#": 1, "items": [ref(1)]}, None, "SchemaInvalid", "at $[0]: ref to #1"),
    ("ref-into-own-field", {"$": "complex", "#": 1, "re": ref(1), "im": 0.0}, None, "SchemaInvalid", "at $.re: ref to #1"),
    ("ref-forward", [ref(1), {"$": "list", "#": 1, "items": []}], None, "SchemaInvalid", "at $[0]: ref to #1"),
    ("id-defined-twice", [{"$": "list", "#": 1, "items": []}, {"$": "list", "#": 1, "items": []}], None, "SchemaInvalid", "#1 is defined twice"),
    ("id-out-of-range", {"$": "list", "#": 10**6, "items": []}, None, "SchemaInvalid", 'reference id "#" must be an integer'),
    ("tensor-missing", {"w": {"$": "tensor", "name": "nope", "fw": "numpy"}}, None, "TensorNotFound", 'at $["w"]: the schema refers to tensor "nope"'),
    ("tensor-without-name", {"$": "tensor", "fw": "numpy"}, U8_TENSOR, "SchemaInvalid", 'needs a string field "name"'),
    ("bytes-tensor-missing", [{"$": "bytes", "tensor": "gone"}], None, "TensorNotFound", 'tensor "gone"'),
    ("bytes-tensor-not-u8", {"$": "bytes", "tensor": "t"}, {"t": ("I16", [4], bytes(8))}, "TensorMismatch", "must be a 1-D U8 tensor"),
    ("version-1", schema_document(1, version=1), None, "SchemaVersion", "format version 1"),
    ("version-3", schema_document(1, version=3), None, "SchemaVersion", "format version 3"),
    ("version-string", schema_document(1, version="2"), None, "SchemaInvalid", 'integer "version"'),
    ("wrong-format", schema_document(1, fmt="other"), None, "SchemaInvalid", '"format": "safestructures"'),
    ("no-root", '{"format":"safestructures","version":2}', None, "SchemaInvalid", 'lacks "root"'),
    ("document-not-object", "[1, 2]", None, "SchemaInvalid", "not a JSON object"),
    ("not-json", "{not json", None, "SchemaNotJson", "not valid JSON"),
    ("empty-schema", "", None, "SchemaNotJson", "not valid JSON"),
    ("truncated-json", schema_document([1, 2])[:-3], None, "SchemaNotJson", "not valid JSON"),
    ("unhashable-list-key", {"$": "dict", "items": [[[1, 2], "v"]]}, None, "SchemaInvalid", "at $[0]: cannot use this key: unhashable type: 'list'"),
    ("unhashable-dict-key", {"$": "dict", "items": [["ok", 1], [{"a": 1}, "v"]]}, None, "SchemaInvalid", "at $[1]: cannot use this key"),
    ("unhashable-set-key", {"$": "OrderedDict", "items": [[{"$": "set", "items": []}, 1]]}, None, "SchemaInvalid", "unhashable type: 'set'"),
    ("unhashable-in-set", {"$": "set", "items": [[1]]}, None, "SchemaInvalid", "cannot build a set: unhashable type: 'list'"),
    ("unhashable-in-frozenset", {"$": "frozenset", "items": [{}]}, None, "SchemaInvalid", "cannot build a frozenset"),
    ("pair-not-a-pair", {"$": "dict", "items": [[1, 2, 3]]}, None, "SchemaInvalid", "[key, value] pair"),
    # A value in pair form is named by its key (a string or an int), as the lazy API names it, not by the pair's position.
    ("pair-value-by-str-key", {"$": "OrderedDict", "items": [["a", 1], ["w", {"$": "nope"}]]}, None, "SchemaInvalid",
     'at $["w"]: unknown tag "nope"'),
    ("pair-value-by-int-key", {"$": "dict", "items": [[7, [1, {"$": "nope"}]]]}, None, "SchemaInvalid",
     'at $[7][1]: unknown tag "nope"'),
    ("items-missing", {"$": "list"}, None, "SchemaInvalid", 'needs an array field "items"'),
    ("factory-os-system", {"$": "defaultdict", "factory": "os.system", "items": []}, None, "SchemaInvalid", 'unknown defaultdict factory "os.system"'),
    ("factory-eval", {"$": "defaultdict", "factory": "eval", "items": []}, None, "SchemaInvalid", 'unknown defaultdict factory "eval"'),
    ("factory-import", {"$": "defaultdict", "factory": "__import__", "items": []}, None, "SchemaInvalid", "only built-in types are allowed"),
    ("factory-not-string", {"$": "defaultdict", "factory": ["os", "system"], "items": []}, None, "SchemaInvalid", '"factory" must be a string or null'),
    ("factory-missing", {"$": "defaultdict", "items": []}, None, "SchemaInvalid", 'needs a "factory" field'),
    ("npscalar-object", {"$": "npscalar", "dtype": "O", "v": 1}, None, "SchemaInvalid", "is not one that safestructures stores"),
    ("npscalar-object-raw", {"$": "npscalar", "dtype": "|O", "raw": {"$": "bytes", "b64": "AAAAAAAAAAA="}}, None, "SchemaInvalid", "is not one that safestructures stores"),
    ("npscalar-void", {"$": "npscalar", "dtype": "V8", "raw": {"$": "bytes", "b64": "AAAAAAAAAAA="}}, None, "SchemaInvalid", "is not one that safestructures stores"),
    ("npscalar-record", {"$": "npscalar", "dtype": "[('a','O')]", "raw": {"$": "bytes", "b64": "AAAAAAAAAAA="}}, None, "SchemaInvalid", "is not one that safestructures stores"),
    ("npscalar-dtype-int", {"$": "npscalar", "dtype": 5, "v": 1}, None, "SchemaInvalid", "a dtype must be named by a string"),
    ("npscalar-raw-size", {"$": "npscalar", "dtype": "<f8", "raw": {"$": "bytes", "b64": "AAAA"}}, None, "SchemaInvalid", "field 'raw' must be 8 bytes"),
    ("tensor-dtype-object", {"$": "tensor", "name": "t", "fw": "numpy", "dtype": "O", "shape": [1]}, U8_TENSOR, "SchemaInvalid", "is not one that safestructures stores"),
    ("tensor-dtype-object-8", {"$": "tensor", "name": "t", "fw": "numpy", "dtype": "|O8", "shape": [1]}, U8_TENSOR, "SchemaInvalid", "is not one that safestructures stores"),
    ("tensor-dtype-void", {"$": "tensor", "name": "t", "fw": "numpy", "dtype": "V8", "shape": [1]}, U8_TENSOR, "SchemaInvalid", "is not one that safestructures stores"),
    ("tensor-dtype-record", {"$": "tensor", "name": "t", "fw": "numpy", "dtype": "[('a','<i8')]", "shape": [1]}, U8_TENSOR, "SchemaInvalid", "is not one that safestructures stores"),
    ("tensor-dtype-subarray", {"$": "tensor", "name": "t", "fw": "numpy", "dtype": "(2,)<i4", "shape": [1]}, U8_TENSOR, "SchemaInvalid", "is not one that safestructures stores"),
    ("tensor-shape-mismatch", {"$": "tensor", "name": "t", "fw": "numpy", "dtype": "<i4", "shape": [3]}, U8_TENSOR, "SchemaInvalid", "needs 12 bytes, the tensor holds 8"),
    ("tensor-bad-shape", {"$": "tensor", "name": "t", "fw": "numpy", "dtype": "<i4", "shape": [-2]}, U8_TENSOR, "SchemaInvalid", "non-negative ints"),
    ("tensor-dtype-mismatch", {"$": "tensor", "name": "t", "fw": "numpy", "dtype": ">f8"}, {"t": ("I64", [1], bytes(8))}, "SchemaInvalid", "does not match the stored dtype I64"),
    ("bad-base64-chars", {"$": "bytes", "b64": "!!!!"}, None, "SchemaInvalid", '"b64" is not valid base64'),
    ("bad-base64-length", {"$": "bytes", "b64": "YWI"}, None, "SchemaInvalid", '"b64" is not valid base64'),
    ("bad-base64-padding", {"$": "bytearray", "b64": "YW==YWJj"}, None, "SchemaInvalid", '"b64" is not valid base64'),
    ("bad-base64-not-string", {"$": "bytes", "b64": 5}, None, "SchemaInvalid", '"b64" is not valid base64'),
    ("dollar-not-first", '{"format":"safestructures","version":2,"root":{"a":1,"$":"list","items":[]}}', None, "SchemaInvalid", '"$" must be the first key'),
    ("dollar-not-first-nested", '{"format":"safestructures","version":2,"root":[{"k":{"x":0,"$":"ref","#":1}}]}', None, "SchemaInvalid", 'at $[0]["k"]: "$" must be the first key'),
    ("duplicate-key", '{"format":"safestructures","version":2,"root":{"a":1,"a":2}}', None, "DuplicateKey", 'the schema\'s JSON object at $["root"] holds the key "a" twice'),
    ("int-bad-hex", {"$": "int", "hex": "12"}, None, "SchemaInvalid", 'an int\'s "hex" must look like 0x1f'),
    ("int-hex-junk", {"$": "int", "hex": "0x1g"}, None, "SchemaInvalid", 'an int\'s "hex" must look like 0x1f'),
    ("float-not-special", {"$": "float", "v": "1.5"}, None, "SchemaInvalid", "must be nan, inf or -inf"),
    ("float-bits-not-nan", {"$": "float", "v": "nan", "bits": "0000000000000000"}, None, "SchemaInvalid", "16 hex digits of a NaN"),
    ("code-point-too-large", {"$": "str", "cp": [0x110000]}, None, "SchemaInvalid", "code points must be integers"),
    ("code-point-negative", {"$": "str", "cp": [-1]}, None, "SchemaInvalid", "code points must be integers"),
    ("deque-negative-maxlen", {"$": "deque", "maxlen": -1, "items": []}, None, "SchemaInvalid", '"maxlen" must be a non-negative integer'),
    ("complex-int-part", {"$": "complex", "re": 1, "im": 2.0}, None, "SchemaInvalid", "field 're' must be a float"),
    ("range-missing-field", {"$": "range", "start": 1}, None, "SchemaInvalid", "cannot rebuild a range: KeyError"),
    ("path-kind-unknown", {"$": "path", "kind": "os.system", "v": "x"}, None, "SchemaInvalid", "unknown path kind 'os.system'"),
    ("datetime-bad-iso", {"$": "datetime", "iso": "yesterday"}, None, "SchemaInvalid", "cannot rebuild a datetime"),
    ("datetime-bad-tz", {"$": "datetime", "iso": "2020-01-01T00:00:00", "tz": "Europe/Paris"}, None, "SchemaInvalid", "field 'tz' must be a time zone"),
    ("timezone-bad-offset", {"$": "timezone", "offset": 3600}, None, "SchemaInvalid", "field 'offset' must be a timedelta"),
    ("timedelta-overflow", {"$": "timedelta", "days": 10**12, "seconds": 0, "microseconds": 0}, None, "SchemaInvalid", "cannot rebuild a timedelta"),
    ("decimal-bad", {"$": "Decimal", "v": "twelve"}, None, "SchemaInvalid", "cannot rebuild a Decimal"),
    ("fraction-zero-denominator", {"$": "Fraction", "n": 1, "d": 0}, None, "SchemaInvalid", "cannot rebuild a Fraction"),
    ("uuid-bad", {"$": "UUID", "hex": "xyz"}, None, "SchemaInvalid", "cannot rebuild a UUID"),
    ("zoneinfo-path-escape", {"$": "ZoneInfo", "key": "../../../../etc/passwd"}, None, "SchemaInvalid", "cannot rebuild a ZoneInfo"),
    ("zoneinfo-absolute", {"$": "ZoneInfo", "key": "/etc/passwd"}, None, "SchemaInvalid", "cannot rebuild a ZoneInfo"),
    ("spill-missing", '{"format":"safestructures","version":2,"spill":"gone"}', None, "TensorNotFound", 'spilled into tensor "gone"'),
    ("spill-not-u8", '{"format":"safestructures","version":2,"spill":"t"}', {"t": ("I16", [4], bytes(8))}, "TensorMismatch", "must be a 1-D U8 tensor"),
    ("spill-not-utf8", '{"format":"safestructures","version":2,"spill":"t"}', {"t": ("U8", [2], b"\xff\xfe")}, "SchemaNotJson", "not valid UTF-8"),
    ("spill-not-json", '{"format":"safestructures","version":2,"spill":"t"}', {"t": ("U8", [2], b"{]")}, "SchemaNotJson", "not valid JSON"),
    ("spill-version", '{"format":"safestructures","version":3,"spill":"t"}', {"t": ("U8", [2], b"{}")}, "SchemaVersion", "format version 3"),
    ("spill-name-not-string", '{"format":"safestructures","version":2,"spill":5}', None, "SchemaInvalid", '"spill" must name a tensor'),
]


def crafted_bytes(schema: Any, tensors: Any) -> bytes:
    return structured_file_bytes(schema, tensors)


@pytest.mark.parametrize(("schema", "tensors", "code", "fragment"), [c[1:] for c in CRAFTED], ids=[c[0] for c in CRAFTED])
def test_crafted_files_are_refused(tmp_path: Path, schema: Any, tensors: Any, code: str, fragment: str) -> None:
    warm_up()
    modules = set(sys.modules)
    payload = crafted_bytes(schema, tensors)
    with pytest.raises(InvalidFileError) as info:
        safestructures.load(payload)
    assert info.value.code == code, str(info.value)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)
    path = tmp_path / "crafted.safetensors"
    path.write_bytes(payload)
    with pytest.raises(InvalidFileError) as file_info:
        safestructures.load_file(path)
    assert file_info.value.code == code
    assert str(file_info.value).startswith(str(path))
    assert fragment in str(file_info.value)
    assert set(sys.modules) - modules == set()  # refusing a file imports nothing


def test_crafted_spill_with_a_valid_schema_loads() -> None:
    document = schema_document({"a": [1, 2]}).encode()
    payload = structured_file_bytes('{"format":"safestructures","version":2,"spill":"t"}', {"t": ("U8", [len(document)], document)})
    assert safestructures.load(payload) == {"a": [1, 2]}


def test_valid_crafted_file_loads() -> None:
    # The crafted-file helper itself builds files that load when the schema is right.
    root = {
        "w": {"$": "tensor", "name": "t", "fw": "numpy"},
        "wide": {"$": "tensor", "name": "t2", "fw": "numpy", "dtype": "<i4", "shape": [2]},
        "t": {"$": "tuple", "#": 1, "items": [1, {"$": "int", "hex": "-0x10000000000000000"}]},
        "again": ref(1),
        "s": {"$": "str", "cp": [0xD800, 65]},
        "nan": {"$": "float", "v": "nan", "bits": "fff8000000000001"},
    }
    loaded = safestructures.load(structured_file_bytes(root, {"t": ("U8", [8], bytes(range(8))), "t2": ("U8", [8], bytes(range(8)))}))
    assert loaded["w"].dtype == np.uint8 and loaded["w"].tolist() == list(range(8))
    assert loaded["wide"].dtype.str == "<i4" and loaded["wide"].tobytes() == bytes(range(8))
    assert loaded["t"] == (1, -(2**64)) and loaded["again"] is loaded["t"]
    assert loaded["s"] == "\ud800A"
    assert_same(loaded["nan"], float_from_bits(0xFFF8000000000001))


# ---------------------------------------------------------------------------------------------------------------------
# Loading never imports or calls anything a file names


MALICIOUS: list[tuple[str, Any, Any]] = [
    ("tag-os-system", {"$": "os.system", "command": "echo pwned"}, None),
    ("tag-builtins-eval", [{"$": "builtins.eval", "source": "1+1"}], None),
    ("tag-import", {"$": "__import__", "name": "antigravity"}, None),
    ("tag-pickle", {"$": "pickle", "data": "gASVAAAAAAAAAAA="}, None),
    ("tag-subprocess", {"$": "subprocess.Popen", "args": ["true"]}, None),
    ("tag-in-field", {"$": "datetime", "iso": "2020-01-01T00:00:00", "tz": {"$": "os.system", "c": "x"}}, None),
    ("factory-os-system", {"$": "defaultdict", "factory": "os.system", "items": []}, None),
    ("factory-posix-system", {"$": "defaultdict", "factory": "posix.system", "items": []}, None),
    ("factory-exec", {"$": "defaultdict", "factory": "exec", "items": [["k", 1]]}, None),
    ("path-kind-module", {"$": "path", "kind": "antigravity", "v": "x"}, None),
    ("npscalar-object", {"$": "npscalar", "dtype": "O", "v": "__import__('os').system('x')"}, None),
    ("npscalar-dtype-module", {"$": "npscalar", "dtype": "antigravity.thing", "v": 1}, None),
    ("tensor-object", {"$": "tensor", "name": "t", "fw": "numpy", "dtype": "O", "shape": [1]}, U8_TENSOR),
    ("tensor-framework-module", {"$": "tensor", "name": "t", "fw": "os", "dtype": "torch.float32"}, U8_TENSOR),
    ("zoneinfo-module", {"$": "ZoneInfo", "key": "../antigravity"}, None),
]


def warm_up() -> None:
    """Loads a file using every tag once, so that the library's own lazy imports are done before measuring."""
    data: Any = [
        np.float32(1),
        np.zeros(2, np.complex128),
        np.arange(2, dtype=">i4"),
        datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc),
        collections.defaultdict(list),
        collections.OrderedDict(),
        collections.Counter(),
        collections.deque(),
        __import__("decimal").Decimal(1),
        __import__("fractions").Fraction(1),
        __import__("uuid").UUID(int=1),
        __import__("pathlib").PurePosixPath("/"),
        range(1),
        slice(1),
        ...,
        complex(1),
    ]
    if HAVE_ZONEINFO:
        data.append(zoneinfo.ZoneInfo("UTC"))
    assert_same(safestructures.load(safestructures.save(data)), data)


@pytest.mark.parametrize(("schema", "tensors"), [c[1:] for c in MALICIOUS], ids=[c[0] for c in MALICIOUS])
def test_loading_imports_and_calls_nothing(tmp_path: Path, call_recorders: list[str], schema: Any, tensors: Any) -> None:
    warm_up()
    payload = crafted_bytes(schema, tensors)
    path = tmp_path / "malicious.safetensors"
    path.write_bytes(payload)
    audit: list[str] = []
    before = set(sys.modules)
    _AUDIT.append(audit)
    try:
        for load in (lambda: safestructures.load(payload), lambda: safestructures.load_file(path)):
            try:
                result = load()
            except InvalidFileError:
                continue
            # Only the harmless interpretations may load: a tensor whose framework field is ignored.
            assert isinstance(result, np.ndarray), result
    finally:
        _AUDIT.remove(audit)
    assert set(sys.modules) - before == set()
    assert call_recorders == []
    assert audit == []
    assert "antigravity" not in sys.modules


_AUDIT: list[list[str]] = []
_WATCHED = {"import", "exec", "compile", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen", "ctypes.dlopen", "pickle.find_class", "marshal.loads"}


def _audit_hook(event: str, args: Any) -> None:
    if _AUDIT and event in _WATCHED:
        for sink in _AUDIT:
            sink.append(event)


sys.addaudithook(_audit_hook)


def test_audit_hook_sees_imports() -> None:
    # Guards the test above: the hook does record a real import.
    audit: list[str] = []
    _AUDIT.append(audit)
    try:
        sys.modules.pop("this_module_does_not_exist", None)
        with pytest.raises(ImportError):
            __import__("this_module_does_not_exist")
    finally:
        _AUDIT.remove(audit)
    assert "import" in audit


def test_loading_in_a_fresh_process_imports_nothing_new(tmp_path: Path) -> None:
    # Once numpy, ml_dtypes and the adapter are loaded, loading a file (every tag, and a malicious one) imports nothing.
    good = tmp_path / "good.safetensors"
    safestructures.save_file({"a": [1, (2, {3})], "w": np.zeros(2), "s": np.float32(1), "c": collections.Counter("a")}, good)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(structured_file_bytes({"$": "defaultdict", "factory": "os.system", "items": []}))
    result = run_python(
        f"""
        import sys
        import numpy, ml_dtypes
        import safestructures
        import safestructures.frameworks.numpy
        before = set(sys.modules)
        safestructures.load_file({str(good)!r})
        try:
            safestructures.load_file({str(bad)!r})
        except safestructures.InvalidFileError as e:
            assert e.code == "SchemaInvalid", e
        else:
            raise AssertionError("loaded")
        new = sorted(set(sys.modules) - before)
        assert new == [], new
        print("OK")
        """
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert result.stdout.strip() == "OK"

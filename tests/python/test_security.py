"""The safety model for user types: a file can name any class it likes, in every place a class name can appear, and
loading it never imports a module, never calls anything it names and never resolves a name outside the classes the
caller registered or passed. Unknown names give generic records (or UnknownTypeError with ``strict=True``); malformed
user-type nodes give InvalidFileError with the path, never another exception."""

from __future__ import annotations

import collections
import dataclasses
import enum
import json
import sys
from pathlib import Path
from typing import Any

import pytest

import safestructures as ss
from safestructures import DataProcessor, InvalidFileError, NamedRecord, Record, UnknownTypeError
from conftest import run_python, structured_file_bytes

pytestmark = pytest.mark.usefixtures("clean_registry")

#: Names a malicious file would like a loader to import or call.
DANGEROUS_NAMES = [
    "os.system",
    "subprocess.Popen",
    "builtins.eval",
    "builtins.exec",
    "builtins.__import__",
    "importlib.import_module",
    "posix.system",
    "pickle.loads",
    "antigravity.fly",  # a module not imported yet: importing it would open a web browser
    "this.x",  # importing it prints the Zen of Python
    "ctypes.CDLL",
    "safestructures._registry.register",  # the library's own functions are not reachable either
    "os",
    "",
]


def stand_in_checks(name: str) -> dict[str, tuple[Any, Any]]:
    """Each place a class name can appear: (the node naming ``name`` there, a check of what a non-strict load gives,
    or the exception class it raises)."""

    def record(fields: dict[str, Any]) -> Any:
        def check(value: Any) -> None:
            assert type(value) is Record and value.type_name == name and value.asdict() == fields

        return check

    def generic(base: type, content: Any, attrs: dict[str, Any]) -> Any:
        def check(value: Any) -> None:
            assert isinstance(value, base) and type(value) is not base and type(value).__module__ == "safestructures._records"
            assert value.type_name == name and value == content
            for key, item in attrs.items():
                assert getattr(value, key) == item

        return check

    def named_record(value: Any) -> None:
        assert type(value) is NamedRecord and value.type_name == name and value == ("echo pwned",) and value.cmd == "echo pwned"

    def raw(expected: Any) -> Any:
        def check(value: Any) -> None:
            assert type(value) is type(expected) and value == expected

        return check

    return {
        "dataclass": ({"$": "dataclass", "type": name, "fields": {"command": "echo pwned"}}, record({"command": "echo pwned"})),
        "dataclass-with-base": (
            {"$": "dataclass", "type": name, "fields": {"shell": True}, "base": "OrderedDict", "value": {"$": "OrderedDict", "items": [["k", "v"]]}},
            generic(collections.OrderedDict, {"k": "v"}, {"shell": True}),
        ),
        "namedtuple": ({"$": "namedtuple", "type": name, "fields": ["cmd"], "items": ["echo pwned"]}, named_record),
        "enum": ({"$": "enum", "type": name, "name": "SYSTEM", "value": "echo pwned"}, raw("echo pwned")),
        "object-dict": (
            {"$": "object", "type": name, "base": "dict", "value": {"args": ["true"]}, "attrs": {"shell": True}},
            generic(dict, {"args": ["true"]}, {"shell": True}),
        ),
        "object-str": ({"$": "object", "type": name, "base": "str", "value": "rm -rf /"}, generic(str, "rm -rf /", {})),
        "object-tuple": ({"$": "object", "type": name, "base": "tuple", "value": {"$": "tuple", "items": ["x"]}}, generic(tuple, ("x",), {})),
        "object": ({"$": "object", "type": name, "attrs": {"cmd": "echo pwned"}}, record({"cmd": "echo pwned"})),
        "ext": ({"$": "ext", "type": name, "data": ["echo", "pwned"]}, record({"data": ["echo", "pwned"]})),
        "plugin": ({"$": "plugin", "type": name, "value": "echo pwned", "extra": {"shell": "yes"}}, record({"value": "echo pwned", "shell": "yes"})),
        "object-base-named": ({"$": "object", "type": "harmless.Name", "base": name, "value": {}}, InvalidFileError),
        "defaultdict-factory": ({"$": "defaultdict", "factory": name, "items": [["k", 1]]}, InvalidFileError),
    }


PLACES = list(stand_in_checks("x"))


@pytest.fixture(scope="module", autouse=True)
def _warm_up() -> None:
    """One load of every place, one of each error, before any recorder is installed: the library's own lazy imports
    (its framework adapters, its error classes) happen here, not in the middle of a test that forbids imports."""
    ss.load(structured_file_bytes([stand_in_checks("warm.Up")[place][0] for place in PLACES[:-2]]), plugins=[HarmlessPlugin])
    for strict in (False, True):
        for node in (stand_in_checks("warm.Up")["dataclass"][0], stand_in_checks("warm.Up")["defaultdict-factory"][0]):
            try:
                ss.load(structured_file_bytes(node), strict=strict)
            except ss.SafestructuresError:
                pass


class HarmlessPlugin(DataProcessor):
    """A plugin handed to the load: its presence must not make other names resolvable."""

    data_type = complex

    def serialize(self, data: Any) -> Any:
        return [data.real, data.imag]

    def deserialize(self, serialized: Any, **kwargs: Any) -> Any:
        raise AssertionError("the harmless plugin was called")


@pytest.mark.parametrize("name", DANGEROUS_NAMES)
@pytest.mark.parametrize("place", PLACES)
def test_a_dangerous_name_is_never_imported_or_called(
    tmp_path: Path, call_recorders: list[str], place: str, name: str
) -> None:
    node, expected = stand_in_checks(name)[place]
    payload = structured_file_bytes({"a": {"b": node}})
    path = tmp_path / "crafted.safestructures"
    path.write_bytes(payload)
    modules = set(sys.modules)
    loads = [
        lambda **options: ss.load(payload, **options),
        lambda **options: ss.load_file(path, plugins=[HarmlessPlugin], **options),
    ]
    for load in loads:
        if isinstance(expected, type):
            with pytest.raises(expected, match=r'(^|\.safestructures: )at \$\["a"\]\["b"\]: '):
                load()
        else:
            expected(load()["a"]["b"])
        # strict=True: the unknown class is refused (for "object-base-named", "harmless.Name" is, checked first).
        strict_error = InvalidFileError if place == "defaultdict-factory" else UnknownTypeError
        with pytest.raises(strict_error) as info:
            load(strict=True)
        assert 'at $["a"]["b"]: ' in str(info.value)
        if place == "defaultdict-factory":
            assert json.dumps(name) in str(info.value)
        elif place != "object-base-named":
            assert repr(name) in str(info.value)
    assert set(sys.modules) - modules == set()
    assert "antigravity" not in sys.modules and "this" not in sys.modules
    assert call_recorders == []


def test_registering_or_passing_a_class_does_not_widen_what_resolves() -> None:
    # A file naming "os.system" resolves neither through the registry nor through types= of unrelated classes.
    @dataclasses.dataclass
    class Harmless:
        a: int

    ss.register(Harmless, name="project.Harmless")
    payload = structured_file_bytes([
        {"$": "dataclass", "type": "os.system", "fields": {}},
        {"$": "dataclass", "type": "project.Harmless", "fields": {"a": 1}},
    ])
    loaded = ss.load(payload, types=[Record, NamedRecord, dict, Harmless])
    assert type(loaded[0]) is Record and type(loaded[1]) is Harmless
    with pytest.raises(UnknownTypeError, match=r"^at \$\[0\]: .*'os\.system'"):
        ss.load(payload, types=[Harmless], strict=True)


def test_the_library_s_own_classes_are_not_reachable_by_name() -> None:
    for name in ["safestructures._records.Record", "safestructures._records.NamedRecord", "safestructures.plugins.Nested",
                 "safestructures._records.GenericDict", "collections.OrderedDict", "builtins.dict", "dict"]:
        loaded = ss.load(structured_file_bytes({"$": "object", "type": name, "attrs": {"x": 1}}))
        assert type(loaded) is Record and loaded.type_name == name


def test_loading_in_a_fresh_process_imports_executes_and_calls_nothing(tmp_path: Path) -> None:
    """An audit hook in a fresh interpreter sees no import, exec, compile, os.system, subprocess.Popen (or similar)
    event while every crafted file is loaded, strict or not."""
    files = []
    for place in PLACES:
        for name in DANGEROUS_NAMES:
            path = tmp_path / f"{len(files)}.safestructures"
            path.write_bytes(structured_file_bytes({"a": {"b": stand_in_checks(name)[place][0]}}))
            files.append(str(path))
    warm = tmp_path / "warm.safestructures"
    warm.write_bytes(structured_file_bytes([stand_in_checks("warm.Up")[place][0] for place in PLACES[:-2]]))
    (tmp_path / "files.json").write_text(json.dumps(files))
    result = run_python(
        """
        import json, sys
        import numpy, ml_dtypes
        import safestructures

        WATCHED = {"import", "exec", "compile", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                   "subprocess.Popen", "ctypes.dlopen", "ctypes.dlsym", "pickle.find_class", "marshal.loads",
                   "builtins.input", "open", "socket.connect", "webbrowser.open", "os.startfile"}
        events = []
        active = False

        def hook(event, args):
            if active and (event in WATCHED or event.startswith(("os.exec", "os.spawn", "subprocess", "ctypes"))):
                events.append((event, repr(args)[:200]))

        sys.addaudithook(hook)
        files = json.load(open(sys.argv[1]))
        # Warm-up, hook off: whatever the library imports lazily on a first load or a first error.
        safestructures.load_file(sys.argv[2])
        for strict in (False, True):
            try:
                safestructures.load_file(files[0], strict=strict)
            except safestructures.SafestructuresError:
                pass
        blobs = [open(f, "rb").read() for f in files]
        before = set(sys.modules)
        outcomes = {}
        active = True
        for blob in blobs:
            for strict in (False, True):
                try:
                    value = safestructures.load(blob, strict=strict)
                    kind = type(value["a"]["b"]).__name__
                except safestructures.SafestructuresError as error:
                    kind = type(error).__name__
                outcomes[kind] = outcomes.get(kind, 0) + 1
        active = False
        assert events == [], events
        new = sorted(set(sys.modules) - before)
        assert new == [], new
        assert "antigravity" not in sys.modules and "this" not in sys.modules
        print(json.dumps(outcomes, sort_keys=True))
        """,
        str(tmp_path / "files.json"),
        str(warm),
    )
    assert result.returncode == 0, result.stderr + result.stdout
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    per_place = len(DANGEROUS_NAMES)
    assert sum(outcomes.values()) == 2 * per_place * len(PLACES)
    # strict=False: records and generic values; strict=True: UnknownTypeError, except for the two invalid places.
    assert outcomes["UnknownTypeError"] == per_place * (len(PLACES) - 1)
    assert outcomes["InvalidFileError"] == per_place * 3
    assert outcomes["Record"] == per_place * 4
    assert outcomes["NamedRecord"] == per_place


def test_audit_hook_in_a_subprocess_does_see_an_import() -> None:
    # Guards the test above: the same hook records a real import.
    result = run_python(
        """
        import sys
        events = []
        sys.addaudithook(lambda event, args: events.append(event) if event == "import" else None)
        try:
            import this_module_does_not_exist
        except ImportError:
            pass
        assert "import" in events, events
        print("OK")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK"


# ---------------------------------------------------------------------------------------------------------------------
# Malformed user-type nodes: InvalidFileError with the path, never another exception


class Color(enum.Enum):
    RED = "red"


#: Constructors of the classes below that ran (a load must run none: a failing one would only show as a refused file).
RAN: list[str] = []


@dataclasses.dataclass
class Point:
    x: int = 0

    def __post_init__(self) -> None:
        RAN.append("Point.__post_init__")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        RAN.append("Point.__init__")


Pair = collections.namedtuple("Pair", "left right")


class MyDict(dict):  # type: ignore[type-arg]
    pass


class MyTuple(tuple):  # type: ignore[type-arg]
    pass


def qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class Interval:
    pass


class RaisingPlugin(DataProcessor):
    data_type = Interval

    def serialize(self, data: Any) -> Any:
        return 1

    def deserialize(self, serialized: Any, **kwargs: Any) -> Any:
        return {"value": serialized, **kwargs}


ANY = "unknown.Name"
MALFORMED: dict[str, dict[str, Any]] = {
    # unresolved names: the node itself is malformed
    "object-dict-base-list-value": {"$": "object", "type": ANY, "base": "dict", "value": [1, 2]},
    "object-dict-base-int-value": {"$": "object", "type": ANY, "base": "dict", "value": 3},
    "object-ordereddict-base-str-value": {"$": "object", "type": ANY, "base": "OrderedDict", "value": "ab"},
    "object-dict-base-no-value": {"$": "object", "type": ANY, "base": "dict"},
    "object-int-base-str-value": {"$": "object", "type": ANY, "base": "int", "value": "1"},
    "object-int-base-bool-value": {"$": "object", "type": ANY, "base": "int", "value": True},
    "object-float-base-int-value": {"$": "object", "type": ANY, "base": "float", "value": 1},
    "object-tuple-base-list-value": {"$": "object", "type": ANY, "base": "tuple", "value": [1]},
    "object-bytes-base-str-value": {"$": "object", "type": ANY, "base": "bytes", "value": "x"},
    "object-frozenset-base-set-value": {"$": "object", "type": ANY, "base": "frozenset", "value": {"$": "set", "items": [1]}},
    "object-list-base-int-value": {"$": "object", "type": ANY, "base": "list", "value": 5},
    "object-unknown-base": {"$": "object", "type": ANY, "base": "os.system", "value": {}},
    "object-base-not-a-str": {"$": "object", "type": ANY, "base": 5, "value": {}},
    "object-attrs-list": {"$": "object", "type": ANY, "attrs": [1]},
    "object-attrs-str": {"$": "object", "type": ANY, "attrs": "abc"},
    "object-type-missing": {"$": "object", "attrs": {}},
    "object-type-not-a-str": {"$": "object", "type": ["os", "system"], "attrs": {}},
    "dataclass-fields-list": {"$": "dataclass", "type": ANY, "fields": [["a", 1]]},
    "dataclass-fields-str": {"$": "dataclass", "type": ANY, "fields": "a"},
    "dataclass-fields-null": {"$": "dataclass", "type": ANY, "fields": None},
    "dataclass-fields-missing": {"$": "dataclass", "type": ANY},
    "dataclass-type-int": {"$": "dataclass", "type": 1, "fields": {}},
    "dataclass-bad-base-value": {"$": "dataclass", "type": ANY, "fields": {}, "base": "dict", "value": [1]},
    "namedtuple-items-dict": {"$": "namedtuple", "type": ANY, "fields": ["a"], "items": {"a": 1}},
    "namedtuple-items-tuple": {"$": "namedtuple", "type": ANY, "fields": ["a"], "items": {"$": "tuple", "items": [1]}},
    "namedtuple-fields-int": {"$": "namedtuple", "type": ANY, "fields": [1], "items": [1]},
    "namedtuple-fields-missing": {"$": "namedtuple", "type": ANY, "items": [1]},
    "namedtuple-more-items": {"$": "namedtuple", "type": ANY, "fields": ["a"], "items": [1, 2]},
    "namedtuple-fewer-items": {"$": "namedtuple", "type": ANY, "fields": ["a", "b"], "items": [1]},
    "enum-type-missing": {"$": "enum", "name": "A", "value": 1},
    "plugin-extra-list": {"$": "plugin", "type": ANY, "value": 1, "extra": [1]},
    "plugin-type-unhashable": {"$": "plugin", "type": ["x"], "value": 1},
    "unknown-tag": {"$": "os.system", "type": ANY},
    # resolved names: the node does not fit the class it names
    "enum-unhashable-value": {"$": "enum", "type": qualified(Color), "name": "NOPE", "value": [1, 2]},
    "enum-dict-value": {"$": "enum", "type": qualified(Color), "name": "NOPE", "value": {"a": 1}},
    "enum-wrong-value": {"$": "enum", "type": qualified(Color), "name": "NOPE", "value": "blue"},
    "enum-names-a-dataclass": {"$": "enum", "type": qualified(Point), "name": "X", "value": 1},
    "enum-names-a-dict-subclass": {"$": "enum", "type": qualified(MyDict), "name": "X", "value": [["a", 1]]},
    "namedtuple-names-a-dataclass": {"$": "namedtuple", "type": qualified(Point), "fields": ["x"], "items": [1]},
    "namedtuple-wrong-length": {"$": "namedtuple", "type": qualified(Pair), "fields": ["left", "right"], "items": [1, 2, 3]},
    "namedtuple-short-for-class": {"$": "namedtuple", "type": qualified(Pair), "fields": ["left"], "items": [1]},
    "dataclass-names-an-enum": {"$": "dataclass", "type": qualified(Color), "fields": {"x": 1}},
    "dataclass-attrs-class": {"$": "dataclass", "type": qualified(Point), "fields": {"__class__": 1}},
    "object-dict-subclass-list-base": {"$": "object", "type": qualified(MyDict), "base": "list", "value": [1]},
    "object-dict-subclass-tuple-base": {"$": "object", "type": qualified(MyDict), "base": "tuple", "value": {"$": "tuple", "items": []}},
    "object-tuple-subclass-dict-base": {"$": "object", "type": qualified(MyTuple), "base": "dict", "value": {}},
    "object-attrs-non-str-keys": {"$": "object", "type": qualified(MyDict), "base": "dict", "value": {}, "attrs": {"$": "dict", "items": [[1, 2]]}},
    "object-attrs-not-a-mapping": {"$": "object", "type": qualified(MyDict), "base": "dict", "value": {}, "attrs": [1]},
    "ext-without-from-data": {"$": "ext", "type": qualified(Point), "data": 1},
    "plugin-extra-non-str-keys": {"$": "plugin", "type": qualified(Interval), "value": 1, "extra": {"$": "dict", "items": [[1, 2]]}},
    "plugin-tensors-not-a-mapping": {"$": "plugin", "type": qualified(Interval), "value": 1, "tensors": [1]},
}


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_malformed_user_type_nodes_are_invalid_files(call_recorders: list[str], case: str, strict: bool) -> None:
    node = MALFORMED[case]
    RAN.clear()
    payload = structured_file_bytes({"a": {"b": node}})
    names_a_class = type(node.get("type")) is str and node.get("type") != ANY
    # A namedtuple's items and fields are the core reader's to check (every reader of a part asks it), before any
    # class is looked up.
    if strict and not names_a_class and type(node.get("type")) is str and node["$"] not in ("os.system", "namedtuple"):
        # With strict=True an unknown name is reported first.
        with pytest.raises(UnknownTypeError, match=r'^at \$\["a"\]\["b"\]: '):
            ss.load(payload, types=[Color, Point, Pair, MyDict, MyTuple], plugins=[RaisingPlugin], strict=strict)
        return
    with pytest.raises(InvalidFileError) as info:
        ss.load(payload, types=[Color, Point, Pair, MyDict, MyTuple], plugins=[RaisingPlugin], strict=strict)
    assert type(info.value) is InvalidFileError
    assert info.value.code == "SchemaInvalid"
    assert str(info.value).startswith('at $["a"]["b"]: '), str(info.value)
    assert call_recorders == [] and RAN == []


def test_a_malformed_node_deep_inside_a_dataclass_names_its_whole_path() -> None:
    node = {"$": "dataclass", "type": ANY, "fields": {"inner": [{"$": "object", "type": ANY, "base": "dict", "value": 7}]}}
    with pytest.raises(InvalidFileError, match=r'^at \$\["a"\]\["inner"\]\[0\]: cannot rebuild a object'):
        ss.load(structured_file_bytes({"a": node}))


def test_errors_raised_by_from_data_become_invalid_file_errors() -> None:
    class Strict:
        pass

    def from_data(data: Any) -> Strict:
        raise KeyError("missing")

    ss.register(Strict, name="project.Strict", to_data=lambda s: {}, from_data=from_data)
    payload = structured_file_bytes([{"$": "ext", "type": "project.Strict", "data": {}}])
    with pytest.raises(InvalidFileError, match=r"^at \$\[0\]: cannot rebuild a ext: KeyError"):
        ss.load(payload)


def test_nested_marker_outside_a_plugin_is_refused() -> None:
    with pytest.raises(InvalidFileError, match=r'^at \$\["a"\]: a "nested" node may only appear inside a plugin') as info:
        ss.load(structured_file_bytes({"a": {"$": "nested", "v": 1}}))
    assert info.value.code == "SchemaInvalid"


def test_enum_member_lookup_never_calls_an_unrelated_class() -> None:
    calls: list[Any] = []

    class Loud:
        def __init__(self, *args: Any) -> None:
            calls.append(args)

    ss.register(Loud, name="project.Loud")
    payload = structured_file_bytes({"$": "enum", "type": "project.Loud", "name": "A", "value": "rm -rf /"})
    with pytest.raises(InvalidFileError, match="class 'project.Loud' is saved as 'object' nodes; the file names it in 'enum' node"):
        ss.load(payload)
    assert calls == []


def test_large_crafted_file_of_records_loads_quickly() -> None:
    # Many unknown names: every one becomes a record; nothing is cached or imported along the way.
    nodes = [{"$": "dataclass", "type": f"m{i}.C{i}", "fields": {"i": i}} for i in range(2000)]
    loaded = ss.load(structured_file_bytes(nodes))
    assert [r.type_name for r in loaded[:3]] == ["m0.C0", "m1.C1", "m2.C2"]
    assert all(type(r) is Record for r in loaded) and [r.i for r in loaded] == list(range(2000))
    assert "m0" not in sys.modules and "m1999" not in sys.modules

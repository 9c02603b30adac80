"""Crafted files of the seventh round of attacks on the Python side of loads (cases 32 on; docs/security.md's table
lists them): classes rebuilt from the attributes a file gives, the stand-ins of unresolved classes, plugin nodes, indexes
read by Python's json, and the entries of a checkpoint directory.
Each attack has its legitimate twin, which must keep loading; limits on time or memory only in subprocesses
(test_crafted_meaning.run_attack)."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any

import pytest

import crafted
import safestructures as ss
from safestructures._cli import main
from safestructures._records import Record
from safestructures.plugins import DataProcessor
from test_crafted_meaning import run_attack

# --- 32. attribute names a save never writes: a property's, __dict__, __class__, __weakref__ ---------------------------------

SETTER_CALLS: list[Any] = []


@ss.register(name="round7a.Guarded")
class Guarded:
    def __init__(self) -> None:
        self.mode = "safe"

    @property
    def command(self) -> str:
        return "ls"

    @command.setter
    def command(self, value: str) -> None:
        SETTER_CALLS.append(value)  # stands for code a class runs when its property is set


@ss.register(name="round7a.Both")
class Both(Guarded):
    __slots__ = ("limit",)


@pytest.mark.parametrize("route", ["load", "open"])
def test_case_32_a_property_named_by_the_file_is_not_set_through_its_setter(tmp_path: Path, route: str) -> None:
    # Before: _restore_attrs set every attribute with object.__setattr__, which runs a data descriptor: the setter ran
    # with the file's value; "__dict__" replaced the instance's dict with one the file built.
    SETTER_CALLS.clear()
    data = crafted.object_attributes("round7a.Guarded", {"command": "rm -rf /", "__dict__": {"mode": "admin"}})
    path = tmp_path / "g.safetensors"
    path.write_bytes(data)
    obj = ss.load(data) if route == "load" else ss.open(path).load()
    assert SETTER_CALLS == []
    assert type(obj) is Guarded and obj.command == "ls"
    assert vars(obj) == {"command": "rm -rf /", "__dict__": {"mode": "admin"}}  # as pickle keeps them: entries of __dict__


def test_case_32_class_and_weakref_are_entries_of_the_dict() -> None:
    # Before: refused as TypeError/AttributeError of object.__setattr__ (the descriptors of type and of the instance).
    obj = ss.load(crafted.object_attributes("round7a.Guarded", {"__class__": 1, "__weakref__": 2}))
    assert type(obj) is Guarded and vars(obj) == {"__class__": 1, "__weakref__": 2}


def test_case_32_twin_slots_and_dict_attributes_load() -> None:
    both = Both()
    both.limit = 3
    both.mode = "x"
    back = ss.load(ss.save(both))
    assert type(back) is Both and back.limit == 3 and vars(back) == {"mode": "x"}
    guarded = Guarded()
    assert vars(ss.load(ss.save(guarded))) == {"mode": "safe"}


@pytest.mark.parametrize("attrs", [[["mode", "x"]], {"$": "dict", "items": [[1, 2]]}], ids=["pairs", "int-key"])
@pytest.mark.parametrize("type_name", ["round7a.Guarded", "round7a.Unknown"], ids=["resolved", "unresolved"])
def test_case_32_attrs_are_a_dict_of_str_keys_on_both_routes(attrs: Any, type_name: str) -> None:
    # Before: an unresolved class's record took any list of pairs (dict(attrs)) and any keys; the class refused them.
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load(crafted.object_attributes(type_name, attrs))
    assert str(info.value) == "at $: cannot rebuild a object: TypeError: field 'attrs' must map str to values"
    assert info.value.code == "SchemaInvalid"


# --- 33. a stand-in's attributes naming another class ------------------------------------------------------------------------


@ss.register(name="round7a.Admin")
class Admin(dict):  # type: ignore[type-arg]
    pass


def test_case_33_a_stand_in_does_not_take_its_class_name_from_its_attributes() -> None:
    # Before: the stand-in of unresolved "app.Plain" said type_name "round7a.Admin" (type_names() and describe()
    # said app.Plain), and saving it again wrote a node that loads as a real Admin.
    data = crafted.stand_in_claiming("app.Plain", "round7a.Admin")
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load(data)
    assert str(info.value) == ("at $: cannot rebuild a object: TypeError: field 'attrs' holds '__safestructures_type__', "
                               "which a stand-in keeps its class's name in")
    assert info.value.code == "SchemaInvalid"


def test_case_33_twin_stand_ins_save_back_as_their_class() -> None:
    data = crafted.object_node("app.Plain", base="dict", value={"role": "user"}, attrs={"note": 1})
    obj = ss.load(data)
    assert obj.type_name == "app.Plain" and obj == {"role": "user"} and obj.note == 1
    again = ss.load(ss.save(obj))
    assert type(again) is type(obj) and again.type_name == "app.Plain" and again.note == 1
    assert type(ss.load(ss.save(Admin(a=1)))) is Admin


# --- 34. private slots ----------------------------------------------------------------------------------------------------


@ss.register(name="round7a.Private")
class Private:
    __slots__ = ("__secret", "public")

    def __init__(self, secret: int, public: int) -> None:
        self.__secret = secret
        self.public = public

    def secret(self) -> int:
        return self.__secret


@ss.register(name="round7a.SubPrivate")
class SubPrivate(Private):
    __slots__ = ("__secret",)  # its own: _SubPrivate__secret


def test_case_34_a_private_slot_is_saved_and_loaded() -> None:
    # Before: declared_slots named the slot "__secret", which no object has (it is _Private__secret): every save
    # dropped it silently, and a load left it unset.
    back = ss.load(ss.save(Private(7, 8)))
    assert type(back) is Private and back.secret() == 7 and back.public == 8
    sub = SubPrivate(1, 2)
    sub._SubPrivate__secret = 3  # type: ignore[attr-defined]
    back = ss.load(ss.save(sub))
    assert (back.secret(), back._SubPrivate__secret, back.public) == (1, 3, 2)  # type: ignore[attr-defined]
    assert ss.open(io.BytesIO(ss.save(Private(7, 8)))).keys() == ["_Private__secret", "public"]


def test_case_34_a_file_naming_the_unmangled_slot_is_dropped_with_a_warning() -> None:
    with pytest.warns(ss.SafestructuresWarning, match=r"class 'round7a.Private' no longer declares field '__secret'"):
        back = ss.load(crafted.object_attributes("round7a.Private", {"__secret": 1, "public": 2}))
    assert back.public == 2 and not hasattr(back, "_Private__secret")


# --- 35. plugin nodes: a value of shared references, extra fields named as the node's ---------------------------------------


def test_case_35_an_unresolved_plugins_value_of_shared_lists_is_not_expanded(tmp_path: Path) -> None:
    # Before: the record's value was copied list by list, each shared one again: 24 levels took 11.5 s and 1.5 GB, 40
    # levels (2.6 KB) would take weeks and terabytes.
    outcome = run_attack(tmp_path, crafted.plugin_of_shared_lists(40), """
value = ss.load_file(path).value
return [value[0] is value[1], value[0][0] is value[1][1]]
""")
    assert outcome["outcome"] == "ok" and outcome["result"] == [True, True], outcome
    assert outcome["seconds"] < 10 and outcome["peak_mb"] < 400, outcome


class Interval:
    def __init__(self, low: Any, high: Any) -> None:
        self.low, self.high = low, high


class IntervalPlugin(DataProcessor):
    data_type = Interval

    def serialize(self, data: Interval) -> Any:
        return [self.serializer.serialize(data.low), self.serializer.serialize(data.high)]

    def serialize_extra(self, data: Interval) -> dict[str, Any]:
        return {"closed": [True, True]}

    def deserialize(self, serialized: Any, **kwargs: Any) -> Interval:
        out = Interval(*(self.serializer.deserialize(v) for v in serialized))
        out.closed = kwargs["closed"]  # type: ignore[attr-defined]
        return out


def test_case_35_twin_plugins_keep_their_shared_values() -> None:
    shared = [1, 2]
    data = ss.save({"i": Interval(shared, shared)}, plugins=[IntervalPlugin])
    back = ss.load(data, plugins=[IntervalPlugin])["i"]
    assert back.low == [1, 2] and back.low is back.high and back.closed == [True, True]
    record = ss.load(data)["i"]
    assert type(record) is Record and record.value == [[1, 2], [1, 2]] and record.value[0] is record.value[1]
    assert record.closed == [True, True]


@pytest.mark.parametrize("plugins", [None, [IntervalPlugin]], ids=["unresolved", "resolved"])
@pytest.mark.parametrize("key", ["value", "data_type"])
def test_case_35_extra_fields_named_as_the_nodes_own_are_refused(plugins: Any, key: str) -> None:
    # Before: without the plugin, the record's value was the extra's (2), not the node's (1).
    type_name = f"{Interval.__module__}.{Interval.__qualname__}" if plugins else "app.Unknown"
    data = crafted.plugin_extra({key: 2}, type_name)
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load(data, plugins=plugins)
    assert str(info.value) == ("at $: cannot rebuild a plugin: TypeError: a plugin node's 'extra' must not hold the keys "
                               "'data_type' or 'value'")


# --- 36. an index holding NaN, Infinity or a number past a double's range ------------------------------------------------


def hf_folder(tmp_path: Path, metadata_text: str) -> Path:
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "model.safetensors.index.json").write_bytes(crafted.index_with(metadata_text))
    (folder / "a.safetensors").write_bytes(crafted.plain_shard())
    return folder


@pytest.mark.parametrize(("text", "why"), [
    ('{"total_size": NaN}', "NaN is not a JSON value"),
    ('{"n": [1, {"m": -Infinity}]}', "-Infinity is not a JSON value"),
    ('{"n": 1e999}', "the number 1e999 is past the range of a double"),
], ids=["nan", "infinity", "overflow"])
def test_case_36_an_index_holding_what_json_lacks_is_refused(tmp_path: Path, text: str, why: str) -> None:
    # Before: Python's json took them (strict readers refuse the index): open() gave metadata {"total_size": nan},
    # `verify` said OK, and `inspect --json` ended in a ValueError traceback (out of range floats are not JSON).
    folder = hf_folder(tmp_path, text)
    index = folder / "model.safetensors.index.json"
    for attempt in (lambda: ss.open(folder), lambda: ss.load_file(folder), lambda: ss.load_file(index)):
        with pytest.raises(ss.InvalidFileError) as info:
            attempt()
        assert str(info.value) == f"{index}: not a JSON index: {why}"
    for command in (["inspect", str(folder), "--json"], ["verify", str(folder)], ["get", str(folder), "a", "--json"]):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(command)
        assert status == 1 and out.getvalue() == ""
        assert err.getvalue() == f"safestructures {command[0]}: {index}: not a JSON index: {why}\n"


def test_case_36_twin_indexes_of_json_numbers_load(tmp_path: Path) -> None:
    folder = hf_folder(tmp_path, '{"total_size": 16, "lr": 1.5e-300, "big": 123456789012345678901234567890, "s": "NaN"}')
    with ss.open(folder) as f:
        assert f.metadata == {"total_size": 16, "lr": 1.5e-300, "big": 123456789012345678901234567890, "s": "NaN"}
        assert f.load()["a"].tolist() == [0.0, 0.0]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["inspect", str(folder), "--json"]) == 0
    assert '"lr": 1.5e-300' in out.getvalue()


# --- 37. entries of a checkpoint directory that are no steps ----------------------------------------------------------------


def test_case_37_a_link_loop_named_as_a_step_stops_nothing(tmp_path: Path) -> None:
    # Before: every steps(), latest_step(), load() and save() raised OSError (ELOOP) from the listing: one entry in a
    # shared directory stopped a run's checkpoints.
    manager = ss.CheckpointManager(tmp_path, keep_last=2)
    manager.save(1, {"a": 1})
    (tmp_path / "step-00000005").symlink_to("step-00000005")
    assert manager.steps() == [1] and manager.latest_step() == 1
    manager.save(2, {"a": 2})
    assert manager.steps() == [1, 2] and manager.load() == {"a": 2}


def test_case_37_a_fifo_or_a_dangling_link_named_as_a_step_file_is_no_step(tmp_path: Path) -> None:
    # Before: both were complete steps, the latest one: load() of the latest raised, and retention kept them as steps.
    manager = ss.CheckpointManager(tmp_path, keep_last=3)
    manager.save(1, {"a": 1})
    os.mkfifo(tmp_path / "step-00000009.safetensors")
    (tmp_path / "step-00000010.safetensors").symlink_to(tmp_path / "gone.safetensors")
    assert manager.steps() == [1] and manager.load() == {"a": 1}
    manager.save(9, {"a": 9})  # takes the FIFO's name: it was no step
    assert manager.steps() == [1, 9] and manager.load() == {"a": 9}
    assert (tmp_path / "step-00000009.safetensors").is_file()


def test_case_37_twin_linked_steps_count(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    ss.CheckpointManager(elsewhere).save(3, {"b": 3})
    ss.CheckpointManager(elsewhere).save(4, {"c": 4}, max_shard_size="1MB")
    run = tmp_path / "run"
    run.mkdir()
    (run / "step-00000003.safetensors").symlink_to(elsewhere / "step-00000003.safetensors")
    (run / "step-00000004").symlink_to(elsewhere / "step-00000004")
    manager = ss.CheckpointManager(run)
    assert manager.steps() == [3, 4] and manager.load(3) == {"b": 3} and manager.load() == {"c": 4}


# --- the records unresolved classes load as, copied -------------------------------------------------------------------------


@pytest.mark.parametrize("copier", ["copy", "deepcopy", "pickle"])
def test_a_record_copies_and_pickles(copier: str) -> None:
    # Before: RecursionError: their default set the slots through __setattr__, whose field lookup asked for the
    # unset slot again. A loaded config of an unresolved dataclass could not be deep-copied.
    import copy
    import pickle

    record = ss.load(crafted.file_bytes({"$": "dataclass", "type": "app.Config", "fields": {"lr": [0.1]}}))
    made = {"copy": copy.copy, "deepcopy": copy.deepcopy, "pickle": lambda r: pickle.loads(pickle.dumps(r))}[copier](record)
    assert type(made) is Record and made == record and made.type_name == "app.Config"
    assert (made.lr is record.lr) == (copier == "copy")
    with pytest.raises(AttributeError, match="^_fields$"):
        Record.__new__(Record).lr


# --- 38. text a terminal acts on, in the command line's output ---------------------------------------------------------------


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


def test_case_38_class_names_and_frameworks_cannot_drive_the_terminal(tmp_path: Path) -> None:
    # Before: `inspect` and `inspect --types` wrote class names as the file gives them (a tensor's framework too): the escape
    # sequences reached the terminal (clear the screen, set its title), and the line break forged "OK: fake line".
    path = tmp_path / "t.safetensors"
    path.write_bytes(crafted.terminal_escapes())
    status, out, err = run_cli("inspect", str(path))
    assert status == 0 and err == ""
    assert out.splitlines()[1:] == [
        "dict (2 items)",
        "├── d: dataclass app.X\\x1b[2J\\x1b]0;pwned\\x07\\nOK: fake line (0 fields)",
        "└── t: tensor float32 [1]  4 B  (numpy\\x1b[2J\\nOK: x)",
    ]
    status, out, err = run_cli("inspect", str(path), "--types")
    assert status == 0 and out == "app.X\\x1b[2J\\x1b]0;pwned\\x07\\nOK: fake line  [dataclass, 1 node]  unresolved (loads as a record)\n"


def test_case_38_twin_printable_names_are_written_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    path.write_bytes(crafted.file_bytes({"d": {"$": "dataclass", "type": "modèle.Config_日本", "fields": {}}}))
    status, out, _err = run_cli("inspect", str(path), "--types")
    assert status == 0 and out == "modèle.Config_日本  [dataclass, 1 node]  unresolved (loads as a record)\n"


# --- 39. a plugin node without a class name -----------------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", [5, None, True], ids=["int", "null", "bool"])
def test_case_39_a_plugin_node_names_its_class_by_a_str(type_name: Any) -> None:
    # Before: it loaded as Record("5") (or "None", "True") while type_names() listed no class and its node's
    # type_name was None: what the file names and what a load made of it disagreed.
    data = crafted.file_bytes({"p": {"$": "plugin", "type": type_name, "value": 1}})
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load(data)
    assert str(info.value) == (f'at $["p"]: cannot rebuild a plugin: TypeError: field \'type\' must be a str, not '
                               f"{type(type_name).__name__}")
    assert ss.open(io.BytesIO(data)).type_names() == {}


def test_case_39_twin_a_plugin_node_of_an_unknown_class_is_a_record() -> None:
    data = crafted.file_bytes({"p": {"$": "plugin", "type": "app.Unknown", "value": 1}})
    assert ss.load(data)["p"] == Record("app.Unknown", {"value": 1})
    assert ss.open(io.BytesIO(data)).type_names() == {"plugin": {"app.Unknown": 1}}

"""Files written by safestructures 1.0.0 (real fixtures in tests/data/v1, made by scripts/make_v1_fixtures.sh with
that release) load here, and malformed 1.0.0 schemas raise clear errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.numpy

import safestructures
from conftest import assert_same, run_python
from safestructures import InvalidFileError, Record, UnknownTypeError

FIXTURES = Path(__file__).parent.parent / "data" / "v1"
sys.path.insert(0, str(FIXTURES))

import v1_cases  # noqa: E402  (the data the fixtures were saved from, shared with the generator)

SIMPLE = [name for name, (_build, _plugins, expected) in v1_cases.CASES.items() if expected is not None and name not in ("torch", "plugins")]


def test_every_case_has_a_fixture() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.safetensors")) == sorted(v1_cases.CASES)


@pytest.mark.parametrize("name", SIMPLE)
def test_builtin_values_load_exactly(name: str) -> None:
    loaded = safestructures.load_file(FIXTURES / f"{name}.safetensors")
    assert_same(loaded, v1_cases.CASES[name][2]())


@pytest.mark.parametrize("name", SIMPLE)
def test_loading_from_bytes_gives_the_same(name: str) -> None:
    data = (FIXTURES / f"{name}.safetensors").read_bytes()
    assert_same(safestructures.load(data), v1_cases.CASES[name][2]())


def test_the_dummy_tensor_of_a_file_without_tensors_is_ignored() -> None:
    path = FIXTURES / "basic.safetensors"
    assert list(safetensors.numpy.load_file(path)) == ["null"]
    loaded = safestructures.load_file(path)
    assert loaded == {"a": 1, "b": [1.5, None, True, "x"], 3: (1, 2)}


def test_dataclasses_come_back_as_records() -> None:
    loaded = safestructures.load_file(FIXTURES / "dataclass.safetensors")
    cfg = loaded["cfg"]
    assert type(cfg) is Record and cfg.type_name == "SafestructuresDataclass"
    assert type(cfg.lr) is float and cfg.lr == 0.1
    assert cfg.layers == [1, 2] and cfg["name"] == "x"
    assert list(cfg.keys()) == ["lr", "layers", "name"]
    assert type(loaded["list"][0]) is Record and loaded["list"][0].asdict() == {"lr": 1.0, "layers": [], "name": ""}


def test_numpy_arrays_keep_dtype_shape_and_values() -> None:
    saved = v1_cases.CASES["numpy"][0]()
    loaded = safestructures.load_file(FIXTURES / "numpy.safetensors")
    assert list(loaded) == list(saved)
    for key, array in saved.items():
        assert type(loaded[key]) is np.ndarray, key
        assert loaded[key].dtype == array.dtype and loaded[key].shape == array.shape, key
        assert loaded[key].tobytes() == array.tobytes(), key


def test_torch_tensors_load_as_torch_with_the_dtypes_1_0_0_stored() -> None:
    torch = pytest.importorskip("torch")
    expected = v1_cases.CASES["torch"][2]()
    loaded = safestructures.load_file(FIXTURES / "torch.safetensors")
    assert list(loaded) == list(expected)
    for key, tensor in expected.items():
        assert type(loaded[key]) is torch.Tensor, key
        assert loaded[key].dtype == tensor.dtype and torch.equal(loaded[key], tensor), key
    as_numpy = safestructures.load_file(FIXTURES / "torch.safetensors", framework="numpy")
    assert type(as_numpy["weight"]) is np.ndarray and as_numpy["weight"].dtype == np.float32
    assert as_numpy["half"].dtype == np.float32  # 1.0.0 had already cast it


def test_plugins_rebuild_their_types() -> None:
    loaded = safestructures.load_file(FIXTURES / "plugins.safetensors", plugins=v1_cases.PLUGINS)
    expected = v1_cases.CASES["plugins"][2]()
    assert loaded["t"] == expected["t"]
    assert type(loaded["signal"]) is np.ndarray and loaded["signal"].dtype == np.float64
    assert np.array_equal(loaded["signal"], expected["signal"])
    assert loaded["after"] == [1, 2]


def test_plugin_types_without_their_plugin() -> None:
    loaded = safestructures.load_file(FIXTURES / "plugins.safetensors")
    record = loaded["t"]
    assert type(record) is Record and record.type_name == "v1_cases.Temperature"
    assert record.label == "room" and record.value["kelvin"] == "300.0"
    with pytest.raises(UnknownTypeError, match=r'at \$\["t"\]: .*v1_cases.Temperature'):
        safestructures.load_file(FIXTURES / "plugins.safetensors", strict=True)


def test_user_metadata_is_kept() -> None:
    with safetensors.safe_open(FIXTURES / "basic.safetensors", framework="numpy") as f:
        assert f.metadata()["case"] == "basic"


def _v1_file(tmp_path: Path, schema: Any, *, version: str = "1.0.0", tensors: dict[str, np.ndarray] | None = None) -> Path:
    path = tmp_path / "crafted.safetensors"
    text = schema if isinstance(schema, str) else json.dumps(schema)
    metadata = {"_safestructures_schema_": text, "_safestructures_schema_version_": version}
    safetensors.numpy.save_file(tensors or {"null": np.array([0])}, path, metadata=metadata)
    return path


def _node(kind: str, value: Any, **extra: Any) -> dict[str, Any]:
    return {"data_type": kind, "value": value, **extra}


@pytest.mark.parametrize(
    ("schema", "code", "message"),
    [
        ("{not json", "SchemaNotJson", "not valid JSON"),
        ([1, 2], "SchemaInvalid", "must be an object"),
        ({"value": 1}, "SchemaInvalid", "data_type"),
        (_node("int", "twelve"), "SchemaInvalid", "bad int"),
        (_node("int", 12), "SchemaInvalid", "as a string"),
        (_node("float", "1.5.1"), "SchemaInvalid", "bad float"),
        (_node("list", {"a": 1}), "SchemaInvalid", "needs an array"),
        (_node("dict", {"a": _node("int", "1")}), "SchemaInvalid", "'keys'"),
        (_node("dict", {"a": _node("int", "1")}, keys={}), "SchemaInvalid", "no entry in 'keys'"),
        (_node("dict", {"a": _node("int", "1")}, keys={"a": _node("list", [])}), "SchemaInvalid", "cannot use this key"),
        (_node("set", [_node("list", [])]), "SchemaInvalid", "cannot build a set"),
        (_node("numpy.ndarray", "7"), "SchemaInvalid", "tensor '7'"),
        (_node("list", [_node("bool", "yes")]), "SchemaInvalid", r"at \$\[0\]"),
    ],
)
def test_malformed_schemas_raise_clear_errors(tmp_path: Path, schema: Any, code: str, message: str) -> None:
    with pytest.raises(InvalidFileError, match=message) as info:
        safestructures.load_file(_v1_file(tmp_path, schema))
    assert info.value.code == code


def test_an_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidFileError, match="version '9.9'") as info:
        safestructures.load_file(_v1_file(tmp_path, _node("int", "1"), version="9.9"))
    assert info.value.code == "SchemaVersion"


def test_deep_schemas_fail_cleanly(tmp_path: Path) -> None:
    text = '{"data_type":"list","value":[' * 100_000 + "]}" * 100_000
    with pytest.raises(InvalidFileError) as info:
        safestructures.load_file(_v1_file(tmp_path, text))
    assert info.value.code in ("SchemaNotJson", "NestingTooDeep")


def test_type_names_are_never_imported(tmp_path: Path) -> None:
    # 1.0.0 imported "module.Name" to find a type; here such names are only matched against the plugins passed.
    schema = _node("list", [_node("os.system", "echo hacked"), _node("antigravity.fly", None), _node("builtins.eval", "1+1")])
    path = _v1_file(tmp_path, schema)
    script = f"""
import sys
import safestructures
before = set(sys.modules)
loaded = safestructures.load_file({str(path)!r})
assert [r.type_name for r in loaded] == ["os.system", "antigravity.fly", "builtins.eval"], loaded
# The first load may import safestructures' own lazily loaded modules, and nothing else.
assert all(m.startswith("safestructures") for m in set(sys.modules) - before), set(sys.modules) - before
events = []
sys.addaudithook(lambda event, args: events.append(event) if event in ("import", "exec", "compile", "os.system", "subprocess.Popen") else None)
before = set(sys.modules)
safestructures.load_file({str(path)!r})
assert set(sys.modules) == before, set(sys.modules) - before
assert events == [], events
print("ok")
"""
    result = run_python(script)
    assert result.stdout.strip().endswith("ok"), result.stderr

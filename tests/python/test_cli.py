"""The command line: `safestructures upgrade` rewrites 1.0.0 files in the current format."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import safestructures
from conftest import assert_same
from safestructures._cli import main

FIXTURES = Path(__file__).parent.parent / "data" / "v1"
sys.path.insert(0, str(FIXTURES))

import v1_cases  # noqa: E402


def metadata_of(path: Path) -> dict[str, str]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]).get("__metadata__", {})


@pytest.mark.parametrize("name", sorted(v1_cases.CASES))
def test_upgrade_keeps_the_data(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    old = FIXTURES / f"{name}.safetensors"
    new = tmp_path / "new.safetensors"
    plugins = [f"v1_cases:{p.__name__}" for p in v1_cases.PLUGINS]
    assert main(["upgrade", str(old), str(new), *sum((["--plugin", p] for p in plugins), [])]) == 0
    assert capsys.readouterr().out == f"wrote {new}\n"
    metadata = metadata_of(new)
    assert "__safestructures__" in metadata and "_safestructures_schema_" not in metadata
    assert metadata["case"] == name  # the caller's metadata is kept
    before = safestructures.load_file(old, plugins=v1_cases.PLUGINS)
    after = safestructures.load_file(new, plugins=v1_cases.PLUGINS)
    if name == "plugins":
        assert after["t"] == before["t"] and after["after"] == before["after"]
        assert (after["signal"] == before["signal"]).all()
    else:
        assert_same(after, before)


def test_upgrade_without_the_plugins_keeps_records(tmp_path: Path) -> None:
    new = tmp_path / "new.safetensors"
    assert main(["upgrade", str(FIXTURES / "plugins.safetensors"), str(new)]) == 0
    record = safestructures.load_file(new)["t"]
    assert type(record) is safestructures.Record and record.type_name == "v1_cases.Temperature"
    assert record.label == "room"


def test_upgraded_dataclasses_stay_records(tmp_path: Path) -> None:
    new = tmp_path / "new.safetensors"
    assert main(["upgrade", str(FIXTURES / "dataclass.safetensors"), str(new)]) == 0
    cfg = safestructures.load_file(new)["cfg"]
    assert type(cfg) is safestructures.Record and cfg.type_name == "SafestructuresDataclass" and cfg.layers == [1, 2]


def test_upgrade_refuses_what_is_not_a_1_0_0_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    current = tmp_path / "current.safetensors"
    safestructures.save_file({"a": 1}, current)
    assert main(["upgrade", str(current), str(tmp_path / "x.safetensors")]) == 2
    assert "is not a safestructures 1.0.0 file" in capsys.readouterr().err
    assert main(["upgrade", str(tmp_path / "missing.safetensors"), str(tmp_path / "x.safetensors")]) == 1
    assert "No such file or directory" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


def test_strict_upgrade_fails_on_a_type_no_plugin_handles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = tmp_path / "new.safetensors"
    assert main(["upgrade", "--strict", str(FIXTURES / "plugins.safetensors"), str(new)]) == 1
    assert "v1_cases.Temperature" in capsys.readouterr().err
    assert not new.exists()


def test_a_bad_plugin_spec_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["upgrade", "a", "b", "--plugin", "no_colon"])
    assert info.value.code == 2


@pytest.mark.parametrize("command", [["safestructures"], [sys.executable, "-m", "safestructures"]])
def test_the_installed_command_runs(tmp_path: Path, command: list[str]) -> None:
    executable = shutil.which(command[0]) if command[0] == "safestructures" else command[0]
    if executable is None:
        executable = str(Path(sys.executable).parent / "safestructures")
    new = tmp_path / "new.safetensors"
    result = subprocess.run([executable, *command[1:], "upgrade", str(FIXTURES / "basic.safetensors"), str(new)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert safestructures.load_file(new) == {"a": 1, "b": [1.5, None, True, "x"], 3: (1, 2)}

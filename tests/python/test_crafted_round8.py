"""Crafted files of the eighth round's lead (docs/security.md case 67): text a file chooses (keys, tensor names, class
names, JSON values) reaching error messages and the command line's output. Messages travel to terminals and logs, so
what drives a terminal, breaks a line or reorders text is escaped, and no file sets how long a message is."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import crafted
import safestructures as ss
from safestructures import _core
from safestructures._cli import _write_out, main

# C1's CSI (which some terminals act on as ESC [), ESC, a right-to-left override and a line separator.
HOSTILE = "k\x9b2J\x1b[31m\u202e\u2028x"
SHOWN = "k\\u009b2J\\u001b[31m\\u202e\\u2028x"
RAW = ("\x9b", "\x1b", "\u202e", "\u2028")


def missing_tensor_under(key: str, name: str = "nope") -> bytes:
    return crafted.file_bytes({key: {"$": "tensor", "name": name, "fw": "numpy"}})


def test_case_67_messages_escape_what_terminals_act_on(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    path.write_bytes(missing_tensor_under(HOSTILE, "n\u2029"))
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load_file(path)
    assert str(info.value) == f'{path}: at $["{SHOWN}"]: the schema refers to tensor "n\\u2029", which the file lacks'
    assert info.value.code == "TensorNotFound"
    with ss.open(path) as f:  # the lazy view names the path in Python, with the core's quoting
        with pytest.raises(ss.InvalidFileError) as lazy:
            f[HOSTILE].load()
    assert f'$["{SHOWN}"]' in str(lazy.value) and not any(c in str(lazy.value) for c in RAW)


def test_case_67_command_line_escapes_stderr_and_json_output(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    path.write_bytes(missing_tensor_under(HOSTILE))
    done = subprocess.run([sys.executable, "-m", "safestructures", "verify", str(path)], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr == (f'safestructures verify: {path}: at $["{SHOWN}"]: the schema refers to tensor "nope", '
                           "which the file lacks\n")
    # JSON output: the same escapes, which JSON reads back as the file's text.
    good = tmp_path / "g.safetensors"
    ss.save_file({"s": HOSTILE, "t\u200b": 1}, good)
    done = subprocess.run([sys.executable, "-m", "safestructures", "get", str(good), "s"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == f'"{SHOWN}"\n'
    done = subprocess.run([sys.executable, "-m", "safestructures", "inspect", "--json", str(good)], capture_output=True,
                          text=True)
    assert not any(c in done.stdout for c in RAW + ("\u200b",))
    assert json.loads(done.stdout)["tree"]["items"] == [["s", {"kind": "str", "value": HOSTILE}],
                                                        ["t\u200b", {"kind": "int", "value": 1}]]


def test_case_67_the_command_lines_writer_escapes_stderr_too() -> None:
    # What a plugin's or a framework's exception says may quote the file raw: the one writer escapes it either way.
    err = io.StringIO()
    _write_out(f"safestructures get: {HOSTILE}\n", err)
    assert err.getvalue() == "safestructures get: k\\x9b2J\\x1b[31m\\u202e\\u2028x\n"


def test_case_67_messages_show_long_names_and_values_cut(tmp_path: Path) -> None:
    # A 1 MB key and a 1 MB tensor name: the message held both whole (2 MB).
    path = tmp_path / "long.safetensors"
    path.write_bytes(missing_tensor_under("k" * 1_000_000, "t" * 1_000_000))
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load_file(path)
    assert str(info.value) == (f'{path}: at $["{"k" * 200}"... (1000000 bytes)]: the schema refers to tensor '
                               f'"{"t" * 200}"... (1000000 bytes), which the file lacks')
    # A header whose metadata is a 10 MB array: the message repeated it (10 MB).
    header = b'{"__metadata__":[' + b",".join([b"1"] * 5_000_000) + b"]}"
    header += b" " * (-len(header) % 8)
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load(struct.pack("<Q", len(header)) + header)
    assert str(info.value) == f"__metadata__ must be an object of strings, found [{'1,' * 99}1... (10000001 bytes)"
    assert info.value.code == "MetadataNotObject"


@pytest.mark.parametrize(("name", "shown"), [
    ("plain", '"plain"'),
    ('a"b\\c\n', '"a\\"b\\\\c\\n"'),
    ("é中", '"é中"'),
    ("\x7f\x85\u00ad\u061c\u200e\u2066\ufeff", '"\\u007f\\u0085\\u00ad\\u061c\\u200e\\u2066\\ufeff"'),
    ("\U000e0041", '"\\udb40\\udc41"'),
    ("\ud800x", '"\\ud800x"'),  # a lone surrogate, which a file's "\ud800" gives
    ("é" * 150, '"' + "é" * 100 + '"... (300 bytes)'),
])
def test_case_67_python_quotes_names_as_the_core_does(name: str, shown: str) -> None:
    assert _core.quote_name(name) == shown
    assert ss._errors.quote(name) == shown


def test_case_67_legitimate_text_is_shown_as_it_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ok.safetensors"
    ss.save_file({"clé": "中文 text", "k": [1, 2]}, path)
    assert main(["get", str(path), "clé"]) == 0
    assert capsys.readouterr().out == '"中文 text"\n'


def test_case_69_a_recording_whose_room_is_not_a_multiple_of_8_is_not_continued(tmp_path: Path) -> None:
    # Found by helper C: its commits wrote journals the reader ignores (it trusts a room that is a multiple of 8 only,
    # as every room the recorder makes is), so a kill during a commit could lose every record.
    import numpy as np

    path = tmp_path / "rec.safetensors"
    with ss.Recorder(path) as rec:
        rec.append({"x": np.arange(3.0)})
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    text = json.dumps(json.loads(raw[8:8 + size]), separators=(",", ":")).encode()
    text += b" " * ((3 - len(text)) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + size:])
    before = path.read_bytes()
    assert [r["x"].tolist() for r in ss.load_file(path)] == [[0.0, 1.0, 2.0]]
    with pytest.raises(ss.InvalidFileError) as info:
        ss.Recorder(path, mode="a")
    assert str(info.value) == f"{path}: its header takes {len(text)} bytes, not a multiple of 8 as a recording's room is"
    assert path.read_bytes() == before


def test_case_69_a_broken_recording_is_named_once(tmp_path: Path) -> None:
    path = tmp_path / "rec.safetensors"
    path.write_bytes(struct.pack("<Q", 16) + b'{"__metadata__":')
    with pytest.raises(ss.InvalidFileError) as info:
        ss.Recorder(path, mode="a")
    assert str(info.value).startswith(f"{path}: header is not valid JSON")

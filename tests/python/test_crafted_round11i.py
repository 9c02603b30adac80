"""Hostile inputs of the eleventh round's helper attack-i (cases 120 on; docs/security.md's table lists them): files
read through the routes other than ``load_file`` (the command line, the lazy API, the C++ API), what they print and
what it costs. Each attack has its legitimate twin, which must keep working."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import crafted
import safestructures as ss
from conftest import MEMORY_MB_SOURCE, run_python_json
from safestructures._cli import main

#: Runs the command line on sys.argv[1:], counting what it prints instead of keeping it.
CLI_SIZE = MEMORY_MB_SOURCE + """
import contextlib, json, sys, time
from safestructures._cli import main

class Count:
    encoding = "utf-8"
    def __init__(self):
        self.n, self.lines, self.longest, self.tail = 0, 0, 0, []
    def write(self, text):
        self.n += len(text.encode("utf-8"))
        for line in text.split("\\n")[:-1] if "\\n" in text else ():
            self.lines += 1
        self.tail = (self.tail + [text])[-200:]
        return len(text)
    def flush(self):
        pass

out = Count()
start = time.perf_counter()
with contextlib.redirect_stdout(out):
    status = main(sys.argv[1:])
print(json.dumps({"status": status, "bytes": out.n, "seconds": time.perf_counter() - start,
                  "tail": "".join(out.tail), "mb": memory_mb("VmHWM")}))
"""


def cli_size(*argv: object, timeout: float = 120) -> dict:
    return run_python_json(CLI_SIZE, *[str(a) for a in argv], timeout=timeout)


# --- 120. inspect's tree drawn a thousand levels deep -------------------------------------------------------------------

def test_case_120_inspect_draws_at_most_64_levels(tmp_path: Path) -> None:
    # Before: each line was prefixed by 4 columns a level: 20,000 one-item lists under 990 levels (82 KB) printed
    # 161 MB, 200,000 (800 KB) 1.6 GB in 19.5 s.
    path = tmp_path / "deep.safetensors"
    path.write_bytes(crafted.deep_and_wide(990, 2_000, [0]))
    result = cli_size("inspect", path)
    assert result["status"] == 0
    assert len(path.read_bytes()) == 10_088
    assert result["bytes"] < 1_500_000  # 16 MB before
    assert result["tail"].endswith(" " * 256 + "└── (level 992) [0]: int = 0\n")


def test_case_120_a_shallow_tree_is_drawn_whole(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "shallow.safetensors"
    ss.save_file({"a": {"b": [1, [2]]}}, path)
    assert main(["inspect", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "dict (1 item)",
        "└── a: dict (1 item)",
        "    └── b: list (2 items)",
        "        ├── [0]: int = 1",
        "        └── [1]: list (1 item)",
        "            └── [0]: int = 2",
    ]


def test_case_120_levels_past_64_are_numbered(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data: list = [7]
    for _ in range(69):
        data = [data]
    path = tmp_path / "seventy.safetensors"
    ss.save_file(data, path)
    assert main(["inspect", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert lines[64] == " " * 252 + "└── [0]: list (1 item)"
    assert lines[65:] == [" " * 256 + "└── (level 65) [0]: list (1 item)"] + [
        " " * 256 + f"└── (level {n}) [0]: list (1 item)" for n in range(66, 70)] + [" " * 256 + "└── (level 70) [0]: int = 7"]


# --- 121. a first place a thousand levels deep, named at every reference ------------------------------------------------

CUT_PATH = "0." + ".".join(["k" * 60] * 9) + ".... 971 more ...." + ".".join(["k" * 60] * 10)


@pytest.mark.parametrize("argv", [["inspect"], ["inspect", "--json"], ["get", "-", "."]])
def test_case_121_a_deep_first_place_is_named_cut(tmp_path: Path, argv: list[str]) -> None:
    # Before: each reference printed the 990 parts of its first place's path (60 KB): 20,000 references (550 KB)
    # printed 1.2 GB (inspect 5.5 s, inspect --json and get 11 s).
    path = tmp_path / "shared.safetensors"
    path.write_bytes(crafted.shared_under_a_deep_path(990, 2_000))
    args = [argv[0], path, *argv[2:]] if argv[0] == "get" else [*argv, path]
    result = cli_size(*args)
    assert result["status"] == 0
    assert result["bytes"] < 4_000_000  # 121 MB before
    assert CUT_PATH in result["tail"]


def test_case_121_the_lazy_api_names_the_same_cut_path(tmp_path: Path) -> None:
    path = tmp_path / "shared.safetensors"
    path.write_bytes(crafted.shared_under_a_deep_path(990, 3))
    with ss.open(path) as f:
        items = f.tree.describe()["items"]
    assert [item["same_as"] for item in items[1:]] == [CUT_PATH] * 3
    assert items[0]["kind"] == "dict"


def test_case_121_a_path_of_24_parts_is_named_whole(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # The legitimate twin: a shared list 23 levels down (24 parts with the root's index) keeps its whole path, so that
    # `get` can be given it back; 25 parts are cut as messages cut them.
    for depth, expected in ((23, "0." + ".".join(["k"] * 23)), (24, "0." + ".".join(["k"] * 9) + ".... 5 more ....k." + ".".join(["k"] * 9))):
        path = tmp_path / f"shared{depth}.safetensors"
        path.write_bytes(crafted.shared_under_a_deep_path(depth, 1, key="k"))
        assert main(["get", str(path), "1"]) == 0
        assert json.loads(capsys.readouterr().out) == []
        assert main(["get", str(path), "."]) == 0
        assert json.loads(capsys.readouterr().out)[1] == {"$same_as": expected}
        if depth == 23:
            assert main(["get", str(path), expected]) == 0
            assert json.loads(capsys.readouterr().out) == []


# --- 122. the lazy API's messages at the bottom of a thousand levels of long keys ----------------------------------------

def test_case_122_a_deep_message_of_the_lazy_api_is_cut(tmp_path: Path) -> None:
    # Before: every message under 990 keys of 300 ESC characters wrote the whole path, each key quoted to 1,200
    # characters: 1.2 MB a message (KeyError, IndexError, TypeError, path_text).
    path = tmp_path / "deep.safetensors"
    key = "\x1b" * 300
    path.write_bytes(crafted.shared_under_a_deep_path(990, 0, key=json.dumps(key)[1:-1]))
    with ss.open(path) as f:
        node = f.node([0] + [key] * 990)
        quoted = ss._errors.quote(key)
        where = "$[0]" + f"[{quoted}]" * 9 + "[... 971 more ...]" + f"[{quoted}]" * 10
        assert node.path_text == where and len(where) < 25_000
        with pytest.raises(IndexError) as info:
            node[5]
        assert info.value.args == (f"index 5 is out of range for the list of 0 items at {where}",)
        with pytest.raises(TypeError) as wrong:
            f.load([0] + [key] * 990 + ["q"])
        assert wrong.value.args == (f"list node at {where} is indexed by int, not str",)


def test_case_122_a_path_of_24_parts_is_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "deep.safetensors"
    path.write_bytes(crafted.shared_under_a_deep_path(23, 0, key="k"))
    with ss.open(path) as f:
        node = f.node([0] + ["k"] * 23)
        assert node.path_text == '$[0]' + '["k"]' * 23
        with pytest.raises(IndexError) as info:
            node[0]
    assert info.value.args == ("index 0 is out of range for the list of 0 items at $[0]" + '["k"]' * 23,)

"""Issue 14, the command line's and the sharded index's part: crafted files that made `inspect`, `get`, `verify` or a
load of a sharded directory hang, blow up, import a framework or fail outside the error contract. Hangs and blow-ups
run in a subprocess with a timeout and a peak-memory check (VmHWM)."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safestructures as ss
from conftest import MEMORY_MB_SOURCE, run_python, run_python_json
from safestructures import InvalidFileError
from safestructures._cli import main

sys.path.insert(0, str(Path(__file__).parent))
import crafted  # noqa: E402

FRAMEWORKS = ("torch", "tensorflow", "jax", "paddle", "mlx")

#: Runs the command line on sys.argv[1:] and prints its status, output, peak memory and the frameworks imported.
CLI = MEMORY_MB_SOURCE + """
import contextlib, io, json, sys
from safestructures._cli import main
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    status = main(sys.argv[1:])
print(json.dumps({"status": status, "out": out.getvalue(), "err": err.getvalue(), "mb": memory_mb("VmHWM"),
                  "frameworks": [m for m in ("torch", "tensorflow", "jax", "paddle", "mlx") if m in sys.modules]}))
"""

#: Calls load_file or open(...).load() on sys.argv[2] and prints what it raised (its class and message).
LOAD = MEMORY_MB_SOURCE + """
import json, sys
import safestructures as ss
try:
    if sys.argv[1] == "open":
        with ss.open(sys.argv[2]) as f:
            f.load()
    else:
        ss.load_file(sys.argv[2])
    raised = None
except Exception as e:
    raised = [type(e).__name__, isinstance(e, (ss.SafestructuresError, OSError)), str(e)]
print(json.dumps({"raised": raised, "mb": memory_mb("VmHWM")}))
"""


def cli(*argv: Any, timeout: float = 60) -> dict[str, Any]:
    return run_python_json(CLI, *[str(a) for a in argv], timeout=timeout)


def run(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, list[str], list[str]]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err.splitlines()


def index_dir(path: Path, index: str | bytes, shards: dict[str, bytes] | None = None) -> Path:
    path.mkdir()
    (path / ss._sharded.INDEX_NAME).write_bytes(index.encode() if isinstance(index, str) else index)
    for name, data in (shards or {}).items():
        (path / name).write_bytes(data)
    return path


def schema_text(root: Any) -> str:
    return json.dumps({"format": "safestructures", "version": 2, "root": root})


# --- 7 --------------------------------------------------------------------------------------------------------------


def expected_doubling(levels: int, path: str) -> Any:
    """What `get` prints for crafted.doubling("list", levels) at `path`: the second copy of each level named (a path
    of more than 24 parts with its middle counted, as messages cut it: case 121)."""
    if levels == 1:
        return [1, 2]
    parts = (path + ".0").split(".")
    shown = parts if len(parts) <= 24 else [*parts[:10], f"... {len(parts) - 20} more ...", *parts[-10:]]
    return [expected_doubling(levels - 1, path + ".0"), {"$same_as": ".".join(shown)}]


def test_case_07_get_does_not_expand_shared_lists(tmp_path: Path) -> None:
    path = tmp_path / "shared.safetensors"
    path.write_bytes(crafted.shared_lists(40))  # 2.6 KB, 2**40 leaves expanded: get ran for minutes
    for extra in ([], ["--json"]):
        result = cli("get", path, "data", *extra)
        assert (result["status"], result["err"]) == (0, "")
        assert json.loads(result["out"]) == expected_doubling(40, "data")
        assert result["mb"] < 200
    result = cli("inspect", path)
    assert result["status"] == 0 and result["mb"] < 200
    lines = result["out"].splitlines()
    assert len(lines) == 83 and lines[-1] == "    └── [1]: list (2 items)  (same as data.0)"


def test_case_07_shared_structure_under_a_leaf_is_shown_bounded(tmp_path: Path) -> None:
    for leaf in ("slice", "enum", "key"):
        path = tmp_path / f"{leaf}.safetensors"
        path.write_bytes(crafted.shared_under_leaf(27, leaf))  # 1.8 KB: 34 s and 1.95 GB through repr
        for argv in (["inspect", path], ["inspect", "--json", path], ["get", path, ""], ["get", path, "", "--json"]):
            result = cli(*argv)
            assert result["mb"] < 200 and len(result["out"]) < 20_000, (leaf, argv)
            if leaf == "key":
                # A key expanding to 2**27 nodes is past the hashing budget: refused, as a load refuses it.
                assert result["status"] == 1 and "hashing the keys of this file would walk more than its limit" in result["err"]
            else:
                assert (result["status"], result["err"]) == (0, ""), (leaf, argv)
    lines = cli("inspect", tmp_path / "slice.safetensors")["out"].splitlines()
    assert lines[-1] == "└── s: slice = slice((((...), (...)), ((...), (...))), None, None)"
    (tmp_path / "key.safetensors").write_bytes(crafted.shared_under_leaf(12, "key"))
    got = json.loads(cli("get", tmp_path / "key.safetensors", "")["out"])
    # the tuple key as an array, each level's second copy named by its place inside the key ($key0: the first key)
    key = got["$items"][0][0]
    assert got["$items"][0][1] == 1 and key[1] == {"$same_as": "$key0.0"} and key[0][1] == {"$same_as": "$key0.0.0"}


# --- 8 --------------------------------------------------------------------------------------------------------------


def test_case_08_describe_builds_every_leaf_in_one_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ellipsis.safetensors"
    path.write_bytes(crafted.many_leaves(150_000, {"$": "Ellipsis"}))  # 2.5 MB: describe took 54 s
    calls: list[int] = []

    def load_many(self: Any, nodes: list[tuple[int, tuple[Any, ...]]], framework: Any = None, keys: bool = False) -> list[Any]:
        calls.append(len(nodes))
        return [Ellipsis] * len(nodes)

    monkeypatch.setattr(ss.SafeFile, "_load_many", load_many)
    status, out, err = run(capsys, "inspect", path)
    assert (status, err, calls) == (0, [], [150_000])
    assert len(out) == 2 + 150_000 and out[-1] == "└── [149999]: Ellipsis = Ellipsis"


def test_case_08_inspect_of_many_built_leaves_in_a_subprocess(tmp_path: Path) -> None:
    path = tmp_path / "ellipsis.safetensors"
    path.write_bytes(crafted.many_leaves(150_000, {"$": "Ellipsis"}))  # 2.5 MB: more than a minute before
    result = cli("inspect", "--json", path)
    assert result["status"] == 0 and result["mb"] < 600
    tree = json.loads(result["out"])["tree"]
    assert tree["len"] == 150_000 and tree["items"][-1] == {"kind": "Ellipsis", "value": "Ellipsis"}


# --- 9 --------------------------------------------------------------------------------------------------------------


def test_case_09_an_index_of_200k_shards_is_read_in_linear_time(tmp_path: Path) -> None:
    weight_map = {f"t{i}": f"s{i:06d}.safetensors" for i in range(200_000)}  # 6.6 MB: 162 s
    directory = index_dir(tmp_path / "many", json.dumps({"metadata": {"__safestructures__": schema_text({})},
                                                         "weight_map": weight_map}))
    for how in ("load", "open"):
        result = run_python_json(LOAD, how, str(directory), timeout=60)
        assert result["raised"] == ["FileNotFoundError", True,
                                    f"[Errno 2] No such file or directory: '{directory / 's000000.safetensors'}'"]
    result = cli("inspect", directory)
    assert (result["status"], result["err"]) == (
        1, f"safestructures inspect: [Errno 2] No such file or directory: '{directory / 's000000.safetensors'}'\n")


# --- 10 -------------------------------------------------------------------------------------------------------------


def test_case_10_the_command_line_imports_no_framework(tmp_path: Path) -> None:
    script = """
import contextlib, io, json, sys
from safestructures._cli import main
statuses = []
for argv in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        statuses.append(main(argv))
print(json.dumps({"statuses": statuses, "imported": [m for m in %r if m in sys.modules]}))
""" % (FRAMEWORKS,)
    commands = []
    for fw in FRAMEWORKS:
        plain = tmp_path / f"{fw}.safetensors"
        plain.write_bytes(crafted.file_bytes({"t": {"$": "tensor", "name": "t", "fw": fw}}, {"t": ("F32", [2], b"\0" * 8)}))
        # a dtype only torch has: verify fell back to framework=None, which imported the framework the file names
        c32 = tmp_path / f"{fw}-c32.safetensors"
        c32.write_bytes(crafted.file_bytes({"t": {"$": "tensor", "name": "t", "fw": fw, "dtype": "torch.complex32",
                                                  "shape": [2]}}, {"t": ("U8", [8], b"\0" * 8)}))
        for path in (plain, c32):
            commands += [["verify", str(path)], ["inspect", str(path)], ["inspect", "--json", str(path)],
                         ["get", str(path), "t", "--json"], ["get", str(path), "", "--json"],
                         ["get", str(path), "t", "-o", str(tmp_path / f"{path.stem}.npy")]]
    result = run_python_json(script, json.dumps(commands), timeout=120)
    assert result["imported"] == []
    # every command succeeds on the plain files; on the complex32 ones verify and inspect do, get cannot build them
    c32 = [any("-c32." in a for a in argv) for argv in commands]
    assert [s for s, bad in zip(result["statuses"], c32) if not bad] == [0] * 30
    assert [s for s, bad, argv in zip(result["statuses"], c32, commands) if bad and argv[0] != "get"] == [0] * 15


def test_case_10_verify_checks_torch_only_dtypes_against_their_node(tmp_path: Path) -> None:
    root = {"ok": {"$": "tensor", "name": "a", "fw": "torch", "dtype": "torch.complex32", "shape": [2]},
            "rest": [1, {"$": "tensor", "name": "b", "fw": "numpy"}, {"$": "date", "iso": "2024-01-02"}]}
    tensors = {"a": ("U8", [8], b"\0" * 8), "b": ("F32", [1], b"\0" * 4)}
    path = tmp_path / "c32.safetensors"
    path.write_bytes(crafted.file_bytes(root, tensors))
    result = cli("verify", path)
    assert (result["status"], result["out"], result["frameworks"]) == (
        0, f"OK: {path}: safestructures v2, 2 tensors, 12 B of tensor data, no metadata\n", [])
    assert result["err"].startswith("safestructures verify: note: no checksums found")  # a file written by hand
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(crafted.file_bytes({**root, "ok": {**root["ok"], "shape": [3]}}, tensors))
    result = cli("verify", bad)
    assert (result["status"], result["err"], result["frameworks"]) == (
        1, f'safestructures verify: {bad}: at $["ok"]: shape [3] of torch.complex32 needs 12 bytes (U8), tensor "a" '
        "holds 8 (U8)\n", [])
    # the rest of the data is still built: a bad date next to a good complex32 tensor fails verify
    worse = tmp_path / "worse.safetensors"
    worse.write_bytes(crafted.file_bytes({**root, "rest": [{"$": "date", "iso": "2024-13-45"}]}, tensors))
    result = cli("verify", worse)
    assert result["status"] == 1 and result["err"].startswith(f"safestructures verify: {worse}: ") and result["frameworks"] == []


# --- 11 -------------------------------------------------------------------------------------------------------------


def shard_bytes() -> bytes:
    return crafted.file_bytes({}, {})


@pytest.mark.parametrize("case", ["surrogate key", "surrogate schema", "deep weight_map", "deep metadata", "deep dcp"])
def test_case_11_bad_indexes_raise_errors_of_the_contract(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shard = "model-00001-of-00001.safetensors"
    deep = "[" * 100_000 + "]" * 100_000
    index, message = {
        "surrogate key": ('{"metadata": {"__safestructures__": %s}, "weight_map": {"\\ud800": "%s"}}' % (json.dumps(schema_text({})), shard),
                          'a tensor name of weight_map holds a lone surrogate ("\\ud800"), which is not valid Unicode'),
        "surrogate schema": ('{"metadata": {"__safestructures__": "{\\"format\\": \\"safestructures\\", \\"version\\": 2, '
                             '\\"root\\": \\"\\ud800\\"}"}, "weight_map": {}}',
                             'metadata "__safestructures__" holds a lone surrogate ("\\ud800"), which is not valid Unicode'),
        "deep weight_map": ('{"metadata": {}, "weight_map": {"a": %s}}' % deep, "the index nests too deeply to be one"),
        "deep metadata": ('{"metadata": {"x": %s}, "weight_map": {}}' % deep, "the index nests too deeply to be one"),
        "deep dcp": ('{"metadata": {"safestructures_dcp": %s}, "weight_map": {}}' % deep, "the index nests too deeply to be one"),
    }[case]
    directory = index_dir(tmp_path / "d", index, {shard: shard_bytes()})
    full = f"{directory / ss._sharded.INDEX_NAME}: {message}"
    for load in (ss.load_file, lambda p: ss.open(p).load()):
        with pytest.raises(InvalidFileError) as raised:
            load(directory)
        assert str(raised.value) == full
    for command in (["inspect"], ["inspect", "--json"], ["verify"], ["get", "", "--json"]):
        argv = [command[0], directory, *command[1:]]
        assert run(capsys, *argv) == (1, [], [f"safestructures {command[0]}: {full}"])


def test_case_11_values_past_python_s_limits_are_shown(tmp_path: Path) -> None:
    import fractions

    path = tmp_path / "big.safetensors"
    ss.save_file({"big": 10**5000, "fr": fractions.Fraction(10**5000 + 1, 3), "dt": np.datetime64("NaT"), 1: "x"}, path)
    result = cli("inspect", path)
    assert (result["status"], result["err"]) == (0, "")
    assert result["out"].splitlines()[2:] == ["├── big: int = <int of 16,610 bits>", "├── fr: Fraction = Fraction(<int of 16,610 bits>, 3)",
                                              "├── dt: npscalar = np.datetime64('NaT','generic')", "└── 1: str = 'x'"]
    result = cli("inspect", "--json", path)
    items = json.loads(result["out"])["tree"]["items"]
    assert result["status"] == 0 and items[0] == ["big", {"kind": "int", "value": "<int of 16,610 bits>"}]
    result = cli("get", path, "")
    got = json.loads(result["out"])
    assert result["status"] == 0 and int(got["$items"][0][1]["$int_hex"], 16) == 10**5000
    assert got["$items"][1] == ["fr", {"$repr": "Fraction(<int of 16,610 bits>, 3)"}]


# --- 12 -------------------------------------------------------------------------------------------------------------


def test_case_12_fifos_are_refused_without_blocking(tmp_path: Path) -> None:
    shard = "model-00001-of-00001.safetensors"
    fifo = tmp_path / "fifo.safetensors"
    os.mkfifo(fifo)
    fifo_index = tmp_path / "fifo-index"
    fifo_index.mkdir()
    os.mkfifo(fifo_index / ss._sharded.INDEX_NAME)
    fifo_shard = index_dir(tmp_path / "fifo-shard", json.dumps({"metadata": {"__safestructures__": schema_text(
        {"w": {"$": "tensor", "name": "w", "fw": "numpy"}})}, "weight_map": {"w": shard}}))
    os.mkfifo(fifo_shard / shard)
    fifo_plain = index_dir(tmp_path / "fifo-plain", json.dumps({"metadata": {}, "weight_map": {"w": shard}}))
    os.mkfifo(fifo_plain / shard)
    index = fifo_index / ss._sharded.INDEX_NAME
    for target, message in ((fifo_index, f"{index}: the index is a FIFO, not a regular file"),
                            (fifo_shard, f"{fifo_shard / shard}: the shard is a FIFO, not a regular file")):
        for how in ("load", "open"):
            assert run_python_json(LOAD, how, str(target), timeout=60)["raised"] == ["InvalidFileError", True, message]
    for target, message in ((fifo, f"{fifo}: the file is a FIFO, not a regular file"),
                            (fifo_index, f"{index}: the index is a FIFO, not a regular file"),
                            (index, f"{index}: the index is a FIFO, not a regular file"),
                            (fifo_shard, f"{fifo_shard / shard}: the shard is a FIFO, not a regular file"),
                            (fifo_plain, f"{fifo_plain / shard}: the shard is a FIFO, not a regular file")):
        for command in ("inspect", "verify"):
            result = cli(command, target)
            assert (result["status"], result["err"]) == (1, f"safestructures {command}: {message}\n")
    with pytest.raises(InvalidFileError, match="the file is a FIFO, not a regular file"):
        ss._sharded.check_regular_file(str(fifo))


def test_case_12_links_to_regular_files_work_as_in_the_hugging_face_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = tmp_path / "saved"
    ss.save_file({"w": np.arange(4, dtype=np.float32)}, saved, max_shard_size="1KB")
    repo = tmp_path / "models--x"
    (repo / "blobs").mkdir(parents=True)
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    for k, name in enumerate(sorted(os.listdir(saved))):
        os.replace(saved / name, repo / "blobs" / f"hash{k}")
        os.symlink(f"../../blobs/hash{k}", snapshot / name)
    assert stat.S_ISLNK(os.lstat(snapshot / ss._sharded.INDEX_NAME).st_mode)
    assert ss.load_file(snapshot)["w"].tolist() == [0, 1, 2, 3]
    assert run(capsys, "verify", snapshot)[0] == 0
    assert run(capsys, "get", snapshot, "w", "--json")[:2] == (0, ["[0.0, 1.0, 2.0, 3.0]"])


# --- 14 -------------------------------------------------------------------------------------------------------------


def test_case_14_a_sharded_save_removes_temporaries_of_killed_saves(tmp_path: Path) -> None:
    directory = tmp_path / "ckpt"
    ss.save_file({"w": np.zeros(4)}, directory, max_shard_size="1KB")
    dead, alive = "a" * 24, "b" * 24
    leftovers = [f".model-1.{dead}.partial", f".model-2.{dead}.partial", f".model.safetensors.index.json.{dead}.x1y2.partial",
                 f".model.{dead}.lock"]
    running = [f".model-1.{alive}.partial", f".model.{alive}.lock"]
    for name in leftovers + running:
        (directory / name).write_bytes(b"x" * 100)
    # a save running now in another process holds its lock file locked (flock: another open of it cannot lock it)
    fd = os.open(directory / f".model.{alive}.lock", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        ss.save_file({"w": np.ones(4)}, directory, max_shard_size="1KB")
        assert sorted(n for n in os.listdir(directory) if n.startswith(".")) == sorted(running)
    finally:
        os.close(fd)
    # its save was killed: the next save removes its files too
    ss.save_file({"w": np.ones(4)}, directory, max_shard_size="1KB")
    assert sorted(os.listdir(directory)) == ["model-00001-of-00001.safetensors", "model.safetensors.index.json"]
    assert ss.load_file(directory)["w"].tolist() == [1, 1, 1, 1]


def test_case_14_a_sharded_save_killed_with_sigkill_leaves_files_the_next_save_removes(tmp_path: Path) -> None:
    directory = tmp_path / "ckpt"
    script = """
import os, signal, sys, numpy as np, safestructures as ss
from safestructures import _sharded
real = _sharded._core.save_sharded
def save_then_die(*args):
    real(*args)
    os.kill(os.getpid(), signal.SIGKILL)  # after the shards are written, before any rename
_sharded._core.save_sharded = save_then_die
ss.save_file({"a": np.zeros(300), "b": np.zeros(300)}, sys.argv[1], max_shard_size="1KB")
"""
    result = run_python(script, str(directory), timeout=60)
    assert result.returncode == -9
    left = sorted(os.listdir(directory))
    assert len(left) == 3 and all(n.startswith(".model") for n in left)  # two shards and the save's lock file
    ss.save_file({"w": np.ones(4)}, directory, max_shard_size="1KB")
    assert sorted(os.listdir(directory)) == ["model-00001-of-00001.safetensors", "model.safetensors.index.json"]


def test_case_14_a_failed_get_leaves_no_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "view.safetensors"
    path.write_bytes(crafted.expanded_view([2**30, 2**30]))
    out = tmp_path / "out.npy"
    status, _out, err = run(capsys, "get", path, "view", "-o", out)
    assert status == 1 and len(err) == 1 and not out.exists() and sorted(os.listdir(tmp_path)) == ["view.safetensors"]
    out.write_bytes(b"old")
    assert run(capsys, "get", path, "view", "-o", out, "--force")[0] == 1 and out.read_bytes() == b"old"
    assert run(capsys, "get", path, "base", "-o", out) == (1, [], [f"safestructures get: {out} exists (--force replaces it)"])
    assert run(capsys, "get", path, "base", "-o", out, "--force")[0] == 0 and np.load(out).tolist() == [1.5]
    assert sorted(os.listdir(tmp_path)) == ["out.npy", "view.safetensors"]


# --- 15 -------------------------------------------------------------------------------------------------------------


def test_case_15_get_refuses_a_view_past_its_byte_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "view.safetensors"
    path.write_bytes(crafted.expanded_view([2**30, 2**30]))
    limit = 4 * path.stat().st_size + (256 << 20)
    result = cli("get", path, "view", "-o", tmp_path / "out.npy")
    assert (result["status"], result["err"]) == (
        1, f'safestructures get: {path}: $["view"] is float32 [1073741824, 1073741824]: written out it takes '
        f"4,611,686,018,427,387,904 bytes, past the limit of {limit:,} (4 times the file's size plus 256 MiB; "
        "--max-bytes N raises it)\n")
    assert result["mb"] < 200
    result = cli("get", path, "view", "--json")
    assert result["status"] == 1 and result["mb"] < 200
    assert result["err"] == (f'safestructures get: {path}: $["view"]: writing the values of this tensor (float32 '
                             f"[1073741824, 1073741824]) takes 4,611,686,018,427,387,904 bytes, past the limit of "
                             f"{limit:,} bytes left (--max-bytes raises it)\n")
    small = tmp_path / "small.safetensors"
    small.write_bytes(crafted.expanded_view([1000]))
    assert run(capsys, "get", small, "view", "-o", tmp_path / "a.npy", "--max-bytes", "3999")[0] == 1
    assert run(capsys, "get", small, "view", "-o", tmp_path / "a.npy", "--max-bytes", "4000")[0] == 0
    assert np.load(tmp_path / "a.npy").tolist() == [1.5] * 1000


# --- 16 -------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["object", "ext"])
def test_case_16_chains_of_wrapped_values_are_walked_once(tmp_path: Path, tag: str) -> None:
    path = tmp_path / "chain.safetensors"
    path.write_bytes(crafted.wrapped_chain(40_000, tag))  # 3 MB: 5.2 s at 4,000 nodes, quadratic, before
    result = cli("inspect", "--json", path)
    assert result["status"] == 0 and result["mb"] < 600
    tree = json.loads(result["out"])["tree"]
    assert tree["len"] == 40_000
    script = """
import json, sys
import safestructures as ss
with ss.open(sys.argv[1]) as f:
    described = f.tree.describe()
    print(json.dumps([len(described["items"]), f[39_999].kind, f[39_999].type_name]))
"""
    assert run_python_json(script, str(path), timeout=60) == [40_000, tag, "T"]


# --- 17 -------------------------------------------------------------------------------------------------------------


def test_case_17_describe_holds_one_link_per_path_not_the_whole_path(tmp_path: Path) -> None:
    path = tmp_path / "deep.safetensors"
    path.write_bytes(crafted.deep_and_wide(990, 300_000))  # 7.8 MB: describe held every node's 991-part path, 2.4 GB
    script = MEMORY_MB_SOURCE + """
import json, sys
import safestructures as ss
with ss.open(sys.argv[1]) as f:
    node = f.tree.describe()
    depth = 0
    while node["kind"] == "list" and len(node["items"]) == 1:
        node, depth = node["items"][0], depth + 1
    print(json.dumps([depth, node["len"], node["items"][-1], memory_mb("VmHWM") < 800]))
"""
    assert run_python_json(script, str(path), timeout=120) == [990, 300_000, {"kind": "tuple", "len": 0, "items": []}, True]


def test_case_17_inspect_json_of_deep_data_is_linear_in_the_output(tmp_path: Path) -> None:
    path = tmp_path / "deep.safetensors"
    path.write_bytes(crafted.deep_and_wide(990, 20_000))  # 620 KB: more than 120 s and 1.3 GB before, no output
    result = cli("inspect", "--json", path, timeout=120)
    assert result["status"] == 0 and result["mb"] < 300
    lines = result["out"].splitlines()
    assert max(len(line) - len(line.lstrip(" ")) for line in lines) == 128  # indented 64 levels at the most
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)  # json's own decoder recurses once a level
    try:
        node = json.loads(result["out"])["tree"]
    finally:
        sys.setrecursionlimit(limit)
    for _ in range(990):
        node = node["items"][0]
    assert (node["len"], node["items"][-1]) == (20_000, {"kind": "tuple", "len": 0, "items": []})


def test_case_17_get_of_deep_data_holds_one_link_per_path(tmp_path: Path) -> None:
    path = tmp_path / "deep.safetensors"
    path.write_bytes(crafted.deep_and_wide(990, 300_000, leaf=[]))  # 900 KB: 9.2 s and 2.5 GB before
    result = cli("get", path, ".", timeout=120)
    assert result["status"] == 0 and result["mb"] < 600
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)  # json's own decoder recurses once a level
    try:
        value = json.loads(result["out"])
    finally:
        sys.setrecursionlimit(limit)
    for _ in range(990):
        (value,) = value
    assert len(value) == 300_000 and value[-1] == []


# --- 18 -------------------------------------------------------------------------------------------------------------


def keys_that_join(tmp_path: Path) -> Path:
    """A dict that holds itself under the keys ``a``, ``a.a`` and ``a.a.a`` (and 1 under ``x``): a dotted path of n
    ``a`` parts splits into such keys in about 1.8**n ways, each of which the walks once tried (hours at 40 parts)."""
    data: dict[str, Any] = {"x": 1}
    for parts in range(1, 4):
        data[".".join(["a"] * parts)] = data
    path = tmp_path / "joins.safetensors"
    ss.save_file(data, path)
    assert path.stat().st_size < 400
    return path


def test_case_18_get_tries_each_key_once_per_part(tmp_path: Path) -> None:
    path = keys_that_join(tmp_path)
    missing = cli("get", path, "a." * 60 + "zz", timeout=60)
    assert (missing["status"], missing["out"]) == (1, "")
    # longest keys first: the walk that got furthest is the one of 20 "a.a.a" keys
    assert missing["err"] == ("safestructures get: no key 'zz' at $" + '["a.a.a"]' * 20
                              + " (a dict of 4 items: 'x', 'a', 'a.a', 'a.a.a')\n")
    found = cli("get", path, "a." * 60 + "x", timeout=60)
    assert (found["status"], found["out"], found["err"]) == (0, "1\n", "")


def test_case_18_node_tries_each_key_once_per_part(tmp_path: Path) -> None:
    script = """
import json, sys
import safestructures as ss
with ss.open(sys.argv[1]) as f:
    found = f.node("a." * 60 + "x")
    try:
        f.node("a." * 60 + "zz")
    except KeyError as e:
        missing = e.args[0]
    print(json.dumps([found.path_text, found.load(), missing]))
"""
    # longest keys first, as `get` walks: 20 "a.a.a" keys, and the error of the walk that got furthest
    assert run_python_json(script, str(keys_that_join(tmp_path)), timeout=60) == [
        "$" + '["a.a.a"]' * 20 + '["x"]', 1, "'zz' is not a key of the dict at $" + '["a.a.a"]' * 20]

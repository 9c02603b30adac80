"""Checksums written with the data (docs/format.md section 8): exact XXH3-64 digests of every tensor and of the
header, a flipped byte in each tensor of a file and of each shard found and named by every way of verifying, a changed
value in the structure found, partial loads checking only what they read, stock readers unaffected, and files without
checksums loading as before."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xxhash

import safestructures as ss
from safestructures import IntegrityError, InvalidArgumentError
from safestructures._cli import main
from conftest import import_framework, read_header, run_python_json

safetensors = pytest.importorskip("safetensors")
from safetensors import safe_open  # noqa: E402

KEY = "__safestructures_checksums__"
INDEX = "model.safetensors.index.json"


def data() -> dict[str, Any]:
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    return {
        "model": {"w": base.T, "b": np.ones(5, np.float64), "big": np.arange(5 << 20, dtype=np.uint8)},  # w strided
        "ids": [np.array([7, 8, 9], np.int16), np.zeros((2, 0), np.float32)],
        "step": 12,
        "name": "run-a",
    }


def header_and_data(path: Path) -> tuple[dict[str, Any], int]:
    """(the header as JSON, where the data buffer starts)."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), 8 + n


def flipped(path: Path, at: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0x40
    path.write_bytes(bytes(raw))


def cli(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, list[str], list[str]]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err.splitlines()


def test_digests_are_xxh3_of_each_tensors_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f.safetensors"
    ss.save_file(data(), path, {"run": "r1"})
    header, start = header_and_data(path)
    entry = json.loads(header["__metadata__"][KEY])
    raw = path.read_bytes()
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    assert entry["algorithm"] == "xxh3-64" and len(entry["header"]) == 16
    assert sorted(entry["tensors"]) == sorted(tensors)
    for name, info in tensors.items():
        begin, end = info["data_offsets"]
        assert entry["tensors"][name] == xxhash.xxh3_64_hexdigest(raw[start + begin:start + end]), name
    # The strided tensor is hashed as written, in C order.
    assert entry["tensors"]["model.w"] == xxhash.xxh3_64_hexdigest(np.ascontiguousarray(data()["model"]["w"]).tobytes())
    # The caller's metadata and the data come back without the entry.
    metadata = ss.load_metadata(path)
    assert metadata is not None and KEY not in metadata and metadata["run"] == "r1"
    loaded = ss.load_file(path, verify=True)
    assert loaded["step"] == 12 and loaded["name"] == "run-a"
    np.testing.assert_array_equal(loaded["model"]["w"], data()["model"]["w"])
    with ss.open(path) as f:
        assert f.metadata == {"run": "r1"}


def test_the_header_digest_is_the_specified_one(tmp_path: Path) -> None:
    """docs/format.md's definition, computed here independently of the core: the header's bytes (padding included)
    without the checksums entry's string content."""
    path = tmp_path / "f.safetensors"
    ss.save_file({"a": np.ones(3, np.float32), "b": [np.zeros(2, np.int8)], "s": 'quote " é'}, path, {"run": "r1", "z": "é"})
    header, start = header_and_data(path)
    text = path.read_bytes()[8:start]
    opening = f'"{KEY}":"'.encode()
    assert text.count(opening) == 1
    begin = text.index(opening) + len(opening)
    end = text.index(b'}}"', begin) + 2  # the entry's JSON ends its two objects; its string closes after them
    assert json.loads(b'"' + text[begin:end] + b'"') == header["__metadata__"][KEY]
    assert json.loads(header["__metadata__"][KEY])["header"] == xxhash.xxh3_64_hexdigest(text[:begin] + text[end:])


def test_a_flipped_byte_in_each_tensor_is_found_and_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.safetensors"
    ss.save_file(data(), good)
    header, start = header_and_data(good)
    paths = {"model.w": '$["model"]["w"]', "model.b": '$["model"]["b"]', "model.big": '$["model"]["big"]',
             "ids.0": '$["ids"][0]'}
    for name, where in paths.items():
        begin, end = header[name]["data_offsets"]
        for at in (begin, end - 1):
            bad = tmp_path / "bad.safetensors"
            shutil.copyfile(good, bad)
            flipped(bad, start + at)
            with pytest.raises(IntegrityError) as e:
                ss.load_file(bad, verify=True)
            assert e.value.code == "ChecksumMismatch"
            assert str(e.value) == (f'{bad}: at {where}: tensor "{name}" does not match its checksum: its bytes changed '
                                    "since the save")
            with pytest.raises(IntegrityError, match=f'tensor "{name}" does not match'):
                ss.load(bad.read_bytes(), verify=True)
            assert cli(capsys, "verify", bad) == (1, [], [
                f'safestructures verify: {bad}: tensor "{name}" does not match its checksum: its bytes changed since the save'])
            # Without verify the load reads the bytes as they are.
            assert isinstance(ss.load_file(bad)["model"]["b"], np.ndarray)
    assert cli(capsys, "verify", good)[0] == 0


def test_verify_names_every_damaged_tensor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "f.safetensors"
    ss.save_file(data(), path)
    header, start = header_and_data(path)
    for name in ("model.b", "ids.0"):
        flipped(path, start + header[name]["data_offsets"][0])
    status, out, err = cli(capsys, "verify", path)
    assert status == 1 and out == []
    assert sorted(err) == sorted(f'safestructures verify: {path}: tensor "{n}" does not match its checksum: its bytes changed '
                                 "since the save" for n in ("model.b", "ids.0"))


@pytest.mark.parametrize("old, new", [('\\"step\\":12', '\\"step\\":13'), ('"run":"r1"', '"run":"r2"'), ('[4,3]', '[3,4]')])
def test_a_changed_value_in_the_structure_is_found(tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str) -> None:
    path = tmp_path / "f.safetensors"
    ss.save_file(data(), path, {"run": "r1"})
    raw = path.read_bytes()
    assert raw.count(old.encode()) == 1
    changed = raw.replace(old.encode(), new.encode())
    assert len(changed) == len(raw)
    path.write_bytes(changed)
    with pytest.raises(IntegrityError) as e:
        ss.load_file(path, verify=True)
    assert str(e.value) == (f"{path}: the structure does not match its checksum: the header's metadata or tensor entries "
                            "changed since the save")
    with ss.open(path) as f:
        with pytest.raises(IntegrityError, match="the structure does not match"):
            f.load("name", verify=True)
    status, _out, err = cli(capsys, "verify", path)
    assert status == 1 and err == [f"safestructures verify: {path}: the structure does not match its checksum: the header's "
                                   "metadata or tensor entries changed since the save"]


def test_partial_loads_check_only_what_they_read(tmp_path: Path) -> None:
    path = tmp_path / "f.safetensors"
    ss.save_file(data(), path)
    header, start = header_and_data(path)
    flipped(path, start + header["model.b"]["data_offsets"][0])
    with ss.open(path) as f:
        assert f.load("step", verify=True) == 12
        np.testing.assert_array_equal(f.load("ids", verify=True)[0], np.array([7, 8, 9], np.int16))
        np.testing.assert_array_equal(f["model"]["w"].load(verify=True), data()["model"]["w"])
        with pytest.raises(IntegrityError, match=r'at \$\["model"\]\["b"\]: tensor "model.b" does not match'):
            f["model"]["b"].load(verify=True)
        with pytest.raises(IntegrityError, match='tensor "model.b"'):
            f.load(verify=True)
        assert f["model"]["b"].load().dtype == np.float64  # unverified: as the bytes are


def test_stock_readers_read_files_with_checksums(tmp_path: Path) -> None:
    path = tmp_path / "f.safetensors"
    ss.save_file(data(), path, {"run": "r1"})
    with safe_open(str(path), "np") as f:
        assert sorted(f.keys()) == ["ids.0", "ids.1", "model.b", "model.big", "model.w"]
        np.testing.assert_array_equal(f.get_tensor("model.w"), data()["model"]["w"])
        assert f.metadata()["run"] == "r1" and KEY in f.metadata()
    flat = tmp_path / "flat.safetensors"
    ss.save_tensors({"x": np.arange(4, dtype=np.int32)}, flat)
    with safe_open(str(flat), "np") as f:
        np.testing.assert_array_equal(f.get_tensor("x"), np.arange(4, dtype=np.int32))
    assert ss.load_metadata(flat) is None  # only checksums: none of the caller's


def test_files_without_checksums_load_as_before(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "f.safetensors"
    ss.save_file(data(), path, checksums=False)
    assert KEY not in read_header(path).get("__metadata__", {})
    assert ss.load_file(path, verify=True)["step"] == 12
    assert ss.load(ss.save({"a": 1}, checksums=False), verify=True) == {"a": 1}
    status, out, err = cli(capsys, "verify", path)
    assert status == 0 and out[0].startswith("OK: ") and err == [
        "safestructures verify: note: no checksums found (saved without them, before them, or by another tool): the layout "
        "and the structure were checked, not the tensors' bytes"]
    # The flat writer without checksums gives the reference writer's bytes.
    from safetensors.numpy import save as st_save

    arrays = {"x": np.arange(6, dtype=np.float32), "y": np.ones(2, np.int8)}
    flat = tmp_path / "flat.safetensors"
    ss.save_tensors(arrays, flat, checksums=False)
    assert flat.read_bytes() == st_save(arrays)
    assert ss.load_tensors(flat, verify=True)["y"].dtype == np.int8


def test_the_key_is_reserved(tmp_path: Path) -> None:
    for save in (lambda m: ss.save_file({"a": 1}, tmp_path / "f", m), lambda m: ss.save({"a": 1}, m),
                 lambda m: ss.save_tensors({"x": np.ones(1)}, tmp_path / "g", m),
                 lambda m: ss.save_file({"a": np.ones(1)}, tmp_path / "d", m, max_shard_size=100)):
        with pytest.raises(InvalidArgumentError, match="reserved"):
            save({KEY: "{}"})


def test_load_tensors_verifies(tmp_path: Path) -> None:
    path = tmp_path / "flat.safetensors"
    ss.save_tensors({"x": np.arange(8, dtype=np.int64), "y": np.ones(3)}, path, {"k": "v"})
    header, start = header_and_data(path)
    flipped(path, start + header["y"]["data_offsets"][1] - 1)
    assert ss.load_tensors(path)["x"][7] == 7
    with pytest.raises(IntegrityError, match=f'{path}: tensor "y" does not match its checksum'):
        ss.load_tensors(path, verify=True)


def test_malformed_entries_raise_integrity_errors(tmp_path: Path) -> None:
    path = tmp_path / "f.safetensors"
    ss.save_file({"a": np.ones(2)}, path)
    raw = path.read_bytes()
    bad = raw.replace(b'xxh3-64', b'xxh3-32')
    path.write_bytes(bad)
    assert ss.load_file(path)["a"].tolist() == [1.0, 1.0]  # a plain load does not read the entry
    with pytest.raises(IntegrityError) as e:
        ss.load_file(path, verify=True)
    assert e.value.code == "ChecksumsInvalid" and 'does not name the algorithm "xxh3-64"' in str(e.value)


CRAFTED_ENTRIES = """
import json, sys, time
import numpy as np
import safestructures as ss
from safestructures import IntegrityError

KEY = "__safestructures_checksums__"
ok = "0" * 16
path = sys.argv[1]
entries = {
    # 400,000 digests for a file of one tensor: refused by the size bound before they are read one by one.
    "many": json.dumps({"algorithm": "xxh3-64", "header": ok, "tensors": {f"t{i}": ok for i in range(400_000)}}),
    # 100,000 levels of nesting where a digest should be.
    "deep": '{"algorithm":"xxh3-64","header":"' + ok + '","tensors":{"x":' + "[" * 100_000 + "]" * 100_000 + "}}",
    "not json": "{" * 50_000,
    # One tensor's digest twice, the second name spelled by an escape (before: "not JSON of the expected size").
    "a digest twice": '{"algorithm":"xxh3-64","header":"' + ok + '","tensors":{"x":"' + ok + '","\\u0078":"' + ok + '"}}',
}
out = {}
for name, entry in entries.items():
    ss.save_tensors({"x": np.arange(4, dtype=np.uint8)}, path, {KEY: entry}, checksums=False)  # copied as any key
    started = time.perf_counter()
    try:
        ss.load_tensors(path, verify=True)
        out[name] = "loaded"
    except IntegrityError as e:
        out[name] = [e.code, str(e).split(": ", 1)[1]]
    out[name + " seconds"] = time.perf_counter() - started
print(json.dumps(out))
"""


def test_crafted_entries_are_refused_in_bounded_work(tmp_path: Path) -> None:
    out = run_python_json(CRAFTED_ENTRIES, str(tmp_path / "f.safetensors"), timeout=120)
    entry = f'the checksums entry "{KEY}"'
    # The parser's own words, naming the entry: the file has one tensor, so the entry may hold 18 nodes.
    assert out["many"] == ["ChecksumsInvalid", f"{entry} holds more than 18 nodes"]
    assert out["deep"] == ["ChecksumsInvalid", f"{entry} nests deeper than 8 JSON levels"]
    assert out["not json"] == ["ChecksumsInvalid", f"{entry} is not valid JSON: The JSON document has an improper "
                                                   "structure: missing or superfluous commas, braces, missing keys, etc."]
    assert out["a digest twice"] == ["ChecksumsInvalid", f"{entry}'s JSON object at $[\"tensors\"] holds the key \"x\" twice"]
    for name in ("many", "deep", "not json", "a digest twice"):
        assert out[name + " seconds"] < 10, name  # generous: each takes milliseconds


# --- sharded saves ----------------------------------------------------------------------------------------------


def sharded(tmp_path: Path) -> Path:
    directory = tmp_path / "ckpt"
    ss.save_file(data(), directory, {"run": "s"}, max_shard_size=4096)
    return directory


def test_the_index_records_each_shards_digest(tmp_path: Path) -> None:
    directory = sharded(tmp_path)
    index = json.loads((directory / INDEX).read_text())
    entry = json.loads(index["metadata"][KEY])
    shards = sorted(p.name for p in directory.glob("model-*.safetensors"))
    assert sorted(entry["shards"]) == shards and len(shards) >= 3
    for name in shards:
        shard_entry = read_header(directory / name)["__metadata__"][KEY]
        assert entry["shards"][name] == xxhash.xxh3_64_hexdigest(shard_entry.encode())
    with ss.open(directory) as f:
        assert f.metadata == {"run": "s"}
    assert ss.load_file(directory, verify=True)["step"] == 12


def test_a_flipped_byte_in_each_shard_is_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = sharded(tmp_path)
    for shard in sorted(p.name for p in good.glob("model-*.safetensors")):
        directory = tmp_path / "copy"
        shutil.rmtree(directory, ignore_errors=True)
        shutil.copytree(good, directory)
        header, start = header_and_data(directory / shard)
        names = [k for k, v in header.items() if k != "__metadata__" and v["data_offsets"][1] > v["data_offsets"][0]]
        if not names:
            continue
        flipped(directory / shard, start + header[names[0]]["data_offsets"][0])
        with pytest.raises(IntegrityError, match=f'tensor "{names[0]}" does not match its checksum'):
            ss.load_file(directory, verify=True)
        status, _out, err = cli(capsys, "verify", directory)
        assert status == 1 and err == [f'safestructures verify: {directory / shard}: tensor "{names[0]}" does not match its '
                                       "checksum: its bytes changed since the save"]


def test_a_self_consistent_shard_that_is_not_the_saved_one_is_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A shard whose bytes changed and whose own checksums were rewritten to match: only the index's digest finds it."""
    directory = sharded(tmp_path)
    shard = directory / "model-00001-of-00003.safetensors"
    header, start = header_and_data(shard)
    name = next(k for k in header if k != "__metadata__")
    raw = bytearray(shard.read_bytes())
    begin, end = header[name]["data_offsets"]
    raw[start + begin] ^= 0x40
    entry = json.loads(header["__metadata__"][KEY])
    old = xxhash.xxh3_64_hexdigest(bytes(shard.read_bytes()[start + begin:start + end]))
    new = xxhash.xxh3_64_hexdigest(bytes(raw[start + begin:start + end]))
    assert entry["tensors"][name] == old
    shard.write_bytes(bytes(raw).replace(old.encode(), new.encode()))
    with pytest.raises(IntegrityError) as e:
        ss.load_file(directory, verify=True)
    assert str(e.value) == (f"{directory / INDEX}: shard {shard.name} does not match the checksum the index records of it "
                            "(the shard changed, or is another save's)")
    status, _out, err = cli(capsys, "verify", directory)
    assert status == 1 and err == [f"safestructures verify: {e.value}"]


def test_a_changed_index_is_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = sharded(tmp_path)
    index = directory / INDEX
    text = index.read_text()
    index.write_text(text.replace('"run": "s"', '"run": "t"'))
    with pytest.raises(IntegrityError) as e:
        ss.load_file(directory, verify=True)
    assert str(e.value) == (f"{index}: the index's structure does not match its checksum: its metadata or weight map changed "
                            "since the save")
    assert ss.load_file(directory)["step"] == 12
    assert cli(capsys, "verify", directory)[0] == 1


def test_sharded_saves_without_checksums(tmp_path: Path) -> None:
    directory = tmp_path / "ckpt"
    ss.save_file(data(), directory, max_shard_size=4096, checksums=False)
    assert KEY not in json.loads((directory / INDEX).read_text())["metadata"]
    assert ss.load_file(directory, verify=True)["name"] == "run-a"


def test_distributed_checkpoints_carry_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch = import_framework("torch")
    from safestructures import distributed

    state = {"w": torch.arange(6, dtype=torch.float32), "step": 3}
    distributed.save(state, tmp_path / "dcp")
    files = sorted((tmp_path / "dcp").glob("*.safetensors"))
    assert files and all(KEY in read_header(p)["__metadata__"] for p in files)
    assert ss.load_file(tmp_path / "dcp", verify=True)["step"] == 3
    assert cli(capsys, "verify", tmp_path / "dcp")[0] == 0
    tensor_file = next(p for p in files if any(k != "__metadata__" for k in read_header(p)))
    header, start = header_and_data(tensor_file)
    name = next(k for k in header if k != "__metadata__")
    flipped(tensor_file, start + header[name]["data_offsets"][0])
    with pytest.raises(IntegrityError, match=f'tensor "{name}" does not match'):
        ss.load_file(tmp_path / "dcp", verify=True)
    assert cli(capsys, "verify", tmp_path / "dcp")[0] == 1

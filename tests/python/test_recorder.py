"""Recordings (safestructures.Recorder): records appended to one file as they come, committed at each flush; the file
loads with exactly the records of the last completed flush, whatever happened since (a reader in another process,
a SIGKILL at any moment, a commit cut short), resumes with mode="a", and reads with the stock safetensors reader."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import safestructures as ss
from safestructures import InvalidArgumentError, InvalidFileError, UnsupportedTypeError
from safestructures._format import RECORDING_KEY, RECORDING_PADDING, SCHEMA_KEY
from conftest import assert_same, run_python_json, start_python

# Record i of a test run, the same in the test and in its subprocesses: containers, scalars and arrays of a few
# dtypes, sized by i (some empty).
RECORD_SOURCE = """
import numpy as np
def record(i):
    rng = np.random.default_rng(i)
    dtype = (np.float32, np.int64, np.float16, np.uint8, np.bool_)[i % 5]
    return {"i": i, "f": i / 7, "s": "r" * (i % 3), "t": (i, None, i % 2 == 0),
            "x": rng.integers(0, 100, size=(i % 4, 3)).astype(dtype), "y": [np.full(i % 5, i, np.float64)]}
"""
_namespace: dict[str, Any] = {}
exec(RECORD_SOURCE, _namespace)
record = _namespace["record"]


def recorded(path: Path) -> Any:
    return ss.load_file(path)


def test_thousands_of_appends_reload_exactly(tmp_path: Path) -> None:
    path = tmp_path / "rec.safetensors"
    with ss.Recorder(path, fsync=False, flush_bytes=4096, header_room=4096) as rec:
        for i in range(3000):
            rec.append(record(i))
        assert len(rec) == 3000
    assert_same(recorded(path), [record(i) for i in range(3000)])


def test_flush_makes_records_visible_and_file_valid_for_stock_reader(tmp_path: Path) -> None:
    from safetensors import safe_open

    path = tmp_path / "rec.safetensors"
    rec = ss.Recorder(path, fsync=True, flush_seconds=None)
    for i in range(20):
        rec.append(record(i))
    assert recorded(path) == []  # nothing committed yet
    rec.flush()
    expected = [record(i) for i in range(20)]
    assert_same(recorded(path), expected)
    # Every tensor of the recording, through the stock reader, holds the bytes of its record.
    with safe_open(str(path), "np") as f:
        names = sorted(f.keys())
        # The records' tensors, after the padding the header grows into (zeros, which our reads do not show).
        assert names == sorted([RECORDING_PADDING, *(f"{i}.{k}" for i in range(20) for k in ("x", "y.0"))])
        padding = f.get_tensor(RECORDING_PADDING)
        assert padding.dtype == np.uint8 and padding.shape == (16 << 20,) and not padding.any()
        for i in range(20):
            assert np.array_equal(f.get_tensor(f"{i}.x"), expected[i]["x"].reshape(f.get_tensor(f"{i}.x").shape))
            assert f.get_tensor(f"{i}.y.0").dtype == np.float64
            assert f.get_tensor(f"{i}.y.0").tolist() == expected[i]["y"][0].tolist()
        assert f.metadata()[RECORDING_KEY] == "1"
    with ss.open(path) as lazy:
        assert sorted(lazy.tensors()) == [n for n in names if n != RECORDING_PADDING]
    rec.close()
    rec.close()
    with pytest.raises(InvalidArgumentError, match="closed"):
        rec.append(1)


def test_named_streams_load_as_a_dict_of_lists(tmp_path: Path) -> None:
    path = tmp_path / "rec.safetensors"
    with ss.Recorder(path, fsync=False) as rec:
        for i in range(50):
            rec[f"blocks.{i % 3}"].append(record(i))
        rec["$"].append("dollar")  # a name a plain JSON object cannot hold: the root is written in pair form
        rec["blocks.0"].append(rec["blocks.0"].name)
        assert len(rec["blocks.1"]) == 17
        with pytest.raises(InvalidArgumentError, match="plain records or named streams"):
            rec.append(1)
        with pytest.raises(InvalidArgumentError, match="named by a str"):
            rec[3]  # type: ignore[index]
    expected = {f"blocks.{k}": [record(i) for i in range(50) if i % 3 == k] for k in range(3)}
    expected["blocks.0"].append("blocks.0")
    expected["$"] = ["dollar"]
    assert_same(recorded(path), {k: expected[k] for k in ("blocks.0", "blocks.1", "blocks.2", "$")})
    with ss.open(path) as f:  # walked lazily: one record of one stream, read alone
        assert f.node(["blocks.2", 4]).keys() == ["i", "f", "s", "t", "x", "y"]
        assert_same(f.load(["blocks.2", 4]), record(14))


def test_shared_objects_and_refs_stay_within_their_record(tmp_path: Path) -> None:
    path = tmp_path / "rec.safetensors"
    shared = np.arange(6.0)
    with ss.Recorder(path, fsync=False) as rec:
        for i in range(5):
            inner = [i]
            rec.append({"a": inner, "b": inner, "w": shared, "v": shared})
    out = recorded(path)
    assert [o["a"] for o in out] == [[i] for i in range(5)]
    for o in out:
        assert o["a"] is o["b"] and o["w"] is o["v"]
        assert np.array_equal(o["w"], shared)


def test_reads_by_another_process_while_recording(tmp_path: Path) -> None:
    path = tmp_path / "rec.safetensors"
    rec = ss.Recorder(path, fsync=False, flush_seconds=None, header_room=4096)
    rec.flush()
    reader = start_python(RECORD_SOURCE + """
import sys, json, time
import safestructures as ss
path, last = sys.argv[1], int(sys.argv[2])
seen = []
deadline = time.monotonic() + 100
while time.monotonic() < deadline:
    out = ss.load_file(path)
    n = len(out)
    for i in range(n):
        o, e = out[i], record(i)
        assert o["i"] == i and o["t"] == e["t"] and o["x"].dtype == e["x"].dtype and (o["x"] == e["x"]).all(), i
    seen.append(n)
    if n == last:
        break
print(json.dumps(seen))
""", str(path), "600")
    for i in range(600):
        rec.append(record(i))
        if i % 10 == 9:
            rec.flush()
    rec.close()
    out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err[-3000:]
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen[-1] == 600
    assert all(n % 10 == 0 for n in seen)  # only whole flushes are ever seen
    assert seen == sorted(seen)


CHILD = RECORD_SOURCE + """
import sys, os
import safestructures as ss
path, seed, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
start = len(ss.load_file(path)) if mode == "a" else 0
rec = ss.Recorder(path, mode, fsync=False, flush_seconds=None, header_room=4096)
every = 1 + seed % 5
i = start
while True:
    rec.append(record(i))
    i += 1
    if i % every == 0:
        rec.flush()
        os.write(1, b"%d\\n" % i)
"""


@pytest.mark.parametrize("run", range(30))
def test_sigkill_at_a_random_moment_leaves_exactly_the_flushed_records(tmp_path: Path, run: int) -> None:
    path = tmp_path / "rec.safetensors"
    rng = random.Random(run)
    child = start_python(CHILD, str(path), str(run), "w")
    assert child.stdout is not None
    first = child.stdout.readline()  # the recording has begun (however slowly the interpreter started)
    assert first, child.communicate(timeout=60)[1][-3000:]
    time.sleep(rng.random() * 1.5)
    child.send_signal(signal.SIGKILL)
    out, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, err[-3000:]
    flushed = [int(line) for line in (first + out).split()]
    every = 1 + run % 5
    out_records = recorded(path)
    n = len(out_records)
    # The last flush the child reported, or the one it was in when killed (committed, not yet reported).
    last = flushed[-1] if flushed else 0
    assert n in (last, last + every), (n, last)
    assert_same(out_records, [record(i) for i in range(n)])
    # Resumed in another process, which the kill left nothing in the way of.
    if run % 3 == 0:
        again = start_python(CHILD, str(path), str(run), "a")
        assert again.stdout is not None and again.stdout.readline()
        time.sleep(rng.random())
        again.send_signal(signal.SIGKILL)
        out, err = again.communicate(timeout=60)
        resumed = recorded(path)
        assert len(resumed) >= n
        assert_same(resumed, [record(i) for i in range(len(resumed))])


def test_header_grows_geometrically(tmp_path: Path) -> None:
    path = tmp_path / "rec.safetensors"
    rooms = []
    with ss.Recorder(path, fsync=False, header_room=4096, header_reserve=0, flush_bytes=1 << 40) as rec:
        for i in range(2000):
            rec.append({"i": i, "x": np.zeros(2, np.float32)})
            rec.flush()
            rooms.append(int.from_bytes(path.read_bytes()[:8], "little"))
    distinct = sorted(set(rooms))
    assert distinct[0] == 4088 and distinct[-1] > 200_000
    assert all((8 + room) % 4096 == 0 for room in distinct)  # the data starts on a page, so pages can be inserted
    # Each regrowth at least doubles the room: the data is rewritten a logarithmic number of times.
    assert all(b >= 2 * a for a, b in zip(distinct, distinct[1:]))
    assert len(distinct) <= 8
    out = recorded(path)
    assert [o["i"] for o in out] == list(range(2000))


def _file_system(path: Path) -> str:
    """The type of the file system holding `path` (its mount with the longest matching mount point)."""
    best, kind = "", ""
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        point = fields[1]
        if str(path.resolve()).startswith(point.rstrip("/") + "/") and len(point) > len(best):
            best, kind = point, fields[2]
    return kind


def _changes(values: list[Any]) -> int:
    """How many times the sequence `values` changes from one to the next (a freed inode number may come back)."""
    return sum(a != b for a, b in zip(values, values[1:]))


def _growth(directory: Path, count: int = 300, fsync: bool = False) -> tuple[list[int], list[tuple[int, int]]]:
    """`count` records, each flushed, into a recording in `directory` whose room starts at 4088 bytes, without a
    padding to grow into (each growth moves the data); returns the room and the (device, inode) of the file after each
    flush."""
    path = directory / "rec.safetensors"
    rooms: list[int] = []
    ids: list[tuple[int, int]] = []
    with ss.Recorder(path, fsync=fsync, header_room=4096, header_reserve=0, flush_seconds=None) as rec:
        for i in range(count):
            rec.append({"i": i, "w": [np.full(3, i + k, np.int32) for k in range(4)]})
            rec.flush()
            rooms.append(int.from_bytes(path.read_bytes()[:8], "little"))
            st = path.stat()
            ids.append((st.st_dev, st.st_ino))
    out = recorded(path)
    assert [o["i"] for o in out] == list(range(count))
    assert [o["w"][3].tolist() for o in out] == [[i + 3] * 3 for i in range(count)]
    return rooms, ids


def test_header_grows_by_inserting_pages_before_the_data_on_ext4(tmp_path: Path) -> None:
    from safetensors import safe_open

    if os.statvfs(tmp_path).f_bsize != 4096 or _file_system(tmp_path) not in ("ext4", "xfs"):
        pytest.skip("needs a file system with 4096-byte blocks that inserts ranges (ext4, XFS)")
    rooms, ids = _growth(tmp_path)
    assert len(set(rooms)) >= 5  # grown several times
    # The file was never written anew: the same inode throughout, never renamed over.
    assert len(set(ids)) == 1, sorted(set(ids))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.safetensors"]
    path = tmp_path / "rec.safetensors"
    room = rooms[-1]
    assert path.stat().st_size - 8 - room == 300 * 4 * 12
    with safe_open(str(path), "np") as f:  # the stock reader takes the grown file
        assert len(f.keys()) == 1200
        assert f.get_tensor("299.w.3").tolist() == [302] * 3 and f.get_tensor("299.w.3").dtype == np.int32
    # With fsync, which an insert cannot promise across a power loss, each growth is a synced rewrite (a new inode).
    synced = tmp_path / "synced"
    synced.mkdir()
    rooms, ids = _growth(synced, 40, fsync=True)
    assert len(set(rooms)) >= 3 and _changes(ids) == _changes(rooms)


def test_a_reader_holding_a_recording_open_keeps_its_data_from_moving(tmp_path: Path) -> None:
    if os.statvfs(tmp_path).f_bsize != 4096 or _file_system(tmp_path) not in ("ext4", "xfs"):
        pytest.skip("needs a file system with 4096-byte blocks that inserts ranges (ext4, XFS)")
    path = tmp_path / "rec.safetensors"
    rec = ss.Recorder(path, fsync=False, header_room=4096, header_reserve=0, flush_seconds=None)
    rec.append({"x": np.arange(1000, dtype=np.int64)})
    rec.flush()
    first = path.stat().st_ino
    with ss.open(path) as f:  # maps the file, holding the readers' lock
        for i in range(100):
            rec.append({"x": np.full(3, i, np.int64), "w": [np.zeros(1, np.int8)] * 5})
        rec.flush()  # the room grows while the file is mapped: by a rewrite, not under the mapping
        assert int.from_bytes(path.read_bytes()[:8], "little") > 4088
        assert path.stat().st_ino != first
        assert f.load([0, "x"]).tolist() == list(range(1000))
    grown, room = path.stat().st_ino, int.from_bytes(path.read_bytes()[:8], "little")
    for i in range(100, 400):
        rec.append({"x": np.full(3, i, np.int64), "w": [np.zeros(1, np.int8)] * 5})
    rec.close()  # no reader now: the next growth inserts, the file keeps its inode
    assert path.stat().st_ino == grown and int.from_bytes(path.read_bytes()[:8], "little") > room
    out = recorded(path)
    assert out[0]["x"].tolist() == list(range(1000)) and [o["x"][0] for o in out[1:]] == list(range(400))


def test_header_grows_by_rewriting_on_tmpfs(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        pytest.skip("no /dev/shm")
    import tempfile

    with tempfile.TemporaryDirectory(dir=shm) as d:
        rooms, ids = _growth(Path(d))
        assert len(set(rooms)) >= 5
        # tmpfs cannot insert: each growth wrote the file anew and renamed it over (a new inode each time).
        assert _changes(ids) == _changes(rooms)


def test_a_growth_cut_short_loads_the_old_or_the_new_records(tmp_path: Path) -> None:
    path = tmp_path / "rec.safetensors"
    before, after = before_and_after(path, 1, 60, header_room=4096, header_reserve=0)
    old_room = int.from_bytes(before[:8], "little")
    new_room = int.from_bytes(after[:8], "little")
    assert old_room == 4088 and new_room > old_room and (new_room - old_room) % 4096 == 0
    old_data, data = before[8 + old_room:], after[8 + new_room:]
    assert data.startswith(old_data)
    old_header, new_header = before[8:8 + old_room], after[8:8 + new_room]
    journal = _journal(new_header, len(data))
    inserted = b"\0" * (new_room - old_room)
    # The data of the 59 new records, appended before the growth's commit.
    old_file_with_data = before[:8 + old_room] + data
    states = {
        # killed while writing the journal for the new room, or before the insert: the size does not match it
        "journal": (old_file_with_data + journal[:len(journal) - 5], 1),
        "no insert": (old_file_with_data + journal, 1),
        # killed after the insert: zeros before the data, the old header in place, the journal whole
        "inserted": (before[:8 + old_room] + inserted + data + journal, 60),
        # killed while writing the header in place (torn after its first page), the prefix still the old room
        "torn": (before[:8] + new_header[:4096] + (old_header + inserted)[4096:] + data + journal, 60),
        # killed before cutting the journal off
        "uncut": (after + journal, 60),
    }
    _check_cut_states(path, states)


GROW_CHILD = """
import sys, os
import numpy as np
import safestructures as ss
directory, fsync, reserve = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
for n in range(1000000):
    rec = ss.Recorder(os.path.join(directory, f"{n}.safetensors"), fsync=fsync, flush_seconds=None, header_room=4096,
                      header_reserve=reserve)
    for i in range(40):
        rec.append({"i": i, "w": [np.full(2, i + k, np.int16) for k in range(30)]})
        rec.flush()
        os.write(1, b"%d %d\\n" % (n, i + 1))
    rec.close()
"""


@pytest.mark.parametrize("run", range(12))
def test_sigkill_during_header_growth_leaves_exactly_the_flushed_records(tmp_path: Path, run: int) -> None:
    rng = random.Random(1000 + run)
    # Each recording grows its room from 4088 bytes five times in 40 records: many kills land in a growth, which
    # moves the data (no padding) or takes over the padding (half the runs: 16 KiB of it, used up after three growths,
    # then a growth moving the data with a fresh padding).
    child = start_python(GROW_CHILD, str(tmp_path), str(run % 2), str(0 if run % 4 < 2 else 16 << 10))
    assert child.stdout is not None
    first = child.stdout.readline()
    assert first, child.communicate(timeout=60)[1][-3000:]
    time.sleep(rng.random())
    child.send_signal(signal.SIGKILL)
    out, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, err[-3000:]
    reported = [tuple(map(int, line.split())) for line in (first + out).splitlines()]
    last_file, last_count = reported[-1]
    for n in range(last_file + 2):
        path = tmp_path / f"{n}.safetensors"
        if n == last_file + 1 and not path.exists():
            continue
        out_records = recorded(path)
        expected = 40 if n < last_file else last_count if n == last_file else 0
        # The last flush reported, or the one the child was in when killed (committed, not yet reported).
        assert len(out_records) in (expected, expected + 1), (n, len(out_records), expected)
        assert [o["i"] for o in out_records] == list(range(len(out_records)))
        for o in out_records:
            assert [w.tolist() for w in o["w"]] == [[o["i"] + k] * 2 for k in range(30)]
            assert all(w.dtype == np.int16 for w in o["w"])
        # Resumed, the killed growth completed or dropped, and then whole for any reader.
        if n == last_file:
            with ss.Recorder(path, "a", fsync=False) as rec:
                assert len(rec) == len(out_records)


def test_mode_a_continues_a_recording(tmp_path: Path) -> None:
    path = tmp_path / "rec.safetensors"
    with ss.Recorder(path, metadata={"run": "r1"}, fsync=False) as rec:
        for i in range(10):
            rec["a"].append(record(i))
    with ss.Recorder(path, "a", fsync=False) as rec:
        assert len(rec["a"]) == 10
        for i in range(10, 25):
            rec["a"].append(record(i))
        rec["b"].append(record(99))
    assert_same(recorded(path), {"a": [record(i) for i in range(25)], "b": [record(99)]})
    metadata = ss.load_metadata(path)
    assert metadata is not None and metadata["run"] == "r1" and sorted(metadata) == sorted(["run", SCHEMA_KEY, RECORDING_KEY])
    # mode="a" where nothing is yet starts a recording; mode="w" replaces one.
    fresh = tmp_path / "fresh.safetensors"
    with ss.Recorder(fresh, "a", fsync=False) as rec:
        rec.append(1)
    with ss.Recorder(fresh, "a", fsync=False) as rec:
        rec.append(2)
    assert recorded(fresh) == [1, 2]
    with ss.Recorder(fresh, "w", fsync=False) as rec:
        rec.append(3)
    assert recorded(fresh) == [3]


def test_mode_a_drops_data_appended_after_the_last_commit(tmp_path: Path) -> None:
    from safetensors import safe_open

    path = tmp_path / "rec.safetensors"
    with ss.Recorder(path, fsync=False) as rec:
        rec.append(record(0))
    committed = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b"\x01" * 1000)  # what a writer killed between flushes leaves
    assert_same(recorded(path), [record(0)])
    with pytest.raises(Exception):
        with safe_open(str(path), "np"):
            pass  # the stock reader refuses the trailing bytes
    with ss.Recorder(path, "a", fsync=False) as rec:
        assert path.stat().st_size == committed
        rec.append(record(1))
    with safe_open(str(path), "np") as f:  # closed with less data than padding: the padding is gone
        assert sorted(f.keys()) == ["0.x", "0.y.0", "1.x", "1.y.0"]


def _journal(text: bytes, data_size: int) -> bytes:
    import xxhash

    numbers = len(text).to_bytes(8, "little") + data_size.to_bytes(8, "little")
    return text + b"SSRJRNL1" + numbers + xxhash.xxh3_64_digest(text + numbers)[::-1]


def before_and_after(path: Path, flushed: int, total: int, **options: Any) -> tuple[bytes, bytes]:
    """The bytes of a recording (Recorder `options`) after its first `flushed` records were committed, then once it
    holds `total` records committed (before closing, which may drop a padding)."""
    rec = ss.Recorder(path, fsync=False, flush_seconds=None, **options)
    for i in range(flushed):
        rec.append(record(i))
    rec.flush()
    before = path.read_bytes()
    for i in range(flushed, total):
        rec.append(record(i))
    rec.flush()
    after = path.read_bytes()
    rec.close()
    return before, after


def _two_commits(tmp_path: Path) -> tuple[bytes, bytes, int]:
    """The bytes of a recording after 3 records, then after 40 more (the same header room, several pages)."""
    before, after = before_and_after(tmp_path / "rec.safetensors", 3, 43, header_room=64 << 10, header_reserve=0)
    room = int.from_bytes(before[:8], "little")
    assert room == int.from_bytes(after[:8], "little") == (64 << 10) - 8  # the data starts on a page
    return before, after, room


def _check_cut_states(path: Path, states: dict[str, tuple[bytes, int]]) -> None:
    """Each state a killed commit can leave (its bytes, the records it must load) loads exactly those records, lazily
    too; continuing completes or drops the commit, and the file is then whole for the stock reader (without a
    padding: closing drops one larger than the data)."""
    from safetensors import safe_open

    for name, (content, count) in states.items():
        path.write_bytes(content)
        assert_same(recorded(path), [record(i) for i in range(count)]), name
        with ss.open(path) as f:
            assert len(f.node([])) == count, name
        with ss.Recorder(path, "a", fsync=False) as rec:
            rec.append(record(count))
        assert_same(recorded(path), [record(i) for i in range(count + 1)]), name
        with safe_open(str(path), "np") as f:
            assert len(f.keys()) == 2 * (count + 1) and RECORDING_PADDING not in f.keys(), name


def test_a_commit_cut_short_loads_the_old_or_the_new_records(tmp_path: Path) -> None:
    before, after, room = _two_commits(tmp_path)
    old_header, new_header = before[8:8 + room], after[8:8 + room]
    data = after[8 + room:]
    journal = _journal(new_header, len(data))
    path = tmp_path / "cut.safetensors"
    states = {
        # killed while appending data: the old header and the new data
        "data": (before[:8 + room] + data[:len(data) // 2], 3),
        # killed while writing the journal: the old header whole, a part of the journal
        "journal": (before[:8 + room] + data + journal[:len(journal) - 9], 3),
        # killed while writing the header in place (torn after its first page): the journal is used
        "torn": (after[:8] + new_header[:4096] + old_header[4096:] + data + journal, 43),
        # killed before cutting the journal off
        "uncut": (after + journal, 43),
    }
    _check_cut_states(path, states)


def test_a_recording_crafted_to_lie_gets_a_clear_error(tmp_path: Path) -> None:
    before, after, room = _two_commits(tmp_path)
    new_header, old_header, data = after[8:8 + room], before[8:8 + room], after[8 + room:]
    torn = after[:8] + new_header[:4096] + old_header[4096:] + data
    path = tmp_path / "lie.safetensors"
    # A journal whose digest does not match is no journal: the torn header is reported as what it is.
    bad = bytearray(_journal(new_header, len(data)))
    bad[100] ^= 1
    path.write_bytes(torn + bytes(bad))
    with pytest.raises(InvalidFileError, match="lie.safetensors: header is not valid JSON") as e:
        recorded(path)
    assert e.value.code == "HeaderNotJson"
    with pytest.raises(InvalidFileError):
        ss.Recorder(path, "a", fsync=False)
    # A recording whose header claims data the file lacks.
    path.write_bytes(after[:-10])
    with pytest.raises(InvalidFileError, match="past the end of the data buffer") as e:
        recorded(path)
    assert e.value.code == "DataPastEnd"
    # Trailing bytes are a recording's only: without its key, a file with them is refused as before.
    plain = tmp_path / "plain.safetensors"
    ss.save_file([1, np.ones(2)], plain)
    plain.write_bytes(plain.read_bytes() + b"  ")
    with pytest.raises(InvalidFileError) as e:
        ss.load_file(plain)
    assert e.value.code == "TrailingBytes"
    # Continuing a file that is not a recording.
    ss.save_file([1, np.ones(2)], plain)
    with pytest.raises(InvalidFileError, match="not a recording"):
        ss.Recorder(plain, "a")
    # The recording's key is the file's own: a caller's metadata may not hold it.
    with pytest.raises(InvalidArgumentError):
        ss.Recorder(tmp_path / "m.safetensors", metadata={RECORDING_KEY: "1"})
    with pytest.raises(InvalidArgumentError):
        ss.save_file([1], tmp_path / "m.safetensors", metadata={RECORDING_KEY: "1"})


def test_bad_records_are_refused_naming_the_record_and_path(tmp_path: Path) -> None:
    path = tmp_path / "rec.safetensors"
    with ss.Recorder(path, fsync=False) as rec:
        rec.append(record(0))
        with pytest.raises(UnsupportedTypeError, match=r"record 1: .*\$\[\"bad\"\]\[1\]") as e:
            rec.append({"bad": [1, object()]})
        assert str(path) in str(e.value)
        rec.append(record(1))
        with pytest.raises(InvalidArgumentError, match="another Recorder"):
            ss.Recorder(path, "a")
    assert_same(recorded(path), [record(0), record(1)])
    with ss.Recorder(path, fsync=False) as rec:
        with pytest.raises(UnsupportedTypeError, match=r"record 0 of stream 'x': .*\$\[0\]"):
            rec["x"].append([object()])
        rec["x"].append(1)
    assert recorded(path) == {"x": [1]}
    with pytest.raises(InvalidArgumentError, match="mode"):
        ss.Recorder(path, "r")


def test_record_module_records_each_module_call(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    path = tmp_path / "acts.safetensors"
    batches = [torch.randn(5, 4) for _ in range(3)]
    with ss.Recorder(path, fsync=False) as rec, torch.no_grad():
        with ss.record_module(model, rec):
            for x in batches:
                model(x)
        model(batches[0])  # hooks removed: not recorded
    out = ss.load_file(path)
    assert sorted(out) == ["", "0", "1", "2"]
    assert all(len(calls) == 3 for calls in out.values())
    with torch.no_grad():
        for b, x in enumerate(batches):
            h0 = model[0](x)
            call = out["0"][b]
            assert type(call["inputs"]) is tuple and torch.equal(call["inputs"][0], x)
            assert call["kwargs"] == {} and torch.equal(call["output"], h0)
            assert torch.equal(out["1"][b]["output"], torch.relu(h0))
            assert torch.equal(out[""][b]["output"], model(x)) and out[""][b]["output"].dtype == torch.float32

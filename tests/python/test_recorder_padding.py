"""A recording's header growing into the padding before its records' data (docs/format.md section 9): the records
never move (the same file, the same offsets), the padding is a hole that costs no space, every state a killed growth
leaves loads the old or the new records, mode="a" continues with the padding left, and a padding used up gives way to
a growth that moves the data behind a fresh one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

import safestructures as ss
from safestructures._format import RECORDING_PADDING
from test_recorder import _check_cut_states, _journal, before_and_after, record, recorded


def _layout(path: Path) -> tuple[int, int, int]:
    """(room, padding, where the records' data starts) of the recording at `path`, from its header; the padding holds
    zeros. (Read with read(), not through a mapping: a mapping's reads of a hole on tmpfs fill it.)"""
    raw = path.read_bytes()
    room = int.from_bytes(raw[:8], "little")
    entry = json.loads(raw[8:8 + room]).get(RECORDING_PADDING)
    padding = 0
    if entry is not None:
        assert entry["dtype"] == "U8" and entry["data_offsets"] == [0, entry["shape"][0]]
        padding = entry["shape"][0]
        assert raw[8 + room:8 + room + padding] == bytes(padding)
    return room, padding, 8 + room + padding


def _directories(tmp_path: Path) -> list[Path]:
    """The test's directory, and one on tmpfs (/dev/shm, which cannot insert blocks) where there is one."""
    found = [tmp_path / "disk"]
    found[0].mkdir()
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        found.append(Path(tempfile.mkdtemp(dir="/dev/shm")))
    return found


def test_the_header_grows_into_the_padding_and_the_records_never_move(tmp_path: Path) -> None:
    from safetensors import safe_open

    for directory in _directories(tmp_path):
        path = directory / "rec.safetensors"
        try:
            layouts, inodes = [], set()
            with ss.Recorder(path, fsync=False, header_room=4096, header_reserve=256 << 10, flush_seconds=None) as rec:
                for i in range(200):
                    rec.append(record(i))
                    rec.flush()
                    layouts.append(_layout(path))
                    inodes.add(path.stat().st_ino)
                    if i == 0:
                        first_x = path.read_bytes()[layouts[0][2]:][:record(0)["x"].nbytes]
                rooms = sorted({room for room, _, _ in layouts})
                assert rooms[0] == 4088 and len(rooms) >= 4, rooms  # grown several times
                assert all((8 + room) % 4096 == 0 for room in rooms)
                # The records' data starts at the same offset throughout: the header took over the padding's bytes.
                assert {start for _, _, start in layouts} == {8 + 4088 + (256 << 10)}
                assert all(room + padding == 4088 + (256 << 10) for room, padding, _ in layouts)
                assert len(inodes) == 1  # never written anew
                assert sorted(p.name for p in directory.iterdir()) == ["rec.safetensors"]
                assert path.read_bytes()[layouts[0][2]:][:len(first_x)] == first_x
                out = recorded(path)
                assert len(out) == 200 and all(out[i]["i"] == i for i in range(200))
                assert all(np.array_equal(out[i]["x"], record(i)["x"]) and out[i]["x"].dtype == record(i)["x"].dtype
                           for i in range(200))
                # The padding is a hole: the file takes less space than its size by about the padding left.
                room, padding, _ = layouts[-1]
                st = path.stat()
                assert padding > 0 and st.st_blocks * 512 <= st.st_size - padding + 4096
                with ss.open(path) as f:
                    assert RECORDING_PADDING not in f.tensors() and len(f.tensors()) == 400
                with safe_open(str(path), "np") as stock:  # the stock reader sees the padding as a tensor of zeros
                    assert stock.get_tensor(RECORDING_PADDING).tolist() == [0] * padding
                    assert stock.get_tensor("199.x").tolist() == record(199)["x"].tolist()
            # Closed with less data than padding: written anew without it, the records loading the same.
            assert _layout(path)[1] == 0 and path.stat().st_size < (256 << 10)
            assert sorted(p.name for p in directory.iterdir()) == ["rec.safetensors"]
            assert [o["i"] for o in recorded(path)] == list(range(200))
            with safe_open(str(path), "np") as stock:
                assert RECORDING_PADDING not in stock.keys()
                assert stock.get_tensor("199.x").tolist() == record(199)["x"].tolist()
        finally:
            if str(directory).startswith("/dev/shm"):
                for p in directory.iterdir():
                    p.unlink()
                directory.rmdir()


def test_a_used_up_padding_gives_way_to_a_growth_that_moves_the_data(tmp_path: Path) -> None:
    path = tmp_path / "rec.safetensors"
    layouts = []
    with ss.Recorder(path, fsync=False, header_room=4096, header_reserve=8192, flush_seconds=None) as rec:
        for i in range(300):
            rec.append(record(i))
            rec.flush()
            layouts.append(_layout(path))
    starts = sorted({start for _, _, start in layouts})
    assert starts[0] == 8 + 4088 + 8192 and len(starts) >= 2  # the data moved once the padding was used up
    # After each move the padding is 8192 bytes again, then taken over.
    assert {padding for _, padding, _ in layouts} >= {8192, 0}
    out = recorded(path)
    assert [o["i"] for o in out] == list(range(300))
    assert all(np.array_equal(o["y"][0], record(i)["y"][0]) for i, o in enumerate(out))


def test_mode_a_continues_with_the_padding_left(tmp_path: Path) -> None:
    path = tmp_path / "rec.safetensors"
    with ss.Recorder(path, fsync=False, header_room=4096, header_reserve=64 << 10) as rec:
        rec.append({"i": -1, "big": np.zeros(64 << 10, np.uint8)})  # more data than padding: closing keeps it
        for i in range(50):
            rec.append(record(i))
    room, padding, start = _layout(path)
    assert room > 4088 and 0 < padding < 64 << 10
    with ss.Recorder(path, "a", fsync=False, flush_seconds=None) as rec:
        assert len(rec) == 51
        for i in range(50, 120):
            rec.append(record(i))
            rec.flush()
            assert _layout(path)[2] == start  # grown into what was left, the records where they were
    assert [o["i"] for o in recorded(path)] == [-1, *range(120)]
    # A recording without a padding (header_reserve=0, or an older writer's) continues, and grows by moving the data.
    bare = tmp_path / "bare.safetensors"
    with ss.Recorder(bare, fsync=False, header_room=4096, header_reserve=0) as rec:
        rec.append(record(0))
    assert _layout(bare)[1] == 0
    with ss.Recorder(bare, "a", fsync=False, header_reserve=0) as rec:
        for i in range(1, 100):
            rec.append(record(i))
    assert [o["i"] for o in recorded(bare)] == list(range(100))


def test_a_growth_into_the_padding_cut_short_loads_the_old_or_the_new_records(tmp_path: Path) -> None:
    path = tmp_path / "rec.safetensors"
    before, after = before_and_after(path, 1, 60, header_room=4096, header_reserve=64 << 10)
    old_room, new_room = int.from_bytes(before[:8], "little"), int.from_bytes(after[:8], "little")
    assert old_room == 4088 and new_room > old_room and (new_room - old_room) % 4096 == 0
    data = after[8 + new_room:]  # the padding left, then every record's data
    journal = _journal(after[8:8 + new_room], len(data))
    # The file when the commit began: the old header, the old padding (zeros) where the new room will be, the data.
    old_file = before[:8 + old_room] + b"\0" * (new_room - old_room) + data
    assert len(old_file) == len(after) and before[8 + old_room:] == old_file[8 + old_room:len(before)]
    states = {
        "journal": (old_file + journal[:len(journal) - 5], 1),  # killed while writing the journal
        "journal whole": (old_file + journal, 60),  # it matches the file's size: readers take it
        # killed while writing the header in place (torn after its first page), the prefix still the old room
        "torn": (before[:8] + after[8:8 + 4096] + old_file[8 + 4096:] + journal, 60),
        "no prefix": (before[:8] + after[8:] + journal, 60),  # the header whole, the prefix still the old room
        "uncut": (after + journal, 60),  # killed before cutting the journal off
    }
    _check_cut_states(path, states)


def test_a_tensor_inside_the_padding_is_refused_on_continuing(tmp_path: Path) -> None:
    path = tmp_path / "rec.safetensors"
    with ss.Recorder(path, fsync=False, header_room=4096, header_reserve=8192) as rec:
        rec.append({"x": np.zeros(3, np.int8), "big": np.zeros(8192, np.int8)})  # more data than padding: kept
    raw = bytearray(path.read_bytes())
    header = raw[8:8 + 4088].decode()
    # The record's tensor at the data's start, the padding after it: a valid safetensors layout, not a recording's.
    moved = header.replace('"data_offsets":[0,8192]', '"data_offsets":[3,8195]')
    moved = moved.replace('"data_offsets":[8192,8195]', '"data_offsets":[0,3]')
    assert moved != header
    raw[8:8 + 4088] = moved.ljust(4088).encode()
    path.write_bytes(bytes(raw))
    with pytest.raises(ss.InvalidFileError, match="padding"):
        ss.Recorder(path, "a", fsync=False)

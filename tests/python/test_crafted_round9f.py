"""Hostile inputs of the ninth round's helper attack-f (cases 80 on; docs/security.md's table lists them): a recording's
journal spelled by the bytes of its records, and readers of the core driven with crafted files. Each attack has its
legitimate twin, which must keep working."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import crafted
import safestructures as ss


# --- 80. a record's bytes that end the file as a recording's journal does ----------------------------------------------

def test_case_80_a_committed_record_spelling_a_journal_loads_as_itself(tmp_path: Path) -> None:
    # Before: every load took the record's bytes for a newer header: [] ({} of records) and the metadata
    # {"evil": "yes"}; a Recorder(mode="a") wrote that header in place and cut the record off.
    path = tmp_path / "rec.safetensors"
    data = crafted.recording_whose_record_spells_a_journal()
    path.write_bytes(data)
    blob = ss.load_file(path)[0]["blob"]
    assert blob == data[-len(blob):] and blob.endswith(data[-32:]) and blob[:2] == b'{"'
    assert ss.open(path).metadata == {}
    with ss.Recorder(path, mode="a") as recorder:
        assert len(recorder) == 1
        recorder.append({"n": 2})
    loaded = ss.load_file(path)
    assert [record.keys() for record in loaded] == [{"blob"}, {"n"}] and loaded[0]["blob"] == blob


def test_case_80_a_record_that_would_end_the_file_as_a_journal_is_refused(tmp_path: Path) -> None:
    # Before: appended; until the next flush (or for good, the writer killed) every load read the forged header (no
    # records, {"evil": "yes"}), and a Recorder(mode="a") wrote it in place.
    path = tmp_path / "rec.safetensors"
    recorder = ss.Recorder(path)
    recorder.append({"x": np.arange(4, dtype=np.float32)})
    recorder.flush()
    room = 4088
    forged = crafted.journal_for(os.path.getsize(path) + room + 32, room)
    with pytest.raises(ss.InvalidArgumentError) as info:
        recorder.append({"blob": forged})
    assert str(info.value) == (f"{path}: record 1: its bytes would end the recording as a commit's journal does "
                               "(docs/format.md section 9), which readers would take for the recording's header")
    assert info.value.code == "InvalidArgument"
    assert [record["x"].tolist() for record in ss.load_file(path)] == [[0, 1, 2, 3]]
    # The twin: the same bytes but one, and the recording goes on.
    recorder.append({"blob": forged[:-1] + bytes([forged[-1] ^ 1])})
    recorder.close()
    loaded = ss.load_file(path)
    assert len(loaded) == 2 and loaded[1]["blob"] == forged[:-1] + bytes([forged[-1] ^ 1])
    assert ss.open(path).metadata == {}


def test_case_80_mode_a_leaves_a_file_that_is_no_recording_as_it_was(tmp_path: Path) -> None:
    # Before: the save's last tensor spelled a journal for the file's size: Recorder(mode="a") wrote the journal's header
    # in place and cut the file by 40 bytes, then refused it ("352 bytes follow the last tensor's data"): the file lost.
    path = tmp_path / "plain.safetensors"
    size = len(ss.save({"blob": np.zeros(40, np.uint8)}))
    blob = np.frombuffer(crafted.journal_for(size, header_text=b"{}"), np.uint8)
    ss.save_file({"blob": blob}, path)
    before = path.read_bytes()
    assert len(before) == size
    with pytest.raises(ss.InvalidFileError, match="not a recording"):
        ss.Recorder(path, mode="a")
    assert path.read_bytes() == before
    assert ss.load_file(path)["blob"].tobytes() == blob.tobytes()

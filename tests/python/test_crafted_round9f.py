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


# --- 81. a number that no 64-bit value holds: the message names it and where it is ------------------------------------

@pytest.mark.parametrize(
    "schema, message",
    [
        ('"root":{"layers":[{"$":"list","#":18446744073709551615,"items":[]}]}}',
         """the schema's integer 18446744073709551615 at $["root"]["layers"][0]["#"] is out of the int64 range (a save writes """
         "such ints tagged)"),
        ('"root":{"lr":1e400}}', "the schema is not valid JSON: Problem while parsing a number (the number 1e400 at byte 52, which no "
         "64-bit int or finite double holds)"),
        ('"root":[-0, 1e-400, -9223372036854775809]}', "the schema is not valid JSON: Problem while parsing a number (the number "
         "-9223372036854775809 at byte 59, which no 64-bit int or finite double holds)"),
    ],
    ids=["uint64", "1e400", "below-int64"],
)
def test_case_81_a_number_past_64_bits_is_named_with_its_place(tmp_path: Path, schema: str, message: str) -> None:
    # Before: "integer 18446744073709551615 is out of the int64 range" and "the schema is not valid JSON: Problem while
    # parsing a number", naming neither the number nor where it is in a schema of megabytes.
    path = tmp_path / "n.safetensors"
    path.write_bytes(crafted.metadata_file({crafted.SCHEMA_KEY: crafted.ENVELOPE + schema}))
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load_file(path)
    assert str(info.value) == f"{path}: {message}"


def test_case_81_a_header_number_past_64_bits_is_named(tmp_path: Path) -> None:
    path = tmp_path / "h.safetensors"
    text = b'{"w":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,0]}}'
    path.write_bytes(len(text).to_bytes(8, "little") + text)
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load_file(path)
    assert str(info.value) == (f"{path}: header is not valid JSON: Problem while parsing a number (the number "
                               "18446744073709551616 at byte 29, which no 64-bit int or finite double holds)")
    assert info.value.code == "HeaderNotJson"


def test_case_80a_mode_a_leaves_a_journal_whose_header_no_reader_takes(tmp_path: Path) -> None:
    # Before: Recorder(mode="a") wrote the journal's broken header in place and cut the file from 8,232 to 4,112 bytes,
    # then raised the error every load raised before it: a refused continuation changed the file.
    path = tmp_path / "rec.safetensors"
    with ss.Recorder(path, header_room=4096, header_reserve=0) as recorder:
        recorder.append({"w": np.arange(4, dtype=np.float32)})
    data = bytearray(path.read_bytes())
    room = int.from_bytes(data[:8], "little")
    broken = (b'{"__metadata__":{"' + crafted.RECORDING_KEY.encode() + b'":"1"},'
              b'"t":{"dtype":"U8","shape":[999],"data_offsets":[0,999]}}')
    data[8] = ord("x")  # the header in place torn, as a commit killed while writing it leaves it
    data += crafted.journal(broken, room, len(data) - 8 - room)
    path.write_bytes(data)
    message = f'{path}: tensor "t": data_offsets end 999 is past the end of the data buffer (16 bytes)'
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load_file(path)
    assert str(info.value) == message
    with pytest.raises(ss.InvalidFileError) as info:
        ss.Recorder(path, mode="a")
    assert str(info.value) == message
    assert path.read_bytes() == data

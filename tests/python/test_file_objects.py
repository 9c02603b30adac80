"""File objects as sources and targets: ``save_file`` streams to any binary writable (BytesIO, an open file, a pipe),
writing each byte once in order with bounded memory; ``load_file`` and ``open`` read from one (a seekable one by
ranges, a stream whole, once)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import safestructures as ss
from safestructures import InvalidArgumentError, InvalidFileError
from conftest import MEMORY_MB_SOURCE, assert_same, python_command, run_python_json


def sample() -> dict[str, Any]:
    grid = np.arange(48, dtype=np.int16).reshape(6, 8)
    return {
        "weights": {"w": np.arange(24, dtype=np.float32).reshape(4, 6), "b": np.array([1.5, -2.0], dtype=np.float64)},
        "strided": grid[:, ::3],  # gathered as it is written (and hashed)
        "steps": [1, "two", (3.0, None), {"k": b"\x00\x01"}],
        "mask": np.array([True, False, True]),
    }


class CountingReader(io.RawIOBase):
    """A seekable binary file over bytes that counts the bytes its reads return."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._at = {io.SEEK_SET: 0, io.SEEK_CUR: self._at, io.SEEK_END: len(self._data)}[whence] + offset
        return self._at

    def tell(self) -> int:
        return self._at

    def readinto(self, out: Any) -> int:
        chunk = self._data[self._at:self._at + len(out)]
        out[:len(chunk)] = chunk
        self._at += len(chunk)
        self.bytes_read += len(chunk)
        return len(chunk)


@pytest.mark.parametrize("checksums", [True, False])
def test_bytesio_holds_the_bytes_save_makes(checksums: bool) -> None:
    data = sample()
    out = io.BytesIO()
    assert ss.save_file(data, out, {"note": "x"}, checksums=checksums) is None
    assert out.getvalue() == ss.save(data, {"note": "x"}, checksums=checksums)
    out.seek(0)
    assert_same(ss.load_file(out, verify=True), data)


def test_a_save_writes_from_where_the_file_object_stands_and_a_load_reads_from_there_to_its_end() -> None:
    data = sample()
    out = io.BytesIO()
    out.write(b"prefix")
    ss.save_file(data, out)
    assert out.getvalue()[6:] == ss.save(data)
    out.seek(6)
    with ss.open(out) as f:
        assert_same(f.load("weights"), data["weights"])
    out.seek(6)
    assert_same(ss.load_file(out), data)


def test_a_real_file_object_both_ways(tmp_path: Path) -> None:
    data = sample()
    with open(tmp_path / "d.safetensors", "wb") as f:
        ss.save_file(data, f)
    assert (tmp_path / "d.safetensors").read_bytes() == ss.save(data)
    with open(tmp_path / "d.safetensors", "rb") as f:
        assert_same(ss.load_file(f), data)
    with open(tmp_path / "d.safetensors", "rb") as f, ss.open(f) as lazy:
        assert lazy.keys() == ["weights", "strided", "steps", "mask"]
        assert_same(lazy["steps"].load(), data["steps"])
        np.testing.assert_array_equal(lazy.load("strided"), data["strided"])
        assert lazy.load("strided").dtype == np.int16


def test_open_reads_the_header_then_only_the_parts_loaded() -> None:
    big = np.arange(4 << 20, dtype=np.uint8)  # 4 MiB, not read
    small = np.arange(1000, dtype=np.int64)
    raw = ss.save({"big": big, "small": small})
    reader = CountingReader(raw)
    with ss.open(io.BufferedReader(reader, buffer_size=4096)) as f:
        header_bytes = reader.bytes_read
        np.testing.assert_array_equal(f.load("small"), small)
        assert f.fetcher is not None
        assert f.fetcher.bytes_fetched <= 8000 + 4096
    assert header_bytes <= 70_000  # one first read of 64 KiB covers the header
    assert reader.bytes_read < 100_000  # the 4 MiB tensor was never read


def test_pipes_both_ways_with_a_writer_thread() -> None:
    data = sample()
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as source, os.fdopen(write_end, "wb") as target:
        errors: list[BaseException] = []

        def write() -> None:
            try:
                ss.save_file(data, target)
                target.close()
            except BaseException as e:  # reported below
                errors.append(e)

        writer = threading.Thread(target=write)
        writer.start()
        loaded = ss.load_file(source)
        writer.join()
    assert errors == []
    assert_same(loaded, data)


def test_open_reads_a_pipe_once_then_loads_parts() -> None:
    data = sample()
    read_end, write_end = os.pipe()
    writer = threading.Thread(target=lambda: [os.write(write_end, ss.save(data)), os.close(write_end)])
    writer.start()
    with os.fdopen(read_end, "rb") as source:
        with ss.open(source) as f:
            writer.join()
            assert f.fetcher is None  # read whole: a pipe cannot seek
            assert_same(f["weights"]["w"].load(), data["weights"]["w"])
            assert_same(f.load(), data)


def test_a_subprocess_saves_to_its_stdout_and_loads_from_its_stdin() -> None:
    data = sample()
    code = ("import sys, numpy as np, safestructures as ss\n"
            "ss.save_file({'x': np.arange(300000, dtype=np.float64), 'tag': 'child'}, sys.stdout.buffer)\n")
    child = subprocess.run(python_command(code), capture_output=True, timeout=120, check=True)
    assert_same(ss.load_file(io.BytesIO(child.stdout)), {"x": np.arange(300000, dtype=np.float64), "tag": "child"})
    with subprocess.Popen(python_command(code), stdout=subprocess.PIPE) as produced:
        assert produced.stdout is not None
        loaded = ss.load_file(produced.stdout)
        assert produced.wait(timeout=120) == 0
    assert_same(loaded, {"x": np.arange(300000, dtype=np.float64), "tag": "child"})
    reader = ("import sys, safestructures as ss, numpy as np\n"
              "d = ss.load_file(sys.stdin.buffer)\n"
              "print(repr((sorted(d), d['steps'], float(d['weights']['w'].sum()), d['strided'].tolist())))\n")
    with subprocess.Popen(python_command(reader), stdin=subprocess.PIPE, stdout=subprocess.PIPE) as consumed:
        assert consumed.stdin is not None and consumed.stdout is not None
        ss.save_file(data, consumed.stdin)
        consumed.stdin.close()
        out = consumed.stdout.read().decode()
        assert consumed.wait(timeout=120) == 0
    assert out.strip() == repr((sorted(data), data["steps"], 276.0, data["strided"].tolist()))


def test_a_400_mib_save_to_a_pipe_keeps_memory_bounded() -> None:
    """The save hashes the tensors in a pass over their memory, then streams 1 MiB chunks: peak RSS grows by far less
    than the file (64 MiB allowed; measured 5 MiB)."""
    result = run_python_json(MEMORY_MB_SOURCE + """
import json, os, threading
import numpy as np
import safestructures as ss
data = {"layers": [np.full(25 << 20, i, dtype=np.float32) for i in range(4)]}  # 4 x 100 MiB, touched
read_end, write_end = os.pipe()
received = [0]
def drain():
    while chunk := os.read(read_end, 1 << 20):
        received[0] += len(chunk)
reader = threading.Thread(target=drain)
reader.start()
before = memory_mb("VmHWM")
with os.fdopen(write_end, "wb") as target:
    ss.save_file(data, target)
reader.join()
print(json.dumps({"grew_mb": memory_mb("VmHWM") - before, "received": received[0]}))
""", timeout=300)
    assert result["received"] > 400 << 20
    assert result["grew_mb"] < 64, result


def test_refusals_name_what_is_wrong(tmp_path: Path) -> None:
    class ReadOnly:
        def read(self, n: int = -1) -> bytes:
            return b""

    with pytest.raises(InvalidArgumentError, match="ReadOnly: it has no write"):
        ss.save_file({"a": 1}, ReadOnly())
    with pytest.raises(InvalidArgumentError, match="max_shard_size.*not a file object"):
        ss.save_file({"a": np.zeros(3)}, io.BytesIO(), max_shard_size=100)
    with pytest.raises(InvalidArgumentError, match="background=True saves to a local path only"):
        ss.save_file({"a": 1}, io.BytesIO(), background=True)
    with open(tmp_path / "t.safetensors", "w") as text:
        with pytest.raises(InvalidArgumentError, match=r"t.safetensors is a text file object: open it in binary mode"):
            ss.save_file({"a": 1}, text)
    with open(tmp_path / "t.safetensors") as text:
        with pytest.raises(InvalidArgumentError, match=r"t.safetensors is a text file object: open it in binary mode"):
            ss.load_file(text)


def test_a_header_length_past_the_limit_is_refused_before_it_is_read() -> None:
    hostile = CountingReader((10**12).to_bytes(8, "little") + b"{" + b" " * 100)
    with pytest.raises(InvalidFileError, match=r"the header is 1000000000000 bytes, over the limit") as raised:
        ss.open(io.BufferedReader(hostile))
    assert raised.value.code == "HeaderTooLarge"
    assert hostile.bytes_read < 200


def test_a_file_object_shorter_than_it_says_gives_an_error() -> None:
    raw = ss.save({"big": np.arange(200_000, dtype=np.float64), "small": np.arange(3)})

    class Lying(CountingReader):
        def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
            # Claims the whole file's size, holds its first half.
            if whence == io.SEEK_END:
                self._at = len(raw) + offset
                return self._at
            return super().seek(offset, whence)

    truncated = Lying(raw[:len(raw) // 2])
    with pytest.raises(OSError, match="the file is shorter than its size said"):
        ss.load_file(truncated)
    with ss.open(Lying(raw[:len(raw) // 2])) as f:
        with pytest.raises(OSError, match="the file is shorter than its size said"):
            f.load("big")


def test_a_non_blocking_stream_that_cannot_take_more_says_so() -> None:
    class Full(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, b: Any) -> None:
            return None

    with pytest.raises(OSError, match="cannot take more bytes now"):
        ss.save_file({"a": np.zeros(10)}, Full())


def test_import_does_not_import_fsspec() -> None:
    result = run_python_json("import json, sys, safestructures\nprint(json.dumps('fsspec' in sys.modules))")
    assert result is False
    assert sys.modules.get("safestructures") is not None

"""Hostile inputs of the ninth round's fifth helper (cases 71 on; docs/security.md's table lists them): streams that
cannot seek and send without end, fsspec filesystems that give more than asked, HTTP servers that stall, and a
distributed checkpoint's index that is a device, a FIFO or larger than the header limit. Each attack has its
legitimate twin, which must keep working."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

import fsspec
import numpy as np
import pytest
from fsspec.spec import AbstractFileSystem

import safestructures as ss
from safestructures import _http
from http_range_server import serving_handler

# --- 71. a stream that cannot seek is read as far as its header declares ------------------------------------------------------

#: What a test stream gives at most before it fails the test (a load that read it to its end would take it all).
_STREAM_SAFETY = 64 << 20


class _Endless(io.RawIOBase):
    """A stream that cannot seek: ``head``, then ``tail`` bytes repeated without end (none with ``tail=b""``)."""

    def __init__(self, head: bytes, tail: bytes = b"\0") -> None:
        self._head, self._tail = head, tail
        self.given = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.given > _STREAM_SAFETY:
            raise AssertionError(f"the load read {self.given:,} bytes of a stream without end")
        n = len(buffer)
        if self.given < len(self._head):
            n = min(n, len(self._head) - self.given)
            buffer[:n] = self._head[self.given:self.given + n]
        elif not self._tail:
            return 0
        else:
            buffer[:n] = (self._tail * (n // len(self._tail) + 1))[:n]
        self.given += n
        return n


def _saved() -> bytes:
    return ss.save({"a": np.arange(4), "b": [1, "two"]})


@pytest.mark.parametrize("route", [ss.load_file, lambda s: ss.open(s).load()])
def test_case_71_bytes_past_the_declared_end_of_a_stream_are_not_read(route: Any) -> None:
    # Before: the whole stream was read into memory (a stream without end: 2.8 GB in 4.6 s until a 3 GiB address space
    # ran out, unbounded without one).
    raw = _saved()
    stream = _Endless(raw)
    with pytest.raises(ss.InvalidFileError) as raised:
        route(stream)
    assert raised.value.code == "TrailingBytes"
    assert str(raised.value) == (f"<_Endless>: bytes follow the last tensor's data, where the header says the file ends "
                                 f"(at {len(raw):,} bytes)")
    assert stream.given == len(raw) + 1


def test_case_71_a_header_over_the_limit_is_refused_before_it_is_read() -> None:
    stream = _Endless((1 << 40).to_bytes(8, "little"))
    with pytest.raises(ss.InvalidFileError) as raised:
        ss.load_file(stream)
    assert raised.value.code == "HeaderTooLarge"
    assert str(raised.value) == "<_Endless>: the header is 1099511627776 bytes, over the limit of 100000000"
    assert stream.given == 8
    stream = _Endless((1000).to_bytes(8, "little"), b" ")
    with pytest.raises(ss.InvalidFileError, match=r"^<_Endless>: the header is 1000 bytes, over the limit of 999$"):
        ss.load_file(stream, max_header_size=999)


def test_case_71_a_malformed_header_is_refused_once_read() -> None:
    stream = _Endless((64).to_bytes(8, "little"), b"\xff")
    with pytest.raises(ss.InvalidFileError) as raised:
        ss.load_file(stream)
    assert (raised.value.code, str(raised.value)) == ("HeaderNotUtf8", "<_Endless>: header is not valid UTF-8")
    assert stream.given == 8 + 64


def test_case_71_a_header_declaring_a_huge_file_is_read_only_as_far_as_the_stream_goes_or_refused() -> None:
    text = b'{"big":{"dtype":"U8","shape":[268435456],"data_offsets":[0,268435456]}}'
    declared = len(text).to_bytes(8, "little") + text
    stream = _Endless(declared + b"\1" * 1000, b"")
    with pytest.raises(ss.InvalidFileError) as raised:
        ss.load_file(stream)
    assert (raised.value.code, str(raised.value)) == (
        "DataPastEnd", f"<_Endless>: the stream ends after {len(declared) + 1000:,} bytes, where its header declares a "
                       f"file of {len(declared) + 2**28:,} bytes")
    assert stream.given == len(declared) + 1000
    # Without end: the memory of a declared size the system cannot reserve is refused before the data is read.
    text = b'{"big":{"dtype":"U8","shape":[1125899906842624],"data_offsets":[0,1125899906842624]}}'
    stream = _Endless(len(text).to_bytes(8, "little") + text)
    with pytest.raises(OSError) as refused:
        ss.load_file(stream)
    assert str(refused.value).startswith(f"[Errno 12] cannot reserve {8 + len(text) + 2**50} bytes of address space "
                                         "for the file: ")
    assert stream.given == 8 + len(text)


def test_case_71_max_bytes_bounds_what_a_stream_may_declare() -> None:
    raw = ss.save({"a": np.zeros(1000)})
    stream = _Endless(raw, b"")
    with pytest.raises(ss.InvalidFileError) as raised:
        ss.load_file(stream, max_bytes=4000)
    assert raised.value.code == "LimitExceeded"
    assert str(raised.value) == (f"<_Endless>: the file's header declares {len(raw):,} bytes, which would take this load "
                                 "past its max_bytes limit of 4,000 (a stream is read into memory): pass a larger "
                                 "max_bytes= if the file is trusted")
    assert stream.given < len(raw) - 7000  # the header only
    with pytest.raises(ss.InvalidFileError, match="max_bytes limit of 4,000"):
        ss.open(_Endless(raw, b""), max_bytes=4000)


@pytest.mark.parametrize("cut", [0, 5, 8, 20, -1])
def test_case_71_a_stream_that_ends_early_is_refused_as_the_file_it_is(cut: int) -> None:
    raw = _saved()
    stream = _Endless(raw[:cut] if cut >= 0 else raw[:-3], b"")
    with pytest.raises(ss.InvalidFileError) as raised:
        ss.load_file(stream)
    assert raised.value.code == {0: "FileTooSmall", 5: "FileTooSmall", 8: "HeaderPastEnd", 20: "HeaderPastEnd",
                                 -1: "DataPastEnd"}[cut]


def test_case_71_twin_streams_load_and_a_recording_leaves_its_trailing_bytes_unread(tmp_path: Any) -> None:
    raw = _saved()
    for route in (ss.load_file, lambda s: ss.open(s).load()):
        loaded = route(_Endless(raw, b""))
        np.testing.assert_array_equal(loaded["a"], np.arange(4))
        assert loaded["b"] == [1, "two"]
    assert ss.load_file(io.BufferedReader(_Endless(raw, b"")), max_bytes=len(raw))["b"] == [1, "two"]
    path = tmp_path / "r.safetensors"
    with ss.Recorder(path) as recorder:
        recorder.append({"x": np.arange(3)})
        recorder.flush()
        recorder.append({"x": np.arange(5)})  # appended after the commit: trailing bytes the header does not count
        committed = path.read_bytes()
        stream = _Endless(committed, b"\1")
        loaded = ss.load_file(stream)
    assert len(loaded) == 1
    np.testing.assert_array_equal(loaded[0]["x"], np.arange(3))
    assert stream.given < len(committed)


# --- 72. an fsspec filesystem whose cat_file() gives more than the range, or no bytes --------------------------------------------

class _LyingFilesystem(AbstractFileSystem):
    """An fsspec filesystem of one file, ``FILE``, whose ``cat_file`` lies as ``lie`` says (none: it tells the truth)."""

    protocol = "r9elying"
    file = b""
    lie = ""

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        if not path.endswith(".safetensors"):
            raise FileNotFoundError(path)
        return {"name": path, "size": len(self.file), "type": "file"}

    def cat_file(self, path: str, start: Any = None, end: Any = None, **kwargs: Any) -> Any:
        got = self.file[start:end]
        return {"more": got + b"x" * 1000, "str": got.decode("latin-1"), "bytearray": bytearray(got)}.get(self.lie, got)


@pytest.fixture
def lying_filesystem() -> Any:
    fsspec.register_implementation(_LyingFilesystem.protocol, _LyingFilesystem, clobber=True)
    _LyingFilesystem.file = ss.save({"a": np.arange(1000, dtype=np.float64), "b": [1, 2]})
    yield _LyingFilesystem
    _LyingFilesystem.lie = ""


@pytest.mark.parametrize(("lie", "message"), [
    ("more", "cat_file(start=0, end=8368) returned 9368 bytes, more than asked"),
    ("str", "cat_file() returned str, not bytes: a filesystem's cat_file() gives bytes"),
])
def test_case_72_a_filesystem_giving_other_than_the_range_is_an_os_error_saying_so(lying_filesystem: Any, lie: str,
                                                                                   message: str) -> None:
    # Before: "the server ignored the range asked for (it does not serve ranges?)"; a str: InvalidFileError
    # "TypeError: string argument without an encoding", as if the file were bad.
    lying_filesystem.lie = lie
    url = "r9elying://x.safetensors"
    for route in (ss.load_file, lambda u: ss.open(u).load()):
        with pytest.raises(OSError) as raised:
            route(url)
        assert type(raised.value) is OSError
        assert str(raised.value) == f"[Errno 5] {message}: '{url}'"


def test_case_72_twin_a_filesystem_giving_a_bytearray_or_memory_urls_load(lying_filesystem: Any) -> None:
    lying_filesystem.lie = "bytearray"
    for route in (ss.load_file, lambda u: ss.open(u).load()):
        assert route("r9elying://x.safetensors")["b"] == [1, 2]
    fs = fsspec.filesystem("memory")
    fs.pipe("/r9e/x.safetensors", lying_filesystem.file)
    try:
        assert ss.load_file("memory://r9e/x.safetensors")["b"] == [1, 2]
        assert ss.open("memory://r9e/x.safetensors").load("b") == [1, 2]
    finally:
        fs.rm("/r9e", recursive=True)


# --- 73. an HTTP server that stalls: before its answer, or in a body without a Content-Length ------------------------------------

@contextmanager
def _stalling(raw: bytes, mode: str) -> Iterator[str]:
    """A server of one file, ``/m.safetensors``, whose HEAD tells its size (or, "head", answers nothing) and whose GET,
    as ``mode`` says, answers nothing ("headers"), or the range's status and Content-Range without a Content-Length, then 100 bytes ("body"), and
    then holds the connection; "honest" sends the range whole."""
    hold = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            if mode == "head":
                hold.wait(60)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()

        def do_GET(self) -> None:
            if mode == "headers":
                hold.wait(60)
                return
            first, _, last = self.headers["Range"].removeprefix("bytes=").partition("-")
            begin, end = int(first), int(last) + 1
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {begin}-{end - 1}/{len(raw)}")
            if mode == "honest":
                self.send_header("Content-Length", str(end - begin))
            self.end_headers()
            try:
                self.wfile.write(raw[begin:end] if mode == "honest" else raw[begin:begin + 100])
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return
            if mode != "honest":
                hold.wait(60)

    with serving_handler(Handler) as base:
        try:
            yield f"{base}/m.safetensors"
        finally:
            hold.set()


@pytest.mark.parametrize(("mode", "why"), [
    ("head", "the server sent nothing for 0.5 s (no answer to the request): it stalls"),
    ("headers", "the server sent nothing for 0.5 s (no answer to the request): it stalls"),
    ("body", "the server sent nothing for 0.5 s after 100 bytes of its answer: it stalls"),
])
def test_case_73_a_stalling_server_is_an_os_error_after_the_stall_bound(monkeypatch: Any, mode: str, why: str) -> None:
    # Before: each waited 300.9 s for aiohttp's whole-request timeout, then OSError "the request failed: TimeoutError: "
    # (no word of what timed out). Now 30 s without a byte (STALL_SECONDS; 0.5 s here).
    pytest.importorskip("aiohttp")
    monkeypatch.setattr(_http, "STALL_SECONDS", 0.5)
    raw = _saved()
    with _stalling(raw, mode) as url:
        for route in (ss.load_file, ss.open):
            started = time.monotonic()
            with pytest.raises(OSError) as raised:
                route(url)
            assert type(raised.value) is OSError
            assert str(raised.value) == f"[Errno 5] {why}: '{url}'"
            assert time.monotonic() - started < 20


def test_case_73_a_timeout_of_the_callers_rules_alone(monkeypatch: Any) -> None:
    aiohttp = pytest.importorskip("aiohttp")
    monkeypatch.setattr(_http, "STALL_SECONDS", 0.5)
    monkeypatch.setitem(fsspec.config.conf, "http", {"client_kwargs": {"timeout": aiohttp.ClientTimeout(total=1.5)}})
    with _stalling(_saved(), "body") as url:
        started = time.monotonic()
        with pytest.raises(OSError) as raised:
            ss.open(url)
        assert time.monotonic() - started >= 1.4  # the caller's 1.5 s, not the 0.5 s stall bound
    assert str(raised.value) == ("[Errno 5] the transfer failed: TimeoutError: the request took longer than the "
                                 f"session's timeout allows: '{url}'")


def test_case_73_twin_an_honest_server_loads(monkeypatch: Any) -> None:
    pytest.importorskip("aiohttp")
    monkeypatch.setattr(_http, "STALL_SECONDS", 5.0)
    with _stalling(_saved(), "honest") as url:
        assert ss.load_file(url)["b"] == [1, "two"]
        assert ss.open(url).load("b") == [1, "two"]


# --- 74. a distributed checkpoint's index that is a device, a FIFO or huge ---------------------------------------------------------

@pytest.mark.parametrize(("kind", "why"), [
    ("device", "the index is a device, not a regular file"),
    ("fifo", "the index is a FIFO, not a regular file"),
    ("huge", "the index is 2147483648 bytes, over the limit of 100000000"),
])
def test_case_74_a_dcp_index_is_read_within_the_header_limit(tmp_path: Any, kind: str, why: str) -> None:
    # Before: safestructures.distributed.load read the index whole, without a look at what it is: a link to /dev/zero
    # read 2.5 GB in 4.5 s until a 3 GiB address space ran out (a bare MemoryError), a 2 GiB index was read whole
    # (15.5 s), and a FIFO blocked the load for ever.
    pytest.importorskip("torch.distributed.checkpoint")
    from safestructures import distributed as ssd

    index = tmp_path / "model.safetensors.index.json"
    if kind == "device":
        index.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(index)
    else:
        with open(index, "wb") as f:
            f.truncate(2 << 30)  # a hole: no disk taken
    with pytest.raises(ss.InvalidFileError) as raised:
        ssd.load(tmp_path)
    assert str(raised.value) == f"{index}: {why}"


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs procfs")
def test_case_74_an_index_longer_than_its_size_said_is_read_no_further_than_the_limit(tmp_path: Any) -> None:
    # A procfs file says it holds 0 bytes, as a file that grows after its size was read would have said.
    index = tmp_path / "model.safetensors.index.json"
    index.symlink_to("/proc/self/status")
    with pytest.raises(ss.InvalidFileError) as raised:
        ss.load_file(tmp_path, max_header_size=16)
    assert str(raised.value) == f"{index}: the index is over the limit of 16 bytes (it grew as it was read)"


def test_case_74_twin_indexes_of_saves_and_checkpoints_load(tmp_path: Any) -> None:
    data = {"a": np.arange(10), "b": [1, 2]}
    ss.save_file(data, tmp_path / "sharded", max_shard_size=40)
    assert ss.load_file(tmp_path / "sharded")["b"] == [1, 2]
    ss.save_file(data, tmp_path / "sharded", max_shard_size=40)  # its previous index read to replace it
    assert ss.load_file(tmp_path / "sharded" / "model.safetensors.index.json")["b"] == [1, 2]
    torch = pytest.importorskip("torch")
    pytest.importorskip("torch.distributed.checkpoint")
    from safestructures import distributed as ssd

    ssd.save({"w": torch.arange(4.0), "step": 3}, tmp_path / "dcp")
    loaded = ssd.load(tmp_path / "dcp")
    assert loaded["step"] == 3
    assert loaded["w"].tolist() == [0.0, 1.0, 2.0, 3.0]


# --- 75. a folder URL without an index that lists thousands of files ------------------------------------------------------------

def test_case_75_a_folder_url_listing_too_many_files_is_refused_before_any_is_asked() -> None:
    # Before: each file listed cost three requests (its size, its header, its header again when opened): a page of
    # 2,000 links kept open() of an HTTP folder asking for 178 s (6,002 requests); a page of 100 MB, for days.
    from safestructures._source import MAX_REMOTE_FOLDER_FILES

    fs = fsspec.filesystem("memory")
    tiny = ss.save({"t": np.zeros(1, np.uint8)})
    for k in range(MAX_REMOTE_FOLDER_FILES + 1):
        fs.pipe(f"/r9e-many/f{k:05d}.safetensors", tiny)
    try:
        for route in (ss.load_file, ss.open):
            with pytest.raises(ss.InvalidFileError) as raised:
                route("memory://r9e-many")
            assert str(raised.value) == ("memory://r9e-many: the folder lists 1,001 .safetensors files and no "
                                         "model.safetensors.index.json: at most 1,000 are read without one (each costs "
                                         "requests); an index names the shards of a larger checkpoint")
        plain = {f"t{k}": ss._core.write_bytes([(f"t{k}", "U8", (1,), np.full(1, k % 256, np.uint8))], None)
                 for k in range(3)}
        fs.rm("/r9e-many", recursive=True)
        for name, raw in plain.items():
            fs.pipe(f"/r9e-many/{name}.safetensors", raw)
        loaded = ss.load_file("memory://r9e-many")  # the twin: a few plain shards without an index
        assert {name: value.tolist() for name, value in loaded.items()} == {"t0": [0], "t1": [1], "t2": [2]}
    finally:
        if fs.exists("/r9e-many"):
            fs.rm("/r9e-many", recursive=True)

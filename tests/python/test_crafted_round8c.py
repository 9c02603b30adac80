"""Crafted inputs of the eighth round's third helper (cases 53 on; docs/security.md's table lists them): HTTP servers
and file objects that lie about what they send, recordings continued with mode="a", and what failed saves leave
behind. Each attack has its legitimate twin, which must keep working."""

from __future__ import annotations

import io
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import safestructures as ss
from safestructures import InvalidFileError
from safestructures._ranges import FIRST_READ
from http_range_server import serving_handler

MiB = 1 << 20
_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


# --- A server that lies ------------------------------------------------------------------------------------------------

class Lies:
    """How the hostile server answers a GET: ``mode`` is "flood200" (ignores Range, then sends the file and zeros without
    end), "flood206" (the range's status and Content-Range, then the same flood), "shifted" (a Content-Range 8 bytes
    on), "resized" (a Content-Range whose total is not the size HEAD gave), "no size" (HEAD and GET without a length),
    "long" (a Content-Length 100 bytes past the range, which never come: the connection held), "digits" (a
    Content-Range of 5,000 digits) or "honest". ``pages`` are served as text/html. ``sent`` counts the body bytes the
    server got out."""

    def __init__(self, files: dict[str, bytes], mode: str, pages: dict[str, bytes] | None = None) -> None:
        self.files, self.mode, self.pages = files, mode, pages or {}
        self.sent = 0
        self.lock = threading.Lock()
        self.hold = threading.Event()


@contextmanager
def lying(lies: Lies) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, *chunks: bytes, flood: bool = False) -> None:
            try:
                for chunk in chunks:
                    self.wfile.write(chunk)
                    with lies.lock:
                        lies.sent += len(chunk)
                zeros = b"\0" * MiB
                while flood:  # until the client hangs up, or 1 GiB (a client reading it all fails the test, not the box)
                    self.wfile.write(zeros)
                    with lies.lock:
                        lies.sent += MiB
                        flood = lies.sent < 1 << 30
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_HEAD(self) -> None:
            body = lies.files.get(self.path, lies.pages.get(self.path))
            self.send_response(404 if body is None else 200)
            if lies.mode != "no size" or body is None:
                self.send_header("Content-Length", "0" if body is None else str(len(body)))
            self.end_headers()

        def do_GET(self) -> None:
            if self.path in lies.pages:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Connection", "close")
                self.end_headers()
                self._send(lies.pages[self.path], flood=lies.mode == "flood page")
                return
            body = lies.files.get(self.path)
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            found = _RANGE.match(self.headers.get("Range", ""))
            begin = int(found.group(1)) if found else 0
            end = min(int(found.group(2)) + 1, len(body)) if found and found.group(2) else len(body)
            mode = lies.mode
            if mode in ("flood200", "no size"):
                self.send_response(200)
            else:
                self.send_response(206)
                shift, total = (8, len(body)) if mode == "shifted" else (0, len(body) + (mode == "resized"))
                digits = "9" * 5000 if mode == "digits" else ""
                self.send_header("Content-Range", f"bytes {begin + shift}-{digits}{end - 1 + shift}/{total}")
            if mode.startswith("flood") or mode == "no size":
                self.send_header("Connection", "close")
                self.end_headers()
                self._send(body[begin:end], flood=mode.startswith("flood"))
                return
            self.send_header("Content-Length", str(end - begin + 100 * (mode == "long")))
            self.end_headers()
            self._send(body[begin:end])
            if mode == "long":
                lies.hold.wait(60)  # the connection held open, the 100 bytes said never sent

    with serving_handler(Handler) as base:
        try:
            yield base
        finally:
            lies.hold.set()


@pytest.fixture(scope="module")
def served_file() -> tuple[dict[str, Any], bytes]:
    pytest.importorskip("fsspec")
    pytest.importorskip("aiohttp")
    data = {"a": np.arange(100_000, dtype=np.float64), "b": np.arange(10, dtype=np.int32)}
    return data, ss.save(data)


# --- 53. a server that sends without end -------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["flood200", "flood206"])
def test_case_53_a_server_flooding_a_load_is_cut_off(served_file: tuple[dict[str, Any], bytes], mode: str) -> None:
    # Before: fsspec read each response whole: the load took 7.5 GiB in 15 s before it failed (8 GiB address space).
    _data, raw = served_file
    lies = Lies({"/m.safetensors": raw}, mode)
    with lying(lies) as base:
        url = f"{base}/m.safetensors"
        with pytest.raises(OSError) as raised:
            ss.load_file(url)  # the whole file asked for in one request (it is under 8 MiB): 200 is an answer
        size = len(raw)
        assert str(raised.value) == (f"[Errno 5] asked for bytes [0, {size}) of a file of {size} bytes, the server sent "
                                     f"more than {size} bytes ({size + 1} at least): '{url}'")
        with pytest.raises(OSError) as raised:
            ss.open(url)
        assert str(raised.value) == (f"[Errno 5] asked for bytes [0, {FIRST_READ}) of a file of {size} bytes, the "
                                     f"server sent more than {FIRST_READ} bytes ({FIRST_READ + 1} at least): '{url}'"
                                     if mode == "flood206" else
                                     f"[Errno 5] asked for bytes [0, {FIRST_READ}) of a file of {size} bytes, the "
                                     f"server ignored the range (status 200): it does not serve ranges?: '{url}'")
    # What the server got out before the client hung up: the socket's buffers, not the flood.
    assert lies.sent < 64 * MiB


def test_case_53_a_server_without_ranges_still_gives_a_small_file_whole(served_file: tuple[dict[str, Any], bytes]) -> None:
    # The twin: a server that ignores Range but sends the file as it is.
    from http_range_server import serving

    data, raw = served_file
    with serving({"/m.safetensors": raw}, ranges=False) as (base, served):
        loaded = ss.load_file(f"{base}/m.safetensors")
        assert served.bytes_served == len(raw)
    np.testing.assert_array_equal(loaded["a"], data["a"])


def test_case_53_a_server_flooding_a_directory_page_is_cut_off(served_file: tuple[dict[str, Any], bytes]) -> None:
    # A URL with no file name is asked whether it is a directory: fsspec read the page whole (7.5 GiB before).
    _data, raw = served_file
    lies = Lies({}, "flood page", pages={"/model": b"<html>"})
    with lying(lies) as base:
        with pytest.raises(OSError) as raised:
            ss.load_file(f"{base}/model", max_header_size=MiB)  # a page over the limit is a file: read by ranges
    assert str(raised.value) == (f"[Errno 5] asked for bytes [0, 6) of a file of 6 bytes, the server sent more than 6 "
                                 f"bytes (7 at least): '{base}/model'")
    assert lies.sent < 64 * MiB


def test_case_53_a_listing_page_of_plain_shards_loads(served_file: tuple[dict[str, Any], bytes]) -> None:
    # The twin: a folder listed as links (as a plain web server lists one) holds the shards of one checkpoint.
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    first = safetensors_numpy.save({"x": np.arange(4.0)})
    second = safetensors_numpy.save({"y": np.arange(3, dtype=np.int64)})
    page = b'<html><a href="a.safetensors">a</a> <a href="/m/b.safetensors">b</a> <a href="../">up</a></html>'
    lies = Lies({"/m/a.safetensors": first, "/m/b.safetensors": second}, "honest", pages={"/m": page})
    with lying(lies) as base:
        loaded = ss.load_file(f"{base}/m")
    assert sorted(loaded) == ["x", "y"]
    np.testing.assert_array_equal(loaded["x"], np.arange(4.0))
    np.testing.assert_array_equal(loaded["y"], np.arange(3))


# --- 54. a server whose ranges or sizes lie ----------------------------------------------------------------------------

@pytest.mark.parametrize(("mode", "why"), [
    ("shifted", "the server sent bytes [8, 65544) instead"),
    ("resized", "the server now says the file holds {size1} bytes (it changed, or the server lies)"),
    ("long", "the server says it sends 65636 bytes"),
    ("digits", "the server answered with Content-Range 'bytes 0-" + "9" * 72 + "...', which names no range"),
])
def test_case_54_a_content_range_other_than_asked_is_refused(served_file: tuple[dict[str, Any], bytes], mode: str,
                                                             why: str) -> None:
    # Before: "shifted" bytes were taken as the asked ones: the load read a header length from the wrong bytes
    # ("header length 7022349239403356795 exceeds the limit"); "long" waited 301 s for the request to time out;
    # "digits" guards the check itself: int() of over 4,300 digits raises ValueError, not an OSError.
    _data, raw = served_file
    with lying(Lies({"/m.safetensors": raw}, mode)) as base:
        url = f"{base}/m.safetensors"
        with pytest.raises(OSError) as raised:
            ss.open(url)
    assert str(raised.value) == (f"[Errno 5] asked for bytes [0, 65536) of a file of {len(raw)} bytes, "
                                 f"{why.format(size1=len(raw) + 1)}: '{url}'")


def test_case_54_a_server_without_sizes_is_refused_clearly(served_file: tuple[dict[str, Any], bytes]) -> None:
    # Before: TypeError from int(None), raised as an InvalidFileError ("TypeError: int() argument must be...").
    _data, raw = served_file
    with lying(Lies({"/m.safetensors": raw}, "no size")) as base:
        url = f"{base}/m.safetensors"
        with pytest.raises(OSError) as raised:
            ss.open(url)
    assert str(raised.value) == (f"[Errno 5] the server gives no size for the file (None), which a read by ranges "
                                 f"needs: '{url}'")


def test_case_54_a_claimed_size_past_the_data_is_refused_before_fetching(
        served_file: tuple[dict[str, Any], bytes]) -> None:
    # Before: load_file of a URL whose server claims 6 GiB for a file of 800 KB allocated the 6 GiB and sent 768
    # requests (5.9 s, 6.2 GiB); now the header is read first and the core refuses the size.
    from http_range_server import serving

    data, raw = served_file
    with serving({"/m.safetensors": raw}, claimed={"/m.safetensors": 6 << 30}) as (base, served):
        with pytest.raises(InvalidFileError) as raised:
            ss.load_file(f"{base}/m.safetensors")
        assert str(raised.value) == (f'{base}/m.safetensors: {(6 << 30) - len(raw)} bytes follow the last tensor\'s '
                                     'data (tensor "b")')
        assert served.ranges == [(0, FIRST_READ)]
    with serving({"/m.safetensors": raw}) as (base, served):  # the twin: the whole file, in one request
        loaded = ss.load_file(f"{base}/m.safetensors")
        np.testing.assert_array_equal(loaded["a"], data["a"])
        assert served.bytes_served == len(raw)


# --- 55. a file object whose read(), seek() or tell() lies -------------------------------------------------------------

class _Lying(io.RawIOBase):
    def __init__(self, raw: bytes, lie: str) -> None:
        self._data, self._lie = io.BytesIO(raw), lie

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._lie != "unseekable str"

    def seek(self, offset: int, whence: int = 0) -> Any:
        at = self._data.seek(offset, whence)
        return None if self._lie == "seek None" else at

    def tell(self) -> Any:
        return {"tell str": "0", "tell negative": -100}.get(self._lie, self._data.tell())

    def read(self, size: int = -1) -> Any:
        chunk = self._data.read(size)
        if self._lie == "more":
            return chunk + b"xx"
        if self._lie in ("str", "unseekable str"):
            return chunk.decode("latin-1")
        return memoryview(chunk) if self._lie == "memoryview" else chunk


@pytest.mark.parametrize(("lie", "message"), [
    ("more", "read(8368) returned 8370 bytes, more than asked"),
    ("str", "read() returned str, not bytes: a binary file object's read() gives bytes"),
    ("unseekable str", "read() returned str, not bytes: a binary file object's read() gives bytes"),
    ("seek None", "seek(0, SEEK_END) returned None, not a position in the file"),
    ("tell str", "tell() returned '0', not a position in the file"),
    ("tell negative", "tell() returned -100, not a position in the file"),
])
def test_case_55_a_lying_file_object_is_an_os_error_saying_so(lie: str, message: str) -> None:
    # Before: "more" was reported as "the server ignored the range asked for"; the others as InvalidFileError
    # ("TypeError: can't concat str to bytearray", "unsupported operand type(s) for -"), as if the file were bad.
    raw = ss.save({"a": np.arange(1000, dtype=np.float64), "b": [1, 2]})
    for route in (ss.load_file, lambda f: ss.open(f).load()):
        with pytest.raises(OSError) as raised:
            route(_Lying(raw, lie))
        assert type(raised.value) is OSError
        assert str(raised.value) == f"[Errno 5] {message}: '<_Lying>'"


def test_case_55_a_memoryview_from_read_is_bytes() -> None:
    raw = ss.save({"a": np.arange(1000, dtype=np.float64), "b": [1, 2]})
    loaded = ss.load_file(_Lying(raw, "memoryview"))
    assert loaded["b"] == [1, 2]
    np.testing.assert_array_equal(loaded["a"], np.arange(1000, dtype=np.float64))


# --- 56. a recording that loads refuse, continued with mode="a"; 58. a recorder's disk error -------------------------------

def _tensor(name: str) -> dict[str, Any]:
    return {"$": "tensor", "name": name, "fw": "numpy"}


@pytest.mark.parametrize(("schema", "tensors", "why"), [
    ([{"a": _tensor("0.x")}], {}, 'at $[0]["a"]: the schema refers to tensor "0.x", which the file lacks'),
    ([{"$": "ref", "#": 3}], {}, "at $[0]: ref to #3, which is not defined before this point"),
    ([{"$": "nosuchtag"}], {}, 'at $[0]: unknown tag "nosuchtag"'),
    ([[_tensor("0.x"), _tensor("0.x")]], {"0.x": ("F64", [2], np.arange(2.0).tobytes())},
     'at $[0][1]: tensor "0.x" is named by a second node (an object stored once and met again is a "ref")'),
])
def test_case_56_a_recording_loads_refuse_is_not_continued(tmp_path: Path, schema: Any, tensors: Any, why: str) -> None:
    # Before: Recorder(mode="a") appended to it without a word; every record appended went into a file no load reads.
    import json

    import crafted

    path = tmp_path / "r.safetensors"
    raw = crafted.recording_bytes_with(tensors, crafted.ENVELOPE + '"root":' + json.dumps(schema) + "}")
    path.write_bytes(raw)
    with pytest.raises(InvalidFileError) as raised:
        ss.load_file(path)
    assert str(raised.value) == f"{path}: {why}"
    with pytest.raises(InvalidFileError) as raised:
        ss.Recorder(path, mode="a")
    assert str(raised.value) == f"{path}: mode='a' continues a recording that loads, and a load refuses this one: {why}"
    assert path.read_bytes() == raw  # untouched, and not held: a writer may open it at once
    with ss.Recorder(path, mode="w") as recorder:
        recorder.append(1)
    assert ss.load_file(path) == [1]


def test_case_56_a_recording_that_loads_is_continued(tmp_path: Path) -> None:
    # The twin: a recording of the crafted kind that loads is continued; one holding a registered class is checked
    # without running the class's code (the check's load builds stand-ins).
    import json

    import crafted

    path = tmp_path / "r.safetensors"
    raw = np.arange(2.0).tobytes()
    path.write_bytes(crafted.recording_bytes_with({"0.x": ("F64", [2], raw)}, crafted.ENVELOPE + '"root":'
                                                  + json.dumps([{"a": _tensor("0.x")}]) + "}"))
    with ss.Recorder(path, mode="a") as recorder:
        recorder.append({"b": np.arange(3, dtype=np.int8)})
        recorder.append(_Counted(5))
    calls.clear()
    with ss.Recorder(path, mode="a") as recorder:  # checked by a load that builds no registered class
        recorder.append(None)
    assert calls == []
    loaded = ss.load_file(path)
    assert len(loaded) == 4 and calls == [5] and isinstance(loaded[2], _Counted) and loaded[3] is None
    np.testing.assert_array_equal(loaded[0]["a"], np.arange(2.0))
    np.testing.assert_array_equal(loaded[1]["b"], np.arange(3, dtype=np.int8))


calls: list[int] = []


class _Counted:
    def __init__(self, n: int) -> None:
        self.n = n


def _rebuilt(n: int) -> _Counted:
    calls.append(n)
    return _Counted(n)


ss.register(_Counted, "test_crafted_round8c.Counted", to_data=lambda c: c.n, from_data=_rebuilt)


def test_case_58_a_recorder_error_of_the_disk_names_the_file(tmp_path: Path) -> None:
    # Before: "[Errno 27] cannot write: File too large: 'the recording'" (the core knows the file by its descriptor).
    from conftest import run_python_json

    path = tmp_path / "r.safetensors"
    out = run_python_json("""
        import json, resource, signal, sys
        import numpy as np
        import safestructures as ss
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        with ss.Recorder(sys.argv[1], header_reserve=0) as recorder:
            recorder.append(1)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))
        recorder = ss.Recorder(sys.argv[1], mode="a", header_reserve=0)
        try:
            recorder.append(np.zeros(1 << 18))
        except OSError as e:
            print(json.dumps([type(e).__name__, e.errno, e.filename, e.strerror]))
    """, str(path))
    assert out == ["OSError", 27, str(path), "cannot write: File too large"]
    assert ss.load_file(path) == [1]



def test_case_58a_a_recording_another_recorder_writes_is_not_started_over(tmp_path: Path) -> None:
    # Before: the second Recorder(mode="w") replaced the file; the first one's close then wrote its own over it
    # (dropping its padding): the second recording was lost without a word (or the first one's later records were).
    path = tmp_path / "r.safetensors"
    first = ss.Recorder(path)
    first.append(1)
    first.flush()
    with pytest.raises(ss.InvalidArgumentError) as raised:
        ss.Recorder(path, mode="w")
    assert str(raised.value) == f"{path}: another Recorder is writing this recording"
    first.append(2)
    first.close()
    assert ss.load_file(path) == [1, 2]
    with ss.Recorder(path, mode="w") as second:  # the twin: once it is closed, a recording starts over
        second.append(3)
    assert ss.load_file(path) == [3]


@pytest.mark.parametrize("how", ["replaced", "removed"])
def test_case_58a_a_recording_replaced_under_its_recorder_is_not_written_over(tmp_path: Path, how: str) -> None:
    # Before: save_file over a recording being written was undone by the recorder's close (its rewrite renamed over
    # the path: [9] became [1, 2] again); a removed one came back; and neither said that record 2 was not in the file.
    path = tmp_path / "r.safetensors"
    recorder = ss.Recorder(path)
    recorder.append(1)
    recorder.flush()
    if how == "replaced":
        ss.save_file([9], path)
    else:
        path.unlink()
    recorder.append(2)
    with pytest.raises(OSError) as raised:
        recorder.close()
    assert str(raised.value) == (f"[Errno 116] the recording was {how} by another process since this Recorder opened "
                                 f"it: the records appended since its last flush are not in it: '{path}'")
    assert (ss.load_file(path) == [9]) if how == "replaced" else not path.exists()
    recorder.close()  # closed: nothing more to say
    quiet = ss.Recorder(tmp_path / "q.safetensors")  # the twin: nothing appended since its flush, nothing lost
    quiet.append(1)
    quiet.flush()
    ss.save_file([8], tmp_path / "q.safetensors")
    quiet.close()
    assert ss.load_file(tmp_path / "q.safetensors") == [8]

# --- 57. what a failed save leaves behind ------------------------------------------------------------------------------

class _Unsaveable:
    pass


@pytest.mark.parametrize("background", [False, True])
def test_case_57_a_failed_sharded_save_leaves_no_directory(tmp_path: Path, background: bool) -> None:
    # Before: the directory (and the parents it made) stayed, empty. (A background save fails at its snapshot, before
    # it makes any: that held before too.)
    data = {"a": np.arange(10.0), "bad": _Unsaveable()}
    target = tmp_path / "new" / "deeper"
    with pytest.raises(ss.UnsupportedTypeError):
        saved = ss.save_file(data, target, max_shard_size=100, background=background)
        if saved is not None:
            saved.result()
    assert list(tmp_path.iterdir()) == []
    existing = tmp_path / "mine"
    existing.mkdir()
    with pytest.raises(ss.UnsupportedTypeError):
        ss.save_file(data, existing, max_shard_size=100)
    assert list(tmp_path.iterdir()) == [existing] and list(existing.iterdir()) == []  # the caller's own stays
    ss.save_file({"a": np.arange(10.0)}, target, max_shard_size=100)  # the twin
    assert sorted(p.name for p in target.iterdir()) == ["model-00001-of-00001.safetensors", "model.safetensors.index.json"]


def test_case_57_a_save_failing_on_the_disk_leaves_the_previous_files(tmp_path: Path) -> None:
    # Held before too: every route, cut by a full disk (a file size limit) while writing, leaves the previous file,
    # checkpoint, step and recording loading as they were, and no temporary file. New (case 57): a background sharded
    # save cut so into a directory it made leaves none (before: new/sh, empty).
    from conftest import run_python_json

    out = run_python_json("""
        import json, os, resource, signal, sys
        import numpy as np
        import safestructures as ss
        d = sys.argv[1]
        small, big = {"a": np.arange(10.0)}, {"a": np.zeros(1 << 20), "b": np.ones(1 << 20)}
        ss.save_file(small, os.path.join(d, "x.safetensors"))
        ss.save_file(small, os.path.join(d, "sh"), max_shard_size=100)
        ss.CheckpointManager(os.path.join(d, "ck")).save(1, small)
        with ss.Recorder(os.path.join(d, "r.safetensors")) as recorder:
            recorder.append(small)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4 << 20, resource.RLIM_INFINITY))
        errors = []
        for save in (lambda: ss.save_file(big, os.path.join(d, "x.safetensors")),
                     lambda: ss.save_file(big, os.path.join(d, "x.safetensors"), background=True).result(),
                     lambda: ss.save_file(big, os.path.join(d, "sh"), max_shard_size=1 << 20),
                     lambda: ss.save_file(big, os.path.join(d, "sh"), max_shard_size=1 << 20, background=True).result(),
                     lambda: ss.CheckpointManager(os.path.join(d, "ck")).save(2, big),
                     lambda: ss.save_file(big, os.path.join(d, "new", "sh"), max_shard_size=1 << 20,
                                          background=True).result()):
            try:
                save()
            except OSError as e:
                errors.append(e.errno)
        recorder = ss.Recorder(os.path.join(d, "r.safetensors"), mode="a")
        try:
            recorder.append(big)
        except OSError as e:
            errors.append(e.errno)
        recorder.close()
        print(json.dumps(errors))
    """, str(tmp_path))
    assert out == [27] * 7
    found = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert found == ["ck", "ck/step-00000001.safetensors", "r.safetensors", "sh", "sh/model-00001-of-00001.safetensors",
                     "sh/model.safetensors.index.json", "x.safetensors"]
    for path in ("x.safetensors", "sh"):
        np.testing.assert_array_equal(ss.load_file(tmp_path / path)["a"], np.arange(10.0))
    assert ss.CheckpointManager(tmp_path / "ck").steps() == [1]
    assert len(ss.load_file(tmp_path / "r.safetensors")) == 1


# --- 59. a save whose target is a FIFO or a device ---------------------------------------------------------------------

@pytest.mark.parametrize("route", ["save_file", "background", "save_tensors", "Recorder"])
def test_case_59_a_save_does_not_replace_a_fifo(tmp_path: Path, route: str) -> None:
    # Before: written beside it and renamed over it, the FIFO gone (as root, Recorder("/dev/null") and
    # save_file(x, "/dev/null") replaced the device with a regular file).
    import stat

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ss.InvalidArgumentError) as raised:
        if route == "save_file":
            ss.save_file({"a": 1}, fifo)
        elif route == "background":
            ss.save_file({"a": 1}, fifo, background=True).result()
        elif route == "save_tensors":
            ss.save_tensors({"a": np.arange(3.0)}, fifo)
        else:
            ss.Recorder(fifo)
    assert str(raised.value) == (f"{fifo}: the target is a FIFO, which a save would replace with a regular file: to "
                                 "write into it, save to a file object (open(path, 'wb'))")
    assert raised.value.code == "NotARegularFile"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and sorted(tmp_path.iterdir()) == [fifo]


def test_case_59_a_link_to_a_fifo_is_refused_and_a_file_object_writes_into_one(tmp_path: Path) -> None:
    # A link to a FIFO (as /dev/stdout is a link to a descriptor) is refused too: before, the link was replaced. The
    # twins: a link to a regular file is replaced (never what it points to); a file object open on the FIFO is written.
    import stat

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(fifo)
    with pytest.raises(ss.InvalidArgumentError, match=r"link: the target is a link to a FIFO, which a save would"):
        ss.save_file({"a": 1}, link)
    assert link.is_symlink() and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    (tmp_path / "file").write_bytes(b"old")
    other = tmp_path / "other"
    other.symlink_to(tmp_path / "file")
    ss.save_file({"a": 1}, other)
    assert ss.load_file(other) == {"a": 1} and not other.is_symlink() and (tmp_path / "file").read_bytes() == b"old"
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    with open(fifo, "wb") as f:
        ss.save_file({"a": 2}, f)
    reader.join()
    assert ss.load(got[0]) == {"a": 2}

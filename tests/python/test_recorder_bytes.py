"""The bytes of a recording do not change: each case below (plain records and streams of every kind of value, floats
in every notation, names that meet, reference ids, a header growing into its padding, a used-up padding, mode="a",
close dropping the padding or keeping it) gives, at each flush and once closed, exactly the bytes the recorder wrote
before its header moved from Python into the core (their sha256 is pinned here: written by main at 043b5e8)."""

from __future__ import annotations

import collections
import hashlib
import math
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import safestructures as ss


def _values(i: int) -> dict[str, Any]:
    """Record i: every scalar form (floats in fixed and exponent notation, specials, big ints, strings to escape and
    without a UTF-8 form), containers, shared objects and a cycle (reference ids), bytes inline and as tensors, arrays
    of several dtypes, a key that is a tag member."""
    shared = [i, "shared"]
    cycle: list[Any] = [i]
    cycle.append(cycle)
    nan_payload = struct.unpack("<d", struct.pack("<Q", 0x7FF8DEADBEEF0001))[0]
    return {
        "floats": [i / 7, 1e-4 * (i + 1), 1e15 + i, 1e16, 1.5e300, 5e-324, -0.0, 0.1, 123456789012345680000.0,
                   2.5e-5, 1e22, float("inf"), -math.inf, math.nan, nan_payload],
        "ints": [i, -(2**63), 2**63 - 1, 2**64 + i, -(2**70)],
        "strs": ["plain", 'quote " back \\ slash', "ctl \x00\x01\x1f\n\t\r\b\f \x7f", "uni é ü 中 🙂", "lone \ud800"],
        "bytes": [b"small", bytearray(b"mutable"), bytes(range(256)) * (i + 1)],
        "containers": ((i, None, True), {1, 2, 3}, frozenset({"a"}), collections.deque([1, 2], maxlen=5),
                       collections.OrderedDict(b=1, a=2), collections.Counter("aab"),
                       collections.defaultdict(list, {"k": [1]})),
        "keys": {1: "int", (1, "t"): "tuple", "$": "tag", "#": 3, "a.b": "dot", "ctl\x01": "c"},
        "shared": [shared, shared, cycle],
        "arrays": [np.arange(6, dtype=np.float32).reshape(2, 3) + i, np.zeros((0, 3), np.int64),
                   np.array([True, False]), np.float16(1.5) * np.ones(3, np.float16), np.array(i, np.uint8)],
    }


def _torch_views(i: int) -> Any:
    import torch

    base = torch.arange(12, dtype=torch.float32) + i
    return {"base": base, "view": base[2:8].view(2, 3), "step": base[::3], "other": torch.ones(2, dtype=torch.bfloat16)}


def _flushed(path: Path, rec: ss.Recorder) -> bytes:
    rec.flush()
    return path.read_bytes()


def _plain(path: Path) -> Iterator[bytes]:
    with ss.Recorder(path, fsync=False, flush_seconds=None, metadata={"run": "plain é", "q\"": "\\"}) as rec:
        for i in range(3):
            rec.append(_values(i))
        yield _flushed(path, rec)
        rec.append(None)
        rec.append([])
        rec.append(np.ones(4, np.float64))
        yield _flushed(path, rec)
    yield path.read_bytes()


def _streams(path: Path) -> Iterator[bytes]:
    # Names that meet: stream "a" writes "a.0.0.x"; stream "a.0"'s record 0 names its tensor at "x" the same.
    with ss.Recorder(path, fsync=False, flush_seconds=None) as rec:
        rec["a"].append([{"x": np.ones(2)}])
        rec["a.0"].append({"x": np.zeros(2), "0": {"x": np.ones(1)}})
        rec["a.0"].append({"x": np.zeros(2)})
        rec["ctl\x01\n name \"q\" é"].append(_values(1))
        yield _flushed(path, rec)
        rec["a"].append({"t": np.arange(3)})
        yield _flushed(path, rec)
    yield path.read_bytes()


def _dollar_stream(path: Path) -> Iterator[bytes]:
    # A stream named "$": the root is a dict in pair form.
    with ss.Recorder(path, fsync=False, flush_seconds=None) as rec:
        rec["$"].append({"v": np.arange(4, dtype=np.int32)})
        rec["b"].append(_values(2))
        rec["$"].append(1.25)
    yield path.read_bytes()


def _torch(path: Path) -> Iterator[bytes]:
    pytest.importorskip("torch")
    with ss.Recorder(path, fsync=False, flush_seconds=None) as rec:
        for i in range(3):
            rec.append(_torch_views(i))
        yield _flushed(path, rec)
    yield path.read_bytes()


def _growth(path: Path) -> Iterator[bytes]:
    # A small room: the header grows into the padding at several flushes, then the padding is kept at close.
    with ss.Recorder(path, fsync=False, flush_seconds=None, header_room=0, header_reserve=64 << 10) as rec:
        for i in range(60):
            rec[f"s{i % 4}"].append({"i": i, "x": np.full(300, i, np.float32), "y": [i / 3, str(i)]})
            if i % 10 == 9:
                yield _flushed(path, rec)
    yield path.read_bytes()


def _used_up(path: Path) -> Iterator[bytes]:
    # A padding of one page, used up: the growth moves the data behind a fresh padding (inserted or rewritten: the
    # same bytes either way).
    for fsync in (False, True):
        with ss.Recorder(path, fsync=fsync, flush_seconds=None, header_room=0, header_reserve=4096) as rec:
            for i in range(40):
                rec.append({"i": i, "x": np.full(100, i, np.int16)})
                if i % 8 == 7:
                    yield _flushed(path, rec)
        yield path.read_bytes()


def _append_mode(path: Path) -> Iterator[bytes]:
    with ss.Recorder(path, fsync=False, flush_seconds=None, header_reserve=1 << 20) as rec:
        for i in range(4):
            rec["s"].append(_values(i))
    yield path.read_bytes()
    with ss.Recorder(path, "a", fsync=False, flush_seconds=None) as rec:
        for i in range(4, 6):
            rec["s"].append(_values(i))
            rec["t"].append(i)
        yield _flushed(path, rec)
    yield path.read_bytes()
    # Continuing a recording that kept a padding, with metadata of its own.
    with ss.Recorder(path, fsync=False, flush_seconds=None, header_reserve=4096, header_room=0) as rec:
        for i in range(30):
            rec.append({"x": np.full(200, i, np.float64)})
    yield path.read_bytes()
    with ss.Recorder(path, "a", fsync=False, flush_seconds=None, metadata={"m": "v"}) as rec:
        rec.append(_values(9))
        yield _flushed(path, rec)
    yield path.read_bytes()


def _empty(path: Path) -> Iterator[bytes]:
    with ss.Recorder(path, fsync=False, flush_seconds=None) as rec:
        yield path.read_bytes()
    yield path.read_bytes()
    with ss.Recorder(path, fsync=False, flush_seconds=None, header_reserve=0, metadata={"k": "v"}) as rec:
        rec.append({"a": 1})
        yield _flushed(path, rec)
    yield path.read_bytes()


CASES: dict[str, Callable[[Path], Iterator[bytes]]] = {
    "plain": _plain, "streams": _streams, "dollar_stream": _dollar_stream, "torch": _torch, "growth": _growth,
    "used_up": _used_up, "append_mode": _append_mode, "empty": _empty,
}


def digests(directory: Path) -> dict[str, list[str]]:
    """Each case's sha256 at each point it yields, written in `directory`."""
    return {name: [hashlib.sha256(raw).hexdigest() for raw in case(directory / f"{name}.safetensors")]
            for name, case in CASES.items()}


# Written by main at 043b5e8 (the recorder's header still rendered in Python): `digests(dir)` printed.
EXPECTED: dict[str, list[str]] = {
    "plain": [
        "15339037f3fb72f397cd21dd12a4a299a25d061dd0d11a576890d98f3c963557",
        "826c9a1d6c36c7ca92965f0faf9be859d9f01416c58d0c6dd38e1677032f938a",
        "d2bf49808f0c03e8b321c5d2068ac538b50a84a80988adbaad57f0a80c330d9e",
    ],
    "streams": [
        "f5eaa2bf148608176bc181fb8d5d6f221181ac85e7f6dfc238a18333c6d00420",
        "41d051587cd1316abe5706520ba1004529d2cc95b76528ea4d3d1f04a6ef4fe7",
        "ea5f82290c96fa6403f2f55da6e4d769c9740df3465df7109b06b7c9356fe2bb",
    ],
    "dollar_stream": [
        "40959b60c1b92311e5d4ea56d4a702bcb470348fd14a732c41c3c1ce9d706676",
    ],
    "torch": [
        "965464e3ddd783144fe227bb300a979a81ccb4f3f5bfc3b18265534abfd05989",
        "17a72cd607a86eac6f6c0561902c68c6e22e8899a89ad1da610acdcf7541c142",
    ],
    "growth": [
        "490cf735f7238c2619682a7a9895d99e2caf3f6ac2c35ee1788ec7a7c54d82cc",
        "cf85878bf59fb40d0af952d844827833f5714f94265e68c536354aaf04b348ff",
        "7c5dd86a47ef298f2b79379d7d20c3ba74a637dfb76d1925177af7756d52c39c",
        "bbc882bddebace0df749d4e728d78c96cb1d49f50eef60fce76ef92b40e097c3",
        "3c73259635a08134cd4fcb5b1e3f6912031ec6ce95f4094c9e6796eb25879149",
        "c160a9dd0bfeb449e82dda0774ec099584904287bc9ee192e86d4163228dc093",
        "c160a9dd0bfeb449e82dda0774ec099584904287bc9ee192e86d4163228dc093",
    ],
    "used_up": [
        "49950f62ff05657506b0fda04f8898e7c7e7b80edbfbaa6998d3df35eb882919",
        "1e9cfaff0e3166874721f1bb65fb7f8c1d8ee4afe772921033152169534c4245",
        "e3705e902a595b43801484c49ce31f27ef175ea9f905ca9bb4c8d42c4d14ff92",
        "3d8ce8799c6fa2049417f121e9484d2a3e68106e7ada43bcbfc940ef28eca9dc",
        "b9b618cd8e4ed3d1bc85e7eb0b41ecbefbabf9da6bbfac3d4c0a54cc81273116",
        "b9b618cd8e4ed3d1bc85e7eb0b41ecbefbabf9da6bbfac3d4c0a54cc81273116",
        "49950f62ff05657506b0fda04f8898e7c7e7b80edbfbaa6998d3df35eb882919",
        "1e9cfaff0e3166874721f1bb65fb7f8c1d8ee4afe772921033152169534c4245",
        "e3705e902a595b43801484c49ce31f27ef175ea9f905ca9bb4c8d42c4d14ff92",
        "3d8ce8799c6fa2049417f121e9484d2a3e68106e7ada43bcbfc940ef28eca9dc",
        "b9b618cd8e4ed3d1bc85e7eb0b41ecbefbabf9da6bbfac3d4c0a54cc81273116",
        "b9b618cd8e4ed3d1bc85e7eb0b41ecbefbabf9da6bbfac3d4c0a54cc81273116",
    ],
    "append_mode": [
        "1b822bb6956218a4cd1d54be7ff1cc41b4a234db178c897531a2645bf615dc0c",
        "771fdd039bc9789fb46eccdb0d25beb69ac8fa8ee7f5e220de416e53e7bb070b",
        "771fdd039bc9789fb46eccdb0d25beb69ac8fa8ee7f5e220de416e53e7bb070b",
        "46e78cf5f1174595cc086fbe26704dda21fed7bf47d451a073bdef381570801f",
        "9de6b3577b7a545323973c44dd82bc4989cc87c955b9655f3b1920b9da22202e",
        "9de6b3577b7a545323973c44dd82bc4989cc87c955b9655f3b1920b9da22202e",
    ],
    "empty": [
        "628f07b92117e15919b2f196fe065d4d0b3bfe72db670f7a6581908d8d8159ef",
        "392d048c7f72ccd7a5eb772853fbcac6ce92d5d286b33c331ea0d34065abab27",
        "54ccb62d7d0409d488d8ef31d32c8e2d3f6d7128d8713aae5abb5e124aa6df00",
        "54ccb62d7d0409d488d8ef31d32c8e2d3f6d7128d8713aae5abb5e124aa6df00",
    ],
}


@pytest.mark.parametrize("name", list(CASES))
def test_recording_bytes_are_unchanged(name: str, tmp_path: Path) -> None:
    got = [hashlib.sha256(raw).hexdigest() for raw in CASES[name](tmp_path / f"{name}.safetensors")]
    assert got == EXPECTED[name]


def test_the_recorder_renders_no_header_of_its_own() -> None:
    # The header, its entries, the records' names and ids are the core's (RecordingWriter): the Python side parses and
    # writes no JSON, and takes none of the format's names.
    import ast

    import safestructures._recorder as recorder

    tree = ast.parse(Path(recorder.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "json" not in imported and "_format" not in imported
    assert {"._flat", "._sharded"} <= {f".{m}" for m in imported}


def test_a_continued_recording_keeps_its_records_text_exactly(tmp_path: Path) -> None:
    # mode="a" takes each record back as the file holds it (simdjson's raw text of each): records nested to the depth
    # limit (a dict with an int key is three JSON levels a level), strings of escapes and floats of every notation give
    # the file that one recording written in one go gives, byte for byte.
    from safestructures._limits import DEFAULT_MAX_DEPTH

    deep: Any = 1.5e-7
    for _ in range(DEFAULT_MAX_DEPTH - 2):
        deep = {1: deep}
    records = [deep, _values(0), 'x"\\\n\x01 é', [1e16, -0.0, 2.5e-5]]
    whole, continued = tmp_path / "whole.safetensors", tmp_path / "continued.safetensors"
    with ss.Recorder(whole, fsync=False) as rec:
        for value in records:
            rec["s"].append(value)
    with ss.Recorder(continued, fsync=False) as rec:
        for value in records[:2]:
            rec["s"].append(value)
    with ss.Recorder(continued, "a", fsync=False) as rec:
        assert len(rec) == 2
        for value in records[2:]:
            rec["s"].append(value)
    assert continued.read_bytes() == whole.read_bytes()
    got = ss.load_file(continued)["s"]
    assert len(got) == 4 and got[2] == 'x"\\\n\x01 é' and got[3] == [1e16, -0.0, 2.5e-5]

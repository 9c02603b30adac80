"""A load given the default arguments passes the core no context: the core asks _walkers.default_context for one only
when something needs it (a constructor, the adapter), and load_file of a local file is read by the resolver's first
step (_source.read_or_resolve) without a stat or a Source of its own. Both shortcuts must give what the checked paths
give (reached here with a "cpu" equal to the default but not the same object, or with a progress bar, which resolves
first): the same data, views, errors, budget and "where"."""

from __future__ import annotations

import dataclasses
import datetime
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import safestructures
from safestructures import InvalidFileError, _core, _source, _types, _walkers
from safestructures._limits import BASE_MAX_BYTES

# Equal to the default device, but not the default object itself: the load takes the checked path.
CHECKED_CPU = "".join(["c", "p", "u"])


@dataclasses.dataclass
class Point:
    x: int
    y: float


def _payloads() -> dict[str, Any]:
    base = np.arange(12, dtype=np.float32)
    return {
        "tiny": {"step": 10, "lr": 1e-3, "name": "run", "t": np.arange(16, dtype=np.float32)},
        "views": {"a": base, "b": base[2:7], "c": base.reshape(3, 4)[:, 1]},
        "objects": {"when": datetime.date(2024, 5, 1), "p": Point(1, 2.5), "s": {1, 2}, "arr": np.ones((2, 2), np.int16)},
        "empty": {},
    }


@pytest.fixture
def default_contexts_made(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The contexts the core asks _walkers.default_context for, in order."""
    made: list[dict[str, Any]] = []
    original = _walkers.default_context

    def recording(file_size: int) -> dict[str, Any]:
        context = original(file_size)
        made.append(context)
        return context

    monkeypatch.setattr(_walkers, "default_context", recording)
    monkeypatch.setattr(safestructures._api, "default_context", recording)
    return made


def _same(a: Any, b: Any) -> None:
    assert type(a) is type(b)
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and a.strides == b.strides
        assert a.tobytes() == b.tobytes()
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            _same(a[key], b[key])
    else:
        assert a == b


@pytest.mark.parametrize("name", list(_payloads()))
def test_a_load_with_the_defaults_gives_what_the_checked_path_gives(name: str) -> None:
    data = safestructures.save(_payloads()[name])
    _same(safestructures.load(data), safestructures.load(data, device=CHECKED_CPU))
    _same(safestructures.load(bytearray(data)), safestructures.load(bytearray(data), device=CHECKED_CPU))


def test_plain_values_and_numpy_arrays_never_make_the_default_context(default_contexts_made: list[dict[str, Any]]) -> None:
    loaded = safestructures.load(safestructures.save(_payloads()["tiny"]))
    assert loaded["t"].tolist() == list(range(16)) and loaded["name"] == "run"
    assert default_contexts_made == []
    # The checked path makes it through load_context, not through the core.
    safestructures.load(safestructures.save(_payloads()["tiny"]), device=CHECKED_CPU)
    assert len(default_contexts_made) == 1


def test_a_constructor_gets_the_default_context_made_once_with_the_budget_of_the_buffer(
        default_contexts_made: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[dict[str, Any], str]] = []
    original = _types.CONSTRUCT["date"]

    def spy(fields: dict[str, Any], context: dict[str, Any]) -> Any:
        seen.append((context, context["where"]()))
        return original(fields, context)

    monkeypatch.setitem(_types.CONSTRUCT, "date", spy)
    data = safestructures.save({"t": np.arange(3), "d": [datetime.date(2020, 1, 2), datetime.date(2021, 3, 4)]})
    loaded = safestructures.load(data)
    assert loaded["d"] == [datetime.date(2020, 1, 2), datetime.date(2021, 3, 4)]
    assert len(default_contexts_made) == 1
    context = default_contexts_made[0]
    assert [(c is context, where) for c, where in seen] == [(True, '$["d"][0]'), (True, '$["d"][1]')]
    assert context["framework"] is None and context["device"] == "cpu" and context["strict"] is False
    assert context["plugins"] == {} and context["names"] == _walkers.default_context(0)["names"]
    assert context["budget"].limit == 4 * len(data) + BASE_MAX_BYTES
    # The tensor built before the context was made is its base for later views; "where" is gone after the load.
    assert list(context["numpy_bases"]) == ["t"] and context["numpy_bases"]["t"] is loaded["t"]
    assert "where" not in context


def test_a_view_built_by_the_adapter_finds_the_base_built_before_the_context_was_made(
        default_contexts_made: list[dict[str, Any]]) -> None:
    torch = pytest.importorskip("torch")
    base = torch.arange(12, dtype=torch.float32)
    saved = safestructures.save({"a": base, "b": base[2:7]}, checksums=False)
    # The same nodes as numpy ones: "a" a plain tensor the core builds, "b" a view of its storage the adapter builds.
    data = saved.replace(b"torch", b"numpy")
    assert data.count(b"numpy") == 2
    loaded = safestructures.load(data)
    assert type(loaded["a"]) is np.ndarray and type(loaded["b"]) is np.ndarray
    assert loaded["b"].tolist() == [2.0, 3.0, 4.0, 5.0, 6.0]
    assert np.shares_memory(loaded["a"], loaded["b"])
    assert len(default_contexts_made) == 1  # the view node's adapter asked for it
    assert default_contexts_made[0]["numpy_bases"]["a"] is loaded["a"]
    _same(loaded, safestructures.load(data, device=CHECKED_CPU))


def test_the_core_takes_none_for_the_default_context() -> None:
    data = safestructures.save(_payloads()["objects"])
    context = _walkers.load_context(None, CHECKED_CPU, None, (), False, None, len(data))
    made = _core.load_bytes(data, 100, 10**6, 10**6, None, False)
    given = _core.load_bytes(data, 100, 10**6, 10**6, context, False)
    assert made[0] is given[0] is True
    _same(made[1], given[1])
    assert made[2] == given[2]


def _bad_files() -> dict[str, bytes]:
    good = safestructures.save({"d": datetime.date(2020, 1, 2), "t": np.arange(4, dtype=np.float32)})
    header = int.from_bytes(good[:8], "little")
    bad_date = good.replace(b"2020-01-02", b"2020-13-02")  # a month the constructor refuses
    assert bad_date != good
    return {"truncated": good[: 8 + header + 4], "short": b"123", "bad date": bad_date, "not json": b"\x04" + bytes(7) + b"{{{{"}


@pytest.mark.parametrize("name", list(_bad_files()))
def test_a_bad_buffer_fails_as_on_the_checked_path(name: str) -> None:
    data = _bad_files()[name]
    with pytest.raises(InvalidFileError) as fast:
        safestructures.load(data)
    with pytest.raises(InvalidFileError) as checked:
        safestructures.load(data, device=CHECKED_CPU)
    assert str(fast.value) == str(checked.value)
    assert fast.value.code == checked.value.code


def test_data_that_is_not_a_buffer_is_a_type_error_before_reading() -> None:
    for given in ("text", 12, None):
        with pytest.raises(TypeError, match="a bytes-like object is required|memoryview"):
            safestructures.load(given)  # type: ignore[arg-type]


def test_a_plain_safetensors_buffer_gets_the_default_context_of_its_size(default_contexts_made: list[dict[str, Any]]) -> None:
    data = _core.write_bytes([("w", "F32", (2,), np.array([1.5, 2.5], np.float32))], {"k": "v"})
    loaded = safestructures.load(data)
    assert list(loaded) == ["w"] and loaded["w"].tolist() == [1.5, 2.5]
    assert [c["budget"].limit for c in default_contexts_made] == [4 * len(data) + BASE_MAX_BYTES]


def _files(directory: Path) -> dict[str, str]:
    single = str(directory / "single.safetensors")
    safestructures.save_file(_payloads()["objects"], single)
    plain = str(directory / "plain.safetensors")
    _core.write_file(plain, [("w", "I32", (3,), np.arange(3, dtype=np.int32))], None)
    sharded = str(directory / "sharded")
    safestructures.save_file({"a": np.arange(40, dtype=np.int64), "b": np.ones(40)}, sharded, max_shard_size=400)
    return {"single": single, "plain": plain, "sharded": sharded,
            "index": os.path.join(sharded, "model.safetensors.index.json")}


@pytest.mark.parametrize("name", ["single", "plain", "sharded", "index"])
def test_load_file_with_the_defaults_gives_what_the_checked_path_gives(tmp_path: Path, name: str) -> None:
    path = _files(tmp_path)[name]
    _same(safestructures.load_file(path), safestructures.load_file(path, device=CHECKED_CPU))
    _same(safestructures.load_file(path, verify=True), safestructures.load_file(path, device=CHECKED_CPU, verify=True))


def test_load_file_of_a_plain_file_gets_the_default_context_of_its_size(
        tmp_path: Path, default_contexts_made: list[dict[str, Any]]) -> None:
    path = _files(tmp_path)["plain"]
    assert safestructures.load_file(path)["w"].tolist() == [0, 1, 2]
    assert [c["budget"].limit for c in default_contexts_made] == [4 * os.path.getsize(path) + BASE_MAX_BYTES]


@pytest.mark.parametrize("given", ["missing.safetensors", "missing.index.json", "bad.safetensors", "fifo.safetensors"])
def test_load_file_fails_as_on_the_checked_path(tmp_path: Path, given: str) -> None:
    (tmp_path / "bad.safetensors").write_bytes(b"\x10" + bytes(7) + b"[]")
    os.mkfifo(tmp_path / "fifo.safetensors")
    path = str(tmp_path / given)
    with pytest.raises(Exception) as fast:
        safestructures.load_file(path)
    with pytest.raises(Exception) as checked:
        safestructures.load_file(path, device=CHECKED_CPU)
    assert type(fast.value) is type(checked.value)
    assert str(fast.value) == str(checked.value)


def test_load_file_refuses_a_nul_in_the_path_as_open_does() -> None:
    with pytest.raises(ValueError, match="embedded null byte"):
        safestructures.load_file("a\0b.safetensors")


@pytest.mark.parametrize("name", ["single", "plain", "sharded", "index", "folder of one"])
def test_load_file_through_the_first_step_gives_what_resolving_first_gives(tmp_path: Path, name: str) -> None:
    pytest.importorskip("tqdm")
    files = _files(tmp_path)
    if name == "folder of one":
        os.mkdir(tmp_path / "one")
        os.rename(files["single"], tmp_path / "one" / "model.safetensors")
        files[name] = str(tmp_path / "one")
    # progress=True resolves before it loads (its bar wants the paths); a tiny file draws no bar.
    _same(safestructures.load_file(files[name]), safestructures.load_file(files[name], progress=True))


def test_the_first_step_reads_a_single_local_file_and_resolves_anything_else(tmp_path: Path) -> None:
    files = _files(tmp_path)
    calls: list[tuple[Any, ...]] = []

    def read(*args: Any) -> Any:
        calls.append(args)
        return _core.load_file(*args)

    arguments = (100, 10**6, 10**6, None, False)
    loaded, source = _source.read_or_resolve(files["single"], 10**6, read, arguments)
    assert source is None and calls == [(files["single"], *arguments)]
    assert loaded[1][0] is True and loaded[1][1]["when"] == datetime.date(2024, 5, 1)

    # A directory: the reader's open refuses it, and the resolver reads its index.
    calls.clear()
    loaded, source = _source.read_or_resolve(files["sharded"], 10**6, read, arguments)
    assert loaded is None and calls == [(files["sharded"], *arguments)]
    assert source == _source.resolve(files["sharded"], 10**6) and source.kind == _source.SHARDED
    assert source.index == files["index"] and len(source.paths) == 2

    # An index, a URL and a file object are never handed to the reader.
    calls.clear()
    _loaded, source = _source.read_or_resolve(files["index"], 10**6, read, arguments)
    assert calls == [] and source == _source.resolve(files["index"], 10**6)
    url = "file://" + files["plain"]
    _loaded, source = _source.read_or_resolve(url, 10**6, read, arguments)
    assert calls == [] and (source.kind, source.name) == (_source.FILE, files["plain"])
    with open(files["plain"], "rb") as f:
        _loaded, source = _source.read_or_resolve(f, 10**6, read, arguments)
        assert calls == [] and source.kind == _source.FILE and source.ranged is not None

    # What the reader raises for a file is the load's error, as the core's for the file resolve() finds.
    with pytest.raises(FileNotFoundError) as fast:
        _source.read_or_resolve(str(tmp_path / "missing.safetensors"), 10**6, read, arguments)
    found = _source.resolve(str(tmp_path / "missing.safetensors"), 10**6)
    with pytest.raises(FileNotFoundError) as resolved:
        _core.load_file(found.name, *arguments)
    assert str(fast.value) == str(resolved.value)

"""URLs through fsspec (the optional extra ``remote``): save_file (a temporary moved over the target; sharded saves
uploaded shards first, index last), load_file, open and the command line, on fsspec's memory filesystem and on
file:// URLs; without fsspec a URL names the extra to install."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import safestructures as ss
from safestructures import FrameworkNotAvailableError, UnsupportedTypeError
from safestructures._cli import main as cli
from conftest import assert_same, run_python

fsspec = pytest.importorskip("fsspec")
from fsspec.implementations.memory import MemoryFileSystem  # noqa: E402


def sample() -> dict[str, Any]:
    return {
        "model": {"embed": np.arange(60, dtype=np.float32).reshape(6, 10), "bias": np.array([1, -2], dtype=np.int8)},
        "step": 12,
        "names": ["a", "b"],
        "shared": (np.ones(5, dtype=np.float16),),
    }


@pytest.fixture
def memory() -> Any:
    fs = fsspec.filesystem("memory")
    root = f"/test-{os.getpid()}-{id(fs)}"
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_memory_round_trip_holds_the_bytes_save_makes(memory: Any) -> None:
    fs, root = memory
    url = f"memory://{root}/run/data.safetensors"
    data = sample()
    ss.save_file(data, url, {"note": "n"})
    assert fs.ls(f"{root}/run", detail=False) == [f"{root}/run/data.safetensors"]  # no temporary left
    assert fs.cat_file(f"{root}/run/data.safetensors") == ss.save(data, {"note": "n"})
    assert_same(ss.load_file(url, verify=True), data)
    with ss.open(url) as f:
        assert f.metadata == {"note": "n"}
        assert f.keys() == ["model", "step", "names", "shared"]
        bias = f["model"]["bias"].load()
        assert bias.dtype == np.int8 and bias.tolist() == [1, -2]
        assert_same(f.load(), data)


def test_a_failed_save_leaves_the_earlier_file_and_no_temporary(memory: Any) -> None:
    fs, root = memory
    url = f"memory://{root}/data.safetensors"
    ss.save_file({"v": 1}, url)
    before = fs.cat_file(f"{root}/data.safetensors")
    with pytest.raises(UnsupportedTypeError):
        ss.save_file({"v": 2, "bad": object()}, url)
    assert fs.ls(root, detail=False) == [f"{root}/data.safetensors"]
    assert fs.cat_file(f"{root}/data.safetensors") == before


def test_a_sharded_save_to_memory_loads_and_opens(memory: Any) -> None:
    fs, root = memory
    url = f"memory://{root}/ckpt"
    data = sample()
    ss.save_file(data, url, max_shard_size=200)
    names = sorted(os.path.basename(p) for p in fs.ls(f"{root}/ckpt", detail=False))
    assert names == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"]
    assert_same(ss.load_file(url, verify=True), data)
    with ss.open(f"{url}/model.safetensors.index.json") as f:
        assert_same(f.load("model.embed"), data["model"]["embed"])
        assert f.fetcher is not None


def test_file_urls_are_local_paths(tmp_path: Path) -> None:
    data = sample()
    ss.save_file(data, f"file://{tmp_path}/one.safetensors")
    assert (tmp_path / "one.safetensors").read_bytes() == ss.save(data)
    assert_same(ss.load_file(f"file://{tmp_path}/one.safetensors"), data)
    ss.save_file(data, f"file://{tmp_path}/sharded", max_shard_size=200)
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    with ss.open(f"file://{tmp_path}/sharded") as f:
        assert f.fetcher is None  # mapped, as the path is
        assert_same(f.load(), data)


def test_the_command_line_reads_urls(memory: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _fs, root = memory
    ss.save_file(sample(), f"memory://{root}/x.safetensors")
    ss.save_file(sample(), f"memory://{root}/s", max_shard_size=200)
    assert cli(["inspect", f"memory://{root}/x.safetensors"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"memory://{root}/x.safetensors: safestructures v2, 3 tensors, 252 B of tensor data, no metadata"
    assert "embed: tensor float32 [6, 10]  240 B  (numpy)" in out
    assert cli(["verify", f"memory://{root}/s"]) == 0
    assert capsys.readouterr().out == f"OK: memory://{root}/s: safestructures v2, 2 shards, 3 tensors, 252 B of tensor data, no metadata\n"


def test_verify_names_a_damaged_remote_tensor(memory: Any, capsys: pytest.CaptureFixture[str]) -> None:
    fs, root = memory
    raw = bytearray(ss.save({"w": np.zeros(100, dtype=np.float32)}))
    raw[-1] ^= 0xFF
    fs.pipe_file(f"{root}/bad.safetensors", bytes(raw))
    assert cli(["verify", f"memory://{root}/bad.safetensors"]) == 1
    err = capsys.readouterr().err
    assert f"memory://{root}/bad.safetensors" in err and '"w"' in err


def test_a_url_without_fsspec_names_the_extra() -> None:
    result = run_python("""
import sys
sys.modules["fsspec"] = None  # as if not installed
import safestructures as ss
try:
    ss.load_file("memory://x/y.safetensors")
except ImportError as e:
    print(type(e).__name__, e)
""")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("FrameworkNotAvailableError memory://x/y.safetensors: URLs are read and written through "
                                     "fsspec, which is not installed: pip install safestructures[remote]")
    assert issubclass(FrameworkNotAvailableError, ImportError)


def test_a_stream_load_of_a_url_file_object(memory: Any) -> None:
    fs, root = memory
    ss.save_file(sample(), f"memory://{root}/x.safetensors")
    with fs.open(f"{root}/x.safetensors", "rb") as f:
        assert_same(ss.load_file(f), sample())
    with fsspec.open(f"memory://{root}/y.safetensors", "wb") as f:
        ss.save_file(sample(), f)
    assert fs.cat_file(f"{root}/y.safetensors") == ss.save(sample())


def test_a_save_pretrained_folder_at_a_url_loads_and_opens_as_stock_safe_open_reads_it(memory: Any, tmp_path: Path) -> None:
    """A folder written by transformers' save_pretrained (small shards, its index without our schema), uploaded to
    the memory filesystem; then the same without its index (a folder of plain shards, listed)."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("torch")
    from safetensors import safe_open

    fs, root = memory
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                     vocab_size=100, max_position_embeddings=32)
    transformers.BertModel(config).save_pretrained(tmp_path, max_shard_size="20KB")
    shards = sorted(p.name for p in tmp_path.glob("*.safetensors"))
    assert len(shards) > 3 and (tmp_path / "model.safetensors.index.json").is_file()
    expected: dict[str, Any] = {}
    for shard in shards:
        with safe_open(tmp_path / shard, "np") as stock:
            expected.update({name: stock.get_tensor(name) for name in stock.keys()})
    for name in [*shards, "model.safetensors.index.json"]:
        fs.put_file(str(tmp_path / name), f"{root}/bert/{name}")
    for url in (f"memory://{root}/bert", f"memory://{root}/bert/model.safetensors.index.json"):
        loaded = ss.load_file(url)
        assert sorted(loaded) == sorted(expected)
        for name, tensor in expected.items():
            assert loaded[name].dtype == tensor.dtype and loaded[name].shape == tensor.shape
            np.testing.assert_array_equal(loaded[name], tensor)
    fs.rm(f"{root}/bert/model.safetensors.index.json")
    with ss.open(f"memory://{root}/bert") as f:
        assert sorted(f.keys()) == sorted(expected)
        name = sorted(expected)[-1]
        np.testing.assert_array_equal(f.load([name]), expected[name])
        assert f.fetcher is not None


class _Died(BaseException):
    """The end of a process cut mid-upload (SIGKILL, a lost connection): nothing after it runs."""


class _DyingMemory(MemoryFileSystem):  # type: ignore[misc]
    """memory://'s files (one store), through a filesystem whose process "dies" at upload number ``die_at``: from
    then on every change raises _Died, as a killed save makes none."""

    protocol = "dying"
    die_at = 0
    uploads = 0

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return super()._strip_protocol(path.replace("dying://", "memory://", 1))

    def _change(self) -> None:
        if type(self).uploads >= type(self).die_at:
            raise _Died

    def put_file(self, *args: Any, **kwargs: Any) -> Any:
        self._change()
        type(self).uploads += 1
        self._change()
        return super().put_file(*args, **kwargs)

    def mv(self, *args: Any, **kwargs: Any) -> Any:
        self._change()
        return super().mv(*args, **kwargs)

    def rm_file(self, *args: Any, **kwargs: Any) -> Any:
        self._change()
        return super().rm_file(*args, **kwargs)


def _write_other_tools_checkpoint(fs: Any, where: str, value: float) -> None:
    from safetensors.numpy import save as st_save

    fs.pipe(f"{where}/model-00001-of-00002.safetensors", st_save({"w": np.full(64, value)}))
    fs.pipe(f"{where}/model-00002-of-00002.safetensors", st_save({"b": np.full(64, value)}))
    fs.pipe(f"{where}/model.safetensors.index.json", json.dumps({
        "metadata": {"total_size": 1024},
        "weight_map": {"w": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}).encode())


@pytest.mark.parametrize("theirs", [False, True], ids=["a-save-of-ours", "another-tools"])
@pytest.mark.parametrize("die_at", [1, 2, 3], ids=["before-the-first-shard", "between-the-shards", "before-the-index"])
def test_a_sharded_upload_cut_over_a_checkpoint_leaves_it_loading(memory: Any, die_at: int, theirs: bool) -> None:
    # Before: each shard was uploaded over the one of its name: cut between the shards, loads of another tool's
    # checkpoint took "w" of the new save and "b" of the old one as one, with no error, and a save of ours was
    # refused ("not written by the save that wrote the index"); either way the old checkpoint was gone.
    fs, root = memory
    fsspec.register_implementation("dying", _DyingMemory, clobber=True)
    url = f"memory://{root}/ckpt"
    if theirs:
        _write_other_tools_checkpoint(fs, f"{root}/ckpt", 1.0)
    else:
        ss.save_file({"w": np.full(64, 1.0), "b": np.full(64, 1.0)}, url, max_shard_size=600)
    _DyingMemory.die_at, _DyingMemory.uploads = die_at, 0
    with pytest.raises(_Died):
        ss.save_file({"w": np.full(64, 2.0), "b": np.full(64, 2.0)}, f"dying://{root}/ckpt", max_shard_size=600)
    for where in (url, f"{url}/model.safetensors.index.json"):
        loaded = ss.load_file(where)
        assert sorted(loaded) == ["b", "w"]
        assert loaded["w"].tolist() == loaded["b"].tolist() == [1.0] * 64
    with ss.open(url) as f:
        assert f["b"].load().tolist() == [1.0] * 64
    # The next save puts the old shards back before replacing them, and leaves only its own files.
    ss.save_file({"w": np.full(64, 3.0), "b": np.full(64, 3.0)}, url, max_shard_size=600)
    names = sorted(os.path.basename(p) for p in fs.ls(f"{root}/ckpt", detail=False))
    assert names == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"]
    assert ss.load_file(url)["b"].tolist() == [3.0] * 64


def test_a_sharded_upload_removes_the_shards_the_old_index_used_and_the_new_does_not(memory: Any) -> None:
    fs, root = memory
    url = f"memory://{root}/ckpt"
    ss.save_file({"w": np.full(64, 1.0), "b": np.full(64, 1.0), "c": np.full(64, 1.0)}, url, max_shard_size=600)
    assert len(fs.ls(f"{root}/ckpt", detail=False)) == 4
    ss.save_file({"w": np.full(64, 2.0)}, url, max_shard_size=600)
    assert sorted(os.path.basename(p) for p in fs.ls(f"{root}/ckpt", detail=False)) == [
        "model-00001-of-00001.safetensors", "model.safetensors.index.json"]
    assert ss.load_file(url)["w"].tolist() == [2.0] * 64

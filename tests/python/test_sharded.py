"""Sharded saves: ``save_file(data, directory, max_shard_size=...)`` writes the Hugging Face layout
(``model-0000i-of-0000N.safetensors`` + ``model.safetensors.index.json``); ``load_file`` and ``open`` read the
directory (or its index) back. Shards are plain safetensors files that the stock ``safetensors`` package reads, the
index is what tools of that convention expect, and indices that point elsewhere or disagree with their shards are
refused."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import safestructures as ss
from safestructures import InvalidArgumentError, InvalidFileError, UnsupportedTypeError
from safestructures._format import CHECKSUMS_KEY
from conftest import assert_same, import_framework, read_header

torch = import_framework("torch")
safetensors = pytest.importorskip("safetensors")
from safetensors import safe_open  # noqa: E402
from safetensors.numpy import load_file as st_load_file, save_file as st_save_file  # noqa: E402

INDEX = "model.safetensors.index.json"


def shard_name(i: int, n: int) -> str:
    return f"model-{i:05d}-of-{n:05d}.safetensors"


def sample() -> dict[str, Any]:
    """Five tensors of 400, 400, 80, 8 and 24 bytes (912 in all), in this walk order, and some plain data."""
    return {
        "a": np.arange(100, dtype=np.float32),
        "b": [np.arange(50, dtype=np.int64), np.linspace(0, 1, 10)],
        "c": {"name": "x", "n": 3, "small": np.array([7], dtype=np.int64)},
        "t": torch.arange(6, dtype=torch.float32),
    }


SIZES = {"a": 400, "b.0": 400, "b.1": 80, "c.small": 8, "t": 24}


def read_index(directory: Path) -> dict[str, Any]:
    return json.loads((directory / INDEX).read_text())


def files(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def assert_same_sample(loaded: Any, data: dict[str, Any]) -> None:
    assert list(loaded) == list(data)
    assert_same(loaded["a"], data["a"])
    assert_same(loaded["b"], data["b"])
    assert_same(loaded["c"], data["c"])
    assert type(loaded["t"]) is torch.Tensor and loaded["t"].dtype == torch.float32 and torch.equal(loaded["t"], data["t"])


# (max_shard_size, the tensors of each shard in order)
LAYOUTS = [
    # Tiny: every tensor gets a shard of its own (a tensor larger than the limit too).
    (1, [["a"], ["b.0"], ["b.1"], ["c.small"], ["t"]]),
    (400, [["a"], ["b.0"], ["b.1", "c.small", "t"]]),
    (800, [["a", "b.0"], ["b.1", "c.small", "t"]]),
    ("1KB", [["a", "b.0", "b.1", "c.small", "t"]]),
    ("1KiB", [["a", "b.0", "b.1", "c.small", "t"]]),
    ("0.4KB", [["a"], ["b.0"], ["b.1", "c.small", "t"]]),
    (10**12, [["a", "b.0", "b.1", "c.small", "t"]]),
    ("5GB", [["a", "b.0", "b.1", "c.small", "t"]]),
]


def save_id(directory: Path) -> str:
    return read_index(directory)["metadata"]["__safestructures_save__"]


@pytest.mark.parametrize("size,layout", LAYOUTS, ids=[str(s) for s, _ in LAYOUTS])
def test_round_trip_layouts(tmp_path: Path, size: Any, layout: list[list[str]]) -> None:
    directory = tmp_path / "ckpt"
    data = sample()
    ss.save_file(data, directory, max_shard_size=size, metadata={"run": "r1"})
    n = len(layout)
    assert files(directory) == sorted([shard_name(i + 1, n) for i in range(n)] + [INDEX])
    index = read_index(directory)
    assert list(index) == ["metadata", "weight_map"]
    assert list(index["metadata"]) == ["total_size", "run", "__safestructures_save__", "__safestructures__", CHECKSUMS_KEY]
    assert re.fullmatch("[0-9a-f]{24}", index["metadata"]["__safestructures_save__"])
    assert index["metadata"]["total_size"] == 912 == sum(SIZES.values())
    assert index["metadata"]["run"] == "r1"
    assert index["weight_map"] == {name: shard_name(i + 1, n) for i, names in enumerate(layout) for name in names}
    for i, names in enumerate(layout):
        header = read_header(directory / shard_name(i + 1, n))
        # Within a shard, tensors are in the writer's canonical order (by dtype, then name).
        assert sorted(k for k in header if k != "__metadata__") == sorted(names)
        assert header["__metadata__"] == {"format": "pt", "__safestructures_save__": index["metadata"]["__safestructures_save__"],
                                          CHECKSUMS_KEY: header["__metadata__"][CHECKSUMS_KEY]}
    assert_same_sample(ss.load_file(directory), data)
    assert_same_sample(ss.load_file(str(directory / INDEX)), data)
    with ss.open(directory) as f:
        assert f.metadata == {"run": "r1"}
        assert_same_sample(f.load(), data)


def test_fsync_and_path_types(tmp_path: Path) -> None:
    data = sample()
    # Without checksums: those cover each shard's save id, so the bytes would differ beyond the id itself.
    ss.save_file(data, str(tmp_path / "str"), max_shard_size=400, fsync=True, checksums=False)
    ss.save_file(data, tmp_path / "path", max_shard_size="400B", fsync=True, checksums=False)
    assert files(tmp_path / "str") == files(tmp_path / "path")
    # The same bytes, but for each save's own id (random, so that shards of two saves never pass for one).
    ids = save_id(tmp_path / "str").encode(), save_id(tmp_path / "path").encode()
    assert ids[0] != ids[1]
    for name in files(tmp_path / "str"):
        assert (tmp_path / "str" / name).read_bytes().replace(*ids) == (tmp_path / "path" / name).read_bytes()
    assert_same_sample(ss.load_file(str(tmp_path / "str")), data)


def test_size_units_are_decimal_and_binary(tmp_path: Path) -> None:
    # 1000 bytes of tensors: "1KB" (1000) holds them in one shard, "999B" does not; "1KiB" (1024) holds 1024.
    data = {"x": np.zeros(125, np.float64), "y": np.zeros(3, np.int8)}  # 1000 + 3 bytes
    for size, count in [("1KB", 2), ("1003B", 1), ("1KiB", 1), ("1kb", 2), (" 1 KiB ", 1), ("999", 2), (1003, 1)]:
        directory = tmp_path / f"d{size}".replace(" ", "_")
        ss.save_file(data, directory, max_shard_size=size)
        assert len(set(read_index(directory)["weight_map"].values())) == count, size


@pytest.mark.parametrize("size,error", [(0, InvalidArgumentError), (-1, InvalidArgumentError), ("abc", InvalidArgumentError),
                                        ("0.1B", InvalidArgumentError), ("5 XB", InvalidArgumentError), ("", InvalidArgumentError),
                                        (1.5, TypeError), (True, TypeError), (b"1KB", TypeError)])
def test_invalid_max_shard_size(tmp_path: Path, size: Any, error: type[Exception]) -> None:
    directory = tmp_path / "ckpt"
    with pytest.raises(error, match=r"max_shard_size") as e:
        ss.save_file({"a": np.zeros(3)}, directory, max_shard_size=size)
    assert type(e.value) is error
    assert not directory.exists()


def test_shards_are_plain_safetensors_files(tmp_path: Path) -> None:
    directory = tmp_path / "ckpt"
    data = sample()
    ss.save_file(data, directory, max_shard_size=400)
    expected = {"a": data["a"], "b.0": data["b"][0], "b.1": data["b"][1], "c.small": data["c"]["small"], "t": data["t"].numpy()}
    seen: dict[str, np.ndarray] = {}
    for name in sorted(os.listdir(directory)):
        if name == INDEX:
            continue
        with safe_open(str(directory / name), "np") as f:
            assert f.metadata() == {"format": "pt", "__safestructures_save__": save_id(directory),
                                    CHECKSUMS_KEY: f.metadata()[CHECKSUMS_KEY]}
            for key in f.keys():
                seen[key] = f.get_tensor(key)
        for key, value in st_load_file(str(directory / name)).items():
            assert_same(value, seen[key])
    assert sorted(seen) == sorted(expected)
    for key, value in expected.items():
        assert_same(seen[key], value)


def test_index_read_the_hugging_face_way(tmp_path: Path) -> None:
    """What transformers-style loaders do: read the weight_map and open each tensor's shard with safetensors."""
    directory = tmp_path / "ckpt"
    data = sample()
    ss.save_file(data, directory, max_shard_size=500)
    index = json.loads((directory / INDEX).read_text())
    assert isinstance(index["metadata"]["total_size"], int)
    state: dict[str, Any] = {}
    for shard in sorted(set(index["weight_map"].values())):
        with safe_open(str(directory / shard), framework="pt") as f:
            for key in f.keys():
                assert index["weight_map"][key] == shard
                state[key] = f.get_tensor(key)
    assert sorted(state) == sorted(SIZES)
    assert sum(t.numel() * t.element_size() for t in state.values()) == index["metadata"]["total_size"]
    assert torch.equal(state["t"], data["t"])
    assert torch.equal(state["b.0"], torch.from_numpy(data["b"][0]))


def test_shared_tensors_and_views_across_shards(tmp_path: Path) -> None:
    w = np.arange(100, dtype=np.float32)
    base = torch.arange(64, dtype=torch.float32)
    data = {"first": w, "filler": np.zeros(200, np.uint8), "base": base, "again": {"w": w}, "view": base[::4], "also": [w]}
    directory = tmp_path / "ckpt"
    ss.save_file(data, directory, max_shard_size=256)
    index = read_index(directory)
    # Shared objects are stored once: w in the first shard, base's storage in its own; the view has no tensor.
    assert index["weight_map"] == {"first": shard_name(1, 3), "filler": shard_name(2, 3), "base": shard_name(3, 3)}
    loaded = ss.load_file(directory)
    assert loaded["first"] is loaded["again"]["w"] is loaded["also"][0]
    assert torch.equal(loaded["view"], base[::4])
    assert loaded["view"].untyped_storage().data_ptr() == loaded["base"].untyped_storage().data_ptr()
    with ss.open(directory) as f:
        # Parts that refer to objects defined in other shards.
        again = f.load("again")
        assert_same(again, {"w": w})
        assert torch.equal(f.load("view"), base[::4])
        assert f["view"].nbytes == 0 and f["view"].shape == (16,)
        assert f["again"]["w"].tensor_name == "first"


def test_no_tensors(tmp_path: Path) -> None:
    directory = tmp_path / "ckpt"
    data = {"step": 10, "names": ["a", "b"], "nested": {"x": None}}
    ss.save_file(data, directory, max_shard_size=1)
    assert files(directory) == sorted([INDEX, shard_name(1, 1)])
    index = read_index(directory)
    assert index["metadata"]["total_size"] == 0 and index["weight_map"] == {}
    shard = read_header(directory / shard_name(1, 1))
    assert shard == {"__metadata__": {"format": "pt", "__safestructures_save__": save_id(directory),
                                      CHECKSUMS_KEY: shard["__metadata__"][CHECKSUMS_KEY]}}
    assert ss.load_file(directory) == data
    with ss.open(directory) as f:
        assert f.keys() == ["step", "names", "nested"] and f.load("names.1") == "b"


def test_metadata_is_kept_and_total_size_is_reserved(tmp_path: Path) -> None:
    directory = tmp_path / "ckpt"
    ss.save_file({"a": np.zeros(2)}, directory, max_shard_size=100, metadata={"author": "me", "note": "é"})
    assert read_index(directory)["metadata"]["author"] == "me"
    with ss.open(directory) as f:
        assert f.metadata == {"author": "me", "note": "é"}
    ss.save_file({"a": np.zeros(2)}, tmp_path / "plain", max_shard_size=100)
    with ss.open(tmp_path / "plain") as f:
        assert f.metadata == {}
    # The index's metadata holds total_size beside the caller's metadata: a caller's total_size would replace it.
    for key in ("total_size", "__safestructures__", "__safestructures_save__", "_safestructures_schema_", "_safestructures_schema_version_"):
        with pytest.raises(InvalidArgumentError, match=rf'metadata key "{key}" is reserved') as e:
            ss.save_file({"a": np.zeros(2)}, tmp_path / "x", max_shard_size=100, metadata={key: "1"})
        assert e.value.code == "InvalidMetadata"
        assert not (tmp_path / "x").exists()


def test_open_is_lazy_across_shards(tmp_path: Path) -> None:
    directory = tmp_path / "ckpt"
    data = {"layers": [{"w": np.full(100, i, np.int32)} for i in range(10)]}
    ss.save_file(data, directory, max_shard_size=800)
    assert len(read_index(directory)["weight_map"]) == 10
    assert len(set(read_index(directory)["weight_map"].values())) == 5
    for target in (directory, str(directory), directory / INDEX, str(directory / INDEX)):
        with ss.open(target) as f:
            assert len(f["layers"]) == 10
            node = f["layers"][7]["w"]
            assert (node.dtype, node.shape, node.nbytes, node.tensor_name) == ("int32", (100,), 400, "layers.7.w")
            assert_same(f.load("layers.7.w"), np.full(100, 7, np.int32))
            assert sorted(f.tensors()) == sorted(f"layers.{i}.w" for i in range(10))


def test_second_save_with_fewer_shards_removes_stale_ones(tmp_path: Path) -> None:
    directory = tmp_path / "ckpt"
    (tmp_path / "ckpt").mkdir()
    (directory / "notes.txt").write_text("mine")
    (directory / "other.safetensors").write_bytes(b"not ours")
    ss.save_file(sample(), directory, max_shard_size=1)
    assert files(directory) == sorted([shard_name(i, 5) for i in range(1, 6)] + [INDEX, "notes.txt", "other.safetensors"])
    ss.save_file({"a": np.ones(3)}, directory, max_shard_size=10**9)
    # Only the files the earlier index named are removed; anything else in the directory stays.
    assert files(directory) == sorted([INDEX, shard_name(1, 1), "notes.txt", "other.safetensors"])
    assert_same(ss.load_file(directory), {"a": np.ones(3)})


def test_failing_save_leaves_the_earlier_checkpoint(tmp_path: Path) -> None:
    directory = tmp_path / "ckpt"
    ss.save_file(sample(), directory, max_shard_size=400)
    before = {name: (directory / name).read_bytes() for name in files(directory)}
    with pytest.raises(UnsupportedTypeError, match=r'\$\["bad"\]'):
        ss.save_file({"a": np.zeros(1000), "bad": object()}, directory, max_shard_size=1)
    assert {name: (directory / name).read_bytes() for name in files(directory)} == before
    assert not [name for name in os.listdir(directory) if name.endswith(".partial") or name.startswith(".")]
    assert_same_sample(ss.load_file(directory), sample())


def test_failing_index_write_leaves_the_earlier_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from safestructures import _sharded

    directory = tmp_path / "ckpt"
    ss.save_file(sample(), directory, max_shard_size=400)
    before = {name: (directory / name).read_bytes() for name in files(directory)}

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_sharded, "write_temporary", failing)
    with pytest.raises(OSError, match=r"No space left"):
        ss.save_file({"other": np.ones(10)}, directory, max_shard_size=1)
    assert {name: (directory / name).read_bytes() for name in files(directory)} == before
    assert not [name for name in os.listdir(directory) if name.endswith(".partial") or name.startswith(".")]


# ---------------------------------------------------------------------------------------------------------------------
# Hostile and broken indices


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    directory = tmp_path / "ckpt"
    ss.save_file(sample(), directory, max_shard_size=400)
    return directory


def rewrite_index(directory: Path, change: Any) -> None:
    index = read_index(directory)
    change(index)
    (directory / INDEX).write_text(json.dumps(index))


def both_refuse(directory: Path, error: type[Exception], pattern: str) -> None:
    for action in (lambda: ss.load_file(directory), lambda: ss.open(directory).load()):
        with pytest.raises(error, match=pattern):
            action()


@pytest.mark.parametrize("target", ["../x.safetensors", "/tmp/x.safetensors", "sub/x.safetensors", ".hidden.safetensors",
                                    "x.bin", "..", "", 3, None])
def test_weight_map_pointing_outside_the_directory(checkpoint: Path, target: Any) -> None:
    (checkpoint.parent / "x.safetensors").write_bytes((checkpoint / shard_name(1, 3)).read_bytes())
    rewrite_index(checkpoint, lambda i: i["weight_map"].__setitem__("a", target))
    both_refuse(checkpoint, InvalidFileError, rf'tensor "a" is mapped to {repr(target).replace(".", "[.]").replace("/", ".")}, which is not a shard file name')


def test_missing_shard(checkpoint: Path) -> None:
    os.remove(checkpoint / shard_name(2, 3))
    both_refuse(checkpoint, FileNotFoundError, r"model-00002-of-00003\.safetensors")


def test_weight_map_disagreeing_with_the_shards(checkpoint: Path, tmp_path: Path) -> None:
    # A tensor mapped to a shard that does not hold it.
    rewrite_index(checkpoint, lambda i: i["weight_map"].__setitem__("a", shard_name(2, 3)))
    both_refuse(checkpoint, InvalidFileError, r'maps tensor "a" to model-00002-of-00003\.safetensors, which does not hold it')
    # A tensor the index names that no shard holds.
    ss.save_file(sample(), checkpoint, max_shard_size=400)
    rewrite_index(checkpoint, lambda i: i["weight_map"].__setitem__("ghost", shard_name(1, 3)))
    both_refuse(checkpoint, InvalidFileError, r'maps tensor "ghost" to model-00001-of-00003\.safetensors, which does not hold it')
    # A shard holding a tensor the index does not map to it (a shard of another save put in its place).
    ss.save_file(sample(), checkpoint, max_shard_size=400)
    st_save_file({"a": np.zeros(100, np.float32), "stray": np.zeros(1)}, str(checkpoint / shard_name(1, 3)),
                 metadata={"format": "pt", "__safestructures_save__": save_id(checkpoint)})
    both_refuse(checkpoint, InvalidFileError, r'shard model-00001-of-00003\.safetensors holds tensor "stray", which the index does not map to it')
    # A tensor the schema needs that the weight_map leaves out (its shard is never opened).
    ss.save_file(sample(), checkpoint, max_shard_size=400)
    rewrite_index(checkpoint, lambda i: i["weight_map"].pop("b.0"))
    both_refuse(checkpoint, InvalidFileError, r'ckpt: at \$\["b"\]\[0\]: the schema refers to tensor "b\.0", which the file lacks')


def test_a_shard_of_another_save_is_refused(tmp_path: Path, checkpoint: Path) -> None:
    # Same names, same shapes, other data: only the save id tells the shard apart (an interrupted replace, two saves
    # into one directory at once).
    data = sample()
    other = tmp_path / "other"
    ss.save_file({**data, "a": data["a"] + 1}, other, max_shard_size=400)
    assert files(other) == files(checkpoint)
    os.replace(other / shard_name(2, 3), checkpoint / shard_name(2, 3))
    both_refuse(checkpoint, InvalidFileError,
                r"shard model-00002-of-00003\.safetensors was not written by the save that wrote the index")


def test_concurrent_saves_use_their_own_temporary_files(tmp_path: Path) -> None:
    import threading

    directory = tmp_path / "ckpt"
    big = {f"t{k}": np.full(20_000, k, np.float32) for k in range(8)}
    errors: list[BaseException] = []

    def save() -> None:
        try:
            ss.save_file(big, directory, max_shard_size=100_000)
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=save) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    back = ss.load_file(directory)
    assert list(back) == list(big) and all(np.array_equal(back[k], big[k]) for k in big)
    assert not [name for name in os.listdir(directory) if name.endswith(".partial")]


def test_tensor_in_two_shards(checkpoint: Path) -> None:
    st_save_file({"b.0": np.arange(50, dtype=np.int64), "a": np.zeros(100, np.float32)}, str(checkpoint / shard_name(2, 3)),
                 metadata={"format": "pt", "__safestructures_save__": save_id(checkpoint)})
    with pytest.raises(InvalidFileError, match=r'two shards hold a tensor named "a"') as e:
        ss.load_file(checkpoint)
    assert e.value.code == "TensorMismatch"


@pytest.mark.parametrize(
    "text,pattern",
    [
        ("{not json", r"not a JSON index"),
        ("[]", r'an index is an object with "metadata" and "weight_map" objects'),
        ('{"metadata": {}, "weight_map": []}', r'an index is an object with "metadata" and "weight_map" objects'),
        ('{"weight_map": {}}', r'an index is an object with "metadata" and "weight_map" objects'),
        ('{"metadata": {"total_size": 1}, "weight_map": {}}', r"the index maps no tensor to a shard"),
        ('{"metadata": {"__safestructures__": 5}, "weight_map": {}}', r"the index has no safestructures schema"),
        (b"\xff\xfe{}", r"not a JSON index"),
    ],
)
def test_malformed_index(checkpoint: Path, text: Any, pattern: str) -> None:
    (checkpoint / INDEX).write_bytes(text if isinstance(text, bytes) else text.encode())
    both_refuse(checkpoint, InvalidFileError, pattern)


def test_metadata_values_must_be_strings(checkpoint: Path) -> None:
    rewrite_index(checkpoint, lambda i: i["metadata"].__setitem__("n", 1))
    both_refuse(checkpoint, InvalidFileError, r"metadata values other than total_size must be strings")


def test_malformed_schema_in_the_index(checkpoint: Path) -> None:
    rewrite_index(checkpoint, lambda i: i["metadata"].__setitem__("__safestructures__", '{"format":"safestructures","version":2,"root":'))
    with pytest.raises(InvalidFileError, match=r"ckpt") as e:
        ss.load_file(checkpoint)
    assert e.value.code == "SchemaNotJson"


def test_index_over_the_size_limit(checkpoint: Path) -> None:
    size = os.path.getsize(checkpoint / INDEX)
    for action in (lambda: ss.load_file(checkpoint, max_header_size=size - 1), lambda: ss.open(checkpoint, max_header_size=size - 1)):
        with pytest.raises(InvalidFileError, match=rf"the index is {size} bytes, over the limit of {size - 1}"):
            action()
    assert_same_sample(ss.load_file(checkpoint, max_header_size=size), sample())


def test_directory_without_an_index_or_files(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"no model\.safetensors\.index\.json and no \.safetensors file here"):
        ss.load_file(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no model\.safetensors\.index\.json and no \.safetensors file here"):
        ss.open(tmp_path)

"""Stock Hugging Face folders: what ``save_pretrained`` writes (an index without a safestructures structure and its
plain shards, or one ``model.safetensors``, or plain shards without an index) loads with ``load_file`` and opens
lazily with ``open`` as ``{tensor name: tensor}``, each tensor read from the shard the index names; folders whose
files do not belong together are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import safestructures as ss
from safestructures import InvalidFileError
from conftest import import_framework

torch = import_framework("torch")
transformers = pytest.importorskip("transformers")

INDEX = "model.safetensors.index.json"


@pytest.fixture(scope="module")
def model() -> object:
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=500, n_positions=64,
                                     bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(config)


def saved_tensors(model: object) -> dict[str, object]:
    """The state dict as save_pretrained writes it: the tied lm_head.weight is left out (it is transformer.wte.weight)."""
    return {name: tensor for name, tensor in model.state_dict().items() if name != "lm_head.weight"}  # type: ignore[attr-defined]


def assert_state(loaded: dict[str, object], expected: dict[str, object]) -> None:
    assert sorted(loaded) == sorted(expected)
    for name, tensor in expected.items():
        got = loaded[name]
        assert isinstance(got, torch.Tensor) and got.dtype == torch.float32, name
        assert torch.equal(got, tensor), name


def test_a_sharded_save_pretrained_folder_loads_and_opens(tmp_path: Path, model: object) -> None:
    folder = tmp_path / "gpt2"
    model.save_pretrained(folder, max_shard_size="100KB")  # type: ignore[attr-defined]
    index = json.loads((folder / INDEX).read_text())
    assert "__safestructures__" not in index["metadata"] and len(set(index["weight_map"].values())) > 3
    expected = saved_tensors(model)
    for path in (folder, folder / INDEX):
        loaded = ss.load_file(path, framework="torch", verify=True)
        assert list(loaded) == list(index["weight_map"])  # the index's order
        assert_state(loaded, expected)
    as_numpy = ss.load_file(folder)
    assert isinstance(as_numpy["transformer.wte.weight"], np.ndarray)
    with ss.open(folder, framework="torch") as f:
        assert f.keys() == list(index["weight_map"])
        assert f.metadata == index["metadata"]
        node = f["transformer.h.1.mlp.c_fc.weight"]
        assert (node.kind, node.dtype, node.shape) == ("tensor", "float32", (64, 256))
        assert torch.equal(node.load(), expected["transformer.h.1.mlp.c_fc.weight"])


def test_a_single_file_folder_loads_as_its_file(tmp_path: Path, model: object) -> None:
    folder = tmp_path / "gpt2"
    model.save_pretrained(folder)  # type: ignore[attr-defined]
    assert (folder / "model.safetensors").exists() and not (folder / INDEX).exists()
    assert_state(ss.load_file(folder, framework="torch"), saved_tensors(model))
    with ss.open(folder) as f:
        assert len(f) == len(saved_tensors(model))
    # A folder holding one file saved by safestructures loads as that file's data.
    ours = tmp_path / "ours"
    ours.mkdir()
    ss.save_file({"step": 3, "w": np.arange(3)}, ours / "state.safetensors")
    assert ss.load_file(ours)["step"] == 3


def test_plain_shards_without_an_index(tmp_path: Path, model: object, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "gpt2"
    model.save_pretrained(folder, max_shard_size="100KB")  # type: ignore[attr-defined]
    (folder / INDEX).unlink()
    loaded = ss.load_file(folder, framework="torch")
    assert_state(loaded, saved_tensors(model))
    # The files in name order, each file's tensors in its header's order.
    shards = sorted(folder.glob("*.safetensors"))
    expected_order = [name for shard in shards for name in ss.load_tensors(shard)]
    assert list(loaded) == expected_order
    with ss.open(folder) as f:
        assert f.keys() == expected_order


def test_folders_whose_files_do_not_belong_together_are_refused(tmp_path: Path) -> None:
    twice = tmp_path / "twice"
    twice.mkdir()
    ss.save_tensors({"a": np.zeros(2), "b": np.ones(1)}, twice / "one.safetensors")
    ss.save_tensors({"a": np.zeros(2)}, twice / "two.safetensors")
    for call in (ss.load_file, ss.open):
        with pytest.raises(InvalidFileError, match=r'tensor "a" is in both one\.safetensors and two\.safetensors') as e:
            call(twice)
        assert e.value.code == "TensorMismatch"
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    ss.save_tensors({"a": np.zeros(2)}, mixed / "plain.safetensors")
    ss.save_file({"step": 1}, mixed / "structured.safetensors")
    with pytest.raises(InvalidFileError, match=r"structured\.safetensors holds a safestructures structure beside 1 other"):
        ss.load_file(mixed)
    # The shards of a sharded save of ours without their index: the structure is in the index, so nothing loads.
    ours = tmp_path / "ours"
    ss.save_file({"a": np.zeros(2), "b": [np.ones(3)]}, ours, max_shard_size=8)
    (ours / INDEX).unlink()
    with pytest.raises(FileNotFoundError, match=r"model-00001-of-00002\.safetensors is a shard of a safestructures sharded "
                                                r"save whose model\.safetensors\.index\.json is missing"):
        ss.load_file(ours)
    alone = tmp_path / "alone"
    ss.save_file({"a": np.zeros(2)}, alone, max_shard_size=100)
    (alone / INDEX).unlink()
    with pytest.raises(FileNotFoundError, match=r"model-00001-of-00001\.safetensors is a shard"):
        ss.open(alone)
    # An index that maps a tensor to a shard lacking it.
    folder = tmp_path / "hf"
    folder.mkdir()
    ss.save_tensors({"a": np.zeros(2)}, folder / "model-00001-of-00002.safetensors")
    ss.save_tensors({"b": np.zeros(2)}, folder / "model-00002-of-00002.safetensors")
    index = {"metadata": {"total_size": 32}, "weight_map": {"a": "model-00002-of-00002.safetensors",
                                                             "b": "model-00002-of-00002.safetensors"}}
    (folder / INDEX).write_text(json.dumps(index))
    with pytest.raises(InvalidFileError, match=r'the index maps tensor "a" to model-00002-of-00002\.safetensors, which '
                                               "does not hold it"):
        ss.load_file(folder)

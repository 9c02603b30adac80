"""safestructures.distributed: DCP checkpoints of nested training states saved on 2 gloo ranks, loaded on 2 and on 1."""

from __future__ import annotations

import ast
import collections
import dataclasses
import datetime
import decimal
import fractions
import json
import pickle
import random
import re
import shutil
import struct
import subprocess
import sys
import textwrap
import types
import warnings
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("this PyTorch has no torch.distributed", allow_module_level=True)

import safestructures as ss
import safestructures.distributed as ssd
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from safetensors import safe_open
from torch.distributed.checkpoint.api import CheckpointException
from conftest import exit_rank, run_ranks
from torch.distributed.checkpoint.default_planner import (
    DefaultLoadPlanner,
    DefaultSavePlanner,
)

WORLD = 2
JOIN_TIMEOUT_S = 120


@dataclasses.dataclass
class Config:
    """A training run's settings: a dataclass, passed to loads through ``types=``."""

    name: str
    lr: float
    layers: tuple[int, ...]
    tags: dict[str, int]


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = torch.nn.Linear(4, 3)
        self.second = torch.nn.Linear(3, 2)
        self.register_buffer("count", torch.tensor([5], dtype=torch.int64))

    def forward(self, x: Any) -> Any:
        return self.second(torch.relu(self.first(x)))


def make_training(seed: int = 0) -> tuple[Net, Any, dict[str, Any]]:
    """A model, its Adam optimizer after one step, and the nested state to checkpoint; the same on every rank."""
    torch.manual_seed(seed)
    random.seed(1234 + seed)
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(5, 4)).sum().backward()
    optimizer.step()
    state = {
        "model": model.state_dict(),
        "optim": optimizer.state_dict(),
        "step": 42,
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
        "config": Config(name="run-1", lr=1e-3, layers=(4, 3, 2), tags={"a": 1}),
        "extras": {
            "by_int": {1: "one", 2: (2, "two")},
            "tensors": [torch.arange(3), torch.tensor([1.5, -2.0], dtype=torch.bfloat16)],
            "pair": (torch.tensor([0.25]), "x"),
            "empty": {},
            "nothing": None,
            "nested": [[torch.zeros(2, 2, dtype=torch.float16)], {"k": torch.tensor(7)}],
            "ordered": collections.OrderedDict([("b", 2), ("a", torch.ones(1))]),
        },
    }
    return model, optimizer, state


def assert_same(got: Any, expected: Any, path: str = "$") -> None:
    """Exact equality: same types everywhere (keys included), same dtypes, shapes and values."""
    assert type(got) is type(expected), f"{path}: {type(got).__name__} != {type(expected).__name__}"
    if isinstance(expected, torch.Tensor):
        if hasattr(expected, "full_tensor"):
            got, expected = got.full_tensor(), expected.full_tensor()
        assert got.dtype == expected.dtype, f"{path}: {got.dtype} != {expected.dtype}"
        assert got.shape == expected.shape, f"{path}: {got.shape} != {expected.shape}"
        assert torch.equal(got, expected), f"{path}: values differ"
    elif isinstance(expected, dict):
        assert [(type(k), k) for k in got] == [(type(k), k) for k in expected], f"{path}: keys {list(got)} != {list(expected)}"
        for key in expected:
            assert_same(got[key], expected[key], f"{path}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected), f"{path}: length {len(got)} != {len(expected)}"
        for i, (a, b) in enumerate(zip(got, expected)):
            assert_same(a, b, f"{path}[{i}]")
    elif dataclasses.is_dataclass(expected):
        for field in dataclasses.fields(expected):
            assert_same(getattr(got, field.name), getattr(expected, field.name), f"{path}.{field.name}")
    else:
        assert got == expected, f"{path}: {got!r} != {expected!r}"


def tensors_by_path(value: Any, path: tuple[Any, ...] = ()) -> Any:
    """(dotted path, tensor) for every tensor reached through dicts and lists, as a PyTorch state dict names them."""
    if isinstance(value, torch.Tensor):
        yield ".".join(map(str, path)), value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from tensors_by_path(item, path + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from tensors_by_path(item, path + (i,))


def full_matrix() -> Any:
    return torch.arange(4 * 6, dtype=torch.float32).reshape(4, 6)


def _rank_main(rank: int, world: int, port: int, workdir: str) -> None:
    """One rank: save the training state and a DTensor, then load both back on all ranks, resharded."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        root = Path(workdir)
        model, _optimizer, state = make_training()
        if rank == 0:
            # The expected state, through the single-file API, for the parent to compare its loads with.
            ss.save_file(state, root / "reference.safetensors")
        ssd.save(state, root / "ckpt")

        # Load on all ranks into a fresh model and optimizer: the saved structure comes back, tensors in place.
        fresh_model, fresh_optimizer, _ = make_training(seed=1)
        target = {"model": fresh_model.state_dict(), "optim": {}, "step": 0, "rng": None, "config": None, "extras": None}
        loaded = ssd.load(root / "ckpt", target, types=[Config])
        assert loaded is target
        assert_same(loaded, state)
        assert all(torch.equal(a, b) for a, b in zip(fresh_model.parameters(), model.parameters()))
        fresh_optimizer.load_state_dict(loaded["optim"])
        assert_same(fresh_optimizer.state_dict(), state["optim"])

        # A DTensor sharded by rows is saved as one chunk per rank and loads sharded by columns, and replicated.
        mesh = init_device_mesh("cpu", (world,))
        rows = distribute_tensor(full_matrix(), mesh, [Shard(0)])
        ssd.save({"w": rows, "meta": {"epoch": 3}}, root / "dtensor")
        columns = distribute_tensor(torch.zeros(4, 6), mesh, [Shard(1)])
        out = ssd.load(root / "dtensor", {"w": columns, "meta": None})
        assert out["w"] is columns and out["w"].placements == (Shard(1),)
        assert torch.equal(columns.to_local(), full_matrix()[:, rank * 3 : rank * 3 + 3])
        assert torch.equal(columns.full_tensor(), full_matrix())
        assert out["meta"] == {"epoch": 3}
        replicated = distribute_tensor(torch.zeros(4, 6), mesh, [Replicate()])
        ssd.load(root / "dtensor", {"w": replicated})
        assert torch.equal(replicated.to_local(), full_matrix())
        dist.barrier()
    finally:
        dist.destroy_process_group()
    exit_rank()


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkpoints the two ranks wrote (the ranks also check their own 2-rank loads)."""
    workdir = tmp_path_factory.mktemp("dcp")
    run_ranks(_rank_main, WORLD, str(workdir), timeout=JOIN_TIMEOUT_S)
    return workdir


def reference(workdir: Path) -> dict[str, Any]:
    return ss.load_file(workdir / "reference.safetensors", types=[Config])


def index_of(directory: Path) -> dict[str, Any]:
    return json.loads((directory / ssd.INDEX_NAME).read_text(encoding="utf-8"))


def test_two_ranks_write_one_shard_each(saved: Path) -> None:
    ckpt = saved / "ckpt"
    shards = sorted(p.name for p in ckpt.glob("*.safetensors"))
    assert shards == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    index = index_of(ckpt)
    weight_map = index["weight_map"]
    # DCP writes each replicated tensor once and spreads them over the ranks: both shards hold some.
    assert set(weight_map.values()) == set(shards)
    assert {"model.first.weight", "model.count", "optim.state.0.exp_avg", "rng.torch", "extras.tensors.1"} <= set(weight_map)
    total = 0
    for shard in shards:
        with safe_open(str(ckpt / shard), framework="pt") as f:
            assert f.metadata()["format"] == "pt"
            assert sorted(f.keys()) == sorted(name for name, file in weight_map.items() if file == shard)
            total += sum(f.get_tensor(name).numel() * f.get_tensor(name).element_size() for name in f.keys())  # noqa: SIM118 (a safe_open handle, not a dict)
    assert index["metadata"]["total_size"] == total


def test_index_holds_values_in_the_schema(saved: Path) -> None:
    description = index_of(saved / "ckpt")["metadata"]["safestructures_dcp"]
    assert description["format"] == "safestructures-dcp" and description["version"] == 1
    values = description["values"]
    # Plain values are schema documents in the index; the config is a dataclass node with its class name.
    assert values["step"] == {"schema": {"format": "safestructures", "version": 2, "root": 42}}
    config = values["config"]["schema"]["root"]
    assert config["$"] == "dataclass" and config["type"] == "test_distributed.Config"
    assert values["optim.param_groups.0.betas"]["schema"]["root"] == {"$": "tuple", "items": [0.9, 0.999]}
    # A value holding tensor data is a safestructures file kept as a U8 tensor in a shard.
    assert set(values["extras.pair"]) == {"file", "name"}
    # The structure keeps int keys (pair form) and empty dicts.
    root = description["structure"]["root"]
    assert root["extras"]["by_int"] == {"$": "dict", "items": [[1, None], [2, None]]}
    assert root["extras"]["empty"] == {}
    tensor = description["tensors"]["model.first.weight"]
    assert tensor["dtype"] == "float32" and tensor["size"] == [3, 4] and len(tensor["chunks"]) == 1
    assert "pickle" not in (saved / "ckpt" / ssd.INDEX_NAME).read_text(encoding="utf-8")


def test_stock_safetensors_reads_every_tensor_of_the_index(saved: Path) -> None:
    ckpt, expected = saved / "ckpt", reference(saved)
    weight_map = index_of(ckpt)["weight_map"]
    tensors = dict(tensors_by_path(expected))
    for name, shard in weight_map.items():
        with safe_open(str(ckpt / shard), framework="pt") as f:
            tensor = f.get_tensor(name)
        if name == "extras.pair":
            assert tensor.dtype == torch.uint8 and tensor.dim() == 1
            continue
        # A DCP tensor's name is its path in the state.
        assert_same(tensor, tensors[name], name)
    assert set(tensors) == set(weight_map) - {"extras.pair"}


def test_one_process_loads_what_two_saved(saved: Path) -> None:
    loaded = ssd.load(saved / "ckpt", types=[Config])
    assert_same(loaded, reference(saved))
    assert loaded["rng"]["python"] == reference(saved)["rng"]["python"]
    random.setstate(loaded["rng"]["python"])  # a real random state, ints and tuples exact


def test_one_process_loads_into_a_model(saved: Path) -> None:
    model, optimizer, _ = make_training(seed=3)
    state = {"model": model.state_dict(), "optim": None}
    loaded = ssd.load(saved / "ckpt", state)
    expected = reference(saved)
    assert_same(dict(model.state_dict()), dict(expected["model"]))
    optimizer.load_state_dict(loaded["optim"])
    assert_same(optimizer.state_dict(), expected["optim"])
    assert set(state) == {"model", "optim"}


def test_loading_never_unpickles(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("unpickling during a load")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert_same(ssd.load(saved / "ckpt", types=[Config]), reference(saved))
    out = ssd.load(saved / "dtensor")
    assert_same(out, {"w": full_matrix(), "meta": {"epoch": 3}})


def test_module_uses_no_pickle() -> None:
    # Every module of the package: values are loaded with safestructures' own load, nothing imports pickle.
    trees = [ast.parse(path.read_text(encoding="utf-8")) for path in sorted(Path(ssd.__file__).parent.glob("*.py"))]
    imported = {alias.name for tree in trees for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for tree in trees for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "json" in imported and not [name for name in imported if "pickle" in name]
    calls = {ast.unparse(node.func) for tree in trees for node in ast.walk(tree) if isinstance(node, ast.Call)}
    assert "_walkers.load" in calls and not calls & {"torch.load", "torch.save", "dcp.state_dict_loader.torch.load"}


def test_dtensor_chunks_are_named_tensors(saved: Path) -> None:
    ckpt = saved / "dtensor"
    assert index_of(ckpt)["weight_map"] == {
        "w@0,0": "model-00001-of-00002.safetensors",
        "w@2,0": "model-00002-of-00002.safetensors",
    }
    for rank, name in enumerate(["w@0,0", "w@2,0"]):
        with safe_open(str(ckpt / f"model-0000{rank + 1}-of-00002.safetensors"), framework="pt") as f:
            assert torch.equal(f.get_tensor(name), full_matrix()[rank * 2 : rank * 2 + 2])
    # One process without a DTensor to load into gets the whole tensor.
    assert_same(ssd.load(ckpt), {"w": full_matrix(), "meta": {"epoch": 3}})


def test_single_process_round_trip(tmp_path: Path) -> None:
    state = {
        "a": {0: torch.tensor([1, 2], dtype=torch.int32), "1": [torch.ones(2, dtype=torch.float8_e4m3fn), 3]},
        "b": [[], [1, 2]],
        "c": (1, (2, 3.5)),
        "d": torch.tensor(2.5, dtype=torch.float64),
        "e": {"bools": torch.tensor([True, False]), "unsigned": torch.tensor([7], dtype=torch.uint16)},
        # Values kept as schema documents in the index come back exact.
        "f": [-0.0, 5e-324, 1e300, 2**100, -(2**70), "\ud800 é", b"\x00\xff", {3, 1}, frozenset({"x"}), 1 + 2j],
        "g": {(1, "t"): datetime.date(2024, 2, 29), None: decimal.Decimal("1.10"), 2.5: fractions.Fraction(1, 3)},
    }
    # What an earlier save on 3 ranks left: its shards go, other files stay.
    (tmp_path / "model-00003-of-00003.safetensors").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("kept", encoding="utf-8")
    ssd.save(state, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model-00001-of-00001.safetensors", ssd.INDEX_NAME, "notes.txt"]
    assert_same(ssd.load(tmp_path), state)
    # A second save over the same directory replaces the checkpoint.
    ssd.save({"only": 1}, tmp_path)
    assert ssd.load(tmp_path) == {"only": 1}
    assert ss.load_tensors(tmp_path / "model-00001-of-00001.safetensors") == {}


def test_nan_values_keep_their_bits(tmp_path: Path) -> None:
    nan = struct.unpack("<d", bytes.fromhex("0100000000f8ff7f"))[0]  # a NaN with a payload
    ssd.save({"x": nan, "y": float("-inf")}, tmp_path)
    loaded = ssd.load(tmp_path)
    assert struct.pack("<d", loaded["x"]) == struct.pack("<d", nan) and loaded["y"] == float("-inf")


def test_unstorable_names_and_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ss.InvalidArgumentError, match='"a.b"'):
        ssd.save({"a.b": torch.ones(1), "a": {"b": torch.zeros(1)}}, tmp_path)
    with pytest.raises(ss.InvalidArgumentError, match="not valid Unicode"):
        ssd.save({"\ud800": torch.ones(1)}, tmp_path)
    with open(__file__, "rb") as handle, pytest.raises(ss.UnsupportedTypeError, match=r'value "run.handle": .*_io.BufferedReader'):
        ssd.save({"run": {"handle": handle}}, tmp_path)
    assert not (tmp_path / ssd.INDEX_NAME).exists()


def test_load_refuses_keys_the_checkpoint_lacks(saved: Path) -> None:
    with pytest.raises(ss.InvalidArgumentError, match='"missing"'):
        ssd.load(saved / "dtensor", {"w": torch.zeros(4, 6), "missing": None})
    with pytest.raises(ss.InvalidArgumentError, match='"w.extra"'):
        ssd.load(saved / "dtensor", {"w": {"extra": torch.zeros(1)}})


def test_dcp_default_planners_are_refused(saved: Path, tmp_path: Path) -> None:
    # The default planners would hand the writer torch.save'd (pickled) values, and unpickle on load.
    with pytest.warns(UserWarning, match="single process"), pytest.raises(CheckpointException, match="TypeError: .* save with SafestructuresSavePlanner"):
        dcp.save({"step": 1}, storage_writer=ssd.SafestructuresWriter(tmp_path), planner=DefaultSavePlanner())
    with pytest.warns(UserWarning, match="single process"), pytest.raises(CheckpointException, match="TypeError: .* load them with SafestructuresLoadPlanner"):
        dcp.load({"meta": {"epoch": 0}}, storage_reader=ssd.SafestructuresReader(saved / "dtensor"), planner=DefaultLoadPlanner())


def test_dcp_default_planner_loads_tensors(saved: Path) -> None:
    # Tensors alone need nothing of ours: DCP's default planner reads them through the reader.
    target = {"w": torch.zeros(4, 6)}
    with pytest.warns(UserWarning, match="single process"):
        dcp.load(target, storage_reader=ssd.SafestructuresReader(saved / "dtensor"))
    assert torch.equal(target["w"], full_matrix())


@pytest.fixture
def broken(saved: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "ckpt"
    shutil.copytree(saved / "ckpt", copy)
    return copy


def test_missing_shard(broken: Path) -> None:
    (broken / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ss.InvalidFileError, match=r"model-00002-of-00002\.safetensors.*missing"):
        ssd.load(broken, types=[Config])


def test_index_and_shard_disagree(broken: Path) -> None:
    index = index_of(broken)
    chunk = index["metadata"]["safestructures_dcp"]["tensors"]["model.first.weight"]["chunks"][0]
    chunk["name"] = "model.first.renamed"
    index["weight_map"]["model.first.renamed"] = chunk["file"]
    (broken / ssd.INDEX_NAME).write_text(json.dumps(index), encoding="utf-8")
    with pytest.raises(ss.InvalidFileError, match=r'has no tensor "model\.first\.renamed"') as info:
        ssd.load(broken, types=[Config])
    assert chunk["file"] in str(info.value)


def test_index_weight_map_mismatch(broken: Path) -> None:
    index = index_of(broken)
    del index["weight_map"]["optim.state.0.exp_avg"]
    (broken / ssd.INDEX_NAME).write_text(json.dumps(index), encoding="utf-8")
    with pytest.raises(ss.InvalidFileError, match=r'weight_map places tensor "optim\.state\.0\.exp_avg" in None'):
        ssd.load(broken)


def test_wrong_shape_in_shard(broken: Path) -> None:
    index = index_of(broken)
    index["metadata"]["safestructures_dcp"]["tensors"]["model.count"]["size"] = [1]
    index["metadata"]["safestructures_dcp"]["tensors"]["model.count"]["dtype"] = "int32"
    (broken / ssd.INDEX_NAME).write_text(json.dumps(index), encoding="utf-8")
    with pytest.raises(ss.InvalidFileError, match=r'tensor "model\.count" is torch\.int64 \[1\], the index says torch\.int32'):
        ssd.load(broken, types=[Config])


def test_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ss.InvalidFileError, match="missing"):
        ssd.load(tmp_path)
    (tmp_path / ssd.INDEX_NAME).write_text('{"metadata": {"total_size": 0}, "weight_map": {}}', encoding="utf-8")
    with pytest.raises(ss.InvalidFileError, match="not written by safestructures.distributed"):
        ssd.load(tmp_path)
    (tmp_path / ssd.INDEX_NAME).write_text("{", encoding="utf-8")
    with pytest.raises(ss.InvalidFileError, match="index.json: not a JSON index: "):
        ssd.load(tmp_path)


@pytest.mark.parametrize(
    "setup",
    [
        "import sys; sys.modules['torch'] = None",
        "import torch, torch.distributed; torch.distributed.is_available = lambda: False",
    ],
    ids=["no-torch", "no-distributed"],
)
def test_needs_torch_distributed(setup: str, tmp_path: Path) -> None:
    code = f"""
        {setup}
        import safestructures
        try:
            import safestructures.distributed
        except safestructures.FrameworkNotAvailableError as e:
            print("REFUSED", e)
        """
    result = subprocess.run([sys.executable, "-W", "error", "-c", textwrap.dedent(code)], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "REFUSED safestructures.distributed needs" in result.stdout


class AppState:
    """A DCP Stateful: DCP saves its state_dict() and hands the loaded one to load_state_dict()."""

    def __init__(self, epoch: int, weights: Any) -> None:
        self.epoch, self.weights = epoch, weights

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "weights": self.weights, "history": (1, 2)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.weights, self.history = state["epoch"], state["weights"], state["history"]


def test_stateful_objects(tmp_path: Path) -> None:
    ssd.save({"app": AppState(4, torch.arange(3.0))}, tmp_path)
    app = AppState(0, torch.zeros(3))
    weights = app.weights
    ssd.load(tmp_path, {"app": app})
    assert app.epoch == 4 and app.history == (1, 2) and app.weights is weights
    assert torch.equal(weights, torch.arange(3.0))


GUIDE = Path(__file__).resolve().parents[2] / "docs" / "distributed.md"


def test_the_guide_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocks = re.findall(r"^```python[ \t]*\n(.*?)^```[ \t]*$", GUIDE.read_text(encoding="utf-8"), flags=re.DOTALL | re.MULTILINE)
    assert len(blocks) == 3
    # The blocks run in order as one module (not __main__: the torchrun entry point stays out), in one process.
    module = types.ModuleType("distributed_guide")
    monkeypatch.setitem(sys.modules, "distributed_guide", module)
    monkeypatch.chdir(tmp_path)
    for number, block in enumerate(blocks, 1):
        code = compile(block, f"{GUIDE.name}, python block {number}", "exec", dont_inherit=True)
        with warnings.catch_warnings():
            # The guide's direct DCP calls with no_dist=True warn, as it says.
            warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
            exec(code, module.__dict__)
    namespace = module.__dict__
    assert namespace["step"] == 100 and type(namespace["config"]) is namespace["Config"]
    assert namespace["target"]["step"] == 100
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["model-00001-of-00001.safetensors", ssd.INDEX_NAME]


def test_async_save(tmp_path: Path) -> None:
    # DCP's async_save stages the state on the CPU, then saves it in a thread through the same writer and planner.
    state = {"model": {"w": torch.ones(2, 3)}, "step": 3, "pair": (1, 2), "by_int": {0: torch.zeros(1)}}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        future = dcp.async_save(state, storage_writer=ssd.SafestructuresWriter(tmp_path), planner=ssd.SafestructuresSavePlanner(), no_dist=True)
        future.result(timeout=60)
    assert_same(ssd.load(tmp_path), state)


def test_load_file_reads_a_distributed_checkpoint(tmp_path: Path) -> None:
    # load_file knows the checkpoint by its index and hands it to the DCP reader; open() cannot walk it lazily and says so.
    state = {"model": {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}, "step": 3, "config": ("adam", 1e-3)}
    ssd.save(state, tmp_path / "ckpt")
    for target in (tmp_path / "ckpt", tmp_path / "ckpt" / "model.safetensors.index.json"):
        back = ss.load_file(target)
        assert list(back) == ["model", "step", "config"]
        assert type(back["model"]["w"]) is torch.Tensor and back["model"]["w"].dtype == torch.float32
        assert torch.equal(back["model"]["w"], state["model"]["w"])
        assert back["step"] == 3 and type(back["step"]) is int
        assert back["config"] == ("adam", 1e-3) and type(back["config"]) is tuple
    with pytest.raises(ss.InvalidArgumentError, match="Distributed Checkpoint: it loads as torch tensors"):
        ss.load_file(tmp_path / "ckpt", framework="numpy")
    with pytest.raises(ss.InvalidFileError, match=r"a PyTorch Distributed Checkpoint; load it with safestructures\.distributed\.load"):
        ss.open(tmp_path / "ckpt")

"""The command line's `inspect`, `verify` and `get`: their output and exit status on good and bad files."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import io
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import safestructures as ss
from conftest import make_file_bytes, split_file, structured_file_bytes
from safestructures._cli import main
from safestructures._lazy_schema import describe

torch = pytest.importorskip("torch")

FIXTURES = Path(__file__).parent.parent / "data" / "v1"


@dataclasses.dataclass
class Cfg:
    lr: float
    layers: list[int]


def nested_data() -> dict[Any, Any]:
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    return {
        "model": {"layers": [{"weight": w, "bias": torch.zeros(3, dtype=torch.bfloat16)}], "tied": w},
        "step": 10,
        "name": "x" * 100,
        "tags": ("a", "b"),
        1: None,
        "cfg": Cfg(0.5, [1, 2]),
        "raw": b"abc",
        "when": datetime.date(2024, 1, 2),
        "nan": float("nan"),
        "bf": np.array([1.5, -2.0], dtype=ml_dtypes.bfloat16),
    }


@pytest.fixture
def nested(tmp_path: Path) -> Path:
    path = tmp_path / "ckpt.safetensors"
    ss.save_file(nested_data(), path, metadata={"run": "r1"})
    return path


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    path = tmp_path / "plain.safetensors"
    ss.save_tensors({"model.embed.weight": np.ones((4, 2), np.float16), "lm_head": np.zeros(3, np.int64)}, path, {"format": "pt"})
    return path


@pytest.fixture
def sharded(tmp_path: Path) -> Path:
    path = tmp_path / "sharded"
    data = {"model": {f"layer{i}": np.full((64, 64), i, np.float32) for i in range(3)}, "step": 3}
    ss.save_file(data, path, max_shard_size="20KB", metadata={"run": "s"})
    return path


# What verify adds for a file without checksums (1.0.0 files, files written by hand here).
NO_CHECKSUMS = ("safestructures verify: note: no checksums found (saved without them, before them, or by another tool): "
                "the layout and the structure were checked, not the tensors' bytes")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], list[str]]:
    """(exit status, stdout lines, stderr lines) of the command line run in this process."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err.splitlines()


def strip_extras(description: Any) -> Any:
    """A description without what the command line adds to Node.describe's."""
    if isinstance(description, dict):
        return {k: strip_extras(v) for k, v in description.items() if k not in ("same_as", "storage", "missing")}
    if isinstance(description, list):
        return [strip_extras(v) for v in description]
    return description


# --- inspect --------------------------------------------------------------------------------------------------------


def test_inspect_shows_the_tree(nested: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "inspect", nested)
    assert (status, err) == (0, [])
    assert out == [
        f'{nested}: safestructures v2, 3 tensors, 34 B of tensor data, metadata {{"run": "r1"}}',
        "dict (10 items)",
        "├── model: dict (2 items)",
        "│   ├── layers: list (1 item)",
        "│   │   └── [0]: dict (2 items)",
        "│   │       ├── weight: tensor float32 [2, 3]  24 B  (numpy)",
        "│   │       └── bias: tensor bfloat16 [3]  6 B  (torch)",
        "│   └── tied: tensor float32 [2, 3]  24 B  (numpy)  (same as model.layers.0.weight)",
        "├── step: int = 10",
        "├── name: str = 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx… (100 chars)",
        "├── tags: tuple (2 items)",
        "│   ├── [0]: str = 'a'",
        "│   └── [1]: str = 'b'",
        "├── 1: none = None",
        f"├── cfg: dataclass {__name__}.Cfg (2 fields)",
        "│   ├── lr: float = 0.5",
        "│   └── layers: list (2 items)",
        "│       ├── [0]: int = 1",
        "│       └── [1]: int = 2",
        "├── raw: bytes (3 B)",
        "├── when: date = datetime.date(2024, 1, 2)",
        "├── nan: float = nan",
        "└── bf: tensor bfloat16 [2]  4 B  (numpy)",
    ]


def test_inspect_depth_and_items(nested: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _err = run(capsys, "inspect", nested, "--depth", "1", "--items", "3")
    assert status == 0
    assert out[1:] == [
        "dict (10 items)",
        "├── model: dict (2 items) …",
        "├── step: int = 10",
        "├── name: str = 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx… (100 chars)",
        "└── … 7 more items",
    ]
    status, out, _err = run(capsys, "inspect", nested, "--depth", "0")
    assert out[1:] == ["dict (10 items) …"]


def test_inspect_json(nested: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _err = run(capsys, "inspect", nested, "--json", "--depth", "3")
    assert status == 0
    printed = json.loads("\n".join(out))
    assert printed["header"] == {"file": str(nested), "format": "safestructures v2", "shards": 1, "metadata": {"run": "r1"},
                                 "tensors": 3, "tensor_bytes": 34}
    with ss.open(nested) as f:
        assert strip_extras(printed["tree"]) == f.tree.describe(3)
    # tied is a reference to model.layers.0.weight: marked so once that has been shown (it is below depth 3)
    assert strip_extras(printed["tree"]["items"][0][1]["items"][1][1]) == printed["tree"]["items"][0][1]["items"][1][1]
    status, out, _err = run(capsys, "inspect", nested, "--json")
    model = json.loads("\n".join(out))["tree"]["items"][0][1]
    assert model["items"][1] == ["tied", {"kind": "tensor", "dtype": "float32", "shape": [2, 3], "nbytes": 24, "framework": "numpy",
                                          "tensor": "model.layers.0.weight", "same_as": "model.layers.0.weight"}]
    assert printed["tree"]["items"][4] == [1, {"kind": "none", "value": None}]  # an int key stays an int


@pytest.mark.parametrize("depth", [None, 0, 1, 2, 5])
@pytest.mark.parametrize("which", ["nested", "plain", "sharded"])
def test_the_walk_describes_as_the_lazy_api_does(which: str, depth: int | None, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(which)
    with ss.open(path) as f:
        doc = f._document()
        assert strip_extras(describe(f._schema, doc.root, (), depth, doc.tensor, True)) == f.tree.describe(depth)


def test_inspect_a_plain_safetensors_file(plain: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _err = run(capsys, "inspect", plain)
    assert status == 0
    assert out == [
        f'{plain}: plain safetensors, 2 tensors, 40 B of tensor data, metadata {{"format": "pt"}}',
        "dict (2 items)",
        "├── lm_head: tensor int64 [3]  24 B  (numpy)",
        "└── model.embed.weight: tensor float16 [4, 2]  16 B  (numpy)",
    ]


def test_inspect_a_sharded_directory(sharded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = [
        f'{sharded}: safestructures v2, 3 shards, 3 tensors, 48.0 KiB of tensor data, metadata {{"run": "s"}}',
        "dict (2 items)",
        "├── model: dict (3 items)",
        "│   ├── layer0: tensor float32 [64, 64]  16.0 KiB  (numpy)",
        "│   ├── layer1: tensor float32 [64, 64]  16.0 KiB  (numpy)",
        "│   └── layer2: tensor float32 [64, 64]  16.0 KiB  (numpy)",
        "└── step: int = 3",
    ]
    assert run(capsys, "inspect", sharded) == (0, expected, [])
    index = sharded / "model.safetensors.index.json"
    status, out, _err = run(capsys, "inspect", index)
    assert (status, out) == (0, [expected[0].replace(str(sharded), str(index)), *expected[1:]])


def hugging_face_checkpoint(directory: Path, second: dict[str, np.ndarray]) -> Path:
    """A sharded checkpoint of plain safetensors files, as Hugging Face writes them (no safestructures schema)."""
    directory.mkdir()
    ss.save_tensors({"embed.weight": np.ones((2, 2), np.float32)}, directory / "model-00001-of-00002.safetensors", {"format": "pt"})
    ss.save_tensors(second, directory / "model-00002-of-00002.safetensors", {"format": "pt"})
    index = {"metadata": {"total_size": 28}, "weight_map": {"embed.weight": "model-00001-of-00002.safetensors",
                                                             "lm_head.weight": "model-00002-of-00002.safetensors"}}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    return directory


def test_a_hugging_face_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = hugging_face_checkpoint(tmp_path / "hf", {"lm_head.weight": np.zeros(3, np.float32)})
    header = f'{good}: plain safetensors, 2 shards, 2 tensors, 28 B of tensor data, metadata {{"total_size": 28}}'
    assert run(capsys, "inspect", good) == (0, [
        header,
        "dict (2 items)",
        "├── embed.weight: tensor float32 [2, 2]  16 B  (numpy)",
        "└── lm_head.weight: tensor float32 [3]  12 B  (numpy)",
    ], [])
    assert run(capsys, "verify", good) == (0, [f"OK: {header}"], [])
    status, out, _err = run(capsys, "inspect", good, "--json")
    assert json.loads("\n".join(out))["tree"]["items"][1] == [
        "lm_head.weight", {"kind": "tensor", "dtype": "float32", "shape": [3], "nbytes": 12, "framework": "numpy", "tensor": "lm_head.weight"}]
    assert run(capsys, "get", good, "lm_head.weight", "--json") == (0, ["[0.0, 0.0, 0.0]"], [])
    # a tensor the index does not map: a warning; a tensor the index maps to a shard that lacks it: an error
    extra = hugging_face_checkpoint(tmp_path / "extra", {"lm_head.weight": np.zeros(3, np.float32), "x": np.zeros(1, np.int8)})
    status, _out, err = run(capsys, "verify", extra)
    assert (status, err) == (0, [('safestructures verify: warning: 1 tensor in the shards that the index does not map there: '
                                  '"x" (model-00002-of-00002.safetensors)')])
    bad = hugging_face_checkpoint(tmp_path / "bad", {"other": np.zeros(3, np.float32)})
    assert run(capsys, "verify", bad) == (1, [], [
        (f'safestructures verify: {bad}/model.safetensors.index.json: the index maps tensor "lm_head.weight" to '
         "model-00002-of-00002.safetensors, which does not hold it")])


def test_inspect_views_of_a_storage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "views.safetensors"
    base = torch.arange(10.0)
    ss.save_file({"t": base, "v": base[2:8:2], "w": base.view(2, 5)}, path)
    status, out, _err = run(capsys, "inspect", path)
    assert (status, out[1:]) == (0, [
        "dict (3 items)",
        "├── t: tensor float32 [10]  40 B  (torch)",
        '├── v: tensor float32 [3]  0 B  (torch)  view of tensor "t"',
        '└── w: tensor float32 [2, 5]  0 B  (torch)  view of tensor "t"',
    ])
    with ss.open(path) as f:
        doc = f._document()
        described = describe(f._schema, doc.root, (), None, doc.tensor, True)
        assert described["items"][1][1]["storage"] == "t"
        assert strip_extras(described) == f.tree.describe()
    assert run(capsys, "get", path, "v", "--json") == (0, ["[2.0, 4.0, 6.0]"], [])


def test_inspect_shared_and_cyclic_parts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cycle: list[Any] = [1]
    cycle.append(cycle)
    shared = {"k": 1}
    path = tmp_path / "refs.safetensors"
    ss.save_file({"cycle": cycle, "a": shared, "b": shared, (1, 2): "tuple key", "1": "str key"}, path)
    status, out, _err = run(capsys, "inspect", path)
    assert status == 0
    assert out[1:] == [
        "dict (5 items)",
        "├── cycle: list (2 items)",
        "│   ├── [0]: int = 1",
        "│   └── [1]: list (2 items)  (same as cycle)",
        "├── a: dict (1 item)",
        "│   └── k: int = 1",
        "├── b: dict (1 item)  (same as a)",
        "├── (1, 2): str = 'tuple key'",
        "└── '1': str = 'str key'",
    ]


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.safetensors")))
def test_inspect_1_0_0_files(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = FIXTURES / f"{name}.safetensors"
    status, out, err = run(capsys, "inspect", path)
    assert (status, err) == (0, [])
    assert out[0].startswith(f"{path}: safestructures 1.0.0, ")
    assert out[0].endswith(f', metadata {{"case": "{name}"}}')
    status, json_out, _err = run(capsys, "inspect", path, "--json")
    assert json.loads("\n".join(json_out))["header"]["format"] == "safestructures 1.0.0"


def test_inspect_a_1_0_0_file_shows_its_values(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _err = run(capsys, "inspect", FIXTURES / "basic.safetensors")
    assert out[1:] == [
        "dict (3 items)",
        "├── a: int = 1",
        "├── b: list (4 items)",
        "│   ├── [0]: float = 1.5",
        "│   ├── [1]: none = None",
        "│   ├── [2]: bool = True",
        "│   └── [3]: str = 'x'",
        "└── 3: tuple (2 items)",
        "    ├── [0]: int = 1",
        "    └── [1]: int = 2",
    ]
    status, out, _err = run(capsys, "inspect", FIXTURES / "dataclass.safetensors", "--depth", "1")
    assert status == 0
    assert out[1:] == ["dict (2 items)", "├── cfg: record SafestructuresDataclass (3 fields) …", "└── list: list (1 item) …"]


def test_inspect_builds_nothing_on_10000_tensors(tmp_path: Path, nested: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    structured = tmp_path / "layers.safetensors"
    ss.save_file({"layers": [{f"w{j}": np.zeros(4, np.float32) for j in range(10)} for _ in range(1000)]}, structured)
    flat = tmp_path / "flat.safetensors"
    ss.save_tensors({f"t{i}": np.zeros(4, np.float32) for i in range(10_000)}, flat)
    # What made the lazy API's Node.describe take 1 to 6 s on these files: building a value (every key of a plain
    # file's dict) through a load. inspect builds nothing here; it walks the schema.
    builds: list[list[tuple[Any, ...]]] = []  # the nodes of each call that builds nodes
    real_load_many = ss.SafeFile._load_many
    monkeypatch.setattr(ss.SafeFile, "_load_many",
                        lambda self, nodes, **kw: builds.append([tuple(path) for _i, path in nodes]) or real_load_many(self, nodes, **kw))
    for path in (structured, flat):
        for extra in ([], ["--json"]):
            # No value is built: what keeps inspect at 0.1 to 0.3 s here (checked as work done, not as a time, which a
            # loaded machine makes noisy).
            status, out, _err = run(capsys, "inspect", path, *extra)
            assert status == 0 and builds == []
    assert out[-1] == "}" and json.loads("\n".join(out))["header"]["tensors"] == 10_000
    status, out, _err = run(capsys, "inspect", flat)
    assert len(out) == 2 + 10_000 and out[-1] == "└── t9999: tensor float32 [4]  16 B  (numpy)"
    # the spy does see builds: the values of tagged scalars (a date, a nan) come from one load of them both
    assert run(capsys, "inspect", nested)[0] == 0 and builds == [[("when",), ("nan",)]]


# --- verify ---------------------------------------------------------------------------------------------------------


def test_verify_good_files(nested: Path, plain: Path, sharded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "verify", nested) == (0, [f'OK: {nested}: safestructures v2, 3 tensors, 34 B of tensor data, metadata {{"run": "r1"}}'], [])
    assert run(capsys, "verify", plain) == (0, [f'OK: {plain}: plain safetensors, 2 tensors, 40 B of tensor data, metadata {{"format": "pt"}}'], [])
    assert run(capsys, "verify", sharded) == (
        0, [f'OK: {sharded}: safestructures v2, 3 shards, 3 tensors, 48.0 KiB of tensor data, metadata {{"run": "s"}}'], [])


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.safetensors")))
def test_verify_1_0_0_files(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "verify", FIXTURES / f"{name}.safetensors")
    assert (status, err) == (0, [NO_CHECKSUMS])
    assert len(out) == 1 and out[0].startswith(f"OK: {FIXTURES / name}.safetensors: safestructures 1.0.0, ")


def test_verify_builds_a_dtype_only_torch_has(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c32.safetensors"
    with warnings.catch_warnings():  # torch calls complex32 experimental, once a process (whichever test is first)
        warnings.simplefilter("ignore", UserWarning)
        ss.save_file({"c": torch.zeros(2, dtype=torch.complex32)}, path)
    assert run(capsys, "verify", path) == (0, [f"OK: {path}: safestructures v2, 1 tensor, 8 B of tensor data, no metadata"], [])


def test_verify_warns_about_tensors_the_data_does_not_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "extra.safetensors"
    root = {"a": {"$": "tensor", "name": "a", "fw": "numpy"}}
    path.write_bytes(structured_file_bytes(root, {"a": ("F32", [1], b"\0" * 4), "stray": ("U8", [2], b"xy")}))
    assert run(capsys, "verify", path) == (
        0,
        [f"OK: {path}: safestructures v2, 2 tensors, 6 B of tensor data, no metadata"],
        ['safestructures verify: warning: 1 tensor in the file that the data does not use: "stray"', NO_CHECKSUMS],
    )


def test_verify_truncated_file(nested: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = nested.read_bytes()
    nested.write_bytes(raw[:-10])
    for command in ("verify", "inspect"):
        status, out, err = run(capsys, command, nested)
        assert (status, out) == (1, [])
        # the last tensor's data runs past the end of the file
        assert err == [f'safestructures {command}: {nested}: tensor "bf": data_offsets end 28 is past the end of the data buffer (24 bytes)']


def test_verify_garbage_header(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(make_file_bytes(None, raw_header=b"{not json at all"))
    status, out, err = run(capsys, "verify", path)
    assert (status, out) == (1, [])
    assert len(err) == 1 and err[0].startswith(f"safestructures verify: {path}: header is not valid JSON: ")
    path.write_bytes(b"\x01\x02")  # shorter than the length prefix
    assert run(capsys, "verify", path) == (
        1, [], [f"safestructures verify: {path}: file is 2 bytes, shorter than the 8-byte header length prefix"])


def test_verify_schema_naming_a_missing_tensor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "missing.safetensors"
    root = {"layers": [{"w": {"$": "tensor", "name": "layers.0.w", "fw": "numpy"}}]}
    path.write_bytes(structured_file_bytes(root, {"other": ("F32", [1], b"\0" * 4)}))
    assert run(capsys, "verify", path) == (
        1, [], [f'safestructures verify: {path}: at $["layers"][0]["w"]: the schema refers to tensor "layers.0.w", which the file lacks'])
    # inspect shows the rest of the tree, and the tensor as missing
    status, out, _err = run(capsys, "inspect", path)
    assert (status, out[-1]) == (0, '        └── w: tensor  (MISSING: the file has no tensor "layers.0.w")')


def test_verify_a_bad_node_deep_inside(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ref.safetensors"
    path.write_bytes(structured_file_bytes({"a": [1, {"$": "ref", "#": 7}]}))
    assert run(capsys, "verify", path) == (
        1, [], [f'safestructures verify: {path}: at $["a"][1]: ref to #7, which is not defined before this point'])
    # inspect follows the reference to show it, and fails there as the load does
    assert run(capsys, "inspect", path) == (
        1, [], [f'safestructures inspect: {path}: at $["a"][1]: ref to #7, which is not defined before this point'])


@pytest.mark.parametrize("command", [["inspect"], ["verify"], ["get", "a"]])
def test_a_missing_file(tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.safetensors"
    assert run(capsys, command[0], missing, *command[1:]) == (
        1, [], [f"safestructures {command[0]}: [Errno 2] No such file or directory: '{missing}'"])


# --- get ------------------------------------------------------------------------------------------------------------


def test_get_values_as_json(nested: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "get", nested, "step") == (0, ["10"], [])
    assert run(capsys, "get", nested, "cfg") == (0, [f'{{"$type": "{__name__}.Cfg", "lr": 0.5, "layers": [1, 2]}}'], [])
    assert run(capsys, "get", nested, "model.layers.0") == (0, [
        '{',
        '  "weight": {"$tensor": {"dtype": "float32", "shape": [2, 3], "path": "model.layers.0.weight"}},',
        '  "bias": {"$tensor": {"dtype": "bfloat16", "shape": [3], "path": "model.layers.0.bias"}}',
        '}',
    ], [])
    assert run(capsys, "get", nested, "model.layers.0", "--json") == (
        0, ['{"weight": [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], "bias": [0.0, 0.0, 0.0]}'], [])
    assert run(capsys, "get", nested, "tags.-1") == (0, ['"b"'], [])
    status, out, _err = run(capsys, "get", nested, ".")
    assert status == 0
    root = json.loads("\n".join(out))
    assert list(root) == ["$items"]  # the int key 1 makes the root a list of pairs
    assert dict(root["$items"][1:]) == {
        "step": 10, "name": "x" * 100, "tags": ["a", "b"], 1: None,
        "cfg": {"$type": f"{__name__}.Cfg", "lr": 0.5, "layers": [1, 2]}, "raw": {"$bytes_b64": "YWJj"},
        "when": {"$repr": "datetime.date(2024, 1, 2)"}, "nan": {"$float": "nan"},
        "bf": {"$tensor": {"dtype": "bfloat16", "shape": [2], "path": "bf"}},
    }
    assert run(capsys, "get", nested, "")[1] == out


def test_get_other_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "values.safetensors"
    point = collections.namedtuple("point", "x y")
    cycle: list[Any] = []
    cycle.append(cycle)
    ss.save_file({"p": point(1, -np.inf), "s": {3, 1}, "d": {(1, 2): "a"}, "o": collections.OrderedDict(k=b"\xff"),
                  "n": np.float32(0.1), "c": cycle, "u": "é\ud800", "f32": np.array([2.31, -0.1, np.nan], np.float32),
                  "bf": np.array([2.31, -0.1], ml_dtypes.bfloat16)}, path)
    assert run(capsys, "get", path, "p")[1] == [f'{{"$type": "{__name__}.point", "x": 1, "y": {{"$float": "-inf"}}}}']
    assert run(capsys, "get", path, "p.1")[1] == ['{"$float": "-inf"}']  # a named tuple's field by index
    assert run(capsys, "get", path, "p.y")[1] == ['{"$float": "-inf"}']
    assert run(capsys, "get", path, "s")[1] == ["[1, 3]"]
    assert run(capsys, "get", path, "d")[1] == ['{"$items": [[[1, 2], "a"]]}']  # a tuple key is an array too
    assert run(capsys, "get", path, "o")[1] == ['{"k": {"$bytes_b64": "/w=="}}']
    assert run(capsys, "get", path, "n")[1] == ["0.1"]  # a float32 scalar, not 0.10000000149011612
    assert run(capsys, "get", path, "c")[1] == ['[{"$cycle": "c"}]']
    assert run(capsys, "get", path, "f32", "--json")[1] == ['[2.31, -0.1, {"$float": "nan"}]']  # not 2.309999942779541
    assert run(capsys, "get", path, "bf", "--json")[1] == ["[2.3125, -0.10009765625]"]  # bfloat16's exact values
    assert run(capsys, "get", path, "u")[1] == ['"é\\ud800"']  # a lone surrogate in its \u escape, as JSON writes it


def test_get_a_tensor_as_npy(nested: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "w.npy"
    assert run(capsys, "get", nested, "model.layers.0.weight", "-o", out) == (0, [], [f"wrote {out} (float32 [2, 3], 24 B)"])
    np.testing.assert_array_equal(np.load(out), np.arange(6, dtype=np.float32).reshape(2, 3))
    assert np.load(out).dtype == np.float32
    # never replaced silently
    before = out.read_bytes()
    assert run(capsys, "get", nested, "model.tied", "-o", out) == (1, [], [f"safestructures get: {out} exists (--force replaces it)"])
    assert out.read_bytes() == before
    assert run(capsys, "get", nested, "model.layers.0.bias", "-o", out, "--force")[0] == 0
    assert np.load(out).dtype == ml_dtypes.bfloat16


def test_get_a_bfloat16_tensor_names_its_dtype(nested: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bf.npy"
    assert run(capsys, "get", nested, "bf", "-o", out)[0] == 0
    header = out.read_bytes()[:128]
    assert b"'descr': 'bfloat16'" in header  # not np.save's opaque '<V2'
    back = np.load(out)
    assert back.dtype == ml_dtypes.bfloat16 and back.tolist() == [1.5, -2.0]


def test_get_a_tensor_to_standard_output(nested: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["get", str(nested), "model.layers.0.weight", "-o", "-"]) == 0
    out, err = capsysbinary.readouterr()
    assert err == b""
    np.testing.assert_array_equal(np.load(io.BytesIO(out)), np.arange(6, dtype=np.float32).reshape(2, 3))


def test_get_usage_errors(nested: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "get", nested, "model.layers.0.weight") == (2, [], [
        ('safestructures get: $["model"]["layers"][0]["weight"] is a tensor (float32 [2, 3]): give -o FILE.npy to write '
         "it (-o - for standard output), or --json for its values")])
    assert run(capsys, "get", nested, "step", "-o", tmp_path / "x.npy") == (2, [], [
        'safestructures get: $["step"] is not a tensor: -o writes tensors only (values are printed as JSON)'])
    assert not (tmp_path / "x.npy").exists()
    assert run(capsys, "get", nested, "model.layers.0.weight", "--json") == (0, ["[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]"], [])


def test_get_a_path_that_names_nothing(nested: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "get", nested, "model.nope") == (
        1, [], ["safestructures get: no key 'nope' at $[\"model\"] (a dict of 2 items: 'layers', 'tied')"])
    assert run(capsys, "get", nested, "model.layers.3") == (
        1, [], ['safestructures get: index 3 is out of range at $["model"]["layers"] (a list of 1 item)'])
    assert run(capsys, "get", nested, "model.layers.x") == (
        1, [], ["safestructures get: $[\"model\"][\"layers\"] is a list: 'x' is not an index"])
    assert run(capsys, "get", nested, "step.x") == (1, [], ["safestructures get: $[\"step\"] is an int, which has no key 'x'"])
    status, _out, err = run(capsys, "get", nested, "nope")
    assert status == 1 and err == ["safestructures get: no key 'nope' at $ (a dict of 10 items: 'model', 'step', 'name', 'tags', 1, ...)"]


def test_get_past_an_int_key_too_long_for_decimal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Matching a dotted part against the text of a 20,001-bit int key raised ValueError (Python writes ints of at most
    # 4300 digits) out of the command, a traceback instead of exit status 1.
    path = tmp_path / "big_key.safetensors"
    ss.save_file({2**20000: 1, "a": 2}, path)
    assert run(capsys, "get", path, "a") == (0, ["2"], [])
    assert run(capsys, "get", path, "b") == (1, [], ["safestructures get: no key 'b' at $ (a dict of 2 items: <int of 20,001 bits>, 'a')"])
    assert run(capsys, "get", path, "$[1]") == (1, [], ["safestructures get: no key 1 at $ (a dict of 2 items: <int of 20,001 bits>, 'a')"])


def test_get_keys_that_hold_dots(plain: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "get", plain, "model.embed.weight", "--json") == (0, ["[[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]"], [])
    path = tmp_path / "dots.safetensors"
    ss.save_file({"a": {"b": 1}, "a.b": {"c": 2}, 3: "int key"}, path)
    assert run(capsys, "get", path, "a.b.c")[1] == ["2"]  # the longest key first, then back to a / b if that fails
    assert run(capsys, "get", path, "a.b")[1] == ['{"c": 2}']
    assert run(capsys, "get", path, "3")[1] == ['"int key"']


def test_get_paths_written_as_messages_write_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keys.safetensors"
    ss.save_file({"a.b": {"c": [10, 20]}, "a": {"b": {"c": "nested"}}, 1: "int key", "1": "str key", "q\"": "quote"}, path)
    assert run(capsys, "get", path, '$["a.b"]["c"][1]')[1] == ["20"]
    assert run(capsys, "get", path, '$["a"]["b"]["c"]')[1] == ['"nested"']
    assert run(capsys, "get", path, "$[1]")[1] == ['"int key"']
    assert run(capsys, "get", path, '$["1"]')[1] == ['"str key"']
    assert run(capsys, "get", path, '$["q\\""]')[1] == ['"quote"']
    assert run(capsys, "get", path, "$")[0] == 0  # the root
    assert run(capsys, "get", path, '$["a.b"]["c"][2]') == (
        1, [], ['safestructures get: index 2 is out of range at $["a.b"]["c"] (a list of 2 items)'])
    assert run(capsys, "get", path, '$["a.b"]["x"]') == (
        1, [], ["safestructures get: no key 'x' at $[\"a.b\"] (a dict of 1 item: 'c')"])
    assert run(capsys, "get", path, '$["a.b"]["c"]["x"]') == (
        1, [], ["safestructures get: $[\"a.b\"][\"c\"] is a list: 'x' is not an index"])
    assert run(capsys, "get", path, "$[2]")[2] == [
        "safestructures get: no key 2 at $ (a dict of 5 items: 'a.b', 'a', 1, '1', 'q\"')"]
    assert run(capsys, "get", path, "$[a]") == (
        2, [], ["safestructures get: cannot read the path '$[a]' at character 2: write $[\"key\"] or $[index] parts"])
    # a message's path, copied from an error, finds the place it names
    _status, _out, err = run(capsys, "get", path, "a.b.c.5")
    assert err == ['safestructures get: index 5 is out of range at $["a.b"]["c"] (a list of 2 items)']
    assert run(capsys, "get", path, '$["a.b"]["c"]')[1] == ["[10, 20]"]


def test_get_from_sharded_and_1_0_0_files(sharded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "get", sharded, "step") == (0, ["3"], [])
    status, out, _err = run(capsys, "get", sharded, "model.layer2", "--json")
    assert status == 0 and np.array_equal(np.array(json.loads("\n".join(out))), np.full((64, 64), 2.0))
    assert run(capsys, "get", FIXTURES / "basic.safetensors", "b") == (0, ['[1.5, null, true, "x"]'], [])
    assert run(capsys, "get", FIXTURES / "basic.safetensors", "3.1") == (0, ["2"], [])
    assert run(capsys, "get", FIXTURES / "dataclass.safetensors", "cfg.layers") == (0, ["[1, 2]"], [])
    assert run(capsys, "get", FIXTURES / "basic.safetensors", "b.7") == (
        1, [], ['safestructures get: index 7 is out of range at $["b"] (a list of 4 items)'])


def test_command_line_usage_errors(nested: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["inspect", str(nested), "--depth", "-1"], ["inspect"], ["get", str(nested)], ["frobnicate"],
                 ["get", str(nested), "bf", "-o", "x.npy", "--json"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    assert "must be 0 or more, not -1" in capsys.readouterr().err


# --- as installed ---------------------------------------------------------------------------------------------------


def installed_command() -> str:
    found = shutil.which("safestructures")
    return found if found is not None else str(Path(sys.executable).parent / "safestructures")


@pytest.mark.parametrize("prefix", [[sys.executable, "-m", "safestructures"], [installed_command()]], ids=["python -m", "script"])
def test_the_installed_commands(prefix: list[str], nested: Path, tmp_path: Path) -> None:
    def call(*argv: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefix, *map(str, argv)], check=False, capture_output=True, text=True, timeout=120)

    result = call("inspect", nested, "--depth", "0")
    assert (result.returncode, result.stdout.splitlines()[1:], result.stderr) == (0, ["dict (10 items) …"], "")
    result = call("verify", nested)
    assert (result.returncode, result.stderr) == (0, "") and result.stdout.startswith(f"OK: {nested}: ")
    result = call("get", nested, "cfg.layers")
    assert (result.returncode, result.stdout, result.stderr) == (0, "[1, 2]\n", "")
    result = call("get", nested, "model.layers.0.weight", "-o", tmp_path / "w.npy")
    assert result.returncode == 0 and np.load(tmp_path / "w.npy").shape == (2, 3)
    result = call("get", nested, "model.nope")
    assert result.returncode == 1 and result.stderr.startswith("safestructures get: no key 'nope'")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(split_file(nested.read_bytes())[0][:50])
    result = call("verify", bad)
    assert (result.returncode, result.stdout) == (1, "") and result.stderr.startswith("safestructures verify: ")
    result = call("inspect", nested, "--depth", "x")
    assert result.returncode == 2 and "not a whole number: 'x'" in result.stderr


def test_output_into_a_reader_that_stops(tmp_path: Path) -> None:
    # inspect | head -1: the tree is far larger than a pipe holds, so the command meets a closed pipe; it stops
    # quietly, with status 1 and nothing on standard error.
    path = tmp_path / "flat.safetensors"
    ss.save_tensors({f"t{i}": np.zeros(1, np.float32) for i in range(10_000)}, path)
    process = subprocess.Popen([sys.executable, "-m", "safestructures", "inspect", str(path)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()
    assert process.wait(timeout=120) == 1
    assert first == f"{path}: plain safetensors, 10,000 tensors, 39.1 KiB of tensor data, no metadata\n".encode()
    assert process.stderr.read() == b""
    process.stderr.close()

"""PyTorch tensors in nested data: every dtype with its exact torch dtype, Parameters and requires_grad, strided
tensors, memory shared between tensors (tied weights, state dicts, views), torch.dtype / torch.device / torch.Size,
zero-copy loading, CUDA, and the tensors that cannot be stored."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import (
    save_and_load,
    TORCH_DTYPES,
    file_mappings,
    header_of,
    import_framework,
    read_header,
    run_python,
    schema_of,
    tensor_bytes,
    torch_sample,
)

torch = import_framework("torch")

import safestructures  # noqa: E402
from safestructures import UnsupportedTypeError  # noqa: E402

safetensors = pytest.importorskip("safetensors")

#: torch dtype name -> (header dtype, the schema's logical "dtype" field or None). The safetensors dtypes, then the
#: three torch dtypes stored another way: complex128 and complex32 as U8 bytes, float4_e2m1fn_x2 as F4.
DTYPES: dict[str, tuple[str, str | None]] = {
    **{name: (stored, None) for name, stored in TORCH_DTYPES.items()},
    "complex128": ("U8", "<c16"),
    "complex32": ("U8", "torch.complex32"),
    "float4_e2m1fn_x2": ("F4", None),
}

ROUTES = ["bytearray", "bytes", "file"]


roundtrip = save_and_load


def assert_same_tensor(actual: Any, expected: Any) -> None:
    """``actual`` is ``expected`` rebuilt: same type (Tensor or Parameter), dtype, shape, requires_grad, on the CPU,
    with bitwise equal values (NaN payloads and -0.0 included)."""
    assert type(actual) is type(expected), (type(actual), type(expected))
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert type(actual.shape) is torch.Size
    assert actual.requires_grad == expected.requires_grad
    assert actual.device == torch.device("cpu")
    assert tensor_bytes(actual) == tensor_bytes(expected)


def storage_of(t: Any) -> int:
    return t.untyped_storage().data_ptr()


def tensor_entries(header: dict[str, Any]) -> dict[str, Any]:
    return {name: entry for name, entry in header.items() if name != "__metadata__"}


# ---------------------------------------------------------------------------------------------------------------------
# Dtypes


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("name", list(DTYPES))
def test_every_dtype_round_trips_as_the_same_torch_dtype(name: str, route: str, tmp_path: Path) -> None:
    dtype = getattr(torch, name)
    tensor = torch_sample(dtype, (3, 4), seed=len(name))
    loaded, header = roundtrip({"t": tensor, "again": [tensor]}, route, tmp_path)
    assert_same_tensor(loaded["t"], tensor)
    assert loaded["again"][0] is loaded["t"]

    stored, logical = DTYPES[name]
    (entry,) = tensor_entries(header).values()
    assert entry["dtype"] == stored
    node = schema_of(safestructures.save({"t": tensor}))["root"]["t"]
    assert node["fw"] == "torch"
    if logical is not None:
        # Stored as raw bytes with the dtype and shape in the schema.
        assert entry["shape"] == [3 * 4 * dtype.itemsize]
        assert node["dtype"] == logical and node["shape"] == [3, 4]
    elif name == "float4_e2m1fn_x2":
        # Two 4-bit elements a byte: safetensors' F4 with the last dimension doubled.
        assert entry["shape"] == [3, 8] and node["x2"] is True
    else:
        assert entry["shape"] == [3, 4]
        assert set(node) == {"$", "name", "fw"}


SHAPES = [(), (0,), (2, 0, 3), (1,)]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", list(DTYPES))
def test_scalar_and_zero_size_tensors(
    name: str, shape: tuple[int, ...], route: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    tensor = torch_sample(getattr(torch, name), shape, seed=3)
    loaded, _header = roundtrip({"t": tensor}, route, tmp_path)
    assert_same_tensor(loaded["t"], tensor)


@pytest.mark.parametrize("route", ROUTES)
def test_all_dtypes_in_one_file_load_aligned(route: str, tmp_path: Path) -> None:
    # Odd-sized tensors between them: tensors stored as U8 bytes (complex128, complex32) can land at any offset.
    data = {"odd": torch.ones(3, dtype=torch.uint8)}
    for k, name in enumerate(DTYPES):
        data[name] = torch_sample(getattr(torch, name), (k % 3 + 1, 2), seed=k)
        data[name + "_odd"] = torch.ones(k % 5 + 1, dtype=torch.uint8)
    loaded, _header = roundtrip(data, route, tmp_path)
    for key, tensor in data.items():
        assert_same_tensor(loaded[key], tensor)
        # torch's kernels assume element-aligned memory (a misaligned complex128 crashes the process): a tensor that
        # would be misaligned in the file is loaded as an aligned copy.
        assert loaded[key].data_ptr() % loaded[key].dtype.itemsize == 0, key


def test_misaligned_complex128_is_usable(tmp_path: Path) -> None:
    # Regression: complex128 is stored as U8 bytes, here at file offset 3; a zero-copy view of it crashed torch (SIGSEGV
    # in fill_, clone, arithmetic). Run in a subprocess so that a crash fails this test rather than the session.
    path = tmp_path / "c128.safetensors"
    values = torch.tensor([1 + 2j, -3.5 + 0.25j, 0j], dtype=torch.complex128)
    safestructures.save_file({"a": torch.ones(3, dtype=torch.uint8), "b": values, "c": values.to(torch.complex64)}, path)
    assert read_header(path)["b"]["data_offsets"][0] % 16 != 0
    result = run_python(
        """
        import pathlib, sys, torch, safestructures
        path = pathlib.Path(sys.argv[1])
        for loaded in (safestructures.load_file(path), safestructures.load(path.read_bytes())):
            b = loaded["b"]
            assert b.data_ptr() % 16 == 0
            assert (b * 2).tolist() == [2 + 4j, -7 + 0.5j, 0j]
            assert b.clone().sum().item() == -2.5 + 2.25j
            b.fill_(1)
            assert b.tolist() == [1 + 0j] * 3
            assert (loaded["c"] + 1).tolist() == [2 + 2j, -2.5 + 0.25j, 1 + 0j]
        print("OK")
        """,
        str(path),
    )
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert result.stdout.strip() == "OK"


def test_dtypes_without_a_stored_form_are_refused() -> None:
    for name in ("bits16", "bits8", "uint4", "int4"):
        dtype = getattr(torch, name, None)
        if dtype is None:
            continue
        with pytest.raises(UnsupportedTypeError, match=rf'\$\["w"\]\[0\].*torch dtype torch\.{name} has no stored form'):
            safestructures.save({"w": [torch.empty(2, dtype=dtype)]})


# ---------------------------------------------------------------------------------------------------------------------
# Parameters and requires_grad


@pytest.mark.parametrize("route", ROUTES)
def test_parameters_and_requires_grad(route: str, tmp_path: Path) -> None:
    data = {
        "trainable": torch.nn.Parameter(torch_sample(torch.float32, (2, 3), seed=1)),
        "frozen": torch.nn.Parameter(torch_sample(torch.bfloat16, (4,), seed=2), requires_grad=False),
        "int_param": torch.nn.Parameter(torch.arange(5, dtype=torch.int64), requires_grad=False),
        "complex_param": torch.nn.Parameter(torch_sample(torch.complex128, (2,), seed=3)),
        "grad_tensor": torch_sample(torch.float64, (3,), seed=4).requires_grad_(True),
        "plain": torch_sample(torch.float16, (3,), seed=5),
        "plain_int": torch.arange(3, dtype=torch.int32),
    }
    loaded, _header = roundtrip(data, route, tmp_path)
    for key, tensor in data.items():
        assert_same_tensor(loaded[key], tensor)
        assert loaded[key].is_leaf, key
        assert loaded[key].grad is None, key
    assert type(loaded["trainable"]) is torch.nn.Parameter and loaded["trainable"].requires_grad
    assert type(loaded["frozen"]) is torch.nn.Parameter and not loaded["frozen"].requires_grad
    assert type(loaded["grad_tensor"]) is torch.Tensor and loaded["grad_tensor"].requires_grad
    # Loaded parameters take part in autograd.
    loss = (loaded["trainable"] * 2).sum()
    loss.backward()
    assert torch.equal(loaded["trainable"].grad, torch.full((2, 3), 2.0))


def test_non_leaf_tensor_requiring_grad_loads_as_a_leaf() -> None:
    x = torch.ones(3, requires_grad=True)
    y = x * 3
    loaded = safestructures.load(safestructures.save({"y": y}))["y"]
    assert type(loaded) is torch.Tensor
    assert loaded.requires_grad and loaded.is_leaf and loaded.grad_fn is None
    assert loaded.tolist() == [3.0, 3.0, 3.0]


# ---------------------------------------------------------------------------------------------------------------------
# Strided tensors


def strided_cases(base: Any) -> dict[str, Any]:
    """Tensors that are not C-contiguous (torch has no negative strides), plus a 0-d and a zero-size view."""
    assert base.shape == (4, 5, 6) and base.is_contiguous()
    flat = base.reshape(-1)
    cases = {
        "transpose": base.transpose(0, 2),
        "permute": base.permute(1, 2, 0),
        "matrix_T": base[1].T,
        "step": base[::2, 1:, ::3],
        "narrow": base.narrow(1, 1, 2),
        "select": base[:, 2],
        "diagonal": base[0].diagonal(),
        "expand": base[:1, :1, :].expand(3, 4, 6),
        "broadcast_to": torch.broadcast_to(base[0, 0], (5, 6)),
        "unfold_overlapping": flat[:20].unfold(0, 6, 2),
        "as_strided": base.as_strided((3, 3), (7, 2), 5),
        "scalar_view": base[1, 2, 3],
        "zero_size_view": base[:, 2:2],
    }
    for key in ("transpose", "permute", "matrix_T", "step", "narrow", "select", "diagonal", "expand", "broadcast_to", "unfold_overlapping", "as_strided"):
        assert not cases[key].is_contiguous(), key
    assert cases["expand"].stride()[0] == 0 and cases["broadcast_to"].stride()[0] == 0
    return cases


@pytest.mark.parametrize("name", ["int32", "float32", "bfloat16", "float8_e4m3fn", "bool", "complex128", "complex32"])
def test_strided_tensors_are_saved_with_their_values(name: str, tmp_path: Path) -> None:
    base = torch_sample(getattr(torch, name), (4, 5, 6), seed=7)
    cases = strided_cases(base)
    # Each alone, then all of them in one file (where later ones may be stored as views of earlier ones).
    for key, tensor in cases.items():
        for route in ROUTES:
            loaded, _header = roundtrip({"t": tensor}, route, tmp_path)
            assert_same_tensor(loaded["t"], tensor)
    for route in ROUTES:
        loaded, _header = roundtrip(cases, route, tmp_path)
        for key, tensor in cases.items():
            assert_same_tensor(loaded[key], tensor)


def test_step_slice_is_stored_as_the_segment_it_spans() -> None:
    base = torch.arange(60, dtype=torch.int32).reshape(3, 4, 5)
    step = base[::2, 1:, ::3]
    blob = safestructures.save({"step": step})
    # Elements 5 .. 58 of the storage: one 1-D segment, and a view of it in the schema.
    assert tensor_entries(header_of(blob)) == {"step": {"dtype": "I32", "shape": [54], "data_offsets": [0, 216]}}
    node = schema_of(blob)["root"]["step"]
    assert (node["offset"], node["shape"], node["stride"]) == (0, [2, 3, 2], [40, 5, 3])
    loaded = safestructures.load(bytearray(blob))["step"]
    assert loaded.stride() == step.stride()
    assert torch.equal(loaded, step)


# ---------------------------------------------------------------------------------------------------------------------
# Shared memory


def stored_tensors(path: Path) -> tuple[int, int]:
    """(how many tensors the file holds, their total size in bytes), read with the reference safetensors reader."""
    count = total = 0
    with safetensors.safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            count += 1
            total += f.get_tensor(key).nbytes
    return count, total


def test_tied_weights_are_one_object(tmp_path: Path) -> None:
    embedding = torch.nn.Embedding(10, 4)
    head = torch.nn.Linear(4, 10, bias=False)
    head.weight = embedding.weight
    data = {"embedding": embedding.weight, "head": head.weight, "state": head.state_dict() | embedding.state_dict()}
    path = tmp_path / "tied.safetensors"
    safestructures.save_file(data, path)
    assert stored_tensors(path) == (1, 10 * 4 * 4)
    loaded = safestructures.load_file(path)
    assert loaded["embedding"] is loaded["head"]
    assert type(loaded["head"]) is torch.nn.Parameter and loaded["head"].requires_grad
    assert type(loaded["state"]["weight"]) is torch.Tensor
    assert storage_of(loaded["state"]["weight"]) == storage_of(loaded["head"])
    assert torch.equal(loaded["head"], embedding.weight)


def small_model() -> Any:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    model.train()
    model(torch.randn(5, 4))  # moves the batch norm's running statistics away from their initial values
    return model


@pytest.mark.parametrize("params_first", [True, False], ids=["params-first", "state-first"])
def test_state_dict_beside_the_parameters_is_stored_once(params_first: bool, tmp_path: Path) -> None:
    model = small_model()
    params = dict(model.named_parameters())
    state = model.state_dict()
    data = {"params": params, "state": state} if params_first else {"state": state, "params": params}
    path = tmp_path / "model.safetensors"
    safestructures.save_file(data, path)
    # Every parameter and buffer once, whichever comes first.
    assert stored_tensors(path) == (len(state), sum(t.nbytes for t in state.values()))

    loaded = safestructures.load_file(path)
    assert list(loaded["state"]) == list(state) and type(loaded["state"]) is type(state)
    for key, tensor in state.items():
        assert_same_tensor(loaded["state"][key], tensor)
    for key, param in params.items():
        assert_same_tensor(loaded["params"][key], param)
        loaded_param, loaded_state = loaded["params"][key], loaded["state"][key]
        assert type(loaded_param) is torch.nn.Parameter and loaded_param.requires_grad
        assert loaded_param.data_ptr() == loaded_state.data_ptr()
        assert storage_of(loaded_param) == storage_of(loaded_state)
        # Writing through one is seen through the other, both ways.
        with torch.no_grad():
            loaded_param.view(-1)[0] = 1234.5
        assert loaded_state.view(-1)[0].item() == 1234.5
        loaded_state.view(-1)[-1] = -99.0
        assert loaded_param.view(-1)[-1].item() == -99.0
    # The state dict loads into a fresh model.
    fresh = small_model()
    fresh.load_state_dict(safestructures.load_file(path)["state"])
    for key, tensor in fresh.state_dict().items():
        assert torch.equal(tensor, state[key]), key


def base_and_views() -> dict[str, Any]:
    base = torch_sample(torch.float32, (6, 8), seed=11)
    return {
        "base": base,
        "rows": base[1:4],
        "row": base[2],
        "element": base[2, 5],
        "flat_view": base.view(48),
        "reshaped": base.view(4, 12),
        "flatten": base.flatten(),
        "unsqueezed": base.unsqueeze(0),
        "T": base.T,
        "column": base[:, 3],
        "step": base[::2, ::3],
        "diagonal": base.diagonal(),
        "narrow": base.narrow(1, 2, 3),
        "chunks": list(base.chunk(2, dim=1)),
        "split": list(base.split(2)),
        "unbind": list(base.unbind(0)),
    }


@pytest.mark.parametrize("route", ROUTES)
def test_views_saved_after_their_base_share_its_memory(route: str, tmp_path: Path) -> None:
    data = base_and_views()
    loaded, header = roundtrip(data, route, tmp_path)
    assert list(tensor_entries(header)) == ["base"]
    base = loaded["base"]
    views = [(key, loaded[key], data[key]) for key in data if key not in ("base", "chunks", "split", "unbind")]
    views += [(f"{key}[{i}]", loaded[key][i], data[key][i]) for key in ("chunks", "split", "unbind") for i in range(len(data[key]))]
    for key, view, original in views:
        assert_same_tensor(view, original)
        assert view.stride() == original.stride(), key
        assert view.storage_offset() == original.storage_offset(), key
        assert storage_of(view) == storage_of(base), key
    base[2, 5] = 777.0
    assert loaded["element"].item() == 777.0
    assert loaded["row"][5].item() == 777.0
    assert loaded["T"][5, 2].item() == 777.0
    assert loaded["flat_view"][2 * 8 + 5].item() == 777.0
    assert loaded["chunks"][1][2, 1].item() == 777.0
    loaded["column"][0] = -1.0
    assert base[0, 3].item() == -1.0


def test_a_view_saved_before_its_base_writes_the_segment_it_spans(tmp_path: Path) -> None:
    # Documented: a view met before a larger tensor of the same storage is written separately. The view writes only the
    # stretch of storage it spans (here elements 6 .. 10 for base[1, ::2]), and the base then writes all of its own.
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    data = {"view": base[1, ::2], "base": base}
    path = tmp_path / "view-first.safetensors"
    safestructures.save_file(data, path)
    entries = tensor_entries(read_header(path))
    assert {k: (v["dtype"], v["shape"]) for k, v in entries.items()} == {"view": ("F32", [5]), "base": ("F32", [4, 6])}
    assert stored_tensors(path) == (2, (5 + 24) * 4)
    loaded = safestructures.load_file(path)
    assert_same_tensor(loaded["view"], data["view"])
    assert_same_tensor(loaded["base"], base)
    assert loaded["view"].stride() == (2,)
    # Two separate memories after loading.
    assert storage_of(loaded["view"]) != storage_of(loaded["base"])
    loaded["base"][1, 0] = 100.0
    assert loaded["view"][0].item() == 6.0


def test_a_sparse_view_s_segment_serves_later_views_inside_it() -> None:
    base = torch.arange(40, dtype=torch.int64).reshape(5, 8)
    data = {"every_other": base[:, ::2], "column": base[1:4, 2], "outside": base[:, 7]}
    blob = safestructures.save(data)
    # every_other spans elements 0 .. 38; column lies inside it, the last column (up to element 39) does not.
    entries = tensor_entries(header_of(blob))
    assert {k: v["shape"] for k, v in entries.items()} == {"every_other": [39], "outside": [33]}
    assert schema_of(blob)["root"]["column"]["storage"] == "every_other"
    loaded = safestructures.load(bytearray(blob))
    for key, tensor in data.items():
        assert torch.equal(loaded[key], tensor) and loaded[key].dtype == torch.int64, key
    assert storage_of(loaded["column"]) == storage_of(loaded["every_other"])
    loaded["every_other"][2, 1] = -5
    assert loaded["column"][1].item() == -5


def test_views_of_another_dtype_are_stored_separately() -> None:
    base = torch.arange(6, dtype=torch.float32)
    data = {"base": base, "bits": base.view(torch.int32), "halves": base.view(torch.bfloat16)}
    blob = safestructures.save(data)
    assert set(tensor_entries(header_of(blob))) == {"base", "bits", "halves"}
    loaded = safestructures.load(bytearray(blob))
    for key, tensor in data.items():
        assert_same_tensor(loaded[key], tensor)


def test_views_loaded_from_bytes_share_memory_too() -> None:
    data = base_and_views()
    loaded = safestructures.load(safestructures.save(data))
    assert storage_of(loaded["rows"]) == storage_of(loaded["base"])
    loaded["base"][1, 1] = 5.0
    assert loaded["rows"][0, 1].item() == 5.0


# ---------------------------------------------------------------------------------------------------------------------
# torch.dtype, torch.device, torch.Size


def test_torch_values_round_trip_with_exact_types() -> None:
    dtypes = [getattr(torch, name) for name in DTYPES] + [torch.qint8, torch.bits16, torch.uint4]
    data = {
        "dtypes": dtypes,
        "cpu": torch.device("cpu"),
        "cpu0": torch.device("cpu", 0),
        "cuda": torch.device("cuda"),
        "cuda1": torch.device("cuda", 1),
        "meta": torch.device("meta"),
        "size": torch.Size([2, 3, 4]),
        "empty_size": torch.Size([]),
        "by_dtype": {torch.float16: "half", torch.bfloat16: "brain"},
        "shape_of": torch.zeros(3, 0, 2).shape,
        "tuple": (torch.float32, torch.device("cuda", 0), torch.Size([1])),
    }
    loaded = safestructures.load(safestructures.save(data))
    assert loaded["dtypes"] == dtypes
    assert all(type(d) is torch.dtype for d in loaded["dtypes"])
    for key in ("cpu", "cpu0", "cuda", "cuda1", "meta"):
        assert type(loaded[key]) is torch.device, key
        assert loaded[key] == data[key] and loaded[key].index == data[key].index, key
    assert loaded["cuda1"].type == "cuda" and loaded["cuda1"].index == 1
    assert loaded["cuda"].index is None
    for key in ("size", "empty_size", "shape_of"):
        assert type(loaded[key]) is torch.Size and loaded[key] == data[key], key
    assert loaded["by_dtype"] == data["by_dtype"] and list(loaded["by_dtype"]) == [torch.float16, torch.bfloat16]
    assert type(loaded["tuple"]) is tuple and loaded["tuple"] == data["tuple"]
    schema = schema_of(safestructures.save(data))["root"]
    assert schema["cuda1"] == {"$": "torch.device", "type": "cuda", "index": 1}
    assert schema["size"] == {"$": "torch.Size", "dims": [2, 3, 4]}
    assert schema["dtypes"][0] == {"$": "torch.dtype", "name": "bool"}


# ---------------------------------------------------------------------------------------------------------------------
# Zero-copy loading


def zero_copy_data() -> dict[str, Any]:
    data: dict[str, Any] = {name: torch_sample(getattr(torch, name), (3, 5), seed=k) for k, name in enumerate(TORCH_DTYPES)}
    data["param"] = torch.nn.Parameter(torch_sample(torch.float32, (4,), seed=99))
    data["scalar"] = torch.tensor(1.25, dtype=torch.float64)
    data["f4x2"] = torch_sample(torch.float4_e2m1fn_x2, (2, 3), seed=5)
    return data


def test_loaded_tensors_view_a_mapping_of_the_file(tmp_path: Path) -> None:
    data = zero_copy_data()
    path = tmp_path / "mapped.safetensors"
    safestructures.save_file(data, path)
    before = path.read_bytes()
    assert file_mappings(path) == []
    loaded = safestructures.load_file(path)
    other = safestructures.load_file(path)
    ranges = file_mappings(path)
    assert ranges, "the file is not mapped"
    for key, tensor in loaded.items():
        pointer = tensor.data_ptr()
        assert any(begin <= pointer and pointer + tensor.nbytes <= end for begin, end in ranges), key
    # Writable, and writing never reaches the file nor another load of it.
    for key, tensor in loaded.items():
        with torch.no_grad():
            tensor.view(-1).view(torch.uint8).fill_(1)
        assert tensor_bytes(tensor) == b"\x01" * tensor.nbytes, key
    assert path.read_bytes() == before
    for key, tensor in data.items():
        assert_same_tensor(other[key], tensor)
        assert_same_tensor(safestructures.load_file(path)[key], tensor)


def test_tensors_keep_the_mapping_alive(tmp_path: Path) -> None:
    path = tmp_path / "alive.safetensors"
    base = torch.arange(12.0).reshape(3, 4)
    safestructures.save_file({"base": base, "column": base[:, 1], "p": torch.nn.Parameter(torch.ones(2))}, path)
    loaded = safestructures.load_file(path)
    column, param = loaded["column"], loaded["p"]
    del loaded
    gc.collect()
    assert file_mappings(path)
    assert column.tolist() == [1.0, 5.0, 9.0]
    del column
    gc.collect()
    assert file_mappings(path), "the parameter still views the mapping"
    assert param.tolist() == [1.0, 1.0]
    del param
    gc.collect()
    assert file_mappings(path) == [], "the mapping outlived every tensor"


def test_load_of_a_bytearray_views_it() -> None:
    data = zero_copy_data()
    buffer = bytearray(safestructures.save(data))
    address = np.frombuffer(buffer, dtype=np.uint8).ctypes.data
    loaded = safestructures.load(buffer)
    for key, tensor in loaded.items():
        assert address <= tensor.data_ptr() and tensor.data_ptr() + tensor.nbytes <= address + len(buffer), key
    snapshot = bytes(buffer)
    loaded["float32"].view(torch.uint8).fill_(0)
    assert bytes(buffer) != snapshot


@pytest.mark.parametrize("kind", ["bytes", "memoryview-of-bytes"])
def test_load_of_immutable_bytes_copies_without_warning(kind: str) -> None:
    data = zero_copy_data()
    blob = safestructures.save(data)
    snapshot = bytes(blob)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = safestructures.load(blob if kind == "bytes" else memoryview(blob))
        for key, tensor in loaded.items():
            assert_same_tensor(tensor, data[key])
            with torch.no_grad():
                tensor.view(-1).view(torch.uint8).fill_(7)
            assert tensor_bytes(tensor) == b"\x07" * tensor.nbytes, key
    assert [str(w.message) for w in caught] == []
    assert blob == snapshot


# ---------------------------------------------------------------------------------------------------------------------
# Devices

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")


@needs_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_tensors_save_and_load_on_cuda(device: str, tmp_path: Path) -> None:
    base = torch_sample(torch.bfloat16, (4, 6), seed=1).to("cuda")
    data = {"base": base, "rows": base[1:3], "p": torch.nn.Parameter(torch.ones(3, device="cuda")), "dev": base.device}
    path = tmp_path / "cuda.safetensors"
    safestructures.save_file(data, path)
    on_cpu = safestructures.load_file(path)
    assert on_cpu["base"].device.type == "cpu"
    assert tensor_bytes(on_cpu["base"]) == tensor_bytes(base)
    loaded = safestructures.load_file(path, device=device)
    for key in ("base", "rows", "p"):
        assert loaded[key].device.type == "cuda", key
        assert loaded[key].dtype == data[key].dtype and tensor_bytes(loaded[key]) == tensor_bytes(data[key]), key
    assert type(loaded["p"]) is torch.nn.Parameter and loaded["p"].requires_grad
    assert loaded["dev"] == base.device
    from_bytes = safestructures.load(safestructures.save(data), device=device)
    assert from_bytes["rows"].device.type == "cuda" and tensor_bytes(from_bytes["rows"]) == tensor_bytes(data["rows"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_loading_onto_cuda_without_cuda_raises() -> None:
    blob = safestructures.save({"x": torch.ones(2), "n": np.ones(2)})
    # Refused before anything is read, with torch's reason.
    for device in ("cuda", "cuda:0"):
        with pytest.raises(ValueError, match=rf"device '{device}' cannot be used here: .*CUDA"):
            safestructures.load(blob, device=device)


def test_device_argument_checks() -> None:
    blob = safestructures.save({"x": torch.ones(2)})
    with pytest.raises(TypeError, match="device must be a str"):
        safestructures.load(blob, device=0)  # type: ignore[arg-type]
    assert safestructures.load(blob, device=torch.device("cpu"))["x"].device.type == "cpu"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="applies to torch tensors"):
        safestructures.load(blob, framework="numpy", device="cuda")
    assert safestructures.load(blob, framework="torch", device="cpu")["x"].device.type == "cpu"


# ---------------------------------------------------------------------------------------------------------------------
# What cannot be stored


def unstorable_tensors() -> dict[str, Any]:
    with warnings.catch_warnings():
        # torch warns that quantized, CSR and nested tensors are deprecated or in beta.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return {
            "sparse_coo": (torch.eye(3).to_sparse(), "torch tensors with layout torch.sparse_coo are not stored"),
            "sparse_csr": (torch.eye(3).to_sparse_csr(), "torch tensors with layout torch.sparse_csr are not stored"),
            "quantized": (torch.quantize_per_tensor(torch.randn(3), 0.1, 0, torch.qint8), "quantized torch tensors are not stored"),
            "nested": (torch.nested.nested_tensor([torch.ones(2), torch.ones(3)]), "nested torch tensors are not stored"),
            "meta": (torch.empty(2, device="meta"), "meta torch tensors are not stored"),
            "uninitialized": (torch.nn.UninitializedParameter(), "uninitialized parameters"),
        }


@pytest.mark.parametrize("kind", list(unstorable_tensors()))
def test_unstorable_tensors_raise_naming_the_path(kind: str) -> None:
    tensor, reason = unstorable_tensors()[kind]
    with pytest.raises(UnsupportedTypeError) as info:
        safestructures.save({"a": [1, {"b": tensor}]})
    message = str(info.value)
    assert f'cannot save an object of type {type(tensor).__module__}.{type(tensor).__qualname__} at $["a"][1]["b"]' in message
    assert reason in message


def test_modules_and_tensor_subclasses_are_refused() -> None:
    class Custom(torch.Tensor):
        pass

    for value, type_name in [
        (torch.nn.Linear(2, 2), "torch.nn.modules.linear.Linear"),
        (torch.nn.LazyLinear(2), "torch.nn.modules.linear.LazyLinear"),
        (torch.ones(2).as_subclass(Custom), r"test_torch\.\S*Custom"),
    ]:
        with pytest.raises(UnsupportedTypeError, match=rf'type {type_name} at \$\["model"\]'):
            safestructures.save({"model": value})
    with pytest.raises(UnsupportedTypeError, match=r'UninitializedParameter at \$\["weight"\]: uninitialized parameters'):
        safestructures.save(dict(torch.nn.LazyLinear(2).named_parameters()))

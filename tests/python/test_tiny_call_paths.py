"""The fixed cost of a call (issue 21's tiny call) is cut by shortcuts that must give what the general paths give: a plain
numpy tensor built by the load walk itself (not the adapter), arrays saved through the buffer protocol (not
__array_interface__), the default arguments' context made without checks, the one "where" function of every load."""

from __future__ import annotations

import warnings
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import safestructures
from safestructures import InvalidFileError, _core, _walkers, frameworks

ARRAYS = [
    np.arange(16, dtype=np.float32),
    np.arange(6, dtype=np.int16).reshape(2, 3),
    np.zeros((0,), np.float64),
    np.zeros((2, 0, 3), np.uint8),
    np.array(7, dtype=np.int64),
    np.arange(5, dtype=ml_dtypes.bfloat16),
    np.array([True, False]),
    np.arange(4, dtype=np.complex64),
]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_plain_tensors_load_as_the_adapter_builds_them(array: np.ndarray) -> None:
    data = safestructures.save({"t": array, "n": 1})
    fast = safestructures.load(data)["t"]
    # The adapter's own build of the same tensor, for comparison: what every load made before the shortcut.
    context = _walkers.load_context(None, "cpu", None, (), False, None, len(data))
    header = int.from_bytes(data[:8], "little")
    offset = 8 + header
    slow = frameworks.make_tensor(data, _dtype_name(array), array.shape, offset, array.nbytes, {"fw": "numpy", "name": "t"},
                                  context)
    assert type(fast) is np.ndarray and type(slow) is np.ndarray
    assert fast.dtype == slow.dtype == array.dtype
    assert fast.shape == slow.shape == array.shape
    assert fast.flags.writeable is slow.flags.writeable is False  # a view of immutable bytes
    assert fast.flags.c_contiguous
    assert fast.tobytes() == array.tobytes()


def _dtype_name(array: np.ndarray) -> str:
    from safestructures.frameworks import numpy as np_adapter

    name = np_adapter.dtype_of(array.dtype)
    assert name is not None
    return name


def test_a_plain_tensor_views_a_bytearray_and_holds_it() -> None:
    buffer = bytearray(safestructures.save({"t": np.arange(4, dtype=np.int32)}))
    loaded = safestructures.load(buffer)["t"]
    assert loaded.flags.writeable is True
    loaded[0] = 41
    assert safestructures.load(bytes(buffer))["t"].tolist() == [41, 1, 2, 3]  # a view of the caller's bytes
    with pytest.raises(BufferError):
        buffer.extend(b"x")  # the array holds an export of the buffer
    del loaded
    buffer.extend(b"x")


def test_plain_tensors_are_recorded_as_bases_for_later_views() -> None:
    data = safestructures.save([np.arange(3, dtype=np.float32)])
    context = _walkers.load_context(None, "cpu", None, (), False, None, len(data))
    structured, payload, _metadata = _core.load_bytes(data, 100, 1000, 10**6, context, False)
    assert structured is True
    assert list(context["numpy_bases"]) == ["0"]
    assert context["numpy_bases"]["0"] is payload[0]


def test_a_tensor_asked_for_in_another_framework_is_not_built_as_numpy() -> None:
    torch = pytest.importorskip("torch")
    data = safestructures.save({"t": np.arange(3, dtype=np.float32)})
    loaded = safestructures.load(data, framework="torch")["t"]
    assert type(loaded) is torch.Tensor and loaded.dtype == torch.float32 and loaded.tolist() == [0.0, 1.0, 2.0]


def test_a_tensor_beyond_the_file_still_fails_as_before() -> None:
    data = bytearray(safestructures.save({"t": np.arange(4, dtype=np.float32)}))
    header = int.from_bytes(data[:8], "little")
    with pytest.raises(InvalidFileError):
        safestructures.load(bytes(data[: 8 + header + 8]))


@pytest.mark.parametrize(
    "array",
    [
        np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::-2],
        np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3)),
        np.broadcast_to(np.arange(3, dtype=np.int8), (4, 3)),
        np.arange(5, dtype=ml_dtypes.bfloat16)[::-1],
        np.ones((1, 5), np.float16)[:, ::2],
        np.zeros((3, 0), np.float32)[:, ::-1],
        np.array(2.5, dtype=np.float64),
    ],
    ids=["reversed", "fortran", "broadcast", "bfloat16-reversed", "stepped", "empty-reversed", "0-d"],
)
def test_arrays_saved_through_the_buffer_give_the_bytes_of_their_contiguous_copy(array: np.ndarray) -> None:
    saved = safestructures.save({"a": array})
    assert saved == safestructures.save({"a": array.copy(order="C")})
    loaded = safestructures.load(saved)["a"]
    assert loaded.dtype == array.dtype and loaded.shape == array.shape
    assert loaded.tobytes() == array.tobytes()


def test_the_default_context_is_what_the_checked_path_makes() -> None:
    fast = _walkers.load_context(None, "cpu", None, (), False, None, 100)
    checked = _walkers.load_context(None, "cpu", None, [], False, None, 100)  # a list takes the checked path
    assert list(fast) == list(checked) == ["names", "strict", "framework", "device", "plugins", "budget"]
    for key in ("names", "strict", "framework", "device", "plugins"):
        assert fast[key] == checked[key]
        assert type(fast[key]) is type(checked[key])
    assert fast["budget"].limit == checked["budget"].limit and fast["budget"].used == checked["budget"].used == 0
    assert fast["names"] is not checked["names"]


def test_load_where_names_the_node_being_built_and_nothing_outside_a_load() -> None:
    assert _core.load_where() == ""

    @safestructures.register(name="tests.tiny_call_paths.Probe")
    class Probe:
        pass

    seen: list[str] = []

    def spy(fields: dict[str, Any], context: dict[str, Any]) -> Any:
        seen.append(context["where"]())
        return original(fields, context)

    data = safestructures.save({"outer": [1, Probe()]})
    tag = "object"
    from safestructures import _types

    original = _types.CONSTRUCT[tag]
    _types.CONSTRUCT[tag] = spy
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loaded = safestructures.load(data)
    finally:
        _types.CONSTRUCT[tag] = original
    assert type(loaded["outer"][1]) is Probe
    assert seen == ['$["outer"][1]']
    assert _core.load_where() == ""

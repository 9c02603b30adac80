"""The golden checks of one corpus case: a save today gives the golden bytes, and the golden file loads back as the
value with exact types, shared objects and cycles. Used by tests/python/test_golden_bytes.py, in its own process or,
for a case whose framework cannot share a process with the others (paddle after TensorFlow), in a fresh one:
``python tests/golden/check.py CASE`` prints ``"ok"`` as its last line.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import json
import lzma
import pathlib
import struct
import sys
import tempfile
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import corpus  # noqa: E402

import safestructures as ss  # noqa: E402


def contents(path: pathlib.Path) -> dict[str, bytes]:
    """A saved file's bytes, or every file of a sharded folder by name (hidden files included)."""
    if path.is_dir():
        return {p.name: p.read_bytes() for p in sorted(path.iterdir())}
    return {"": path.read_bytes()}


def golden_contents(name: str, case: corpus.Case) -> dict[str, bytes]:
    """The golden bytes of case ``name``, decompressed."""
    golden = case.golden_path(name)
    if case.compressed:
        return {"": lzma.decompress(golden.read_bytes())}
    return contents(golden)


def check_resave(name: str, case: corpus.Case) -> None:
    """Saving the case's value today gives exactly the golden bytes (every file of a sharded folder)."""
    expected = golden_contents(name, case)
    with tempfile.TemporaryDirectory() as tmp:
        target = pathlib.Path(tmp, "saved")
        corpus.save_case(case, target)
        saved = contents(target)
    assert sorted(saved) == sorted(expected), f"{name}: files {sorted(saved)} != golden {sorted(expected)}"
    for file, data in expected.items():
        if saved[file] != data:
            at = next((i for i, (x, y) in enumerate(zip(saved[file], data)) if x != y), min(len(saved[file]), len(data)))
            raise AssertionError(
                f"{name} {file}: {len(saved[file])} bytes saved, {len(data)} golden; first difference at byte {at}: "
                f"saved {saved[file][max(0, at - 40):at + 80]!r}, golden {data[max(0, at - 40):at + 80]!r}")


def check_load(name: str, case: corpus.Case) -> None:
    """The golden file loads back as the builder's value, exactly (see assert_same)."""
    plugins = list(case.plugins) or None
    golden = case.golden_path(name)
    with tempfile.TemporaryDirectory() as tmp:
        if case.compressed:
            path = pathlib.Path(tmp, "golden.safetensors")
            path.write_bytes(lzma.decompress(golden.read_bytes()))
        else:
            path = golden
        if case.kind == "bytes":
            loaded = ss.load(path.read_bytes(), plugins=plugins, types=corpus.TYPES, strict=True)
        else:
            loaded = ss.load_file(path, plugins=plugins, types=corpus.TYPES, strict=True)
        assert_same(case.build(), loaded)


# --- strict comparison ----------------------------------------------------------------------------------------------

#: Objects the format stores once when reached twice (format.md 5.3): their sharing must come back.
_SHARED_BUILTINS = (list, dict, set, frozenset, tuple, bytearray, collections.deque)
#: Objects a load builds afresh for every occurrence unless the file shares them: a loaded one met twice must stand
#: for one object of the value too.
_MUTABLE = (list, dict, set, bytearray, collections.deque)


def _module(obj: Any) -> str:
    return type(obj).__module__.split(".")[0]


def _is_tensor(obj: Any) -> bool:
    import numpy as np

    return isinstance(obj, np.ndarray) or _module(obj) in ("torch", "tensorflow", "jax", "jaxlib", "paddle", "mlx", "keras") \
        and type(obj).__name__ not in ("dtype", "device", "Size")


def _float_bits(value: float) -> bytes:
    return struct.pack("<d", value)


def _tracked(obj: Any) -> bool:
    if isinstance(obj, bytes):
        return len(obj) > 64
    if isinstance(obj, enum.Enum):
        return False
    if isinstance(obj, _SHARED_BUILTINS) or _is_tensor(obj):
        return not (isinstance(obj, (tuple, frozenset)) and not obj)
    return hasattr(obj, "__dict__") or hasattr(type(obj), "__slots__") and type(obj).__module__ == corpus.__name__


class _Comparison:
    """One comparison of a value with its loaded counterpart, remembering the pairs met so far (for sharing, cycles
    and tensors' storage)."""

    def __init__(self) -> None:
        self.pairs: dict[int, tuple[Any, Any]] = {}
        self.loaded_pairs: dict[int, tuple[Any, Any]] = {}
        self.storages: dict[Any, Any] = {}
        self.loaded_storages: dict[Any, Any] = {}

    def same(self, a: Any, b: Any, path: str) -> None:
        assert type(a) is type(b), f"{path}: type {type(b).__name__} loaded, {type(a).__name__} saved"
        if _tracked(a):
            if id(a) in self.pairs:
                assert self.pairs[id(a)][1] is b, f"{path}: a shared {type(a).__name__} loads as two objects"
                return
            if isinstance(b, _MUTABLE) or _is_tensor(b) or hasattr(b, "__dict__"):
                assert id(b) not in self.loaded_pairs, f"{path}: two saved objects load as one {type(b).__name__}"
                self.loaded_pairs[id(b)] = (a, b)
            self.pairs[id(a)] = (a, b)
        self.compare(a, b, path)

    def compare(self, a: Any, b: Any, path: str) -> None:
        if _is_tensor(a):
            self.tensor(a, b, path)
        elif isinstance(a, float):
            assert _float_bits(a) == _float_bits(b), f"{path}: float {b!r} loaded, {a!r} saved"
        elif isinstance(a, complex):
            assert _float_bits(a.real) + _float_bits(a.imag) == _float_bits(b.real) + _float_bits(b.imag), f"{path}: {b!r} != {a!r}"
        elif type(a).__module__ == "numpy" or _module(a) == "ml_dtypes":  # numpy scalars
            assert a.dtype == b.dtype and _numpy_bytes(a) == _numpy_bytes(b), f"{path}: {b!r} ({b.dtype}) != {a!r} ({a.dtype})"
        elif isinstance(a, enum.Enum):
            assert a is b, f"{path}: {b!r} != {a!r}"
        elif isinstance(a, decimal.Decimal):
            assert str(a) == str(b), f"{path}: {b} != {a}"
        elif isinstance(a, (datetime.datetime, datetime.time)):
            assert a.replace(tzinfo=None) == b.replace(tzinfo=None) and a.fold == b.fold, f"{path}: {b!r} != {a!r}"
            self.same(a.tzinfo, b.tzinfo, path + ".tzinfo")
        elif isinstance(a, datetime.timezone):
            assert a == b and a.tzname(None) == b.tzname(None), f"{path}: {b!r} != {a!r}"
        elif isinstance(a, slice):
            for field in ("start", "stop", "step"):
                self.same(getattr(a, field), getattr(b, field), f"{path}.{field}")
        elif dataclasses.is_dataclass(a) or type(a).__module__ == corpus.__name__:
            self.instance(a, b, path)
        elif isinstance(a, (list, tuple, collections.deque)):
            if isinstance(a, collections.deque):
                assert a.maxlen == b.maxlen, f"{path}: maxlen {b.maxlen} != {a.maxlen}"
            assert len(a) == len(b), f"{path}: {len(b)} items loaded, {len(a)} saved"
            for i, (x, y) in enumerate(zip(a, b)):
                self.same(x, y, f"{path}[{i}]")
        elif isinstance(a, dict):
            if isinstance(a, collections.defaultdict):
                assert a.default_factory is b.default_factory, f"{path}: factory {b.default_factory} != {a.default_factory}"
            assert len(a) == len(b), f"{path}: {len(b)} keys loaded, {len(a)} saved"
            for i, ((ka, va), (kb, vb)) in enumerate(zip(a.items(), b.items())):
                self.same(ka, kb, f"{path}.keys[{i}]")
                self.same(va, vb, f"{path}[{ka!r}]")
        elif isinstance(a, (set, frozenset)):
            assert a == b, f"{path}: {b!r} != {a!r}"
            by_value = {x: x for x in b}
            for x in a:
                self.same(x, by_value[x], f"{path}{{{x!r}}}")
        else:
            assert a == b, f"{path}: {b!r} loaded, {a!r} saved"

    def instance(self, a: Any, b: Any, path: str) -> None:
        """An instance of a corpus class: its built-in content, fields and attributes."""
        for base in (dict, list, tuple, int, str):
            if isinstance(a, base):
                self.compare(base(a), base(b), path + ".value")
        attrs = ({} if not hasattr(a, "__dict__") else vars(a)), ({} if not hasattr(b, "__dict__") else vars(b))
        for cls in type(a).__mro__:
            for slot in cls.__dict__.get("__slots__", ()):
                if slot not in ("__dict__", "__weakref__"):
                    self.same(getattr(a, slot), getattr(b, slot), f"{path}.{slot}")
        assert sorted(attrs[0]) == sorted(attrs[1]), f"{path}: attributes {sorted(attrs[1])} != {sorted(attrs[0])}"
        for key in attrs[0]:
            self.same(attrs[0][key], attrs[1][key], f"{path}.{key}")

    def tensor(self, a: Any, b: Any, path: str) -> None:
        shape_a, shape_b = tuple(a.shape), tuple(b.shape)
        assert shape_a == shape_b, f"{path}: shape {shape_b} != {shape_a}"
        assert str(a.dtype) == str(b.dtype), f"{path}: dtype {b.dtype} != {a.dtype}"
        module = _module(a)
        if module == "torch":
            assert a.requires_grad == b.requires_grad, f"{path}: requires_grad {b.requires_grad} != {a.requires_grad}"
            assert a.stride() == b.stride() and a.is_contiguous() == b.is_contiguous(), f"{path}: strides {b.stride()} != {a.stride()}"
            self.storage(a.untyped_storage().data_ptr(), b.untyped_storage().data_ptr(), path)
        elif module == "paddle":
            assert a.stop_gradient == b.stop_gradient, f"{path}: stop_gradient {b.stop_gradient} != {a.stop_gradient}"
        elif module in ("tensorflow", "keras") and hasattr(a, "trainable"):
            assert a.trainable == b.trainable, f"{path}: trainable {b.trainable} != {a.trainable}"
        assert _tensor_bytes(a) == _tensor_bytes(b), f"{path}: the elements differ"

    def storage(self, a: int, b: int, path: str) -> None:
        """Tensors that share memory in the value share it after loading, and only those."""
        assert self.storages.setdefault(a, b) == b, f"{path}: a shared storage loads as two"
        assert self.loaded_storages.setdefault(b, a) == a, f"{path}: two storages load as one"


def _tensor_bytes(tensor: Any) -> bytes:
    import numpy as np

    module = _module(tensor)
    if module == "torch":
        import torch

        flat = tensor.detach().cpu().contiguous().reshape(-1)
        return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
    if module == "mlx":
        import mlx.core as mx

        return np.array(tensor.reshape(-1).view(mx.uint8)).tobytes()
    if module == "paddle":
        return _numpy_bytes(tensor.numpy())
    return _numpy_bytes(tensor)


def _numpy_bytes(array: Any) -> bytes:
    """The bytes of a numpy array or scalar, without the padding of x87 long doubles (80 bits kept in 12 or 16 bytes:
    the file holds zeros there, memory whatever was left, format.md 5.4)."""
    import numpy as np

    array = np.ascontiguousarray(np.asarray(array))
    if array.dtype.kind in "fc" and array.dtype.type in (np.longdouble, np.clongdouble) and np.finfo(np.longdouble).nmant == 63:
        parts = 2 if array.dtype.kind == "c" else 1
        rows = array.reshape(-1).view(np.uint8).reshape(-1, parts, array.dtype.itemsize // parts)
        return rows[:, :, :10].tobytes()
    return array.tobytes()


def assert_same(expected: Any, loaded: Any) -> None:
    """Assert that ``loaded`` is ``expected`` rebuilt: exact types at every level, floats and arrays bit for bit,
    shared objects and cycles as they were."""
    _Comparison().same(expected, loaded, "$")


def check_case(name: str) -> None:
    """Both checks of case ``name``."""
    case = corpus.CASES[name]
    check_resave(name, case)
    check_load(name, case)


if __name__ == "__main__":
    check_case(sys.argv[1])
    print(json.dumps("ok"))

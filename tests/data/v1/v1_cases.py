"""The data saved into the safestructures 1.0.0 fixtures, and what it must load back as here.

Imported both by generate.py (run with the real 1.0.0 release, numpy and torch) and by the tests (run with this
project): it uses only the standard library, numpy, torch and the DataProcessor/TensorProcessor names that both
releases export.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np

from safestructures import DataProcessor, TensorProcessor


@dataclasses.dataclass
class Config:
    lr: float
    layers: list
    name: str


class Temperature:
    def __init__(self, kelvin: float, label: str) -> None:
        self.kelvin, self.label = kelvin, label

    def __eq__(self, other: object) -> bool:
        return type(other) is Temperature and (self.kelvin, self.label) == (other.kelvin, other.label)


class TemperatureProcessor(DataProcessor):
    """A 1.0.0 plugin with an extra field and a nested value."""

    data_type = Temperature

    def serialize(self, data: Temperature) -> Any:
        return {"kelvin": str(data.kelvin), "history": self.serializer.serialize([data.kelvin, 1.5])}

    def serialize_extra(self, data: Temperature) -> dict:
        return {"label": data.label}

    def deserialize(self, serialized: Any, **kwargs: Any) -> Temperature:
        history = self.serializer.deserialize(serialized["history"])
        assert history[1] == 1.5
        return Temperature(float(serialized["kelvin"]), kwargs["label"])


class Signal:
    """A tensor-like class, stored through a 1.0.0 TensorProcessor."""

    def __init__(self, samples: list[float]) -> None:
        self.samples = samples


class SignalProcessor(TensorProcessor):
    data_type = Signal

    def to_numpy(self, tensor: Signal) -> np.ndarray:
        return np.asarray(tensor.samples, dtype=np.float64)


PLUGINS = [TemperatureProcessor, SignalProcessor]


def _nested(depth: int) -> list:
    value: list = [1]
    for _ in range(depth - 1):
        value = [value]
    return value


def _torch_data() -> dict:
    import torch

    torch.manual_seed(0)
    return {
        "weight": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "half": torch.tensor([0.5, -1.0], dtype=torch.float16),
        "bf16": torch.tensor([1.5, 2.0], dtype=torch.bfloat16),
        "steps": torch.arange(4, dtype=torch.int64),
        "mask": torch.tensor([True, False]),
    }


def _torch_expected() -> dict:
    import torch

    data = _torch_data()
    # 1.0.0 converted every floating point tensor to float32 and recorded nothing of the original dtype.
    return {k: v.float() if v.is_floating_point() else v for k, v in data.items()}


#: name -> (what 1.0.0 saved, plugins, what must load here (a callable: it may need torch)).
CASES: dict[str, tuple[Callable[[], Any], list, Callable[[], Any]]] = {
    "basic": (lambda: {"a": 1, "b": [1.5, None, True, "x"], 3: (1, 2)}, [], lambda: {"a": 1, "b": [1.5, None, True, "x"], 3: (1, 2)}),
    "floats": (
        lambda: [0.0, -0.0, 1.5, math.nan, math.inf, -math.inf, 1e300, 5e-324, 0.1, -2.5e-10],
        [],
        lambda: [0.0, -0.0, 1.5, math.nan, math.inf, -math.inf, 1e300, 5e-324, 0.1, -2.5e-10],
    ),
    "numbers": (
        lambda: {"ints": [0, -1, 2**63, -(2**70), 10**100], "complex": [1 - 2j, 1j, complex(math.nan, math.inf), -0j]},
        [],
        lambda: {"ints": [0, -1, 2**63, -(2**70), 10**100], "complex": [1 - 2j, 1j, complex(math.nan, math.inf), -0j]},
    ),
    "strings": (lambda: ["", "é中🙂", 'quote"', "line\nbreak", "\x00nul"], [], lambda: ["", "é中🙂", 'quote"', "line\nbreak", "\x00nul"]),
    "containers": (
        lambda: {"list": [1, [2, [3]]], "tuple": (1, (2,)), "set": {1, 2, 3}, "empty": [[], (), {}, set()], "none": None, "flag": False},
        [],
        lambda: {"list": [1, [2, [3]]], "tuple": (1, (2,)), "set": {1, 2, 3}, "empty": [[], (), {}, set()], "none": None, "flag": False},
    ),
    "dict_keys": (
        lambda: {1: "int", 1.5: "float", (1, 2): "tuple", None: "none", "s": {2: [3]}},
        [],
        lambda: {1: "int", 1.5: "float", (1, 2): "tuple", None: "none", "s": {2: [3]}},
    ),
    "dataclass": (
        lambda: {"cfg": Config(lr=0.1, layers=[1, 2], name="x"), "list": [Config(lr=1.0, layers=[], name="")]},
        [],
        None,  # generic records: checked field by field in the tests
    ),
    "numpy": (
        lambda: {
            "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
            "f64": np.array([0.1, -0.0, np.inf]),
            "f16": np.array([1.5, -2.0], dtype=np.float16),
            "i64": np.array([-(2**40), 2**40]),
            "u8": np.arange(5, dtype=np.uint8),
            "bool": np.array([True, False]),
            "c64": np.array([1 + 2j], dtype=np.complex64),
            "scalar": np.array(7, dtype=np.int32),
            "empty": np.zeros((0, 3), dtype=np.float32),
        },
        [],
        None,  # the same arrays: compared with the saved data
    ),
    "torch": (_torch_data, [], _torch_expected),
    "plugins": (
        lambda: {"t": Temperature(300.0, "room"), "signal": Signal([0.5, 1.5, -2.0]), "after": [1, 2]},
        PLUGINS,
        lambda: {"t": Temperature(300.0, "room"), "signal": np.array([0.5, 1.5, -2.0]), "after": [1, 2]},
    ),
    "deep": (lambda: _nested(200), [], lambda: _nested(200)),
}

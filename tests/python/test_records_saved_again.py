"""A file loaded without its classes and saved again loses nothing: each record saves back as the node it was loaded
from (an object's attributes, a to_data value, a plugin's value, extra fields and tensors, a torch value), so that
loading the new file with the classes gives what loading the first one with them gives."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import safestructures as ss
from safestructures import DataProcessor, Record, TensorProcessor
from conftest import schema_of

pytestmark = pytest.mark.usefixtures("clean_registry")


class Tokenizer:
    def __init__(self, vocab: dict[str, int]) -> None:
        self.vocab = vocab
        self.size = len(vocab)


class Interval:
    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high


class Points:
    def __init__(self, xy: np.ndarray, label: str) -> None:
        self.xy, self.label = xy, label


class PointsPlugin(DataProcessor):
    data_type = Points

    def serialize(self, data: Points) -> Any:
        return {"xy": self.serializer.serialize(data.xy), "meta": [1, {"a": 2}]}

    def serialize_extra(self, data: Points) -> dict[str, Any]:
        return {"label": data.label, "shape": self.serializer.serialize(list(data.xy.shape))}

    def deserialize(self, value: Any, label: str, shape: Any) -> Points:
        xy = self.serializer.deserialize(value["xy"])
        assert value["meta"] == [1, {"a": 2}] and list(xy.shape) == self.serializer.deserialize(shape)
        return Points(xy, label)


class Wrapped:
    def __init__(self, array: np.ndarray) -> None:
        self.array = array


class WrappedProcessor(TensorProcessor):
    data_type = Wrapped

    def to_numpy(self, tensor: Wrapped) -> np.ndarray:
        return tensor.array

    def deserialize(self, tensor_id: Any, **kwargs: Any) -> Wrapped:
        return Wrapped(self.serializer.tensors[tensor_id])


def unregister(cls: type) -> None:
    """Forgets a registration (the clean_registry fixture restores the registry after the test)."""
    from safestructures import _registry

    del _registry._BY_NAME[_registry._BY_TYPE.pop(cls).name]


def saved_without_the_class(data: Any, **load: Any) -> tuple[Any, bytes]:
    """(what a load without the classes gives, the file it saves again)."""
    loaded = ss.load(ss.save(data, plugins=load.pop("plugins", None)))
    return loaded, ss.save(loaded)


def test_an_objects_record_saves_as_an_object() -> None:
    ss.register(Tokenizer)
    blob = ss.save({"tok": Tokenizer({"a": 0, "b": 1})})
    unregister(Tokenizer)
    record = ss.load(blob)["tok"]
    assert type(record) is Record and record.kind == "object" and record.asdict() == {"vocab": {"a": 0, "b": 1}, "size": 2}
    again = ss.save({"tok": record})
    assert schema_of(again) == schema_of(blob)
    tok = ss.load(again, types=[Tokenizer])["tok"]
    assert type(tok) is Tokenizer and vars(tok) == {"vocab": {"a": 0, "b": 1}, "size": 2}


def test_a_to_data_record_saves_as_a_to_data_value() -> None:
    ss.register(Interval, to_data=lambda i: [i.low, i.high], from_data=lambda d: Interval(*d))
    blob = ss.save([Interval(0.5, 2.0)])
    unregister(Interval)
    (record,) = ss.load(blob)
    assert record.kind == "ext" and record.asdict() == {"data": [0.5, 2.0]}
    again = ss.save([record])
    assert schema_of(again) == schema_of(blob)
    ss.register(Interval, to_data=lambda i: [i.low, i.high], from_data=lambda d: Interval(*d))
    (interval,) = ss.load(again)
    assert type(interval) is Interval and (interval.low, interval.high) == (0.5, 2.0)
    # Another field than its data has no place in the node: refused, not dropped.
    record.extra = 1
    with pytest.raises(ss.UnsupportedTypeError, match=r"at \$\[0\]: a record of a to_data value .* holds the one field 'data'"):
        ss.save([record])


def test_a_plugins_record_saves_as_the_plugins_node() -> None:
    points = Points(np.arange(6, dtype=np.float32).reshape(3, 2), "corners")
    record, again = saved_without_the_class({"p": points}, plugins=[PointsPlugin])
    record = record["p"]
    assert record.kind == "plugin" and record.label == "corners" and record.shape == [3, 2]
    assert record.value["meta"] == [1, {"a": 2}] and record.value["xy"].dtype == np.float32
    loaded = ss.load(again, plugins=[PointsPlugin])["p"]
    assert type(loaded) is Points and loaded.label == "corners"
    np.testing.assert_array_equal(loaded.xy, points.xy)
    assert loaded.xy.dtype == np.float32


def test_a_tensor_plugins_record_keeps_its_tensors() -> None:
    array = np.array([1.5, -2.0, 3.25], dtype=np.float64)
    record, again = saved_without_the_class({"w": Wrapped(array)}, plugins=[WrappedProcessor])
    record = record["w"]
    # Before: Record(value='0'), the tensor it names left out, and gone from a file saved again.
    assert record.kind == "plugin" and record.value == "0" and list(record.tensors) == ["0"]
    np.testing.assert_array_equal(record.tensors["0"], array)
    loaded = ss.load(again, plugins=[WrappedProcessor])["w"]
    assert type(loaded) is Wrapped and loaded.array.dtype == np.float64
    np.testing.assert_array_equal(loaded.array, array)


class TaggedPlugin(DataProcessor):
    data_type = Interval

    def serialize(self, data: Interval) -> Any:
        return [data.low, data.high]

    def serialize_extra(self, data: Interval) -> dict[str, Any]:
        return {"tensors": "a 1.0.0 plugin may name an extra field so"}

    def deserialize(self, value: Any, tensors: str) -> Interval:
        return Interval(*value)


def test_a_plugins_extra_field_named_tensors_loads_with_its_plugin_only() -> None:
    blob = ss.save([Interval(1.0, 2.0)], plugins=[TaggedPlugin])
    (interval,) = ss.load(blob, plugins=[TaggedPlugin])
    assert type(interval) is Interval and (interval.low, interval.high) == (1.0, 2.0)
    with pytest.raises(ss.InvalidFileError, match=r"at \$\[0\]: cannot rebuild a plugin: TypeError: the plugin node's "
                                                  r"extra field 'tensors' has no place in a record of it"):
        ss.load(blob)
    # A record given the plugin node's own name for a field cannot save it.
    record = ss.load(ss.save([Points(np.zeros(2), "x")], plugins=[PointsPlugin]))[0]
    record.data_type = "app.Other"
    with pytest.raises(ss.UnsupportedTypeError, match="cannot hold the field 'data_type'"):
        ss.save(record)


def test_a_torch_values_record_saves_as_that_value(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    first, second = tmp_path / "first.safetensors", tmp_path / "second.safetensors"
    ss.save_file({"dtype": torch.bfloat16, "device": torch.device("cpu"), "size": torch.Size([2, 3])}, first)
    # Loaded and saved again where torch is not imported: records of the three values.
    script = ("import safestructures as ss, sys\n"
              "data = ss.load_file(sys.argv[1])\n"
              "print(sorted((k, type(v).__name__, v.kind) for k, v in data.items()))\n"
              "ss.save_file(data, sys.argv[2])\n"
              "assert 'torch' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", script, str(first), str(second)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ("[('device', 'Record', 'torch.device'), ('dtype', 'Record', 'torch.dtype'), "
                           "('size', 'Record', 'torch.Size')]\n")
    assert ss.load_file(second) == {"dtype": torch.bfloat16, "device": torch.device("cpu"), "size": torch.Size([2, 3])}


def test_a_record_made_by_hand_saves_as_a_dataclass() -> None:
    blob = ss.save(Record("app.Config", {"lr": 0.1}))
    assert schema_of(blob)["root"] == {"$": "dataclass", "type": "app.Config", "fields": {"lr": 0.1}}
    assert ss.load(blob) == Record("app.Config", {"lr": 0.1})
    with pytest.raises(ss.UnsupportedTypeError, match=r"at \$\[\"r\"\]: a record's kind must be None or the tag of"):
        ss.save({"r": Record("app.X", {}, kind="list")})


def test_records_keep_their_kind_through_copy_and_pickle() -> None:
    record = Record("app.Tok", {"vocab": {"a": 0}}, kind="object")
    for again in (copy.copy(record), copy.deepcopy(record), pickle.loads(pickle.dumps(record))):
        assert type(again) is Record and again.kind == "object" and again == record

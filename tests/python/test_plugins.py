"""Plugins written for safestructures 1.0.0: DataProcessor and TensorProcessor subclasses passed as ``plugins=[...]``
to the save and the load call keep working; a plugin type is resolved only among the plugins a load is given."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import safestructures as ss
from safestructures import DataProcessor, Record, TensorProcessor, UnknownTypeError, UnsupportedTypeError
from conftest import assert_same, header_of, import_framework, schema_of, tensor_names

pytestmark = pytest.mark.usefixtures("clean_registry")


# ---------------------------------------------------------------------------------------------------------------------
# The plugins of safestructures 1.0.0's documentation, unchanged


class MyCustomType:
    def __init__(self, value: int):
        self.value = value


class MyTypeProcessor(DataProcessor):
    data_type = MyCustomType  # Set this to your custom data type

    def serialize(self, data: MyCustomType) -> str:
        # Convert MyCustomType to a format Safetensors can store
        return str(data.value)

    def deserialize(self, serialized: str) -> MyCustomType:
        # Reconstruct MyCustomType from the serialized form
        return MyCustomType(int(serialized))


def test_the_1_0_0_guide_example(tmp_path: Path) -> None:
    list_obj = [MyCustomType(42), MyCustomType(88)]
    file_path = tmp_path / "my_custom_objs.safestructures"
    ss.save_file(list_obj, file_path, plugins=[MyTypeProcessor])
    loaded_obj = ss.load_file(file_path, plugins=[MyTypeProcessor])
    assert type(loaded_obj) is list and len(loaded_obj) == 2
    assert all(type(o) is MyCustomType for o in loaded_obj)
    assert [o.value for o in loaded_obj] == [42, 88]
    node = schema_of(file_path.read_bytes())["root"][0]
    assert node == {"$": "plugin", "type": f"{__name__}.MyCustomType", "value": "42"}


# ---------------------------------------------------------------------------------------------------------------------
# A DataProcessor with extra fields and nested values


class Temperature:
    def __init__(self, kelvin: float, label: str, history: Any, settings: dict[str, Any]) -> None:
        self.kelvin, self.label, self.history, self.settings = kelvin, label, history, settings


class TemperatureProcessor(DataProcessor):
    data_type = Temperature
    seen_extra: list[dict[str, Any]] = []

    def serialize(self, data: Temperature) -> dict[str, Any]:
        return {
            "kelvin": data.kelvin,
            "history": self.serializer.serialize(data.history),
            "settings": self.serializer.serialize(data.settings),
            "list": [1, self.serializer.serialize((2, 3))],
        }

    def serialize_extra(self, data: Temperature) -> dict[str, Any]:
        return {"label": data.label, "scale": "K", "count": 2}

    def deserialize(self, serialized: Any, **kwargs: Any) -> Temperature:
        TemperatureProcessor.seen_extra.append(dict(kwargs))
        assert serialized["list"][0] == 1
        assert self.serializer.deserialize(serialized["list"][1]) == (2, 3)
        return Temperature(
            serialized["kelvin"],
            kwargs["label"],
            self.serializer.deserialize(serialized["history"]),
            self.serializer.deserialize(serialized["settings"]),
        )


def make_temperature() -> Temperature:
    return Temperature(300.5, "room", np.array([299.0, 300.5], dtype=np.float64), {"unit": "K", "ids": (1, 2)})


def test_data_processor_round_trip_with_extra_and_nested_values() -> None:
    TemperatureProcessor.seen_extra.clear()
    blob = ss.save({"t": make_temperature()}, plugins=[TemperatureProcessor])
    node = schema_of(blob)["root"]["t"]
    assert node["$"] == "plugin" and node["type"] == f"{__name__}.Temperature"
    assert node["extra"] == {"label": "room", "scale": "K", "count": 2}
    # The nested array is a tensor of the file, named by its path.
    assert tensor_names(blob) == ["t.history"]
    assert header_of(blob)["t.history"]["dtype"] == "F64"

    loaded = ss.load(blob, plugins=[TemperatureProcessor])["t"]
    assert type(loaded) is Temperature
    assert loaded.kelvin == 300.5 and loaded.label == "room"
    assert_same(loaded.history, np.array([299.0, 300.5]))
    assert_same(loaded.settings, {"unit": "K", "ids": (1, 2)})
    # serialize_extra's fields come back as keyword arguments, nothing else does.
    assert TemperatureProcessor.seen_extra == [{"label": "room", "scale": "K", "count": 2}]


def test_plugins_through_files(tmp_path: Path) -> None:
    path = tmp_path / "plugins.safestructures"
    ss.save_file([make_temperature(), MyCustomType(1)], str(path), plugins=[TemperatureProcessor, MyTypeProcessor])
    loaded = ss.load_file(path, plugins=(p for p in [MyTypeProcessor, TemperatureProcessor]))
    assert type(loaded[0]) is Temperature and type(loaded[1]) is MyCustomType and loaded[1].value == 1


def test_loading_without_the_plugin_gives_a_record_or_unknown_type_error() -> None:
    blob = ss.save({"a": {"b": MyCustomType(5)}, "t": make_temperature()}, plugins=[MyTypeProcessor, TemperatureProcessor])
    loaded = ss.load(blob)
    record = loaded["a"]["b"]
    assert type(record) is Record and record.type_name == f"{__name__}.MyCustomType"
    assert record.value == "5" and record["value"] == "5"
    temperature = loaded["t"]
    assert type(temperature) is Record and temperature.type_name == f"{__name__}.Temperature"
    assert temperature.label == "room" and temperature.scale == "K" and temperature.count == 2
    assert temperature.value["kelvin"] == 300.5
    # Only one of the two plugins: the other type is still a record.
    partly = ss.load(blob, plugins=[MyTypeProcessor])
    assert type(partly["a"]["b"]) is MyCustomType and type(partly["t"]) is Record

    with pytest.raises(UnknownTypeError) as info:
        ss.load(blob, strict=True)
    assert str(info.value).startswith('at $["a"]["b"]: ') and "MyCustomType" in str(info.value)
    with pytest.raises(UnknownTypeError, match=r'^at \$\["t"\]: .*Temperature'):
        ss.load(blob, plugins=[MyTypeProcessor], strict=True)


def test_record_of_a_plugin_node_holds_the_nested_values_themselves() -> None:
    record = ss.load(ss.save(make_temperature(), plugins=[TemperatureProcessor]))
    assert_same(record.value["history"], np.array([299.0, 300.5]))
    assert record.value["settings"] == {"unit": "K", "ids": (1, 2)}


def test_plugin_names_resolve_only_among_the_plugins_of_the_load() -> None:
    # Registering the class (or passing it in types=) does not make the load call the plugin's type.
    blob = ss.save([MyCustomType(3)], plugins=[MyTypeProcessor])
    ss.register(MyCustomType)
    assert type(ss.load(blob)[0]) is Record
    assert type(ss.load(blob, types=[MyCustomType])[0]) is Record
    with pytest.raises(UnknownTypeError):
        ss.load(blob, types=[MyCustomType], strict=True)


def test_plugin_takes_precedence_over_registration_and_dataclass_handling() -> None:
    @dataclasses.dataclass
    class Settings:
        lr: float
        steps: int

    class SettingsProcessor(DataProcessor):
        data_type = Settings

        def serialize(self, data: Settings) -> dict[str, Any]:
            return {f.name: self.serializer.serialize(getattr(data, f.name)) for f in dataclasses.fields(data)}

        def deserialize(self, serialized: dict[str, Any], **kwargs: Any) -> Settings:
            return self.data_type(**{k: self.serializer.deserialize(v) for k, v in serialized.items()})

    blob = ss.save({"s": Settings(0.1, 10)}, plugins=[SettingsProcessor])
    assert schema_of(blob)["root"]["s"]["$"] == "plugin"
    loaded = ss.load(blob, plugins=[SettingsProcessor])["s"]
    assert type(loaded) is Settings and loaded == Settings(0.1, 10)
    # Without the plugin the dataclass is saved as a dataclass.
    assert schema_of(ss.save(Settings(0.1, 10)))["root"]["$"] == "dataclass"


def test_data_type_is_matched_exactly() -> None:
    class SubType(MyCustomType):
        pass

    with pytest.raises(UnsupportedTypeError, match=r"SubType"):
        ss.save([SubType(1)], plugins=[MyTypeProcessor])


def test_schema_type_of_a_builtin_has_no_module() -> None:
    class ComplexProcessor(DataProcessor):
        data_type = complex

        def serialize(self, data: Any) -> Any:
            return [data.real, data.imag]

        def deserialize(self, serialized: Any, **kwargs: Any) -> Any:
            return complex(*serialized)

    assert ComplexProcessor(None).schema_type == "complex"
    assert MyTypeProcessor(None).schema_type == f"{__name__}.MyCustomType"


# ---------------------------------------------------------------------------------------------------------------------
# A plugin for a class holding a list of tensors (the containers section of the 1.0.0 guide)


class TensorList:
    def __init__(self, name: str, tensors: list[Any]) -> None:
        self.name = name
        self.tensors = tensors


class TensorListProcessor(DataProcessor):
    """A container plugin: each tensor goes through the serializer."""

    data_type = TensorList

    def serialize(self, data: TensorList) -> list[Any]:
        return [self.serializer.serialize(t) for t in data.tensors]

    def serialize_extra(self, data: TensorList) -> dict[str, Any]:
        return {"name": data.name}

    def deserialize(self, serialized: list[Any], **kwargs: Any) -> TensorList:
        return TensorList(kwargs["name"], [self.serializer.deserialize(v) for v in serialized])


def test_plugin_for_a_class_holding_a_list_of_tensors() -> None:
    torch = import_framework("torch")
    shared = np.arange(4, dtype=np.int32)
    tensors = [torch.ones(2, 3, dtype=torch.bfloat16), shared, np.zeros((0,), np.uint8), shared]
    blob = ss.save({"layers": TensorList("acts", tensors)}, plugins=[TensorListProcessor])
    # Tensors named by their path; the array given twice is stored once.
    assert sorted(tensor_names(blob)) == ["layers.0", "layers.1", "layers.2"]
    assert header_of(blob)["layers.0"]["dtype"] == "BF16"
    loaded = ss.load(blob, plugins=[TensorListProcessor])["layers"]
    assert type(loaded) is TensorList and loaded.name == "acts" and len(loaded.tensors) == 4
    first, second, empty, again = loaded.tensors
    assert type(first) is torch.Tensor and first.dtype == torch.bfloat16 and torch.equal(first, tensors[0])
    assert_same(second, shared)
    assert_same(empty, tensors[2])
    assert again is second


# ---------------------------------------------------------------------------------------------------------------------
# TensorProcessor


class DeviceTensor:
    """A tensor-like class of some framework: its data lives "on a device" until moved to the CPU."""

    def __init__(self, values: list[float], device: str = "accelerator") -> None:
        self.values, self.device = values, device

    def cpu(self) -> DeviceTensor:
        return DeviceTensor(self.values, "cpu")


class DeviceTensorProcessor(TensorProcessor):
    data_type = DeviceTensor

    def to_numpy(self, tensor: DeviceTensor) -> np.ndarray:
        return np.asarray(tensor.values, dtype=np.float32)


class DeviceTensorProcessor100(TensorProcessor):
    """Written against 1.0.0, where TensorProcessor.serialize called to_cpu, then to_numpy."""

    data_type = DeviceTensor

    def to_cpu(self, tensor: DeviceTensor) -> DeviceTensor:
        return tensor.cpu()

    def to_numpy(self, tensor: DeviceTensor) -> np.ndarray:
        if tensor.device != "cpu":
            raise RuntimeError("move the tensor to the CPU first")
        return np.asarray(tensor.values, dtype=np.float32)


@pytest.mark.parametrize("plugin", [DeviceTensorProcessor, DeviceTensorProcessor100])
def test_tensor_processor_stores_a_tensor_and_loads_the_array(plugin: type[TensorProcessor]) -> None:
    blob = ss.save({"x": DeviceTensor([1.0, 2.5, -3.0]), "y": [DeviceTensor([])]}, plugins=[plugin])
    header = header_of(blob)
    names = tensor_names(blob)
    assert len(names) == 2
    x_name = next(n for n in names if n.startswith("x"))
    assert header[x_name]["dtype"] == "F32" and header[x_name]["shape"] == [3]
    node = schema_of(blob)["root"]["x"]
    assert node["$"] == "plugin" and node["type"] == f"{__name__}.DeviceTensor"
    loaded = ss.load(blob, plugins=[plugin])
    assert_same(loaded["x"], np.array([1.0, 2.5, -3.0], dtype=np.float32))
    assert_same(loaded["y"][0], np.zeros((0,), np.float32))
    generic = ss.load(blob)["x"]
    assert type(generic) is Record and generic.type_name == f"{__name__}.DeviceTensor"


# ---------------------------------------------------------------------------------------------------------------------
# What is refused


def test_plugin_instance_instead_of_class_is_refused() -> None:
    instance = MyTypeProcessor(None)
    with pytest.raises(TypeError, match="classes, not instances"):
        ss.save([MyCustomType(1)], plugins=[instance])  # type: ignore[list-item]
    blob = ss.save([MyCustomType(1)], plugins=[MyTypeProcessor])
    with pytest.raises(TypeError, match="classes, not instances"):
        ss.load(blob, plugins=[instance])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="DataProcessor subclasses"):
        ss.load(blob, plugins=[MyCustomType])


def test_two_plugins_for_one_data_type_are_refused() -> None:
    class Another(MyTypeProcessor):
        pass

    with pytest.raises(ValueError, match="two plugins handle"):
        ss.save([MyCustomType(1)], plugins=[MyTypeProcessor, Another])
    blob = ss.save([MyCustomType(1)], plugins=[MyTypeProcessor])
    with pytest.raises(ValueError, match="two plugins handle"):
        ss.load(blob, plugins=[MyTypeProcessor, Another])
    with pytest.raises(ValueError, match="two plugins handle"):
        ss.save([], plugins=[MyTypeProcessor, MyTypeProcessor])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({1: "x"}, "str keys"),
        ({"ok": 1, b"bytes": 2}, "str keys"),
        (["label"], "str keys"),
        ({"data_type": "x"}, "'data_type' or 'value'"),
        ({"value": 1}, "'data_type' or 'value'"),
    ],
    ids=["int-key", "bytes-key", "not-a-dict", "data_type", "value"],
)
def test_bad_serialize_extra_is_refused(extra: Any, message: str) -> None:
    class BadExtra(DataProcessor):
        data_type = MyCustomType

        def serialize(self, data: Any) -> Any:
            return data.value

        def serialize_extra(self, data: Any) -> Any:
            return extra

        def deserialize(self, serialized: Any, **kwargs: Any) -> Any:
            return MyCustomType(serialized)

    with pytest.raises(TypeError, match=message) as info:
        ss.save({"k": [MyCustomType(1)]}, plugins=[BadExtra])
    assert isinstance(info.value, UnsupportedTypeError)
    assert '$["k"][0]' in str(info.value) and "BadExtra.serialize_extra" in str(info.value)


def test_plugin_that_is_not_concrete_cannot_be_used() -> None:
    class Incomplete(DataProcessor):
        data_type = MyCustomType

        def serialize(self, data: Any) -> Any:
            return 1

    with pytest.raises(TypeError):
        ss.save([MyCustomType(1)], plugins=[Incomplete])

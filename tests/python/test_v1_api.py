"""Code written for safestructures 1.0.0 runs unchanged: its calls (framework aliases, one plugin class, positional
arguments), its module layout for plugin authors, every code block of its plugin guide (a ModelOutput plugin on a
small BERT) and its examples' forward hooks on a ResNet-50 in PyTorch, each saved, reloaded and compared."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path, PosixPath
from typing import Any

import numpy as np
import pytest

import safestructures as ss
from safestructures import load_file, save_file
from conftest import import_framework
# The plugin guide's first example, as written; test_plugins.py runs it as the guide does.
from test_plugins import MyCustomType, MyTypeProcessor

pytestmark = pytest.mark.usefixtures("clean_registry")


# ---------------------------------------------------------------------------------------------------------------------
# 1.0.0's calls



def test_one_plugin_class_instead_of_a_list(tmp_path: Path) -> None:
    path = tmp_path / "one.safestructures"
    save_file({"a": MyCustomType(7)}, path, plugins=MyTypeProcessor)
    for loaded in (load_file(path, plugins=MyTypeProcessor), ss.load(ss.save([MyCustomType(7)], plugins=MyTypeProcessor),
                                                                   plugins=MyTypeProcessor)):
        value = loaded["a"] if isinstance(loaded, dict) else loaded[0]
        assert type(value) is MyCustomType and value.value == 7
    with ss.open(path, plugins=MyTypeProcessor) as f:
        assert type(f.load("a")) is MyCustomType
    with pytest.raises(TypeError, match="plugins"):
        save_file([1], path, plugins=3)


def test_positional_arguments_of_1_0_0(tmp_path: Path) -> None:
    path = tmp_path / "pos.safestructures"
    save_file([MyCustomType(5), np.arange(3, dtype=np.int16)], path, {"note": "x"}, [MyTypeProcessor])
    assert ss.load_metadata(path)["note"] == "x"
    loaded = load_file(path, "np", "cpu", [MyTypeProcessor])
    assert type(loaded[0]) is MyCustomType and loaded[0].value == 5
    assert type(loaded[1]) is np.ndarray and loaded[1].dtype == np.int16 and loaded[1].tolist() == [0, 1, 2]
    blob = ss.save([MyCustomType(6)], {"k": "v"}, MyTypeProcessor)
    back = ss.load(blob, "numpy", "cpu", MyTypeProcessor)
    assert type(back[0]) is MyCustomType and back[0].value == 6
    with pytest.raises(TypeError):
        save_file([1], path, None, None, 64)  # what is new stays keyword-only
    with pytest.raises(TypeError):
        load_file(path, None, "cpu", None, ())


@pytest.mark.parametrize("alias, name", [("np", "numpy"), ("pt", "torch"), ("tf", "tensorflow"), ("jax", "jax"),
                                         ("flax", "jax")])
def test_framework_aliases(tmp_path: Path, alias: str, name: str) -> None:
    fw = import_framework(name)
    path = tmp_path / "t.safestructures"
    save_file({"x": np.arange(6, dtype=np.float16).reshape(2, 3)}, path)
    expected = {"numpy": np.ndarray, "torch": getattr(fw, "Tensor", None)}
    for loaded in (load_file(path, framework=alias)["x"], ss.load(path.read_bytes(), alias)["x"],
                   ss.open(path, alias).load("x"), ss.open(path)["x"].load(framework=alias)):
        if name in expected:
            assert isinstance(loaded, expected[name])
        assert np.asarray(loaded).dtype == np.float16 and np.asarray(loaded).tolist() == [[0, 1, 2], [3, 4, 5]]


def test_unknown_framework_lists_both_spellings(tmp_path: Path) -> None:
    path = tmp_path / "t.safestructures"
    save_file([1], path)
    with pytest.raises(ValueError, match=r"unknown framework 'mxnet'.*'torch' / 'pt'.*'numpy' / 'np'|"
                                         r"unknown framework 'mxnet'.*'numpy' / 'np'.*'torch' / 'pt'"):
        load_file(path, framework="mxnet")


def test_processors_modules_import_no_framework() -> None:
    code = ("import sys, safestructures.processors.base, safestructures.processors.basic, "
            "safestructures.processors.iterable, safestructures.processors.tensor\n"
            "bad = [m for m in ('numpy', 'torch', 'tensorflow', 'jax') if m in sys.modules]\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------------------------------
# The plugin guide: serialize_extra and containers, through the 1.0.0 modules


def test_1_0_0_module_layout() -> None:
    from safestructures.processors import base, basic, iterable, tensor

    assert base.DataProcessor is ss.DataProcessor and base.TensorProcessor is ss.TensorProcessor
    assert issubclass(iterable.ListProcessor, base.ListBaseProcessor)
    assert {c.data_type for c in (iterable.ListProcessor, iterable.SetProcessor, iterable.TupleProcessor,
                                  iterable.DictProcessor)} == {list, set, tuple, dict}
    assert issubclass(basic.BasicProcessor, base.DataProcessor)
    np_proc = tensor.NumpyProcessor
    assert issubclass(np_proc, base.TensorProcessor) and np_proc.data_type is np.ndarray


class Bag:
    """A custom container: a dict with non-string keys, saved through a DictProcessor subclass (serialize_extra)."""

    def __init__(self, items: dict[Any, Any]) -> None:
        self.items = items


def test_dict_processor_subclass_keeps_keys_and_values() -> None:
    from safestructures.processors.iterable import DictProcessor

    class BagProcessor(DictProcessor):
        data_type = Bag

        def serialize(self, data: Bag) -> dict:
            return super().serialize(data.items)

        def serialize_extra(self, data: Bag) -> dict:
            return super().serialize_extra(data.items)

        def deserialize(self, serialized: dict, **kwargs: Any) -> Bag:
            return Bag(dict(super().deserialize(serialized, **kwargs)))

    bag = Bag({1: np.ones(2, np.int8), (2, "b"): "two", 3.5: None})
    back = ss.load(ss.save({"bag": bag}, plugins=BagProcessor), plugins=BagProcessor)["bag"]
    assert type(back) is Bag and list(back.items) == [1, (2, "b"), 3.5]
    assert back.items[1].dtype == np.int8 and back.items[1].tolist() == [1, 1]
    assert back.items[(2, "b")] == "two" and back.items[3.5] is None


class Stack:
    def __init__(self, values: list[Any]) -> None:
        self.values = list(values)

    def __iter__(self) -> Any:
        return iter(self.values)


def test_list_processor_subclass_for_a_custom_container() -> None:
    from safestructures.processors.base import ListBaseProcessor

    class StackProcessor(ListBaseProcessor):
        data_type = Stack

    stack = Stack([1, "a", np.arange(3, dtype=np.uint16)])
    back = ss.load(ss.save([stack], plugins=[StackProcessor]), plugins=[StackProcessor])[0]
    assert type(back) is Stack and back.values[:2] == [1, "a"]
    assert back.values[2].dtype == np.uint16 and back.values[2].tolist() == [0, 1, 2]


def test_dataclass_processor_subclass() -> None:
    from safestructures.processors.iterable import DataclassProcessor

    @dataclasses.dataclass
    class Point:
        x: int
        y: Any

    class PointProcessor(DataclassProcessor):
        data_type = Point

    back = ss.load(ss.save({"p": Point(1, np.float64(2.5))}, plugins=PointProcessor), plugins=PointProcessor)["p"]
    assert type(back) is Point and back.x == 1 and back.y == 2.5


# ---------------------------------------------------------------------------------------------------------------------
# The guide's ModelOutput plugin on BERT (small sizes, random weights: nothing downloaded)


def test_plugin_guide_model_output_on_bert(tmp_path: Path) -> None:
    torch = import_framework("torch")
    import_framework("transformers")
    from transformers.utils import ModelOutput

    from safestructures.processors.iterable import DataclassProcessor

    class ModelOutputProcessor(DataclassProcessor):
        """Processor for `transformers`'s ModelOutput."""

        data_type = ModelOutput

        def deserialize(self, serialized: dict, **kwargs) -> ModelOutput:
            """Overload DataclassProcessor.deserialize.

            This is so the proper ModelOutput is provided.
            """
            mo_kwargs = {}
            for k, v in serialized.items():
                mo_kwargs[k] = self.serializer.deserialize(v)

            model_output_instance = self.data_type(**mo_kwargs)

            return model_output_instance

    # The guide's import line lacks its comma (a typo); the names are the ones it imports.
    from transformers.modeling_outputs import (
        BaseModelOutputWithPastAndCrossAttentions,
        BaseModelOutputWithPoolingAndCrossAttentions,
    )

    class BertOutputProcessor(ModelOutputProcessor):
        """Processor for BERT model outputs."""

        data_type = BaseModelOutputWithPoolingAndCrossAttentions

    class BertEncoderOutputProcessor(ModelOutputProcessor):
        """Processor for BERT encoder outputs."""

        data_type = BaseModelOutputWithPastAndCrossAttentions

    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)  # sizes only
    model = BertModel(config)
    test_plugins = [BertOutputProcessor, BertEncoderOutputProcessor]

    results = {}

    def _store_encoder_output(module, args, kwargs, output):
        results["encoder_output"] = output
        return output

    model.encoder.register_forward_hook(_store_encoder_output, with_kwargs=True)

    test_input_ids = torch.tensor([[0] * 128])
    test_output = model(test_input_ids)

    results["model_output"] = test_output

    test_filepath = tmp_path / "test.safestructures"
    save_file(results, test_filepath, plugins=test_plugins)

    deserialized = load_file(test_filepath, plugins=test_plugins)

    assert list(deserialized) == ["encoder_output", "model_output"]
    for key, cls in (("encoder_output", BaseModelOutputWithPastAndCrossAttentions),
                     ("model_output", BaseModelOutputWithPoolingAndCrossAttentions)):
        original, loaded = results[key], deserialized[key]
        assert type(loaded) is cls
        assert list(loaded.keys()) == list(original.keys())
        for field in dataclasses.fields(original):
            before, after = getattr(original, field.name), getattr(loaded, field.name)
            if before is None:
                assert after is None, field.name
            else:
                assert type(after) is torch.Tensor and after.dtype == before.dtype == torch.float32
                torch.testing.assert_close(after, before.detach(), rtol=0, atol=0)
    assert deserialized["model_output"].last_hidden_state.shape == (1, 128, 64)


# ---------------------------------------------------------------------------------------------------------------------
# The examples' forward hooks


class IOHook:
    framework: str

    def __init__(self, layer_name: str, save_dir: PosixPath):
        self.layer_name = layer_name
        self.save_dir = save_dir

    def __call__(self, module, inputs, outputs):
        input_filename = f"{self.layer_name}_inputs_{self.times_called}.safestructures"
        output_filename = f"{self.layer_name}_outputs_{self.times_called}.safestructures"
        input_save_file = self.save_dir / input_filename
        output_save_file = self.save_dir / output_filename
        save_file(inputs, input_save_file)
        save_file(outputs, output_save_file)


def test_examples_torch_forward_hooks_on_resnet50(tmp_path: Path) -> None:
    torch = import_framework("torch")
    import_framework("transformers")
    from transformers import ResNetConfig, ResNetModel

    seen: dict[str, tuple[Any, Any]] = {}

    class TorchIOHook(IOHook):
        framework = "pt"
        times_called = 0  # the example's IOHook reads it without setting it

        def __call__(self, module, inputs, outputs):
            super().__call__(module, inputs, outputs)
            # Copies: later layers change some of these tensors in place (the residual additions).
            seen[self.layer_name] = (snapshot(inputs), snapshot(outputs))

    def snapshot(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.clone()
        if isinstance(value, tuple) and not hasattr(value, "keys"):
            return tuple(snapshot(v) for v in value)
        if value is None:
            return None
        return type(value)(**{k: snapshot(v) for k, v in value.items()})

    save_dir = Path(tmp_path).expanduser().resolve()

    torch.manual_seed(0)
    model = ResNetModel(ResNetConfig())  # ResNet-50 with random weights (torchvision has no CPU build here)
    model.eval()

    for n, m in model.named_modules():
        layer_name = n if n else "model"

        io_hook = TorchIOHook(layer_name, save_dir)
        m.register_forward_hook(io_hook)

    test_input = torch.randn(1, 3, 64, 64)

    with torch.no_grad():
        model(test_input)

    # Every module the forward pass runs (a few, such as unused shortcuts, never run) saved its inputs and outputs.
    assert "model" in seen and "encoder.stages.3.layers.2.layer.2.convolution" in seen and len(seen) > 250

    def compare(loaded: Any, original: Any) -> None:
        if original is None:
            assert loaded is None
        elif isinstance(original, torch.Tensor):
            assert type(loaded) is torch.Tensor and loaded.dtype == original.dtype
            torch.testing.assert_close(loaded, original, rtol=0, atol=0)
        elif isinstance(original, tuple) and not hasattr(original, "keys"):
            assert type(loaded) is type(original) and len(loaded) == len(original)
            for a, b in zip(loaded, original):
                compare(a, b)
        else:  # the model's own output, a ModelOutput: saved by name, loads as a record holding the same tensors
            assert loaded.type_name.endswith(type(original).__name__)
            for field in dataclasses.fields(original):
                compare(getattr(loaded, field.name), getattr(original, field.name))

    for layer_name, (inputs, outputs) in seen.items():
        loaded_inputs = load_file(save_dir / f"{layer_name}_inputs_0.safestructures", framework=TorchIOHook.framework)
        loaded_outputs = load_file(save_dir / f"{layer_name}_outputs_0.safestructures", framework="pt")
        compare(loaded_inputs, inputs)
        compare(loaded_outputs, outputs)

"""Hugging Face transformers: model outputs (dataclasses that are also OrderedDicts) and a model's state dict with its
config, from a small randomly initialised model (nothing downloaded)."""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path
from typing import Any

import pytest

import safestructures as ss
from safestructures import UnknownTypeError
from conftest import assert_same, import_framework, schema_of, tensor_names

transformers = import_framework("transformers")
torch = import_framework("torch")

from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402
from transformers.modeling_outputs import BaseModelOutput  # noqa: E402
from transformers.utils import ModelOutput  # noqa: E402

pytestmark = pytest.mark.usefixtures("clean_registry")


@pytest.fixture(scope="module")
def gpt2() -> Any:
    """(config, model, input ids, output) of a two-layer GPT-2 with random weights; the global RNG is left alone."""
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            config = GPT2Config(
                n_layer=2, n_head=2, n_embd=16, vocab_size=50, n_positions=32, bos_token_id=0, eos_token_id=0,
                use_cache=False, attn_implementation="eager",
            )
            model = GPT2LMHeadModel(config).eval()
            ids = torch.randint(0, 50, (2, 5))
        with torch.no_grad():
            out = model(ids, use_cache=False, output_hidden_states=True, output_attentions=True)
        yield config, model, ids, out
    finally:
        transformers.logging.set_verbosity(verbosity)


def assert_same_tensor(actual: Any, expected: Any) -> None:
    assert type(actual) is torch.Tensor
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    assert torch.equal(actual, expected)


def assert_same_value(actual: Any, expected: Any) -> None:
    """Tensors equal with their dtype, tuples of tensors as tuples, everything else exactly."""
    if isinstance(expected, torch.Tensor):
        assert_same_tensor(actual, expected)
    elif type(expected) is tuple:
        assert type(actual) is tuple and len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_same_value(a, e)
    else:
        assert_same(actual, expected)


def output_tensors(out: Any) -> list[Any]:
    """Every tensor an output holds, through its fields (tuples included)."""
    found = []
    for field in dataclasses.fields(out):
        value = getattr(out, field.name)
        found.extend(value if type(value) is tuple else [value] if isinstance(value, torch.Tensor) else [])
    return found


def test_the_model_output_is_what_the_tests_expect(gpt2: Any) -> None:
    _config, _model, _ids, out = gpt2
    assert isinstance(out, ModelOutput) and isinstance(out, collections.OrderedDict)
    assert list(out.keys())[:3] == ["logits", "hidden_states", "attentions"]
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2 and out.loss is None


def test_model_output_round_trips_with_types(gpt2: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _config, _model, _ids, out = gpt2
    cls = type(out)
    blob = ss.save({"step": 3, "out": out})

    # One tensor in the file per distinct tensor (each is held by a field and by an item of the dict).
    distinct = {id(t) for t in output_tensors(out)}
    assert len(tensor_names(blob)) == len(distinct) == 6
    assert "out.logits" in tensor_names(blob) and "out.hidden_states.0" in tensor_names(blob)
    node = schema_of(blob)["root"]["out"]
    assert node["$"] == "dataclass" and node["type"] == f"{cls.__module__}.{cls.__qualname__}" and node["base"] == "OrderedDict"

    # Rebuilt without __init__ or __post_init__.
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a ModelOutput constructor ran during the load")

    monkeypatch.setattr(ModelOutput, "__post_init__", refuse)
    monkeypatch.setattr(ModelOutput, "__init__", refuse)
    loaded = ss.load(blob, types=[cls], strict=True)
    monkeypatch.undo()

    assert loaded["step"] == 3 and type(loaded["step"]) is int
    restored = loaded["out"]
    assert type(restored) is cls
    assert list(restored.keys()) == list(out.keys())
    for field in dataclasses.fields(out):
        assert_same_value(getattr(restored, field.name), getattr(out, field.name))
    for key in out.keys():
        assert_same_value(restored[key], out[key])
    assert restored.loss is None
    assert type(restored.hidden_states) is tuple and type(restored.attentions) is tuple
    # Shared again: the item and the attribute are one object; out[0] is the logits.
    assert restored[0] is restored.logits and restored["logits"] is restored.logits
    assert restored["hidden_states"] is restored.hidden_states
    assert restored.to_tuple()[1] is restored.hidden_states
    assert len(restored.to_tuple()) == len(out.to_tuple())


def test_model_output_without_types_is_a_generic_ordered_dict(gpt2: Any) -> None:
    _config, _model, _ids, out = gpt2
    name = f"{type(out).__module__}.{type(out).__qualname__}"
    blob = ss.save({"step": 3, "out": out})
    generic = ss.load(blob)["out"]
    assert isinstance(generic, collections.OrderedDict) and type(generic) is not type(out)
    assert generic.type_name == name
    assert list(generic.keys()) == list(out.keys())
    assert generic.logits is generic["logits"]
    assert_same_tensor(generic.logits, out.logits)
    assert type(generic.attentions) is tuple and all(isinstance(t, torch.Tensor) for t in generic.attentions)
    assert generic.loss is None  # fields that were None are attributes only
    assert "loss" not in generic
    with pytest.raises(UnknownTypeError) as info:
        ss.load(blob, strict=True)
    assert str(info.value).startswith('at $["out"]: ') and repr(name) in str(info.value)


def test_model_output_at_the_root_through_a_file_and_registration(gpt2: Any, tmp_path: Path) -> None:
    _config, _model, _ids, out = gpt2
    path = tmp_path / "output.safestructures"
    ss.save_file(out, path)
    ss.register(type(out))
    restored = ss.load_file(path, strict=True)
    assert type(restored) is type(out) and list(restored.keys()) == list(out.keys())
    assert_same_tensor(restored.logits, out.logits)
    assert restored[0] is restored.logits


def test_state_dict_and_config_round_trip(gpt2: Any) -> None:
    config, model, ids, out = gpt2
    state = model.state_dict()
    blob = ss.save({"state_dict": state, "config": config.to_dict()})
    loaded = ss.load(blob)

    # The tied embedding (lm_head.weight is transformer.wte.weight) is stored once and shares memory again.
    assert state["lm_head.weight"].data_ptr() == state["transformer.wte.weight"].data_ptr()
    assert len(tensor_names(blob)) == len(state) - 1
    restored_state = loaded["state_dict"]
    assert type(restored_state) is type(state) and list(restored_state) == list(state)
    for key, tensor in state.items():
        assert_same_tensor(restored_state[key], tensor)
    assert restored_state["lm_head.weight"].data_ptr() == restored_state["transformer.wte.weight"].data_ptr()
    assert_same(loaded["config"], config.to_dict())

    # A model rebuilt from what was loaded computes the same thing (to_dict() leaves out the attention
    # implementation, so it is chosen again).
    rebuilt_config = GPT2Config.from_dict(loaded["config"], attn_implementation="eager")
    with torch.random.fork_rng():
        rebuilt = GPT2LMHeadModel(rebuilt_config).eval()
    rebuilt.load_state_dict(restored_state)
    with torch.no_grad():
        again = rebuilt(ids, use_cache=False)
    assert torch.equal(again.logits, out.logits)


def test_base_model_output_built_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    hidden = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    states = (torch.zeros(2, 3, 4, dtype=torch.bfloat16), hidden)
    full = BaseModelOutput(last_hidden_state=hidden, hidden_states=states)
    bare = BaseModelOutput(last_hidden_state=hidden)
    blob = ss.save({"full": full, "bare": bare})
    # The hidden tensor appears four times (two fields, two items of "full", then "bare"): it is stored once.
    assert sorted(tensor_names(blob)) == ["full.hidden_states.0", "full.last_hidden_state"]

    loaded = ss.load(blob, types=[BaseModelOutput])
    restored, restored_bare = loaded["full"], loaded["bare"]
    assert type(restored) is BaseModelOutput and type(restored_bare) is BaseModelOutput
    assert list(restored.keys()) == ["last_hidden_state", "hidden_states"]
    assert list(restored_bare.keys()) == ["last_hidden_state"]
    assert restored.attentions is None and restored_bare.hidden_states is None
    assert_same_value(restored.hidden_states, states)
    assert restored.last_hidden_state is restored.hidden_states[1] is restored_bare.last_hidden_state
    assert restored[0] is restored.last_hidden_state and restored[1] is restored.hidden_states
    assert restored_bare.to_tuple() == (restored_bare.last_hidden_state,)

    generic = ss.load(blob)["full"]
    assert generic.type_name == "transformers.modeling_outputs.BaseModelOutput"
    assert generic.hidden_states[1] is generic.last_hidden_state and generic.attentions is None

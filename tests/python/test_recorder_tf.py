"""record_module on a Keras model (TensorFlow, through tensorflow-hooks): each layer's calls recorded into its stream,
reloaded as TensorFlow tensors equal to the layers' outputs recomputed. One module, so that TensorFlow is imported
once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import safestructures as ss
from safestructures import InvalidArgumentError
from conftest import import_framework

tf = import_framework("tensorflow")
pytest.importorskip("tf_hooks")


def exactly(loaded: Any, expected: Any) -> None:
    assert isinstance(loaded, tf.Tensor) and loaded.dtype == expected.dtype and loaded.shape == expected.shape
    assert np.array_equal(loaded.numpy(), np.asarray(expected))


def test_record_module_records_each_keras_layer_call(tmp_path: Path) -> None:
    tf.keras.utils.set_random_seed(0)
    inner = tf.keras.Sequential([tf.keras.layers.Dense(3, name="d_in")], name="inner")
    inputs = tf.keras.Input((4,))
    h = tf.keras.layers.Dense(5, activation="relu", name="d1")(inputs)
    out = tf.keras.layers.Dropout(0.5, name="drop")(inner(h))
    model = tf.keras.Model(inputs, out, name="m")
    batches = [tf.random.uniform((2, 4)) for _ in range(3)]
    path = tmp_path / "acts.safetensors"
    with ss.Recorder(path, fsync=False) as rec:
        with ss.record_module(model, rec):
            for x in batches:
                model(x)
        model(batches[0])  # hooks removed: not recorded
    acts = ss.load_file(path, framework="tf")
    # The model itself (""), each of its layers by name (the input layer is never called), a nested model's by path.
    assert sorted(acts) == ["", "d1", "drop", "inner", "inner/d_in"]
    assert all(type(calls) is list and len(calls) == 3 for calls in acts.values())
    for b, x in enumerate(batches):
        h1 = model.get_layer("d1")(x)
        h2 = inner.get_layer("d_in")(h1)
        call = acts["d1"][b]
        assert sorted(call) == ["inputs", "kwargs", "output"] and type(call["inputs"]) is tuple
        exactly(call["inputs"][0], x)
        assert call["kwargs"] == {}
        exactly(call["output"], h1)
        exactly(acts["inner"][b]["inputs"][0], h1)
        exactly(acts["inner/d_in"][b]["output"], h2)
        exactly(acts["inner"][b]["output"], h2)
        assert acts["drop"][b]["kwargs"] == {"training": False}  # dropout off outside training: its input unchanged
        exactly(acts["drop"][b]["output"], h2)
        exactly(acts[""][b]["inputs"][0], x)
        exactly(acts[""][b]["output"], model(x))
        assert acts[""][b]["output"].dtype == tf.float32


def test_record_module_refuses_what_is_neither_torch_nor_keras(tmp_path: Path) -> None:
    with ss.Recorder(tmp_path / "r.safetensors", fsync=False) as rec:
        with pytest.raises(InvalidArgumentError, match="torch nn.Module or a Keras model.*builtins.dict"):
            ss.record_module({}, rec)

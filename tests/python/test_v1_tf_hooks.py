"""The 1.0.0 examples' TensorFlow forward hooks (through tensorflow-hooks) on a Keras ResNet-50 with random weights:
every layer's inputs and outputs saved as the example does, reloaded with framework="tf" and compared exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from safestructures import load_file
from conftest import import_framework
from test_v1_api import IOHook  # the examples' hook, as written

tf = import_framework("tensorflow")
tf_hooks = pytest.importorskip("tf_hooks")




def test_examples_tf_forward_hooks_on_resnet50(tmp_path: Path) -> None:
    from tf_hooks import register_forward_hook

    seen: dict[str, tuple[Any, Any]] = {}

    class TFIOHook(IOHook):
        framework = "tf"
        times_called = 0  # the example's IOHook reads it without setting it

        def __call__(self, layer, args, kwargs, outputs):
            # No kwargs for this example
            super().__call__(layer, args, outputs)
            seen[self.layer_name] = (args, outputs)
            return

    save_dir = Path(tmp_path).expanduser().resolve()

    tf.keras.utils.set_random_seed(0)
    # Random weights (nothing downloaded), and a small input size so that the test stays quick.
    model = tf.keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3))

    for layer in model.layers:
        io_hook = TFIOHook(layer.name, save_dir)
        register_forward_hook(layer, io_hook)

    test_input = tf.random.uniform((1, 64, 64, 3), maxval=1)
    model(test_input)

    assert len(seen) > 150 and "conv5_block3_out" in seen

    def compare(loaded: Any, original: Any) -> None:
        if isinstance(original, (tuple, list)):
            assert type(loaded) is type(original) and len(loaded) == len(original)
            for a, b in zip(loaded, original):
                compare(a, b)
        else:
            assert isinstance(loaded, tf.Tensor) and loaded.dtype == original.dtype and loaded.shape == original.shape
            tf.debugging.assert_near(loaded, original)  # (its test is strict: |x - y| < tol, so tol 0 always fails)
            assert bool(tf.reduce_all(tf.equal(loaded, original)))  # and exactly the same values

    for layer_name, (inputs, outputs) in seen.items():
        compare(load_file(save_dir / f"{layer_name}_inputs_0.safestructures", framework=TFIOHook.framework), inputs)
        compare(load_file(save_dir / f"{layer_name}_outputs_0.safestructures", framework="tf"), outputs)

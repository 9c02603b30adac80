"""Recording a model's activations: forward hooks that append each submodule's (torch) or layer's (Keras, through
tensorflow-hooks) inputs and output to a :class:`~safestructures.Recorder`, one stream per submodule or layer
(docs/recorder.md)."""

from __future__ import annotations

from typing import Any

from ._errors import InvalidArgumentError
from ._recorder import Recorder, Stream

__all__ = ["RecordingHooks", "record_module"]


class RecordingHooks:
    """The hooks :func:`record_module` registered; ``remove()`` (or leaving a ``with`` block) takes them all off."""

    def __init__(self, handles: list[Any]) -> None:
        self._handles = handles

    def remove(self) -> None:
        """Removes every hook; the recorder stays open."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> RecordingHooks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def record_module(module: Any, recorder: Recorder) -> RecordingHooks:
    """Records every call of ``module`` and of each of its submodules into ``recorder``, one stream per submodule, one
    record per call, ``{"inputs": args, "kwargs": kwargs, "output": output}``, appended as the call returns (tensors as
    they are: torch tensors load as torch tensors, TensorFlow tensors as TensorFlow tensors). Returns the hooks, to
    ``remove()`` them.

    A torch ``nn.Module``: streams named as ``module.named_modules()`` names the submodule (``""`` for ``module``
    itself). A Keras model or layer (TensorFlow, through the ``tensorflow-hooks`` package): ``""`` for ``module``
    itself, each layer of ``module.layers`` under its name, the layers of a nested model under ``"outer/inner"``; eager
    calls only (``model(x)``: inside a ``tf.function`` or ``model.predict`` the hooks see symbolic tensors, which
    cannot be recorded)."""
    if callable(getattr(module, "named_modules", None)) and callable(getattr(module, "register_forward_hook", None)):
        return _record_torch_module(module, recorder)
    if type(module).__module__.split(".", 1)[0] in ("keras", "tf_keras", "tensorflow"):
        return _record_keras_layer(module, recorder)
    raise InvalidArgumentError(f"record_module takes a torch nn.Module or a Keras model or layer, got "
                               f"{type(module).__module__}.{type(module).__qualname__}")


def _record_torch_module(module: Any, recorder: Recorder) -> RecordingHooks:
    return RecordingHooks([submodule.register_forward_hook(_appending_to(recorder[name]), with_kwargs=True)
                           for name, submodule in module.named_modules()])


def _appending_to(stream: Stream) -> Any:
    """The forward hook of one submodule or layer (torch's and tensorflow-hooks' take the same arguments): appends
    the call to ``stream``."""

    def hook(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        stream.append({"inputs": args, "kwargs": kwargs, "output": output})

    return hook


def _keras_layers(layer: Any, path: str) -> list[tuple[str, Any]]:
    """``(stream name, layer)`` for ``layer`` (named ``path``) and every layer under it, through the ``layers`` of
    models, depth first."""
    found = [(path, layer)]
    for child in getattr(layer, "layers", None) or ():
        found.extend(_keras_layers(child, child.name if not path else f"{path}/{child.name}"))
    return found


def _record_keras_layer(layer: Any, recorder: Recorder) -> RecordingHooks:
    try:
        from tf_hooks import register_forward_hook
    except ImportError:
        raise InvalidArgumentError("record_module on a Keras model needs the tensorflow-hooks package "
                                   "(pip install tensorflow-hooks)") from None
    return RecordingHooks([register_forward_hook(sub, _appending_to(recorder[name])) for name, sub in _keras_layers(layer, "")])

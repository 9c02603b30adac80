"""Recording a torch module's activations: forward hooks that append each submodule's inputs and output to a
:class:`~safestructures.Recorder`, one stream per submodule (docs/recorder.md)."""

from __future__ import annotations

from typing import Any

from ._recorder import Recorder

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
    """Records every call of ``module`` and of each of its submodules into ``recorder``: the stream named as
    ``module.named_modules()`` names the submodule (``""`` for ``module`` itself) receives one record per call,
    ``{"inputs": args, "kwargs": kwargs, "output": output}``, appended as the call returns (tensors as they are: torch
    tensors load as torch tensors). Returns the hooks, to ``remove()`` them. torch only."""
    handles = []
    for name, submodule in module.named_modules():
        stream = recorder[name]

        def hook(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any, stream: Any = stream) -> None:
            stream.append({"inputs": args, "kwargs": kwargs, "output": output})

        handles.append(submodule.register_forward_hook(hook, with_kwargs=True))
    return RecordingHooks(handles)

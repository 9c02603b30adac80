"""1.0.0's ``safestructures.processors.tensor``: TensorProcessor plugins for numpy, torch, TensorFlow and JAX arrays.

safestructures stores all of these natively (exact dtypes, zero-copy loads), so these classes matter only to code
that subclasses or names them. Each is built on first use, importing its framework then: importing this module imports
none. Unlike 1.0.0, floats keep their dtype (numpy has no bfloat16: torch bfloat16 tensors are stored as float32).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import TensorProcessor

__all__ = ["JAXProcessor", "NumpyProcessor", "TFProcessor", "TensorFlowProcessor", "TorchProcessor"]


Conversion = Callable[[Any], Any]


def _processor(name: str, doc: str, data_type: Any, to_numpy: Conversion, from_numpy: Conversion | None = None,
               to_cpu: Conversion | None = None) -> type[TensorProcessor]:
    """The processor class of one framework, from its conversions: to the CPU (optional), to numpy, and from the
    numpy array a load gives back (without one, the array itself is given back)."""
    namespace: dict[str, Any] = {"__doc__": doc, "__module__": __name__, "data_type": data_type,
                                 "to_numpy": lambda self, tensor: to_numpy(tensor)}
    if to_cpu is not None:
        namespace["to_cpu"] = lambda self, tensor: to_cpu(tensor)
    if from_numpy is not None:
        namespace["deserialize"] = lambda self, tensor_id, **kwargs: from_numpy(
            TensorProcessor.deserialize(self, tensor_id, **kwargs))
    return type(name, (TensorProcessor,), namespace)


def _numpy_processor() -> type[TensorProcessor]:
    import numpy

    return _processor("NumpyProcessor", "numpy array processor.", numpy.ndarray, numpy.ascontiguousarray)


def _torch_processor() -> type[TensorProcessor]:
    import torch

    def to_cpu(tensor: Any) -> Any:
        tensor = tensor.detach().cpu().contiguous()
        return tensor.float() if tensor.dtype == torch.bfloat16 else tensor

    return _processor("TorchProcessor", "PyTorch tensor processor.", torch.Tensor, lambda t: t.numpy(), torch.as_tensor,
                      to_cpu)


def _tf_processor() -> type[TensorProcessor]:
    import tensorflow as tf

    def to_cpu(tensor: Any) -> Any:
        with tf.device("CPU:0"):
            return tf.identity(tensor)

    return _processor("TFProcessor", "TensorFlow (eager) tensor processor.", type(tf.constant(0)), lambda t: t.numpy(),
                      tf.convert_to_tensor, to_cpu)


def _jax_processor() -> type[TensorProcessor]:
    import jax
    import jax.numpy as jnp
    import numpy

    return _processor("JAXProcessor", "JAX array processor.", jax.Array, numpy.asarray, jnp.asarray)


_FACTORIES = {
    "NumpyProcessor": _numpy_processor,
    "TorchProcessor": _torch_processor,
    "TFProcessor": _tf_processor,
    "TensorFlowProcessor": _tf_processor,
    "JAXProcessor": _jax_processor,
}
_BUILT: dict[Any, type[TensorProcessor]] = {}


def __getattr__(name: str) -> type[TensorProcessor]:
    """The processor class `name`, built (and its framework imported) on first use."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if factory not in _BUILT:
        _BUILT[factory] = factory()
    return _BUILT[factory]

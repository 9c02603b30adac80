"""1.0.0's ``safestructures.processors.tensor``: TensorProcessor plugins for numpy, torch, TensorFlow and JAX arrays.

safestructures stores all of these natively (exact dtypes, zero-copy loads), so these classes matter only to code
that subclasses or names them. Each is built on first use, importing its framework then: importing this module imports
none. Unlike 1.0.0, floats keep their dtype (numpy has no bfloat16: torch bfloat16 tensors are stored as float32).
"""

from __future__ import annotations

from typing import Any

from .base import TensorProcessor

__all__ = ["JAXProcessor", "NumpyProcessor", "TFProcessor", "TensorFlowProcessor", "TorchProcessor"]


def _numpy_processor() -> type[TensorProcessor]:
    import numpy

    class NumpyProcessor(TensorProcessor):
        """numpy array processor."""

        data_type = numpy.ndarray

        def to_numpy(self, tensor: Any) -> Any:
            return numpy.ascontiguousarray(tensor)

    return NumpyProcessor


def _torch_processor() -> type[TensorProcessor]:
    import torch

    class TorchProcessor(TensorProcessor):
        """PyTorch tensor processor."""

        data_type = torch.Tensor

        def to_cpu(self, tensor: Any) -> Any:
            tensor = tensor.detach().cpu().contiguous()
            return tensor.float() if tensor.dtype == torch.bfloat16 else tensor

        def to_numpy(self, tensor: Any) -> Any:
            return tensor.numpy()

        def deserialize(self, tensor_id: Any, **kwargs: Any) -> Any:
            return torch.as_tensor(super().deserialize(tensor_id, **kwargs))

    return TorchProcessor


def _tf_processor() -> type[TensorProcessor]:
    import tensorflow as tf

    class TFProcessor(TensorProcessor):
        """TensorFlow (eager) tensor processor."""

        data_type = type(tf.constant(0))

        def to_cpu(self, tensor: Any) -> Any:
            with tf.device("CPU:0"):
                return tf.identity(tensor)

        def to_numpy(self, tensor: Any) -> Any:
            return tensor.numpy()

        def deserialize(self, tensor_id: Any, **kwargs: Any) -> Any:
            return tf.convert_to_tensor(super().deserialize(tensor_id, **kwargs))

    return TFProcessor


def _jax_processor() -> type[TensorProcessor]:
    import jax
    import jax.numpy as jnp
    import numpy

    class JAXProcessor(TensorProcessor):
        """JAX array processor."""

        data_type = jax.Array

        def to_numpy(self, tensor: Any) -> Any:
            return numpy.asarray(tensor)

        def deserialize(self, tensor_id: Any, **kwargs: Any) -> Any:
            return jnp.asarray(super().deserialize(tensor_id, **kwargs))

    return JAXProcessor


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

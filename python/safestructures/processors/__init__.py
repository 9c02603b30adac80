"""The module layout safestructures 1.0.0 gave plugin authors, kept so that their imports work unchanged.

``base`` (DataProcessor, TensorProcessor, ListBaseProcessor), ``basic`` (BasicProcessor), ``iterable`` (ListProcessor,
SetProcessor, TupleProcessor, DictProcessor, DataclassProcessor) and ``tensor`` (NumpyProcessor, TorchProcessor,
TFProcessor, JAXProcessor): thin classes on the plugin machinery of :mod:`safestructures.plugins`. Pass subclasses as
``plugins=`` to both the save and the load call; a plugin type is only ever resolved among the plugins passed, and
nothing is imported by name. Importing this package imports no framework; ``tensor`` imports one only when its class
for that framework is first used.
"""

from __future__ import annotations

from .base import DataProcessor, ListBaseProcessor, TensorProcessor

__all__ = ["DataProcessor", "ListBaseProcessor", "TensorProcessor"]

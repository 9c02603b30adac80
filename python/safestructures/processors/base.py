"""1.0.0's ``safestructures.processors.base``: the plugin base classes, and the list-like base of container plugins."""

from __future__ import annotations

from typing import Any

from ..plugins import DataProcessor, Mode, TensorProcessor

__all__ = ["KEYS_FIELD", "TYPE_FIELD", "VALUE_FIELD", "DataProcessor", "ListBaseProcessor", "Mode", "TensorProcessor"]

# The field names of a 1.0.0 schema node: {"data_type": ..., "value": ..., "keys": ... (dicts only)}.
TYPE_FIELD = "data_type"
VALUE_FIELD = "value"
KEYS_FIELD = "keys"


class ListBaseProcessor(DataProcessor):
    """Base of plugins for list-like containers: the items go through the serializer one by one, and come back as
    ``self.data_type(items)``."""

    def serialize(self, data: Any) -> list[Any]:
        """The container as a list of its items, each handed to ``self.serializer.serialize``."""
        return [self.serializer.serialize(item) for item in data]

    def deserialize(self, serialized: Any, **kwargs: Any) -> Any:
        """``self.data_type`` of the items, each handed to ``self.serializer.deserialize``."""
        if type(serialized) is not list:
            raise TypeError(f"{type(self).__qualname__} expects a list, not {type(serialized).__name__}")
        return self.data_type([self.serializer.deserialize(item) for item in serialized])

"""1.0.0's ``safestructures.processors.basic``: the processor of atomic values (strings, numbers, None, booleans).

1.0.0 stored such values as text and rebuilt them by locating the type named in the file; here the type is the
plugin's ``data_type``, or one of a fixed table of built-in types: nothing is imported or looked up by name.
"""

from __future__ import annotations

import numbers
from typing import Any, Union

from .base import TYPE_FIELD, DataProcessor

__all__ = ["BASIC_TYPES", "BasicProcessor"]

BASIC_TYPES = (str, numbers.Number, type(None), bool)

# The built-in types a BasicProcessor without its own data_type rebuilds, by the name 1.0.0 stored.
_BUILTINS: dict[str, type] = {t.__name__: t for t in (str, int, float, complex, bool)}


class BasicProcessor(DataProcessor):
    """Processor of atomic values: stored as text (None and booleans as themselves), rebuilt with ``data_type``."""

    def serialize(self, value: Any) -> Union[str, None, bool]:
        """The value as text; None and booleans unchanged."""
        if value is None or isinstance(value, bool):
            return value
        return str(value)

    def deserialize(self, serialized: Any, **kwargs: Any) -> Any:
        """The value ``serialized`` stands for: ``data_type(serialized)``, or a built-in type named in ``data_type``."""
        if serialized is None or isinstance(serialized, bool):
            return serialized
        cls = self.data_type if isinstance(self.data_type, type) else _BUILTINS.get(kwargs.get(TYPE_FIELD, ""))
        if cls is None:
            raise TypeError(f"{type(self).__qualname__} cannot rebuild a value of type {kwargs.get(TYPE_FIELD)!r}")
        return cls(serialized)

"""1.0.0's ``safestructures.processors.iterable``: processors of containers (lists, sets, tuples, dicts, dataclasses),
to subclass for containers of one's own. Their children go through ``self.serializer``."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, runtime_checkable

from .base import KEYS_FIELD, DataProcessor, ListBaseProcessor

__all__ = ["Dataclass", "DataclassProcessor", "DictProcessor", "ListProcessor", "SetProcessor", "TupleProcessor"]


class ListProcessor(ListBaseProcessor):
    """Processor of lists."""

    data_type = list


class SetProcessor(ListBaseProcessor):
    """Processor of sets."""

    data_type = set


class TupleProcessor(ListBaseProcessor):
    """Processor of tuples."""

    data_type = tuple


class DictProcessor(DataProcessor):
    """Processor of dicts: values under their keys' text, and the keys themselves in the extra field ``keys``."""

    data_type = dict

    def serialize(self, data: Any) -> dict[str, Any]:
        """{str(key): serialized value}."""
        return {str(k): self.serializer.serialize(v) for k, v in data.items()}

    def serialize_extra(self, data: Any) -> dict[str, Any]:
        """{"keys": {str(key): serialized key}}, so that keys that are not strings come back as themselves."""
        return {KEYS_FIELD: {str(k): self.serializer.serialize(k) for k in data}}

    def deserialize(self, serialized: Any, **kwargs: Any) -> Any:
        """A dict of the keys and values (as in 1.0.0; a subclass builds its own type from it)."""
        keys = kwargs[KEYS_FIELD]
        return {self.serializer.deserialize(keys[k]): self.serializer.deserialize(v) for k, v in serialized.items()}


@runtime_checkable
class Dataclass(Protocol):
    """Any dataclass (the ``data_type`` of the generic DataclassProcessor)."""

    __dataclass_fields__: dict[str, Any]


class DataclassProcessor(DataProcessor):
    """Processor of dataclasses: {field name: serialized value}. Subclass it with a ``data_type`` to get that class
    back (override ``deserialize`` to build it); the generic one rebuilds a plain dataclass of the same fields."""

    data_type: Any = Dataclass

    @property
    def schema_type(self) -> str:
        """The class's own name, as 1.0.0 stored it (so 1.0.0 files saved with such a plugin load with it)."""
        return str(self.data_type.__name__)

    def serialize(self, data: Any) -> dict[str, Any]:
        """{field name: serialized value} for every field of the dataclass."""
        return {f.name: self.serializer.serialize(getattr(data, f.name)) for f in dataclasses.fields(data)}

    def deserialize(self, serialized: Any, **kwargs: Any) -> Any:
        """A dataclass of the fields: ``data_type`` when it is a dataclass, else a new dataclass named "Dataclass"."""
        values = {k: self.serializer.deserialize(v) for k, v in serialized.items()}
        cls = self.data_type
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)) or cls is Dataclass:
            cls = dataclasses.make_dataclass("Dataclass", list(values))
        return cls(**values)

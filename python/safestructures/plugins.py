"""Plugins written for safestructures 1.0.0 keep working: the DataProcessor and TensorProcessor base classes, and
how their output is stored in (and read back from) the current format.

A 1.0.0 plugin is a class with a ``data_type``, instantiated with a serializer, whose ``serialize(data)`` returns
JSON-compatible data (possibly holding what ``self.serializer.serialize(child)`` returned for nested values) and whose
``deserialize(value, **extra)`` rebuilds the object. Pass such classes as ``plugins=[...]`` to both the save and the
load call; a plugin type is only ever resolved among the plugins the caller passes.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Union

from ._format import FIELD, TAG
from ._records import Record

__all__ = ["DataProcessor", "TensorProcessor"]

Serialized = Union[str, None, bool, int, float, list, dict]

#: Names a plugin's extra fields may not take: the node's own, and ``deserialize``'s value.
RESERVED_EXTRA = ("data_type", "value")


class Mode(enum.Enum):
    """What the serializer handed to a plugin is doing."""

    SAVE = enum.auto()
    LOAD = enum.auto()


class DataProcessor(ABC):
    """Base class of 1.0.0-style plugins for data other than tensors.

    Subclass it, set ``data_type`` to the class handled (exact type match), and implement ``serialize`` and
    ``deserialize``; ``serialize_extra`` may add string-keyed extra fields, given back to ``deserialize`` as keyword
    arguments. Nested values can be handed to ``self.serializer.serialize`` / ``self.serializer.deserialize``.
    """

    data_type: Any = Any

    def __init__(self, serializer: Any) -> None:
        self.serializer = serializer

    @property
    def schema_type(self) -> str:
        """The name the data type is stored under: ``module.QualName`` (builtins without the module)."""
        module, name = self.data_type.__module__, self.data_type.__qualname__
        return name if module == "builtins" else f"{module}.{name}"

    @abstractmethod
    def serialize(self, data: Any) -> Serialized:
        """The JSON-compatible form of `data`."""

    def serialize_extra(self, data: Any) -> dict[str, Any]:
        """Extra string-keyed fields stored beside the value, given back to ``deserialize`` as keyword arguments."""
        return {}

    @abstractmethod
    def deserialize(self, serialized: Serialized, **kwargs: Any) -> Any:
        """The object `serialized` stands for."""


class TensorProcessor(DataProcessor):
    """Base class of 1.0.0-style plugins for tensor types: implement ``to_numpy`` (and, as in 1.0.0, optionally
    ``to_cpu``, applied first); the array is stored as a tensor and ``deserialize`` gives it back (as a numpy array,
    unless overridden)."""

    @abstractmethod
    def to_numpy(self, tensor: Any) -> Any:
        """The tensor as a numpy array."""

    def to_cpu(self, tensor: Any) -> Any:
        """The tensor moved to the CPU, handed to ``to_numpy`` (1.0.0 plugins implement it; by default the tensor)."""
        return tensor

    def process_tensor(self, tensor: Any) -> str:
        """Registers an array with the serializer and returns its id."""
        tensor_id = str(len(self.serializer.tensors))
        self.serializer.tensors[tensor_id] = tensor
        return tensor_id

    def serialize(self, tensor: Any) -> str:
        return self.process_tensor(self.to_numpy(self.to_cpu(tensor)))

    def deserialize(self, tensor_id: Serialized, **kwargs: Any) -> Any:
        return self.serializer.tensors[tensor_id]


class Nested:
    """What ``serializer.serialize(child)`` returns to a plugin while saving: the child itself, walked like any
    other data wherever the plugin puts it in its value."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class _Serializer:
    """The serializer a plugin instance is given: recursion into nested values, and the tensors of one node."""

    def __init__(self, mode: Mode, tensors: dict[str, Any]) -> None:
        self.mode = mode
        self.tensors = tensors

    def serialize(self, data: Any) -> Nested:
        return Nested(data)

    def deserialize(self, value: Any) -> Any:
        return value.value if isinstance(value, Nested) else value


def plugin_tuple(plugins: Any) -> tuple[Any, ...] | None:
    """A call's ``plugins`` as a tuple: one class (as 1.0.0 accepted) or an iterable of classes; None stays None."""
    if plugins is None:
        return None
    if isinstance(plugins, type):
        return (plugins,)
    try:
        return tuple(plugins)
    except TypeError:
        raise TypeError(f"plugins must be a DataProcessor subclass or an iterable of them, not {plugins!r}") from None


def check_plugins(plugins: Any) -> dict[type, type[DataProcessor]]:
    """{data_type: plugin class} for a save or load call's ``plugins`` (see plugin_tuple); TypeError for anything
    else."""
    by_type: dict[type, type[DataProcessor]] = {}
    for plugin in plugin_tuple(plugins) or ():
        if not (isinstance(plugin, type) and issubclass(plugin, DataProcessor)):
            raise TypeError(f"plugins must be DataProcessor subclasses (classes, not instances), got {plugin!r}")
        if plugin.data_type in by_type:
            raise ValueError(f"two plugins handle {plugin.data_type!r}")
        by_type[plugin.data_type] = plugin
    return by_type


def plugins_by_name(plugins: Any) -> dict[str, type[DataProcessor]]:
    """{stored type name: plugin class} for a load call's ``plugins``."""
    return {plugin(None).schema_type: plugin for plugin in check_plugins(plugins).values()}


def reduce_with(plugin_cls: type[DataProcessor], obj: Any) -> tuple[str, dict[str, Any]]:
    """The ("plugin", fields) node of `obj`, through its 1.0.0-style plugin."""
    tensors: dict[str, Any] = {}
    plugin = plugin_cls(_Serializer(Mode.SAVE, tensors))
    value = plugin.serialize(obj)
    extra = plugin.serialize_extra(obj)
    if not isinstance(extra, dict) or any(not isinstance(k, str) for k in extra):
        raise TypeError(f"{plugin_cls.__qualname__}.serialize_extra must return a dict with str keys")
    if any(key in extra for key in RESERVED_EXTRA):
        raise TypeError(f"{plugin_cls.__qualname__}.serialize_extra must not use the keys 'data_type' or 'value'")
    fields: dict[str, Any] = {FIELD.type: plugin.schema_type, "value": _map_nested(value, NestedMark)}
    if extra:
        fields["extra"] = {k: _map_nested(v, NestedMark) for k, v in extra.items()}
    if tensors:
        fields["tensors"] = tensors
    return TAG.Plugin, fields


def _map_nested(value: Any, child: Callable[[Any], Any]) -> Any:
    """A plugin's value (JSON-like lists and dicts) with each Nested child replaced by ``child(the child itself)``.
    Each list and dict is mapped once, without recursion: one met again (a shared reference of a loaded value, which
    a walk would expand exponentially; a cycle) is the same new one again."""
    mapped: dict[int, list[Any] | dict[Any, Any]] = {}
    pending: list[tuple[Any, Any]] = []

    def one(item: Any) -> Any:
        if isinstance(item, Nested):
            return child(item.value)
        if type(item) is not list and type(item) is not dict:
            return item
        out = mapped.get(id(item))
        if out is None:
            out = mapped[id(item)] = [] if type(item) is list else {}
            pending.append((item, out))
        return out

    root = one(value)
    while pending:
        item, out = pending.pop()
        if type(out) is list:
            out.extend(one(v) for v in item)
        else:
            out.update((k, one(v)) for k, v in item.items())
    return root


class NestedMark(Nested):
    """A nested child inside a plugin's value as it is saved ({"$": "nested", "v": child}), so that loading hands it
    back as a Nested."""

    __slots__ = ()


def unwrap_nested(value: Any) -> Any:
    """A plugin's value with each nested child as itself, for a record made without the plugin."""
    return _map_nested(value, lambda child: child)


def node_extra(fields: dict[str, Any]) -> dict[str, Any]:
    """A "plugin" node's extra fields: an object of str keys, none of them a name of the node's own (a record made
    without the plugin would show it instead of the value; the plugin would be given it twice)."""
    extra = fields.get("extra", {})
    if type(extra) is not dict or any(type(k) is not str for k in extra):
        raise TypeError("a plugin node's 'extra' must map str to values")
    if any(key in extra for key in RESERVED_EXTRA):
        raise TypeError("a plugin node's 'extra' must not hold the keys 'data_type' or 'value'")
    return extra


def _tensors(fields: dict[str, Any]) -> dict[str, Any]:
    tensors = fields.get("tensors", {})
    if type(tensors) is not dict:
        raise TypeError("a plugin node's 'tensors' must be an object")
    return tensors


def record_of(type_name: str, fields: dict[str, Any]) -> Record:
    """What a "plugin" node that no plugin of the load handles comes back as: a record of its value (nested children
    as themselves), its extra fields and, where it has them, its tensors, which saves back as the same node."""
    extra = node_extra(fields)
    if "tensors" in extra:
        # The record's field "tensors" is the node's own, so that it saves back to its place.
        raise TypeError(f"the plugin node's extra field 'tensors' has no place in a record of it: load it with its "
                        f"plugin ({type_name})")
    record = {"value": unwrap_nested(fields.get("value")), **unwrap_nested(extra)}
    tensors = _tensors(fields)
    if tensors:
        record["tensors"] = tensors
    return Record(type_name, record, kind=TAG.Plugin)


def record_node(type_name: str, fields: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The "plugin" node a record of one (record_of) saves as. Its nested children are saved in place, which a
    plugin's ``serializer.deserialize`` takes as it takes them nested."""
    if "value" not in fields:
        raise TypeError(f"a record of a plugin's value ({type_name}) needs its field 'value'")
    extra = {k: v for k, v in fields.items() if k not in ("value", "tensors")}
    if any(key in extra for key in RESERVED_EXTRA):
        raise TypeError(f"a record of a plugin's value ({type_name}) cannot hold the field 'data_type'")
    node: dict[str, Any] = {FIELD.type: type_name, "value": fields["value"]}
    if extra:
        node["extra"] = extra
    if "tensors" in fields:
        node["tensors"] = fields["tensors"]
    return TAG.Plugin, node


def construct_with(plugin_cls: type[DataProcessor], fields: dict[str, Any]) -> Any:
    """Rebuild a "plugin" node through its plugin's ``deserialize``."""
    tensors = _tensors(fields)
    extra = node_extra(fields)
    plugin = plugin_cls(_Serializer(Mode.LOAD, tensors))
    return plugin.deserialize(fields.get("value"), **extra)

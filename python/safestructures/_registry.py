"""User types: the registry, how dataclasses, named tuples, enums, built-in subclasses and registered types are
saved, and how a load resolves their names (only among types the caller registered or passed)."""

from __future__ import annotations

import collections
import dataclasses
import enum
import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, overload

from ._errors import UnknownTypeError, shown
from ._evolve import dataclass_values, declared_slots, namedtuple_items, slotted_attrs
from . import plugins
from ._format import FIELD, TAG, TORCH_VALUE_TAGS
from ._records import GENERIC_TYPE, NamedRecord, Record, generic_subclass, is_generic_subclass

__all__ = ["construct_object", "reduce_object", "register", "resolver", "type_name"]

T = TypeVar("T", bound=type)


@dataclasses.dataclass(frozen=True)
class Registration:
    cls: type
    name: str
    to_data: Callable[[Any], Any] | None
    from_data: Callable[[Any], Any] | None
    renamed: Mapping[str, str] = dataclasses.field(default_factory=dict)


_BY_TYPE: dict[type, Registration] = {}
_BY_NAME: dict[str, Registration] = {}

# Built-in bases a subclass can be saved through, by the name stored in "base".
_BASES: dict[str, type] = {
    cls.__name__: cls
    for cls in (dict, list, tuple, set, frozenset, int, float, complex, str, bytes, bytearray, collections.OrderedDict, collections.Counter)
}


def type_name(cls: type) -> str:
    """The name a class is stored under: its registered name, else ``module.QualName``."""
    registration = _BY_TYPE.get(cls)
    return registration.name if registration else f"{cls.__module__}.{cls.__qualname__}"


@overload
def register(cls: T, name: str | None = ..., *, to_data: Callable[[Any], Any] | None = ..., from_data: Callable[[Any], Any] | None = ...,
             renamed: Mapping[str, str] | None = ...) -> T: ...
@overload
def register(cls: None = ..., name: str | None = ..., *, to_data: Callable[[Any], Any] | None = ..., from_data: Callable[[Any], Any] | None = ...,
             renamed: Mapping[str, str] | None = ...) -> Callable[[T], T]: ...
def register(
    cls: type | None = None,
    name: str | None = None,
    *,
    to_data: Callable[[Any], Any] | None = None,
    from_data: Callable[[Any], Any] | None = None,
    renamed: Mapping[str, str] | None = None,
) -> Any:
    """Allow loads to rebuild `cls` (by default stored as ``module.QualName``; ``name`` overrides it, e.g. to keep
    files loading after a class moves). Usable as ``@register`` or ``@register(name=...)``.

    Dataclasses, named tuples, enums and subclasses of built-in types need no functions: their data is saved
    field by field and they are rebuilt without calling ``__init__``. Any other class is saved either through
    ``to_data(obj)`` (returning data safestructures can store) and rebuilt by ``from_data(data)``, or, without
    them, through its instance ``__dict__``, rebuilt as pickle does (``cls.__new__(cls)``, then the attributes).

    ``renamed`` maps field (or attribute) names a file may hold to the names the class has now, e.g.
    ``renamed={"lr": "learning_rate"}``: files saved before a field was renamed load into it.
    """

    def apply(target: type) -> type:
        if not isinstance(target, type):
            raise TypeError(f"register() takes a class, not {target!r}")
        if (to_data is None) != (from_data is None):
            raise TypeError("give both to_data and from_data, or neither")
        renames = dict(renamed or {})
        if any(type(k) is not str or type(v) is not str for k, v in renames.items()):
            raise TypeError("renamed must map old field names (str) to new ones (str)")
        stored = name if name is not None else f"{target.__module__}.{target.__qualname__}"
        if not isinstance(stored, str) or not stored:
            raise TypeError("a registered name must be a non-empty str")
        existing = _BY_NAME.get(stored)
        if existing is not None and existing.cls is not target:
            raise ValueError(f"{stored!r} is already registered for {existing.cls!r}")
        old = _BY_TYPE.pop(target, None)
        if old is not None:
            _BY_NAME.pop(old.name, None)
        _BY_TYPE[target] = _BY_NAME[stored] = Registration(target, stored, to_data, from_data, renames)
        return target

    return apply if cls is None else apply(cls)


def _namedtuple_type(cls: type) -> bool:
    return issubclass(cls, tuple) and isinstance(getattr(cls, "_fields", None), tuple)


def _builtin_base(cls: type) -> type | None:
    return next((base for base in cls.__mro__[1:] if base in _BASES.values()), None)


def _attributes(obj: Any) -> dict[str, Any]:
    """An instance's own attributes: its __dict__ and any filled __slots__. TypeError for what a load could not set
    back as it was: a __dict__ key that is not a str (``obj.__dict__[5] = 1``), or a name held both by a slot and by
    the __dict__ (the slot wins on reading; one attribute map cannot hold both)."""
    attrs = dict(getattr(obj, "__dict__", {}))
    odd = next((key for key in attrs if type(key) is not str), None)
    if odd is not None:
        raise TypeError(f"its __dict__ holds the key {shown(odd)}, which is not a str: no attribute a load can set")
    for slot in declared_slots(type(obj))[0]:
        if hasattr(obj, slot):
            if slot in attrs:
                raise TypeError(f"its attribute {slot!r} is both a filled slot and a key of its __dict__")
            attrs[slot] = getattr(obj, slot)
    return attrs


def _base_value(obj: Any, base: type) -> Any:
    """The content of `obj`, an instance of a subclass of the built-in `base`, as an object of `base` itself: read
    through the base's own methods, as pickle reads it and as ``_fill`` writes it back, so that a subclass's override
    (an ``__iter__``, ``__str__``, ``__int__``, ``items`` or ``__getitem__``; ``bytes()`` calls ``__bytes__``) can
    neither change what is saved nor raise."""
    if base is collections.OrderedDict:
        return collections.OrderedDict(collections.OrderedDict.items(obj))  # its own order, not the dict's
    if base is dict or base is collections.Counter:
        # dict.copy would merge through the subclass's keys() and __getitem__; the items view reads the table itself.
        content = dict(dict.items(obj))
        return content if base is dict else collections.Counter(content)
    if base in (list, set, frozenset, bytearray):
        return base.copy(obj)  # type: ignore[attr-defined]  # an object of exactly `base`
    if base is complex:
        return complex(*complex.__getnewargs__(obj))
    return base.__getnewargs__(obj)[0]  # tuple, int, float, str, bytes: their exact copy, as pickle's argument


def _subclass_node(name: str, base: type, obj: Any, attrs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The object node of a subclass of the built-in `base`: its content as a `base`, and its attributes if any."""
    node = {FIELD.type: name, "base": base.__name__, "value": _base_value(obj, base)}
    if attrs:
        node["attrs"] = attrs
    return TAG.Object, node


def node_kind(cls: type) -> str:
    """The tag a class's objects are saved under (what reduce_object gives them), the only one they load from."""
    registration = _BY_TYPE.get(cls)
    if registration is not None and registration.from_data is not None:
        return TAG.Ext
    if isinstance(cls, enum.EnumMeta):
        return TAG.Enum
    if dataclasses.is_dataclass(cls):
        return TAG.Dataclass
    if _namedtuple_type(cls):
        return TAG.NamedTuple
    return TAG.Object


def reduce_object(obj: Any) -> tuple[str, dict[str, Any]] | None:
    """The (tag, fields) of a user-type object, or None when it is of no kind handled here."""
    cls = type(obj)
    # The generic stand-ins of a load save back as what they stand for: loading and saving again loses nothing.
    if cls is Record:
        return _record_node(obj)
    if cls is NamedRecord:
        return TAG.NamedTuple, {FIELD.type: obj.type_name, "fields": list(obj._fields), "items": list(obj)}
    stand_in = obj.__dict__.get(GENERIC_TYPE) if is_generic_subclass(cls) else None
    if stand_in is not None:
        attrs = {k: v for k, v in obj.__dict__.items() if k != GENERIC_TYPE}
        return _subclass_node(stand_in, cls.__mro__[1], obj, attrs)
    kind, name, base = node_kind(cls), type_name(cls), _builtin_base(cls)
    if kind == TAG.Ext:
        return kind, {FIELD.type: name, "data": _BY_TYPE[cls].to_data(obj)}  # type: ignore[misc]  # node_kind checked it
    if kind == TAG.Enum:
        return kind, {FIELD.type: name, FIELD.name: obj.name, "value": obj.value}
    if kind == TAG.Dataclass:
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if hasattr(obj, f.name)}
        node: dict[str, Any] = {FIELD.type: name, "fields": fields}
        if base is not None:
            # A dataclass that is also a container (a model output that is an OrderedDict) keeps both.
            node.update(base=base.__name__, value=_base_value(obj, base))
        return kind, node
    if kind == TAG.NamedTuple:
        items = list(_base_value(obj, tuple))
        if len(cls._fields) != len(items) or any(type(field) is not str for field in cls._fields):
            # A load rebuilds a named tuple only from a name per item: refused here rather than written unloadable.
            raise TypeError(f"class {name} is a tuple whose _fields {shown(cls._fields)} do not name its "
                            f"{len(items)} items one by one")
        return kind, {FIELD.type: name, "fields": list(cls._fields), "items": items}
    if base is not None:
        return _subclass_node(name, base, obj, _attributes(obj))
    if cls in _BY_TYPE:
        return kind, {FIELD.type: name, "attrs": _attributes(obj)}
    return None


def _record_node(record: Record) -> tuple[str, dict[str, Any]]:
    """The node a record saves as: the one it was loaded from (a dataclass's when made by hand)."""
    kind, fields = record.kind, record.asdict()
    if kind is None or kind == TAG.Dataclass:
        return TAG.Dataclass, {FIELD.type: record.type_name, "fields": fields}
    if kind == TAG.Object:
        return kind, {FIELD.type: record.type_name, "attrs": fields}
    if kind == TAG.Ext:
        if set(fields) != {"data"}:
            raise TypeError(f"a record of a to_data value ({record.type_name}) holds the one field 'data', not {sorted(fields)}")
        return kind, {FIELD.type: record.type_name, "data": fields["data"]}
    if kind == TAG.Plugin:
        return plugins.record_node(record.type_name, fields)
    if kind in TORCH_VALUE_TAGS:
        return kind, fields
    raise TypeError(f"a record's kind must be None or the tag of an object, dataclass, to_data, plugin or torch value "
                    f"node, not {kind!r}")


def registered_names() -> dict[str, type]:
    """{stored name: class} of the registered classes, as they are now: a new dict for each load."""
    return {name: registration.cls for name, registration in _BY_NAME.items()}


def resolver(types: Iterable[type] = (), strict: bool = False) -> dict[str, Any]:
    """The per-load lookup of class names: the registry plus the types passed to the load call."""
    names = registered_names()
    for cls in types:
        if not isinstance(cls, type):
            raise TypeError(f"types must be classes, got {cls!r}")
        names[type_name(cls)] = cls
    return {"names": names, "strict": bool(strict)}


def text_field(fields: dict[str, Any], key: str) -> str:
    """A node's field that must be a str (TypeError otherwise, which the loader reports with the path)."""
    value = fields.get(key)
    if type(value) is not str:
        raise TypeError(f"field {key!r} must be a str, not {type(value).__name__}")
    return value


def _restore_attrs(obj: Any, attrs: dict[str, Any]) -> None:
    """Sets a registered object's saved attributes as ``_attributes`` read them, as pickle does: a declared slot
    through its slot, anything else into the instance's ``__dict__``. No descriptor of the class runs: a name the
    file gives that is a property (or ``__dict__``, ``__class__``) of the class is an entry of ``__dict__``, never
    a call of its setter."""
    slots = set(declared_slots(type(obj))[0])
    try:
        instance_dict = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        instance_dict = None
    for key, value in attrs.items():
        if key in slots:
            object.__setattr__(obj, key, value)
        elif type(instance_dict) is dict:
            instance_dict[key] = value
        else:
            raise TypeError(f"class {type(obj).__qualname__!r} has no slot {key!r} and its objects no __dict__")


def _attribute_map(fields: dict[str, Any], key: str) -> dict[str, Any]:
    """A user-type node's ``fields`` (a dataclass's) or ``attrs`` (an object's, {} when absent): a dict of str keys,
    whether or not the load resolves the class (TypeError otherwise)."""
    attrs = fields.get(key, {} if key == "attrs" else None)
    if type(attrs) is not dict or any(type(k) is not str for k in attrs):
        raise TypeError(f"field {key!r} must map str to values")
    return attrs


def _fill(obj: Any, base: type, value: Any) -> None:
    """Put the built-in base's content into a new instance, through the base's own methods (no overrides run). The
    value is of the base's exact type, as saved: a dict or set is then copied with the hashes its keys already have,
    never hashing them again."""
    if base is dict or base is collections.Counter:
        dict.update(obj, value)
    elif base is collections.OrderedDict:
        for key, item in value.items():
            base.__setitem__(obj, key, item)
    elif base is list:
        list.extend(obj, value)
    elif base is set:
        set.update(obj, value)
    elif base is bytearray:
        bytearray.extend(obj, value)


def _new(cls: type, base: type | None, value: Any) -> Any:
    if base is None:
        return _bare(cls)
    if type(value) is not base:
        raise TypeError(f"the value of a {base.__name__} subclass must be a {base.__name__}, not {type(value).__name__}")
    if base in (tuple, frozenset, int, float, complex, str, bytes):
        return base.__new__(cls, value)  # type: ignore[call-overload]
    obj = base.__new__(cls)  # the base's own __new__: an override (which may want arguments) is not run
    _fill(obj, base, value)
    return obj


def _bare(cls: type) -> Any:
    """A new, empty instance of a class with no built-in base. A ``__new__`` defined in Python (which may want
    arguments, or do work) is not run when the class's layout is object's: ``object.__new__(cls)`` makes the instance.
    A class built on another C type (an extension's) is made by its own ``cls.__new__(cls)``, as pickle does."""
    for klass in cls.__mro__:
        if not klass.__flags__ & (1 << 9):  # Py_TPFLAGS_HEAPTYPE: the first type not defined in Python
            if klass is object:
                return object.__new__(cls)
            break
    return cls.__new__(cls)


def _renames(cls: type) -> Mapping[str, str]:
    registration = _BY_TYPE.get(cls)
    return registration.renamed if registration is not None else {}


def _value_key(value: Any) -> bool:
    """Whether an enum may be searched for ``value``: a scalar, or a flat tuple of a few (anything larger could be
    built from shared references, which hashing or comparing would walk in full)."""
    scalar = (type(None), bool, int, float, complex, str, bytes)
    if type(value) is tuple:
        return len(value) <= 64 and all(type(v) in scalar and (type(v) is not int or v.bit_length() <= 4096) for v in value)
    return type(value) in scalar and (type(value) is not int or value.bit_length() <= 4096)


def _enum_member(cls: Any, name: str, fields: dict[str, Any]) -> Any:
    """The member of ``cls`` a node names: by name, then by value (a renamed member, combined flags)."""
    member = cls.__members__.get(fields.get(FIELD.name)) if type(fields.get(FIELD.name)) is str else None
    if member is not None:
        return member
    value = fields.get("value")
    if _value_key(value):
        cache = getattr(cls, "_value2member_map_", None)
        cached = len(cache) if isinstance(cache, dict) else None
        try:
            member = cls(value)
        except ValueError:
            pass
        else:
            made = getattr(member, "_value_", None)
            if isinstance(member, enum.Flag) and type(value) is int and cached is not None and len(cache) > cached and (
                    made != value or made & ~getattr(cls, "_flag_mask_", -1)):
                # A value with bits no member has (an IntFlag keeps them), or one the class turned into another (a
                # negative one, bits dropped), is made anew, and Python caches it in the class for good (under the
                # value made, and a negative one under itself too): a file of many such values would grow the class
                # for the life of the process. Such a value is an int, equal to its like by value. The entries this
                # call added are dropped, the last ones of the dict; those the class had stay. (Combinations of members
                # stay cached, as Python caches them: a plain Flag compares them by identity, and there are no more of
                # them than the members' combinations.)
                for key in list(itertools.islice(reversed(cache), len(cache) - cached)):
                    del cache[key]
            if not isinstance(member, cls) or (isinstance(member, enum.Flag) and made != value):
                # A saved member's value is its own: the class makes -9 into 7 (an IntFlag), drops bits it lacks (a
                # CONFORM flag), or gives a plain int (an EJECT flag), none of which a save writes for this value.
                raise ValueError(f"enum {name!r} has no member of value {shown(value)} (the class makes it "
                                 f"{shown(made if isinstance(member, cls) else member)})")
            return member
    raise ValueError(f"enum {name!r} has no member named {shown(fields.get(FIELD.name))} or of value {shown(value)}")


def construct_object(tag: str, fields: dict[str, Any], context: dict[str, Any]) -> Any:
    """Rebuild a user-type node: the class is looked up by name among the registered and passed types only;
    unresolved ones become generic records (or raise UnknownTypeError with ``strict=True``). A class found is built
    only from the node kind its objects are saved as (an enum from an enum node...), never by another route."""
    name = text_field(fields, FIELD.type)
    cls = context["names"].get(name)
    if cls is None and context["strict"]:
        raise UnknownTypeError(f"the file names class {name!r}, which this load was not given (register it, or pass it in types=)")
    if cls is not None and node_kind(cls) != tag:
        if tag == TAG.Ext:
            raise TypeError(f"class {name!r} was saved through to_data, but is not registered with from_data")
        raise TypeError(f"class {name!r} is saved as {node_kind(cls)!r} nodes; the file names it in {tag!r} node")
    base_name = fields.get("base")
    base = _BASES.get(base_name) if type(base_name) is str else None
    if base is None and base_name is not None:
        raise ValueError(f"unknown base type {shown(base_name)}")
    if cls is not None and tag in (TAG.Object, TAG.Dataclass) and base is not _builtin_base(cls):
        expected = _builtin_base(cls)
        raise TypeError(f"class {name!r} derives from {'no built-in type' if expected is None else expected.__name__}; "
                        f"the node gives {'none' if base is None else base.__name__}")
    if tag == TAG.Enum:
        return fields.get("value") if cls is None else _enum_member(cls, name, fields)
    if tag == TAG.NamedTuple:
        # The core's reader checked that 'fields' names the 'items', each once (TreeReader::checked_items).
        items, field_names = fields["items"], fields["fields"]
        if cls is None:
            return NamedRecord(name, tuple(field_names), tuple(items))
        return tuple.__new__(cls, namedtuple_items(cls, name, field_names, items, _renames(cls), context))
    if tag == TAG.Ext:
        if cls is None:
            return Record(name, {"data": fields.get("data")}, kind=tag)
        return _BY_TYPE[cls].from_data(fields.get("data"))  # type: ignore[misc]  # node_kind checked it has one
    # What is left is a dataclass (its 'fields') or an object (its 'attrs', if any) over an optional built-in base.
    dataclass = tag == TAG.Dataclass
    attrs = _attribute_map(fields, "fields" if dataclass else "attrs")
    if cls is None:
        return Record(name, attrs, kind=tag) if base is None else _generic(base, name, fields.get("value"), attrs)
    values = dataclass_values(cls, name, attrs, _renames(cls), context) if dataclass else None
    obj = _new(cls, base, fields.get("value"))
    if values is not None:
        # A dataclass's declared fields, set as its own __init__ would (through their slots where it has them).
        for key, value in values.items():
            object.__setattr__(obj, key, value)
    elif "attrs" in fields:
        _restore_attrs(obj, slotted_attrs(cls, name, attrs, _renames(cls), context))
    return obj


def _generic(base: type, name: str, value: Any, attrs: Any) -> Any:
    cls = generic_subclass(base)
    obj = _new(cls, base, value)
    if GENERIC_TYPE in attrs:
        # The stand-in's own attribute: a file setting it would make the object claim (and save again as) a class
        # other than the one its node names.
        raise TypeError(f"field 'attrs' holds {GENERIC_TYPE!r}, which a stand-in keeps its class's name in")
    obj.__dict__.update(attrs)
    obj.__dict__[GENERIC_TYPE] = name
    return obj

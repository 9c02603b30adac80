"""Classes that changed after a file was saved: the fields a load rebuilds a dataclass, named tuple or slotted
registered class from, once fields were renamed, added (with a default) or removed (dropped with a warning)."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any

from ._errors import InvalidFileError, SafestructuresWarning, shown

__all__ = ["WHERE_BASE", "dataclass_values", "declared_slots", "namedtuple_items", "slotted_attrs"]

_MISSING: Any = dataclasses.MISSING

# The objects a load warns about dropping fields from, at most; the count is kept in the load's context under
# _WARNED. Python keeps each distinct warning text for the life of the process (in the warning module's
# __warningregistry__), and the paths a file holds make each text distinct.
_MAX_WARNINGS = 20
_WARNED = "dropped_fields_warned"
#: The context's function giving the path of the node a load starts from, where that is not the root (a lazy node's
#: load): the loader's "where" gives paths from that node (``$[0]``), which the warnings name after it
#: (``$["model"]["layers"][0]``). A function, since most loads never warn and never need the path's text.
WHERE_BASE = "where_base"


def _where(context: Mapping[str, Any]) -> str:
    """The path of the node being built, when the loader gives it (``context["where"]``, after ``WHERE_BASE``), else
    ''."""
    where = context.get("where")
    if callable(where):
        try:
            text, base = where(), context.get(WHERE_BASE)
            return f"at {base() + text[1:] if callable(base) else text}: "
        except Exception:  # a path is a courtesy: never a reason for the load to fail
            return ""
    return ""


def _renamed(values: dict[str, Any], renamed: Mapping[str, str]) -> dict[str, Any]:
    """The file's fields under their new names. An old name is kept when the new one is in the file too, or was taken
    by another old name of the same field before it (``renamed={"lr": "rate", "alpha": "rate"}`` and a file holding
    both): the field is filled once, and what is left is dropped with a warning as any field the class lacks."""
    if not renamed:
        return values
    out: dict[str, Any] = {}
    for key, value in values.items():
        new = renamed.get(key)
        out[new if new is not None and new not in values and new not in out else key] = value
    return out


def _drop(name: str, values: dict[str, Any], declared: set[str], context: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` without the fields ``declared`` lacks: a SafestructuresWarning names them (an error with strict)."""
    extra = [key for key in values if key not in declared]
    if not extra:
        return values
    # Names as messages show a file's values: escaped, each cut (a file's names have no length limit).
    listed = ", ".join(shown(key) for key in extra[:20]) + (f" and {len(extra) - 20} more" if len(extra) > 20 else "")
    what = f"class {name!r} no longer declares field{'s' if len(extra) > 1 else ''} {listed}, which the file has"
    if context.get("strict"):
        raise InvalidFileError(f"{what} (strict=True refuses to drop them)", code="SchemaInvalid")
    warned = context.get(_WARNED, 0)
    if warned < _MAX_WARNINGS:
        last = "; this load warns of no more objects that drop fields" if warned == _MAX_WARNINGS - 1 else ""
        warnings.warn(f"{_where(context)}{what}: dropped{last}", SafestructuresWarning, stacklevel=2)
    if isinstance(context, dict):
        context[_WARNED] = warned + 1
    return {key: value for key, value in values.items() if key in declared}


def _missing(name: str, field: str) -> InvalidFileError:
    return InvalidFileError(f"class {name!r} needs field {field!r}, which the file lacks and which has no default",
                            code="SchemaInvalid")


def dataclass_values(cls: type, name: str, values: dict[str, Any], renamed: Mapping[str, str],
                     context: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes to set on a new instance of dataclass ``cls``: the file's fields renamed, those the class no
    longer declares dropped, those it lacks taken from the field's default or default_factory. A field passed to
    ``__init__`` with no default that the file lacks raises; one with ``init=False`` and no default stays unset (as it
    may have been when saved). ``values`` maps str to values (``_registry._attribute_map`` checked it)."""
    fields = dataclasses.fields(cls)
    values = dict(_renamed(values, renamed))
    for f in fields:  # a field missing is an error, reported before any field dropped
        if f.name not in values and f.default is _MISSING and f.default_factory is _MISSING and f.init:
            raise _missing(name, f.name)
    values = _drop(name, values, {f.name for f in fields}, context)
    for f in fields:
        if f.name in values:
            continue
        if f.default is not _MISSING:
            values[f.name] = f.default
        elif f.default_factory is not _MISSING:
            values[f.name] = f.default_factory()
    return values


def namedtuple_items(cls: Any, name: str, field_names: list[str], items: list[Any], renamed: Mapping[str, str],
                     context: Mapping[str, Any]) -> list[Any]:
    """The items of named tuple ``cls`` from the file's fields and items (as many distinct names, as the core's reader
    checked), matched by name (renamed, dropped and defaulted as for a dataclass)."""
    if field_names == list(cls._fields):
        return items
    values = _renamed(dict(zip(field_names, items)), renamed)
    declared = list(cls._fields)
    defaults = getattr(cls, "_field_defaults", {})
    for field in declared:
        if field not in values and field not in defaults:
            raise _missing(name, field)
    values = _drop(name, values, set(declared), context)
    return [values[field] if field in values else defaults[field] for field in declared]


def declared_slots(cls: type) -> tuple[list[str], bool]:
    """The attribute names the ``__slots__`` of a class and its bases declare, in MRO order (less ``__dict__`` and
    ``__weakref__``), and whether its instances have a ``__dict__`` too (a base without ``__slots__`` gives one). A
    private slot is named as its attribute is: ``__x`` declared by class ``C`` is ``_C__x``."""
    names: list[str] = []
    has_dict = False
    for klass in cls.__mro__[:-1]:  # object, last, has neither
        slots = klass.__dict__.get("__slots__")
        slots = () if slots is None else (slots,) if isinstance(slots, str) else tuple(slots)
        has_dict = has_dict or "__slots__" not in klass.__dict__ or "__dict__" in slots
        names += [n for n in (_mangled(klass, s) for s in slots if s not in ("__dict__", "__weakref__")) if n not in names]
    return names, has_dict


def _mangled(klass: type, name: str) -> str:
    """The attribute a slot ``name`` declared by ``klass`` is, as Python mangles private names."""
    owner = klass.__name__.lstrip("_")
    if name.startswith("__") and not name.endswith("__") and owner:
        return f"_{owner}{name}"
    return name


def slotted_attrs(cls: type, name: str, attrs: dict[str, Any], renamed: Mapping[str, str],
                  context: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes (str to values) to restore on a registered class: renamed, and for a class with ``__slots__``
    only (whose declared fields are its slots), those it no longer declares dropped."""
    attrs = _renamed(attrs, renamed)
    declared, has_dict = declared_slots(cls)
    return attrs if has_dict else _drop(name, attrs, set(declared), context)

"""What a class comes back as when the loader may not resolve its name: generic records holding the same data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["GENERIC_TYPE", "NamedRecord", "Record", "generic_subclass", "is_generic_subclass"]

#: The attribute a stand-in for a subclass of a built-in type keeps the saved class's name in.
GENERIC_TYPE = "__safestructures_type__"


class Record:
    """An object of a class the load was not allowed to rebuild (a dataclass, a registered type): its type name
    and its fields. Fields are read as attributes (``r.x``) or items (``r["x"]``).

    A record saves back as the node it was loaded from (``kind``), so that a file loaded without its classes and saved
    again still loads with them: an object's attributes, a class's ``to_data`` value (field ``data``), a plugin's
    value, extra fields and tensors (fields ``value``, its extras, ``tensors``). A record made by hand (``kind`` None)
    saves as a dataclass's fields."""

    __slots__ = ("_type", "_fields", "_kind")

    def __init__(self, type_name: str, fields: dict[str, Any], *, kind: str | None = None) -> None:
        object.__setattr__(self, "_type", type_name)
        object.__setattr__(self, "_fields", dict(fields))
        object.__setattr__(self, "_kind", kind)

    @property
    def type_name(self) -> str:
        """The saved class's name, ``module.QualName``."""
        return self._type

    @property
    def kind(self) -> str | None:
        """The tag of the node the record was loaded from, which a save writes again; None for a record made by hand
        (saved as a dataclass)."""
        return self._kind

    def __getattr__(self, name: str) -> Any:
        if name in Record.__slots__:  # not set yet (an instance made without __init__): no field lookup, no recursion
            raise AttributeError(name)
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(f"record of {self._type} has no field {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._fields[name] = value

    def __getitem__(self, name: str) -> Any:
        return self._fields[name]

    def __contains__(self, name: object) -> bool:
        return name in self._fields

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def keys(self) -> Any:
        return self._fields.keys()

    def items(self) -> Any:
        return self._fields.items()

    def asdict(self) -> dict[str, Any]:
        """The fields, as a new dict."""
        return dict(self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return self._type == other._type and self._fields == other._fields

    __hash__ = None  # type: ignore[assignment]

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._fields))

    def __reduce__(self) -> Any:
        # copy, deepcopy and pickle rebuild it through __init__ (their default sets the slots through __setattr__,
        # which stores fields).
        return (_record, (self._type, self._fields, self._kind))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._fields.items())
        return f"Record({self._type!r}{', ' if inner else ''}{inner})"


def _record(type_name: str, fields: dict[str, Any], kind: str | None) -> Record:
    """A record rebuilt by copy or pickle."""
    return Record(type_name, fields, kind=kind)


class NamedRecord(tuple):  # type: ignore[type-arg]
    """A named tuple of a class the load was not allowed to rebuild: a tuple whose items are also attributes."""

    _type: str
    _fields: tuple[str, ...]

    def __new__(cls, type_name: str, fields: tuple[str, ...], values: tuple[Any, ...]) -> NamedRecord:
        self = super().__new__(cls, values)
        self._type = type_name
        self._fields = tuple(fields)
        return self

    @property
    def type_name(self) -> str:
        """The saved class's name, ``module.QualName``."""
        return self._type

    def __getattr__(self, name: str) -> Any:
        try:
            return self[self._fields.index(name)]
        except ValueError:
            raise AttributeError(f"named tuple {self._type} has no field {name!r}") from None

    def _asdict(self) -> dict[str, Any]:
        return dict(zip(self._fields, self))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in zip(self._fields, self))
        return f"{self._type.rpartition('.')[2]}({inner})"

    def __reduce__(self) -> Any:
        return (NamedRecord, (self._type, self._fields, tuple(self)))


_GENERIC: dict[type, type] = {}


def generic_subclass(base: type) -> type:
    """A subclass of a built-in type standing for a subclass the load may not rebuild; its instances carry the
    saved class's name in ``type_name`` and its attributes as their own."""
    cls = _GENERIC.get(base)
    if cls is None:

        def type_name(self: Any) -> str:
            """The saved class's name, ``module.QualName``."""
            return self.__dict__.get(GENERIC_TYPE, "?")

        cls = type(f"Generic{base.__name__[0].upper()}{base.__name__[1:]}", (base,), {"type_name": property(type_name), "__module__": __name__})
        _GENERIC[base] = cls
    return cls


def is_generic_subclass(cls: type) -> bool:
    """Whether `cls` is one of the stand-in subclasses :func:`generic_subclass` made."""
    return cls in _GENERIC.values()

"""The Python types saved without a container walk: how each is classified, reduced to fields, and rebuilt.

The C++ walker handles the built-in containers itself; for any other type it asks :func:`classify` once, then for
"reduce" types saves the ``(tag, fields)`` that :func:`reduce` returns and, on load, calls ``CONSTRUCT[tag](fields)``.
Loading only ever calls the functions in :data:`CONSTRUCT`: a file cannot name anything else.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import functools
import pathlib
import sys
import uuid
from collections.abc import Callable
from typing import Any

from . import _registry, plugins
from ._errors import UnknownTypeError
from ._format import FIELD, TAG, TORCH_VALUE_TAGS
from ._records import Record

__all__ = ["CONSTRUCT", "FACTORIES", "classify", "factory_name", "reduce"]

# The save walk's routes; the numbers are SaveRoute's in src/bindings/hooks.hpp.
UNSUPPORTED, TENSOR, REDUCE, ORDEREDDICT, DEFAULTDICT, DEQUE, COUNTER = range(7)

_PATHS: dict[str, type[pathlib.PurePath]] = {
    cls.__name__: cls for cls in (pathlib.PurePosixPath, pathlib.PureWindowsPath, pathlib.PosixPath, pathlib.WindowsPath)
}


def _clock_fields(value: datetime.datetime | datetime.time) -> dict[str, Any]:
    fields: dict[str, Any] = {"iso": value.replace(tzinfo=None, fold=0).isoformat()}
    if value.tzinfo is not None:
        fields["tz"] = value.tzinfo
    if value.fold:
        fields["fold"] = 1
    return fields


_REDUCERS: dict[type, Callable[[Any], tuple[str, dict[str, Any]]]] = {
    complex: lambda z: (TAG.Complex, {"re": z.real, "im": z.imag}),
    range: lambda r: (TAG.Range, _range_fields(r.start, r.stop, r.step)),
    slice: lambda s: (TAG.Slice, {"start": s.start, "stop": s.stop, "step": s.step}),
    type(Ellipsis): lambda _: (TAG.Ellipsis, {}),
    datetime.datetime: lambda d: (TAG.Datetime, _clock_fields(d)),
    datetime.date: lambda d: (TAG.Date, {"iso": d.isoformat()}),
    datetime.time: lambda t: (TAG.Time, _clock_fields(t)),
    datetime.timedelta: lambda t: (TAG.Timedelta, {"days": t.days, "seconds": t.seconds, "microseconds": t.microseconds}),
    # __getinitargs__ tells an explicitly named timezone from one whose name is derived from its offset.
    datetime.timezone: lambda tz: (TAG.Timezone, dict(zip((FIELD.offset, FIELD.name), tz.__getinitargs__()))),
    decimal.Decimal: lambda d: (TAG.Decimal, {"v": str(d)}),
    fractions.Fraction: lambda f: (TAG.Fraction, {"n": f.numerator, "d": f.denominator}),
    uuid.UUID: lambda u: (TAG.Uuid, {"hex": u.hex}),
    **{cls: (lambda p: (TAG.Path, {"kind": type(p).__name__, "v": str(p)})) for cls in _PATHS.values()},
}


_CONTAINER_ROUTES = {collections.OrderedDict: ORDEREDDICT, collections.defaultdict: DEFAULTDICT, collections.deque: DEQUE,
                     collections.Counter: COUNTER}


@functools.cache
def classify(cls: type) -> int:
    """How the walker saves instances of exactly `cls` (subclasses are not assumed to behave like their base)."""
    if cls in _CONTAINER_ROUTES:
        return _CONTAINER_ROUTES[cls]
    from .frameworks import framework_of

    # Everything else goes to reduce(), which knows the per-call plugins and the registry, and raises TypeError
    # (naming the type, at its path) for what it cannot store.
    return TENSOR if framework_of(cls) is not None else REDUCE


def reduce(obj: Any, context: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The (tag, fields) that stand for `obj` in the schema; fields are saved like any other data. TypeError when
    nothing can store it."""
    cls = type(obj)
    reducer = _REDUCERS.get(cls)
    if reducer is not None:
        return reducer(obj)
    plugin = context.get("plugins", {}).get(cls)
    if plugin is not None:
        return plugins.reduce_with(plugin, obj)
    if cls is plugins.NestedMark:
        return TAG.Nested, {"v": obj.value}
    zoneinfo = sys.modules.get("zoneinfo")
    if zoneinfo is not None and cls is zoneinfo.ZoneInfo:
        if obj.key is None:
            raise TypeError("a ZoneInfo made from a file object has no key to store")
        return TAG.ZoneInfo, {"key": obj.key}
    top = cls.__module__.split(".", 1)[0]
    if top == "torch" and cls.__name__ in ("dtype", "device", "Size"):
        from .frameworks import torch as torch_adapter

        return torch_adapter.reduce_value(obj)
    numpy = sys.modules.get("numpy")
    if numpy is not None and issubclass(cls, numpy.generic):  # its type, not what a __class__ property claims
        from .frameworks import numpy as np_adapter

        return TAG.NumpyScalar, np_adapter.scalar_fields(obj)
    reduced = _registry.reduce_object(obj)
    if reduced is None:
        raise TypeError(
            f"objects of class {_registry.type_name(cls)} are not stored: register the class with "
            "safestructures.register (with to_data/from_data, or to save its attributes), or pass a plugin"
        )
    return reduced


def _clock(cls: type[datetime.datetime] | type[datetime.time]) -> Callable[[dict[str, Any]], Any]:
    """The constructor of a datetime or a time from the fields _clock_fields gave it."""

    def build(fields: dict[str, Any]) -> Any:
        value = cls.fromisoformat(_registry.text_field(fields, "iso"))
        if value.tzinfo is not None:
            # The zone is the field 'tz' alone (_clock_fields writes the time without it): an offset in the text would
            # be dropped for it, while a reader of the text (fromisoformat) gets the time in that offset.
            raise ValueError(f"field 'iso' holds a UTC offset ({value.tzinfo}): a {cls.__name__}'s zone is its field 'tz'")
        return value.replace(tzinfo=_tz(fields), fold=_fold(fields))

    return build


def _number(fields: dict[str, Any], key: str, cls: type[int] | type[float]) -> Any:
    value = fields[key]
    if type(value) is not cls:
        raise TypeError(f"field {key!r} must be {'an' if cls is int else 'a'} {cls.__name__}, not {type(value).__name__}")
    return value


def _tz(fields: dict[str, Any]) -> datetime.tzinfo | None:
    tz = fields.get("tz")
    if tz is not None and not isinstance(tz, datetime.tzinfo):
        raise TypeError("field 'tz' must be a time zone")
    return tz


def _fold(fields: dict[str, Any]) -> int:
    fold = fields.get("fold", 0)
    if fold not in (0, 1) or type(fold) is not int:
        raise ValueError("field 'fold' must be 0 or 1")
    return fold


# Ints past this many bits are not given to Python's quadratic arithmetic (a gcd, a long division) with another as large.
_QUADRATIC_BITS = 4096


def _range_fields(start: int, stop: int, step: int) -> dict[str, int]:
    """A range's fields; ValueError for one that no load may build, refused at save too (which would write a file no
    load takes). range() computes a length at once, ``(stop - start) // step``: a long division costing the product of
    the sizes of the step and of the length (a range of two megabyte ints took minutes). One of them stays within
    _QUADRATIC_BITS, which keeps the division linear in the size of the other."""
    span = stop - start
    if step != 0 and span != 0 and (span > 0) == (step > 0):  # an empty range's length is 0, found without dividing
        step_bits, span_bits = step.bit_length(), span.bit_length()
        if min(step_bits, span_bits - step_bits) > _QUADRATIC_BITS:
            raise ValueError(f"a range whose step ({step_bits:,} bits) and length (about {span_bits - step_bits:,} bits) "
                             f"both exceed {_QUADRATIC_BITS:,} bits: computing its length costs the product of their sizes")
    return {"start": start, "stop": stop, "step": step}


def _fraction(numerator: int, denominator: int) -> fractions.Fraction:
    """A Fraction from its saved parts. Fraction() reduces them with a gcd that costs the square of their size
    (minutes for megabyte parts), so large parts are taken as saved: a saved Fraction is already in lowest terms."""
    if denominator <= 0:
        raise ValueError("a Fraction's denominator must be positive")
    if max(numerator.bit_length(), denominator.bit_length()) <= _QUADRATIC_BITS:
        return fractions.Fraction(numerator, denominator)
    value = object.__new__(fractions.Fraction)
    value._numerator = numerator  # type: ignore[attr-defined]
    value._denominator = denominator  # type: ignore[attr-defined]
    return value


def _timezone(fields: dict[str, Any]) -> datetime.timezone:
    offset = fields[FIELD.offset]
    if type(offset) is not datetime.timedelta:
        raise TypeError("field 'offset' must be a timedelta")
    if FIELD.name in fields:
        return datetime.timezone(offset, _registry.text_field(fields, FIELD.name))
    return datetime.timezone(offset)


def _zoneinfo(fields: dict[str, Any]) -> Any:
    import zoneinfo

    return zoneinfo.ZoneInfo(_registry.text_field(fields, "key"))


def _path(fields: dict[str, Any]) -> pathlib.PurePath:
    kind = _registry.text_field(fields, "kind")
    cls = _PATHS.get(kind)
    if cls is None:
        raise ValueError(f"unknown path kind {kind!r}")
    # A concrete path of the other platform cannot be instantiated here; its pure form holds the same value.
    if cls is pathlib.WindowsPath and sys.platform != "win32":
        cls = pathlib.PureWindowsPath
    elif cls is pathlib.PosixPath and sys.platform == "win32":
        cls = pathlib.PurePosixPath
    return cls(_registry.text_field(fields, "v"))


def _npscalar(fields: dict[str, Any]) -> Any:
    from .frameworks import numpy as np_adapter

    return np_adapter.scalar_from_fields(fields)


def _torch_value(tag: str, fields: dict[str, Any], context: dict[str, Any]) -> Any:
    # As for tensors, a file never makes a load import torch: without it, the value comes back as a record.
    if "torch" not in sys.modules and context.get("framework") != "torch":
        if context.get("strict"):
            raise UnknownTypeError(f"the file holds a {tag}, and torch is not imported (import torch first, or load "
                                   "with framework='torch')")
        return Record(tag, dict(fields), kind=tag)
    from .frameworks import require

    return require("torch").construct_value(tag, fields)


#: Everything a file can ask to be built, by tag.
_PLAIN: dict[str, Callable[[dict[str, Any]], Any]] = {
    TAG.Complex: lambda f: complex(_number(f, "re", float), _number(f, "im", float)),
    TAG.Range: lambda f: range(*_range_fields(*(_number(f, key, int) for key in ("start", "stop", "step"))).values()),
    TAG.Slice: lambda f: slice(f["start"], f["stop"], f["step"]),
    TAG.Ellipsis: lambda f: ...,
    TAG.Datetime: _clock(datetime.datetime),
    TAG.Date: lambda f: datetime.date.fromisoformat(_registry.text_field(f, "iso")),
    TAG.Time: _clock(datetime.time),
    TAG.Timedelta: lambda f: datetime.timedelta(
        days=_number(f, "days", int), seconds=_number(f, "seconds", int), microseconds=_number(f, "microseconds", int)
    ),
    TAG.Timezone: _timezone,
    TAG.ZoneInfo: _zoneinfo,
    TAG.Decimal: lambda f: decimal.Decimal(_registry.text_field(f, "v")),
    TAG.Fraction: lambda f: _fraction(_number(f, "n", int), _number(f, "d", int)),
    TAG.Uuid: lambda f: uuid.UUID(hex=_registry.text_field(f, "hex")),
    TAG.Path: _path,
    TAG.NumpyScalar: _npscalar,
}


def _plugin(fields: dict[str, Any], context: dict[str, Any]) -> Any:
    # A str, as every user type's name: a plugin node without one is no record of a class "None" (which type_names()
    # and the node's type_name, reading the names the file holds, would not show).
    name = _registry.text_field(fields, FIELD.type)
    plugin = context.get("plugins", {}).get(name)
    if plugin is None:
        if context.get("strict"):
            raise UnknownTypeError(f"the file names plugin type {name!r}, and no plugin passed to this load handles it")
        return plugins.record_of(name, fields)
    return plugins.construct_with(plugin, fields)


#: Everything a file can ask to be built, by tag, as ``CONSTRUCT[tag](fields, context)``.
CONSTRUCT: dict[str, Callable[[dict[str, Any], dict[str, Any]], Any]] = {
    **{tag: (lambda build: lambda fields, context: build(fields))(build) for tag, build in _PLAIN.items()},
    **{tag: functools.partial(_registry.construct_object, tag)
       for tag in (TAG.Dataclass, TAG.NamedTuple, TAG.Enum, TAG.Object, TAG.Ext)},
    **{tag: functools.partial(_torch_value, tag) for tag in TORCH_VALUE_TAGS},
    TAG.Plugin: _plugin,
    TAG.Nested: lambda fields, context: plugins.Nested(fields.get("v")),
}


#: defaultdict factories a file may name: built-in types only.
FACTORIES: dict[str, Any] = {
    cls.__name__: cls
    for cls in (list, dict, set, frozenset, tuple, int, float, complex, str, bytes, bytearray, bool,
                collections.OrderedDict, collections.Counter, collections.deque)
}


def factory_name(factory: Any) -> str | None:
    """The name under which a defaultdict's default_factory is stored; TypeError when it is not storable."""
    name = next((name for name, candidate in FACTORIES.items() if factory is candidate), None)
    if name is None and factory is not None:
        raise TypeError(f"defaultdict default_factory {factory!r} is not one of the storable built-ins "
                        f"({', '.join(FACTORIES)}); a file must not name code to call")
    return name

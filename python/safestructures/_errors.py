"""The exception classes of safestructures; the C++ extension raises these too."""

from __future__ import annotations

import json
import reprlib
from typing import Any

__all__ = [
    "FrameworkNotAvailableError",
    "UnknownTypeError",
    "SafestructuresError",
    "InvalidFileError",
    "InvalidArgumentError",
    "UnsupportedTypeError",
    "shown",
]


class SafestructuresError(Exception):
    """Base class of every error safestructures raises on purpose.

    ``code`` names the core's error code (for example ``"SizeMismatch"``) when the error comes from the C++ core,
    and is ``None`` otherwise.
    """

    code: str | None = None

    def __init__(self, *args: object, code: str | None = None) -> None:
        super().__init__(*args)
        self.code = code


class InvalidFileError(SafestructuresError, ValueError):
    """The file (or buffer) is not a valid safetensors file; the message says what is wrong and where."""


class InvalidArgumentError(SafestructuresError, ValueError):
    """What was asked to be written cannot be written: a reserved or invalid name, bad metadata, a bad shape."""


class UnsupportedTypeError(SafestructuresError, TypeError):
    """An object (or an array's dtype) that safestructures cannot store; the message names it and where it was."""


class UnknownTypeError(SafestructuresError, LookupError):
    """With ``strict=True``: a file names a class that the load was not given (``register`` it, or pass it in
    ``types=``); the message names the class and where it is in the data."""


class FrameworkNotAvailableError(SafestructuresError, ImportError):
    """Tensors were asked for in a framework that is not installed."""


def quote(name: str) -> str:
    """A tensor name or key quoted for a message, the way the C++ core quotes it (JSON, control characters escaped)."""
    return json.dumps(name, ensure_ascii=False)


class _BoundedRepr(reprlib.Repr):
    """reprlib's bounds (a few levels, a few items each, long texts cut), for values read from a file: the work is
    bounded too, however much shared structure the value holds, and nothing raises."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxtuple = self.maxlist = self.maxarray = self.maxdict = self.maxset = self.maxfrozenset = self.maxdeque = 6
        self.maxstring = 80
        self.maxlong = 60
        self.maxother = 80

    def repr_int(self, x: int, level: int) -> str:
        # repr() of an int past Python's digit limit raises; one that long is shown by its size.
        if x.bit_length() > 4096:
            return f"<int of {x.bit_length():,} bits>"
        return super().repr_int(x, level)

    def repr_instance(self, x: Any, level: int) -> str:
        from ._records import NamedRecord, Record

        # A record's own repr walks all its fields; shown here through the bounds like any container.
        if isinstance(x, Record):
            return f"{x.type_name}({self.repr1(x.asdict(), level - 1)})" if level > 0 else f"{x.type_name}(...)"
        if isinstance(x, NamedRecord):
            return f"{x.type_name}{self.repr1(tuple(x), level)}"
        try:
            text = repr(x)
        except Exception:  # a value a crafted file built that cannot describe itself
            return f"<{type(x).__name__} object>"
        return text if len(text) <= self.maxother else text[: self.maxother - 3] + "..."


_BOUNDED = _BoundedRepr()


def shown(value: Any) -> str:
    """A value read from a file, as a message shows it: its repr, bounded in length and in the work it takes (a few
    levels and items of any container, however much shared structure is under them), never raising."""
    try:
        return _BOUNDED.repr(value)
    except Exception:
        return f"<{type(value).__name__} object>"


for _cls in (SafestructuresError, InvalidFileError, InvalidArgumentError, UnsupportedTypeError, UnknownTypeError, FrameworkNotAvailableError):
    _cls.__module__ = "safestructures"
del _cls

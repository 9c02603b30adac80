"""The exception classes of safestructures; the C++ extension raises these too."""

from __future__ import annotations

import collections
import dataclasses
import fractions
import reprlib
from typing import Any

from . import _core
from ._records import NamedRecord, Record

__all__ = [
    "FrameworkNotAvailableError",
    "UnknownTypeError",
    "SafestructuresError",
    "InvalidFileError",
    "InvalidArgumentError",
    "UnsupportedTypeError",
    "SafestructuresWarning",
    "raise_reading",
    "reading",
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


class IntegrityError(InvalidFileError):
    """The bytes of a tensor, or the structure, do not match the checksum saved with them (a flipped bit on a disk, a
    truncated copy): the message names the tensor (and its path in the data), or says "the structure". Raised by
    loads with ``verify=True``; ``code`` is ``"ChecksumMismatch"``, or ``"ChecksumsInvalid"`` for a malformed
    checksums entry."""


class InvalidArgumentError(SafestructuresError, ValueError):
    """What was asked to be written cannot be written: a reserved or invalid name, bad metadata, a bad shape."""


class UnsupportedTypeError(SafestructuresError, TypeError):
    """An object (or an array's dtype) that safestructures cannot store; the message names it and where it was."""


class UnknownTypeError(SafestructuresError, LookupError):
    """With ``strict=True``: a file names a class that the load was not given (``register`` it, or pass it in
    ``types=``); the message names the class and where it is in the data."""


class SafestructuresWarning(UserWarning):
    """Something a load did that the caller may want to know about, though the data loaded: a field the file has and
    the class no longer declares, dropped (the message names the class, the fields and where). ``strict=True`` makes
    it an error."""


class FrameworkNotAvailableError(SafestructuresError, ImportError):
    """Tensors were asked for in a framework that is not installed."""


def quote(name: str) -> str:
    """A tensor name or key quoted for a message, the way the C++ core quotes it: JSON-escaped, terminal controls and
    invisible or reordering characters escaped, cut past 200 bytes (``_core.quote_name``)."""
    return _core.quote_name(name)


def _a(noun: str) -> str:
    """``noun`` with its indefinite article (an int, a dict), as messages write a kind."""
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def _count(n: int, noun: str) -> str:
    """``n`` of ``noun``, as messages count (1 item, 1,024 items)."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


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
        # A record's own repr walks all its fields; shown here through the bounds like any container.
        if isinstance(x, Record):
            return f"{x.type_name}({self.repr1(x.asdict(), level - 1)})" if level > 0 else f"{x.type_name}(...)"
        if isinstance(x, NamedRecord):
            return f"{x.type_name}{self.repr1(tuple(x), level)}"
        # Instances whose own repr shows everything they hold: subclasses of the built-in containers, slices and
        # dataclasses, shown through the same bounds.
        for base in (dict, list, tuple, set, frozenset, collections.deque):
            if isinstance(x, base):
                return f"{type(x).__name__}({getattr(self, 'repr_' + base.__name__)(x, level)})"
        if type(x) is slice:
            parts = (x.start, x.stop, x.step)
        elif type(x) is fractions.Fraction:
            parts = (x.numerator, x.denominator)
        elif dataclasses.is_dataclass(x) and not isinstance(x, type):
            parts = tuple(getattr(x, f.name, None) for f in dataclasses.fields(x))
        else:
            parts = None
        if parts is not None:
            shown_parts = ", ".join(self.repr1(p, level - 1) for p in parts) if level > 0 else "..."
            return f"{type(x).__name__}({shown_parts})"
        try:
            text = repr(x)
        except Exception:  # a value a crafted file built that cannot describe itself
            return f"<{type(x).__name__} object>"
        return text if len(text) <= self.maxother else text[: self.maxother - 3] + "..."


_BOUNDED = _BoundedRepr()


# Types whose repr is short and cannot fail, whatever a file puts in them: shown without reprlib's dispatch.
_SHORT_REPR = {type(None), bool, float, complex, type(Ellipsis)}


def shown(value: Any) -> str:
    """A value read from a file, as a message shows it: its repr, bounded in length and in the work it takes (a few
    levels and items of any container, however much shared structure is under them), never raising."""
    if type(value) in _SHORT_REPR:
        return repr(value)
    try:
        return _BOUNDED.repr(value)
    except Exception:
        return f"<{type(value).__name__} object>"


def raise_reading(where: str, e: BaseException) -> None:
    """What reading a file (``where`` names it) may raise: safestructures errors and OSError pass (this returns), and
    so does what is not an Exception (KeyboardInterrupt); whatever else a crafted file makes Python or a framework
    raise (a RecursionError, a MemoryError, a framework's own error) is raised here as an InvalidFileError saying so.
    Called in an ``except`` block (which then re-raises what passes) where a ``with reading(...)`` would cost a tiny
    load a twentieth of its time."""
    if not isinstance(e, Exception) or isinstance(e, (SafestructuresError, OSError)):
        return
    if isinstance(e, RecursionError):
        raise InvalidFileError(f"{where}: the data nests deeper than Python's recursion limit allows here",
                               code="NestingTooDeep") from None
    if isinstance(e, MemoryError):
        raise InvalidFileError(f"{where}: loading it needs more memory than is available", code="LimitExceeded") from None
    text = str(e)
    text = text if len(text) <= 1000 else text[:1000] + "..."
    raise InvalidFileError(f"{where}: {type(e).__name__}: {text}", code="SchemaInvalid") from e


class reading:  # noqa: N801 (used as a function: ``with reading(where):``)
    """Reading a file (``where`` names it) raises safestructures errors and OSError only: anything else becomes an
    InvalidFileError saying so (see :func:`raise_reading`). Arguments are checked before, so that a caller's mistake
    keeps its own type.

    A class rather than a generator context manager: this costs a fifth of what contextlib's generator does."""

    __slots__ = ("where",)

    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, cls: type[BaseException] | None, e: BaseException | None, _traceback: Any) -> bool:
        if e is not None:
            raise_reading(self.where, e)
        return False  # no error, or one that passes as it is

for _cls in (SafestructuresError, InvalidFileError, InvalidArgumentError, UnsupportedTypeError, UnknownTypeError, FrameworkNotAvailableError,
             SafestructuresWarning):
    _cls.__module__ = "safestructures"
del _cls

"""The exception classes of safestructures; the C++ extension raises these too."""

from __future__ import annotations

import json

__all__ = [
    "FrameworkNotAvailableError",
    "UnknownTypeError",
    "SafestructuresError",
    "InvalidFileError",
    "InvalidArgumentError",
    "UnsupportedTypeError",
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


for _cls in (SafestructuresError, InvalidFileError, InvalidArgumentError, UnsupportedTypeError, UnknownTypeError, FrameworkNotAvailableError):
    _cls.__module__ = "safestructures"
del _cls

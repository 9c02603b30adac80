"""The limits every load works within, with their defaults: levels, schema nodes, header bytes, and the bytes a load
may allocate beyond the file's own (copies and materialised views)."""

from __future__ import annotations

from . import _core
from ._errors import InvalidFileError

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_HEADER_SIZE",
    "DEFAULT_MAX_NODES",
    "ByteBudget",
    "default_max_bytes",
]

#: Levels of nesting allowed by default, on save and on load (safestructures 1.0.0 failed near 250).
DEFAULT_MAX_DEPTH: int = _core.DEFAULT_MAX_DEPTH
#: Schema nodes a file may hold by default; a 100 MB header cannot hold more than about 50 million.
DEFAULT_MAX_NODES: int = _core.DEFAULT_MAX_NODES
#: Header bytes a file may have by default (the safetensors limit).
DEFAULT_MAX_HEADER_SIZE: int = _core.DEFAULT_MAX_HEADER_SIZE
#: What every load may allocate beyond the file, whatever its size (a view of a few bytes may be expanded this far).
BASE_MAX_BYTES = 256 << 20


def default_max_bytes(file_size: int) -> int:
    """The default ``max_bytes`` of a load: four times the file's size (every tensor converted once, with room for
    unpacking sub-byte dtypes), plus 256 MiB."""
    return 4 * file_size + BASE_MAX_BYTES


class ByteBudget:
    """The bytes one load may still allocate for copies of tensor data (conversions, byte swaps, unpacking) and for
    views it materialises; each is charged before it is made."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def charge(self, nbytes: int, what: str) -> None:
        """Account for ``nbytes`` about to be allocated for ``what`` (a tensor's name, a view's shape); raises
        InvalidFileError (code ``LimitExceeded``) when the load would go past its limit."""
        if nbytes > self.limit - self.used:
            raise InvalidFileError(
                f"{what} needs {nbytes:,} bytes, which would take this load past its max_bytes limit of {self.limit:,} "
                f"({self.used:,} already used): pass a larger max_bytes= if the file is trusted",
                code="LimitExceeded",
            )
        self.used += nbytes

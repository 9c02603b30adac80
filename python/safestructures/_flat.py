"""Flat safetensors files: a {name: numpy array} dict and string metadata, written and read through the C++ core."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from . import _core
from ._errors import IntegrityError
from ._limits import DEFAULT_MAX_HEADER_SIZE
from ._progress import label, load_bar, reading_tensor, require, saving

__all__ = ["save_tensors", "load_tensors", "load_metadata"]


def _fspath(path: str | os.PathLike[str]) -> str:
    """The path as a str; the same errors Python's own open() gives for a path it cannot use."""
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError(f"path must be a str or os.PathLike[str], not {type(text).__name__}")
    if "\0" in text:
        raise ValueError("embedded null byte in path")
    return text


def _check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a mapping of str to str, got {type(metadata).__qualname__}")
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"metadata must map str to str; entry {key!r}: {value!r} does not")
    # A copy: the caller's mapping is never touched, whatever happens next.
    return dict(metadata)


def save_tensors(
    tensors: Mapping[str, Any],
    path: str | os.PathLike[str],
    metadata: Mapping[str, str] | None = None,
    *,
    fsync: bool = False,
    checksums: bool = True,
    progress: bool = False,
) -> None:
    """Write ``{name: numpy array}`` to ``path`` as a safetensors file that any safetensors reader loads.

    The layout is the reference writer's (tensors ordered by dtype then name, header padded to 8 bytes) with the
    metadata keys sorted, so the same input always gives the same bytes. Array bytes go to the file straight from
    the arrays' memory; non-contiguous, Fortran-order and big-endian arrays are written in C order, little-endian.
    The file is written beside ``path`` and renamed over it: a failed save leaves ``path`` as it was. With
    ``fsync=True`` the data is flushed to the disk before the rename. Each tensor's checksum (XXH3-64, computed as
    its bytes are written) goes into the metadata under ``__safestructures_checksums__``, which readers ignore and
    ``load_tensors(..., verify=True)`` and ``safestructures verify`` check; ``checksums=False`` writes the reference
    writer's bytes exactly. ``progress=True`` shows the bytes written on a progress bar (tqdm, the ``progress``
    extra), as :func:`save_file` does.

    Raises:
        UnsupportedTypeError: a value is not a numpy array, or its dtype has no safetensors dtype.
        InvalidArgumentError: a name is reserved (``__metadata__``), contains NUL or is not valid Unicode.
        TypeError: ``tensors`` is not a mapping with str keys, or ``metadata`` is not str -> str.
        OSError: the file cannot be written.
    """
    from .frameworks import numpy as np_adapter

    require(progress)
    if not isinstance(tensors, Mapping):
        raise TypeError(f"tensors must be a mapping of str to numpy arrays, got {type(tensors).__qualname__}")
    entries = []
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be str, got {name!r}")
        entries.append(np_adapter.to_entry(name, value))
    target, checked = _fspath(path), _check_metadata(metadata)
    from ._sharded import check_replaceable  # saves only: a load of this module does not import it

    check_replaceable(target)
    saving(progress, target, lambda report: _core.write_file(target, entries, checked, fsync, checksums, report))


def load_tensors(path: str | os.PathLike[str], *, verify: bool = False, progress: bool = False) -> dict[str, Any]:
    """Read every tensor of a safetensors file as numpy arrays, in the file's header order.

    The arrays are zero-copy views of a private (copy-on-write) mapping of the file: writable, and writing to them
    never changes the file. They keep the mapping alive. The header is fully validated first; a bad file raises
    :class:`InvalidFileError` naming what is wrong and which tensor. With ``verify=True``, every tensor is checked
    against the checksum saved with it first (:class:`IntegrityError` names the first that does not match; a file
    without checksums loads as it would without ``verify``). ``progress=True`` shows the tensors' bytes on a progress
    bar as they are read, as :func:`load_file` does.
    """
    from .frameworks import numpy as np_adapter

    target = _fspath(path)
    require(progress)
    with load_bar(progress, [target], label(target)):
        if verify:
            verify_file(target)
        buffer, _metadata, tensors = _core.read_file(target)
        loaded = {}
        for name, dtype, shape, offset, nbytes in tensors:
            loaded[name] = np_adapter.from_file(buffer, dtype, shape, offset, nbytes, name)
            reading_tensor(nbytes)
        return loaded


def verify_file(path: str, max_header_size: int = DEFAULT_MAX_HEADER_SIZE) -> None:
    """Check every tensor of the file at ``path``, and its header, against the checksums saved with them (a file
    without checksums passes).

    Raises:
        IntegrityError: the first tensor (or the structure) that does not match, named.
    """
    _has_checksums, mismatches, _digest = _core.verify_file(path, max_header_size)
    if mismatches:
        raise IntegrityError(f"{path}: {mismatches[0]}", code="ChecksumMismatch")


def load_metadata(path: str | os.PathLike[str]) -> dict[str, str] | None:
    """The ``__metadata__`` of a safetensors file (None when it has none), after validating the whole header."""
    _buffer, metadata, _tensors = _core.read_file(_fspath(path))
    return metadata

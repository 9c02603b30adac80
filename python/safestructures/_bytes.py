"""Nested data to and from the bytes of a file, through the C++ walkers; and the data of a file without a v2 schema
(a 1.0.0 file, or a plain safetensors file) from its tensor table, which loads from bytes and from files share."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from . import _core, _v1, frameworks, plugins as _plugins
from ._context import load_context
from ._errors import InvalidFileError, SafestructuresError, quote, reading
from ._flat import _check_metadata
from ._limits import DEFAULT_MAX_DEPTH, DEFAULT_MAX_HEADER_SIZE, DEFAULT_MAX_NODES
from ._source import V1, file_format

__all__ = ["load", "save", "unstructured"]


def save(
    data: Any,
    metadata: Mapping[str, str] | None = None,
    plugins: type | Iterable[type] | None = None,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> bytes:
    """Save nested data as the bytes of a safetensors file (what :func:`save_file` would write)."""
    context = {"plugins": _plugins.check_plugins(plugins)}
    return _core.save_bytes(data, _check_metadata(metadata), max_depth, DEFAULT_MAX_HEADER_SIZE, context)


def unstructured(
    buffer: Any, tensors: list[tuple[str, str, tuple[int, ...], int, int]], metadata: dict[str, str] | None,
    context: dict[str, Any], max_depth: int,
) -> Any:
    """A file without a v2 schema: a safestructures 1.0.0 file, or a plain safetensors file (a dict of tensors)."""
    table = {name: (dtype, shape, offset, nbytes) for name, dtype, shape, offset, nbytes in tensors}

    def make(name: str, framework: str) -> Any:
        try:
            return frameworks.make_tensor(buffer, *table[name], {"name": name, "fw": framework}, context)
        except SafestructuresError:
            raise
        except Exception as e:  # a framework's own error (JAX's for a dtype it lacks) names the tensor too
            raise InvalidFileError(f"tensor {quote(name)}: {type(e).__name__}: {e}") from e

    if file_format(False, metadata) == V1:
        return _v1.load_v1(metadata, table, make, context, max_depth)  # type: ignore[arg-type]
    return {name: make(name, "numpy") for name in table}


def load(
    data: bytes | bytearray | memoryview,
    framework: str | None = None,
    device: str = "cpu",
    plugins: type | Iterable[type] | None = None,
    *,
    types: Iterable[type] = (),
    strict: bool = False,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_nodes: int = DEFAULT_MAX_NODES,
    max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
    max_bytes: int | None = None,
) -> Any:
    """Load data from the bytes of a safetensors file, as :func:`load_file` does.

    numpy arrays are views of ``data`` itself (read-only when ``data`` is immutable, like ``bytes``); torch tensors
    are views of a writable ``data`` (a bytearray, or a memoryview of one) and hold its buffer, so that it cannot be
    resized or freed while they live; from ``bytes`` they are copies, charged to ``max_bytes``.
    """
    context = load_context(framework, device, plugins, types, strict, max_bytes, memoryview(data).nbytes)
    with reading("the buffer"):
        structured, payload, metadata = _core.load_bytes(data, max_depth, max_nodes, max_header_size, context)
        return payload if structured else unstructured(data, payload, metadata, context, max_depth)

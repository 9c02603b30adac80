"""A checkpoint's non-tensor values in the safestructures format, never pickle: a value is saved as the bytes of a
safestructures file; one that holds no tensor data is only a header, whose schema document is kept as JSON in the
index (readable there) and turned back into a file to load. Headers are written and read by the core."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .. import _core, _walkers
from .._errors import InvalidFileError
from .._format import INDEX_NAME, SCHEMA_KEY

__all__ = ["blob_of", "load_structure", "schema_of", "structure_document"]


def schema_of(blob: bytes) -> Any | None:
    """The schema document of a safestructures file holding no tensors, or None when it holds tensor data."""
    metadata, tensors = _core.read_bytes(blob)
    if tensors or metadata is None or set(metadata) != {SCHEMA_KEY}:
        return None
    return json.loads(metadata[SCHEMA_KEY])


def blob_of(document: Any) -> bytes:
    """The bytes of a safestructures file holding only the schema ``document`` (what :func:`schema_of` read)."""
    schema = json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return _core.write_bytes([], {SCHEMA_KEY: schema})


def structure_document(structure: dict[Any, Any]) -> Any:
    """The schema document of a checkpoint's structure (containers and None only, so its file has no tensor data)."""
    document = schema_of(_walkers.save(structure))
    if document is None:
        raise AssertionError("the structure of a checkpoint was saved with tensor data")
    return document


def load_structure(document: Any, types: Iterable[type], strict: bool) -> dict[Any, Any]:
    """The checkpoint's structure (dicts and lists with None leaves) from its schema document in the index."""
    if not isinstance(document, dict):
        raise InvalidFileError(f"{INDEX_NAME}: the checkpoint has no structure document")
    try:
        structure = _walkers.load(blob_of(document), types=types, strict=strict)
    except InvalidFileError as e:
        raise InvalidFileError(f"{INDEX_NAME}: the checkpoint's structure: {e}", code=e.code) from e
    if type(structure) is not dict:
        raise InvalidFileError(f"{INDEX_NAME}: the checkpoint's structure is a {type(structure).__name__}, not a dict")
    return structure

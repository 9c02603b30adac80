"""A distributed checkpoint's index (``model.safetensors.index.json``): DCP's metadata kept as JSON under
``metadata.safestructures_dcp`` beside the ``weight_map`` (what DCP's own storage keeps in a pickle), written from DCP's
metadata and read back into it. The checkpoint's structure, and each value that holds no tensor data, are kept there
as the schema document of their safestructures file (readable in the index), whose header the core writes and reads."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint.filesystem import CURRENT_DCP_VERSION as _DCP_VERSION
from torch.distributed.checkpoint.metadata import (BytesStorageMetadata, ChunkStorageMetadata, Metadata, MetadataIndex,
                                                   StorageMeta, TensorProperties, TensorStorageMetadata)

from .. import _core, _walkers
from .._errors import InvalidFileError, quote, shown
from .._format import DCP_KEY, INDEX_METADATA, INDEX_NAME, INDEX_WEIGHT_MAP, SCHEMA_KEY, TOTAL_SIZE_KEY
from .._limits import DEFAULT_MAX_HEADER_SIZE
from .._sharded import SHARD_FILE_NAME, index_document, read_index_file
from ..frameworks.torch import DTYPES_BY_NAME as TORCH_DTYPES

__all__ = ["blob_of", "index_text", "load_structure", "metadata_from_index", "read_index", "schema_of"]

_FORMAT = "safestructures-dcp"
_VERSION = 1


def index_text(metadata: Metadata, stored: dict[tuple[str, tuple[int, ...] | None], dict[str, Any]],
               storage_meta: StorageMeta | None) -> str:
    """The index of a checkpoint: DCP's ``metadata``, with where each item was ``stored`` (by fqn and chunk offsets:
    its file and tensor name, or its schema document, and its bytes)."""
    tensors: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for fqn, entry in metadata.state_dict_metadata.items():
        if isinstance(entry, BytesStorageMetadata):
            info = stored[(fqn, None)]
            values[fqn] = {"schema": info["schema"]} if "schema" in info else {"file": info["file"], "name": info["name"]}
        else:
            chunks = []
            for chunk in entry.chunks:
                info = stored[(fqn, tuple(chunk.offsets))]
                chunks.append({"offsets": list(chunk.offsets), "sizes": list(chunk.sizes), "file": info["file"], "name": info["name"]})
            tensors[fqn] = {
                "dtype": str(entry.properties.dtype).removeprefix("torch."),
                "size": list(entry.size),
                "requires_grad": bool(entry.properties.requires_grad),
                "chunks": chunks,
            }
    weight_map = {info["name"]: info["file"] for info in stored.values() if "file" in info}
    total_size = sum(info["nbytes"] for info in stored.values() if "file" in info)
    # DCP leaves these two to the writer, as its FileSystemWriter does.
    meta = metadata.storage_meta if metadata.storage_meta is not None else storage_meta
    version = metadata.version if metadata.version is not None else _DCP_VERSION
    description = {
        "format": _FORMAT,
        "version": _VERSION,
        "dcp_version": version,
        "storage_meta": None if meta is None else {
            "checkpoint_id": None if meta.checkpoint_id is None else str(meta.checkpoint_id),
            "save_id": meta.save_id,
            "modules": list(meta.modules),
        },
        "structure": structure_document(metadata.planner_data if metadata.planner_data is not None else {}),
        "tensors": tensors,
        "values": values,
    }
    index = {INDEX_METADATA: {TOTAL_SIZE_KEY: total_size, DCP_KEY: description}, INDEX_WEIGHT_MAP: dict(sorted(weight_map.items()))}
    return json.dumps(index, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def read_index(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed ``model.safetensors.index.json`` of the checkpoint directory ``path``, checked to be one that
    :class:`SafestructuresWriter` wrote (InvalidFileError otherwise)."""
    file = Path(path) / INDEX_NAME
    try:
        raw = read_index_file(str(file), DEFAULT_MAX_HEADER_SIZE)
    except FileNotFoundError as e:
        raise InvalidFileError(f"{file} is missing: {Path(path)} is not a checkpoint directory") from e
    index = index_document(raw, str(file))
    metadata = index.get(INDEX_METADATA) if isinstance(index, dict) else None
    description = metadata.get(DCP_KEY) if isinstance(metadata, dict) else None
    if not isinstance(description, dict) or description.get("format") != _FORMAT:
        raise InvalidFileError(f"{file} has no metadata.{DCP_KEY}: it was not written by safestructures.distributed")
    if description.get("version") != _VERSION:
        raise InvalidFileError(f"{file}: {DCP_KEY} version {description.get('version')!r} is not supported (expected {_VERSION})")
    if not isinstance(index.get(INDEX_WEIGHT_MAP), dict):
        raise InvalidFileError(f"{file} has no {INDEX_WEIGHT_MAP} object")
    return index


def _ints(value: Any, what: str, file: Path) -> list[int]:
    if type(value) is not list or any(type(n) is not int or not 0 <= n < 2**63 for n in value):
        raise InvalidFileError(f"{file}: {what} must be a list of non-negative 64-bit integers, got {shown(value)}")
    return value


def _elements(sizes: list[int], what: str, file: Path) -> int:
    """The elements of a box of ``sizes``: past 2**63 (no tensor holds so many; torch cannot allocate it) it raises."""
    count = 1
    for n in sizes:
        count *= n
        if count >= 2**63:
            raise InvalidFileError(f"{file}: {what} has more than 2**63 elements")
    return count


#: Pairs of chunks one tensor's check of overlaps may compare: far more than a real sharding needs (chunks sorted along
#: the dimension they split most, each meets only those beside it), and a second or two of work.
MAX_CHUNK_PAIRS = 2_000_000


def _overlapping(boxes: list[tuple[list[int], list[int]]], what: str, file: Path) -> tuple[list[int], list[int]] | None:
    """Two chunks (offsets, sizes) of ``boxes`` that share an element, or None. A sweep along the dimension with the
    most distinct offsets: sorted by their start there, a chunk is compared only with those still open where it
    starts."""
    boxes = [box for box in boxes if all(box[1])]  # an empty chunk holds no element to share
    if len(boxes) < 2:
        return None
    axis = max(range(len(boxes[0][0])), key=lambda d: len({offsets[d] for offsets, _ in boxes}))
    open_boxes: list[tuple[list[int], list[int]]] = []
    pairs = 0
    for offsets, sizes in sorted(boxes, key=lambda box: box[0][axis]):
        pairs += len(open_boxes)
        if pairs > MAX_CHUNK_PAIRS:
            raise InvalidFileError(f"{file}: the chunks of {what} are too many, laid out as they are, to check that no two "
                                   f"overlap (more than {MAX_CHUNK_PAIRS:,} pairs)", code="LimitExceeded")
        open_boxes = [box for box in open_boxes if box[0][axis] + box[1][axis] > offsets[axis]]
        for other in open_boxes:
            if all(a < b + m and b < a + n for a, n, b, m in zip(offsets, sizes, other[0], other[1])):
                return other[0], offsets
        open_boxes.append((offsets, sizes))
    return None


def metadata_from_index(path: Path, index: dict[str, Any]) -> Metadata:
    """DCP's Metadata, rebuilt from the index's JSON (what DCP itself keeps in a pickle)."""
    file = path / INDEX_NAME
    description = index[INDEX_METADATA][DCP_KEY]
    weight_map = index[INDEX_WEIGHT_MAP]
    entries: dict[str, Any] = {}
    storage: dict[MetadataIndex, dict[str, Any]] = {}

    def placed(fqn: str, info: Any) -> tuple[str, str]:
        if not isinstance(info, dict) or type(info.get("file")) is not str or type(info.get("name")) is not str:
            raise InvalidFileError(f"{file}: the entry of {quote(fqn)} names no file and tensor")
        name, shard = info["name"], info["file"]
        if weight_map.get(name) != shard:
            raise InvalidFileError(f"{file}: {INDEX_WEIGHT_MAP} places tensor {quote(name)} in {weight_map.get(name)}, the checkpoint metadata in {shard}")
        if not SHARD_FILE_NAME.fullmatch(shard):
            raise InvalidFileError(f"{file}: {quote(shard)} is not a shard file name of this directory")
        return shard, name

    tensors, values = description.get("tensors"), description.get("values")
    if not isinstance(tensors, dict) or not isinstance(values, dict):
        raise InvalidFileError(f"{file}: {DCP_KEY} must hold 'tensors' and 'values' objects")
    for fqn, entry in tensors.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("chunks"), list):
            raise InvalidFileError(f"{file}: tensor {quote(fqn)} has no list of chunks")
        dtype = TORCH_DTYPES.get(entry.get("dtype")) if type(entry.get("dtype")) is str else None
        if dtype is None:
            raise InvalidFileError(f"{file}: tensor {quote(fqn)} has an unknown dtype {entry.get('dtype')!r}")
        size = _ints(entry.get("size"), f"the size of {quote(fqn)}", file)
        elements = _elements(size, f"tensor {quote(fqn)}", file)
        covered = 0
        chunks = []
        boxes = []
        for chunk in entry["chunks"]:
            if not isinstance(chunk, dict):
                raise InvalidFileError(f"{file}: a chunk of {quote(fqn)} is not an object")
            offsets = _ints(chunk.get("offsets"), f"the offsets of a chunk of {quote(fqn)}", file)
            sizes = _ints(chunk.get("sizes"), f"the sizes of a chunk of {quote(fqn)}", file)
            if len(offsets) != len(size) or len(sizes) != len(size) or any(o + n > s for o, n, s in zip(offsets, sizes, size)):
                raise InvalidFileError(f"{file}: chunk {offsets} + {sizes} of {quote(fqn)} lies outside its size {size}")
            covered += _elements(sizes, f"a chunk of {quote(fqn)}", file)
            boxes.append((offsets, sizes))
            if MetadataIndex(fqn, offsets) in storage:
                raise InvalidFileError(f"{file}: two chunks of {quote(fqn)} start at {offsets}")
            shard, name = placed(fqn, chunk)
            chunks.append(ChunkStorageMetadata(offsets=torch.Size(offsets), sizes=torch.Size(sizes)))
            storage[MetadataIndex(fqn, offsets)] = {"file": shard, "name": name, "sizes": sizes, "dtype": dtype}
        # A load makes the whole tensor, then reads the chunks into it: they must tile it. Chunks that hold fewer
        # elements, or as many but overlapping, leave some unset (what the memory held before); more (or a size no
        # chunk holds) make it allocate what no shard holds.
        if covered != elements:
            raise InvalidFileError(f"{file}: the chunks of {quote(fqn)} hold {covered:,} elements, its size {size} has {elements:,}")
        overlap = _overlapping(boxes, quote(fqn), file)
        if overlap is not None:
            raise InvalidFileError(f"{file}: the chunks of {quote(fqn)} at {overlap[0]} and {overlap[1]} overlap, leaving "
                                   f"elements of its size {size} in none")
        properties = TensorProperties(dtype=dtype, requires_grad=entry.get("requires_grad") is True)
        entries[fqn] = TensorStorageMetadata(properties=properties, size=torch.Size(size), chunks=chunks)
    for fqn, entry in values.items():
        if fqn in entries:
            raise InvalidFileError(f"{file}: {quote(fqn)} is both a tensor and a value")
        if isinstance(entry, dict) and "schema" in entry:
            storage[MetadataIndex(fqn)] = {"schema": entry["schema"]}
        else:
            shard, name = placed(fqn, entry)
            storage[MetadataIndex(fqn)] = {"file": shard, "name": name}
        entries[fqn] = BytesStorageMetadata()
    meta = description.get("storage_meta")
    meta = meta if isinstance(meta, dict) else {}
    modules = meta.get("modules") if type(meta.get("modules")) is list else []
    storage_meta = StorageMeta(**{key: meta[key] for key in ("checkpoint_id", "save_id") if type(meta.get(key)) is str},
                               modules=[m for m in modules if type(m) is str])
    version = description.get("dcp_version")
    return Metadata(
        state_dict_metadata=entries,
        planner_data=description.get("structure"),
        storage_data=storage,
        storage_meta=storage_meta,
        version=version if type(version) is str else None,
    )


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

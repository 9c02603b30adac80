"""The DCP storage: one safetensors shard per rank, written and read through the core (tensors named by fqn, or
``fqn@offsets`` for a chunk), and the JSON index the coordinator writes beside them."""

from __future__ import annotations

import dataclasses
import io
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.distributed.checkpoint.metadata import Metadata, MetadataIndex, StorageMeta
from torch.distributed.checkpoint.planner import LoadItemType, LoadPlan, LoadPlanner, SavePlan, SavePlanner, WriteItem, WriteItemType
from torch.distributed.checkpoint.storage import StorageReader, StorageWriter, WriteResult
from torch.futures import Future

from .. import _core
from .._errors import InvalidArgumentError, InvalidFileError, UnsupportedTypeError, quote
from .._format import FIELD, INDEX_NAME
from .._sharded import SHARD_PATTERN, shard_name, write_atomically
from ..frameworks import torch as torch_adapter
from ._index import blob_of, index_text, metadata_from_index, read_index, schema_of
from ._planners import SafestructuresLoadPlanner, SafestructuresSavePlanner

__all__ = ["SafestructuresReader", "SafestructuresWriter"]


def _entry(tensor: torch.Tensor, name: str) -> tuple[str, str, tuple[int, ...], Any]:
    """The core writer's entry of a tensor: its bytes in C order on the CPU, under its safetensors dtype."""
    t = tensor.detach().cpu().resolve_conj().resolve_neg().contiguous()
    try:
        dtype, shape, memory, fields = torch_adapter.array_entry(t, name, {})
    except TypeError:
        dtype, fields = None, {}
    # A dtype safetensors lacks is kept by the structured format under another one: a shard holds its own dtypes only.
    if dtype is None or fields.keys() - {FIELD.framework}:
        raise UnsupportedTypeError(f"tensor {quote(name)}: torch dtype {t.dtype} has no safetensors dtype")
    return name, dtype, shape, memory


def _chunk_name(item: WriteItem) -> str:
    """A chunk's tensor name in its shard: the fqn for a whole tensor, ``fqn@o0,o1,...`` (its offsets) for a part."""
    data = item.tensor_data
    assert data is not None
    offsets, sizes = list(data.chunk.offsets), list(data.chunk.sizes)
    if all(o == 0 for o in offsets) and sizes == list(data.size):
        return item.index.fqn
    return f"{item.index.fqn}@{','.join(map(str, offsets))}"


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


class SafestructuresWriter(StorageWriter):
    """DCP storage writer: one safetensors shard per rank plus a JSON index, in the Hugging Face layout.

    Rank ``r`` of ``N`` writes ``model-{r+1:05d}-of-{N:05d}.safetensors`` in ``path`` through the safestructures
    core (atomically, metadata ``{"format": "pt"}``); its tensors are named by their fqn, or ``fqn@offsets`` for a part
    of a sharded tensor. The coordinator then writes ``model.safetensors.index.json``: ``metadata.total_size``, the
    ``weight_map`` of every stored tensor to its file, and under ``metadata.safestructures_dcp`` DCP's metadata as JSON
    (tensor sizes, dtypes and chunks) with the structure and the non-tensor values in the safestructures schema.
    Use it with :class:`SafestructuresSavePlanner` (another planner would hand it pickled values, which it refuses).
    ``fsync=True`` flushes every file to the disk before it is renamed into place.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.fsync = fsync
        self.save_id = str(uuid.uuid4())
        self._shards: list[str] = []

    def reset(self, checkpoint_id: str | os.PathLike[str] | None = None) -> None:
        if checkpoint_id is not None:
            self.path = Path(checkpoint_id)
        self.save_id = str(uuid.uuid4())

    def set_up_storage_writer(self, is_coordinator: bool, *args: Any, **kwargs: Any) -> None:
        pass  # every rank writes its own shard alike; the coordinator's part (the index) is finish()

    def storage_meta(self) -> StorageMeta | None:
        return StorageMeta(checkpoint_id=str(self.path), save_id=self.save_id)

    def prepare_local_plan(self, plan: SavePlan) -> SavePlan:
        self.path.mkdir(parents=True, exist_ok=True)
        return plan

    def prepare_global_plan(self, plans: list[SavePlan]) -> list[SavePlan]:
        # Plans come in rank order: rank r writes shard r + 1 of len(plans).
        self._shards = [shard_name(i, len(plans)) for i in range(1, len(plans) + 1)]
        return [dataclasses.replace(plan, storage_data=shard) for plan, shard in zip(plans, self._shards)]

    def write_data(self, plan: SavePlan, planner: SavePlanner) -> Future[list[WriteResult]]:
        if any(item.type == WriteItemType.BYTE_IO for item in plan.items) and not isinstance(planner, SafestructuresSavePlanner):
            raise TypeError(
                "SafestructuresWriter stores non-tensor values in the safestructures format; save with "
                f"SafestructuresSavePlanner (got {type(planner).__qualname__}, which would hand it pickled bytes)"
            )
        file = plan.storage_data
        entries: dict[str, tuple[str, str, tuple[int, ...], Any]] = {}
        results: list[WriteResult] = []
        for item in plan.items:
            data = planner.resolve_data(item)
            if item.type == WriteItemType.BYTE_IO:
                blob = data.getvalue()
                document = schema_of(blob)
                if document is not None:
                    results.append(WriteResult(index=item.index, size_in_bytes=len(blob), storage_data={"schema": document}))
                    continue
                # A value holding tensor data (a tuple of tensors, say): its safestructures file, as a U8 tensor.
                name = item.index.fqn
                entry = (name, "U8", (len(blob),), np.frombuffer(blob, dtype=np.uint8))
                nbytes = len(blob)
            else:
                name = _chunk_name(item)
                entry = _entry(data, name)
                expected = list(item.tensor_data.chunk.sizes) if item.tensor_data is not None else None
                if list(entry[2]) != expected:
                    raise InvalidArgumentError(f"tensor {quote(name)}: the planner gave shape {list(entry[2])} for a chunk of shape {expected}")
                nbytes = data.numel() * data.element_size()
            if name in entries:
                raise InvalidArgumentError(f"two items of the checkpoint are both stored as {quote(name)} in {file}")
            entries[name] = entry
            results.append(WriteResult(index=item.index, size_in_bytes=nbytes, storage_data={"file": file, "name": name}))
        _core.write_file(str(self.path / file), list(entries.values()), {"format": "pt"}, self.fsync)
        return _done(results)

    def finish(self, metadata: Metadata, results: list[list[WriteResult]]) -> None:
        stored: dict[tuple[str, tuple[int, ...] | None], dict[str, Any]] = {}
        for result in (r for rank in results for r in rank):
            offset = None if result.index.offset is None else tuple(result.index.offset)
            stored[(result.index.fqn, offset)] = dict(result.storage_data, nbytes=result.size_in_bytes)
        index = index_text(metadata, stored, self.storage_meta()).encode("utf-8")
        write_atomically(str(self.path / INDEX_NAME), index, self.fsync)
        # Shards of an earlier save with another number of ranks would mislead tools that list the directory (as
        # transformers' save_pretrained does, they go once the new index is in place).
        for stale in self.path.iterdir():
            if SHARD_PATTERN.fullmatch(stale.name) and stale.name not in self._shards:
                stale.unlink(missing_ok=True)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike[str]) -> bool:
        return isinstance(checkpoint_id, (str, os.PathLike))


class SafestructuresReader(StorageReader):
    """DCP storage reader for checkpoints written by :class:`SafestructuresWriter` (nothing is unpickled).

    Metadata comes from ``model.safetensors.index.json``; tensor chunks are read from the shards as zero-copy views of
    a mapping and copied into the tensors being loaded, so DCP can reshard them. Non-tensor values are handed to the
    planner as safestructures bytes: load with :class:`SafestructuresLoadPlanner`. A bad checkpoint (missing shard,
    index and shard disagreeing, malformed index) raises InvalidFileError naming the file and the tensor.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        self.load_id = str(uuid.uuid4())
        self.storage_data: dict[MetadataIndex, dict[str, Any]] = {}

    def reset(self, checkpoint_id: str | os.PathLike[str] | None = None) -> None:
        if checkpoint_id is not None:
            self.path = Path(checkpoint_id)
        self.load_id = str(uuid.uuid4())
        self.storage_data = {}

    def read_metadata(self) -> Metadata:
        metadata = metadata_from_index(self.path, read_index(self.path))
        if metadata.storage_meta is not None:
            metadata.storage_meta.load_id = self.load_id
        return metadata

    def set_up_storage_reader(self, metadata: Metadata, is_coordinator: bool, *args: Any, **kwargs: Any) -> None:
        self.storage_data = metadata.storage_data

    def prepare_local_plan(self, plan: LoadPlan) -> LoadPlan:
        return plan

    def prepare_global_plan(self, plans: list[LoadPlan]) -> list[LoadPlan]:
        return plans

    def read_data(self, plan: LoadPlan, planner: LoadPlanner) -> Future[None]:
        if any(item.type == LoadItemType.BYTE_IO for item in plan.items) and not isinstance(planner, SafestructuresLoadPlanner):
            raise TypeError(
                "this checkpoint's non-tensor values are in the safestructures format; load them with "
                f"SafestructuresLoadPlanner (got {type(planner).__qualname__})"
            )
        by_file: dict[str | None, list[tuple[Any, dict[str, Any]]]] = {}
        for item in plan.items:
            info = self.storage_data.get(item.storage_index)
            if info is None:
                raise InvalidFileError(f"{INDEX_NAME} in {self.path} has no storage for {quote(item.storage_index.fqn)} at offsets {list(item.storage_index.offset or [])}")
            by_file.setdefault(info.get("file"), []).append((item, info))
        for file, items in by_file.items():
            shard = _Shard(self.path, file) if file is not None else None
            for item, info in items:
                if item.type == LoadItemType.BYTE_IO:
                    blob = blob_of(info["schema"]) if shard is None else shard.blob(info["name"])
                    planner.load_bytes(item, io.BytesIO(blob))
                    continue
                assert shard is not None
                source = shard.tensor(info["name"])
                if list(source.shape) != info["sizes"] or source.dtype != info["dtype"]:
                    raise InvalidFileError(
                        f"{file}: tensor {quote(info['name'])} is {source.dtype} {list(source.shape)}, the index says "
                        f"{info['dtype']} {info['sizes']}"
                    )
                for dim, (start, length) in enumerate(zip(item.storage_offsets, item.lengths)):
                    source = source.narrow(dim, start, length)
                target = planner.resolve_tensor(item).detach()
                if target.shape != source.shape:
                    raise InvalidFileError(f"{file}: tensor {quote(info['name'])} gives a block of shape {list(source.shape)} for a target of {list(target.shape)}")
                target.copy_(source)
                planner.commit_tensor(item, target)
        return _done(None)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike[str]) -> bool:
        return isinstance(checkpoint_id, (str, os.PathLike)) and (Path(checkpoint_id) / INDEX_NAME).is_file()


class _Shard:
    """A shard of the checkpoint, mapped and its header validated by the core; tensors are zero-copy views of it."""

    def __init__(self, directory: Path, file: str) -> None:
        path = directory / file
        self.file = file
        if not path.is_file():
            raise InvalidFileError(f"shard {file} of the checkpoint in {directory} is missing")
        try:
            self.buffer, _metadata, table = _core.read_file(str(path))
        except InvalidFileError as e:
            raise InvalidFileError(f"shard {file}: {e}", code=e.code) from e
        self.table = {name: (dtype, tuple(shape), offset, nbytes) for name, dtype, shape, offset, nbytes in table}

    def _find(self, name: str) -> tuple[str, tuple[int, ...], int, int]:
        if name not in self.table:
            raise InvalidFileError(f"shard {self.file} has no tensor {quote(name)}, which {INDEX_NAME} places there")
        return self.table[name]

    def tensor(self, name: str) -> torch.Tensor:
        return torch_adapter.to_torch(self.buffer, *self._find(name), {FIELD.name: name, FIELD.framework: "torch"}, {})

    def blob(self, name: str) -> bytes:
        _dtype, _shape, offset, nbytes = self._find(name)
        return bytes(memoryview(self.buffer)[offset:offset + nbytes])

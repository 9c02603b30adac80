"""PyTorch Distributed Checkpoint (DCP) storage and planners that write Hugging Face-style sharded safetensors, with the
non-tensor structure in the safestructures schema and no pickle anywhere in the checkpoint."""

from __future__ import annotations

try:
    import torch
    import torch.distributed as _dist
except ImportError as _e:  # torch missing, or a build without the distributed package
    from ._errors import FrameworkNotAvailableError

    raise FrameworkNotAvailableError(
        f"safestructures.distributed needs PyTorch with torch.distributed, which cannot be imported here ({_e})"
    ) from _e
if not _dist.is_available():
    from ._errors import FrameworkNotAvailableError

    raise FrameworkNotAvailableError(
        "safestructures.distributed needs torch.distributed, and this PyTorch build has none "
        "(torch.distributed.is_available() is False)"
    )

import collections
import dataclasses
import io
import json
import os
import uuid
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.default_planner import (
    DefaultLoadPlanner,
    DefaultSavePlanner,
)
from torch.distributed.checkpoint.filesystem import CURRENT_DCP_VERSION as _DCP_VERSION
from torch.distributed.checkpoint.metadata import (
    BytesStorageMetadata,
    ChunkStorageMetadata,
    Metadata,
    MetadataIndex,
    StorageMeta,
    TensorProperties,
    TensorStorageMetadata,
)
from torch.distributed.checkpoint.planner import (
    LoadItemType,
    LoadPlan,
    LoadPlanner,
    ReadItem,
    SavePlan,
    SavePlanner,
    WriteItem,
    WriteItemType,
)
from torch.distributed.checkpoint.storage import (
    StorageReader,
    StorageWriter,
    WriteResult,
)
from torch.futures import Future

from . import _api
from ._errors import (
    InvalidArgumentError,
    InvalidFileError,
    SafestructuresError,
    UnsupportedTypeError,
    quote,
)
from ._flat import load_tensors, save_tensors
# The index file (the Hugging Face sharded-checkpoint convention) and shard names, as sharded saves write them.
from ._sharded import DCP_KEY, INDEX_NAME, SHARD_PATTERN, shard_name, write_text_atomically

__all__ = [
    "INDEX_NAME",
    "SafestructuresLoadPlanner",
    "SafestructuresReader",
    "SafestructuresSavePlanner",
    "SafestructuresWriter",
    "load",
    "read_index",
    "save",
    "shard_name",
]

#: The key under the index's ``"metadata"`` that holds what safestructures needs to rebuild the checkpoint.
INDEX_KEY = DCP_KEY
_FORMAT = "safestructures-dcp"
_VERSION = 1

# The containers the planners walk into; everything else is one value, saved whole in the safestructures format.
_MAPPINGS = (dict, collections.OrderedDict)

# torch dtypes numpy lacks: written through an integer view of the same width, as the ml_dtypes array of that dtype.
_BIT_VIEWS: dict[torch.dtype, tuple[torch.dtype, str]] = {
    torch.bfloat16: (torch.int16, "bfloat16"),
    torch.float8_e5m2: (torch.uint8, "float8_e5m2"),
    torch.float8_e4m3fn: (torch.uint8, "float8_e4m3fn"),
    torch.float8_e8m0fnu: (torch.uint8, "float8_e8m0fnu"),
    torch.float8_e4m3fnuz: (torch.uint8, "float8_e4m3fnuz"),
    torch.float8_e5m2fnuz: (torch.uint8, "float8_e5m2fnuz"),
}
_FROM_BIT_VIEWS: dict[str, tuple[torch.dtype, Any]] = {
    name: (dtype, np.int16 if bits == torch.int16 else np.uint8) for dtype, (bits, name) in _BIT_VIEWS.items()
}
# Every dtype torch defines, by name, built from torch's own namespace: a name read from an index is looked up here,
# never with getattr on the module (which could import a submodule).
_TORCH_DTYPES: dict[str, torch.dtype] = {
    str(value).removeprefix("torch."): value for value in vars(torch).values() if isinstance(value, torch.dtype)
}


def _fqn(path: tuple[Any, ...]) -> str:
    # DCP's own flattening joins the path the same way, so tensor names match a DCP state dict's keys.
    return ".".join(str(key) for key in path)


def _walks_into(value: Any) -> bool:
    """Whether the planners descend into ``value`` rather than keep it as one value.

    Dicts (and OrderedDicts) always; a list when something in it is a tensor or a container that holds one, as DCP
    decides (so a list of ints, like an optimizer's ``params``, stays one value). Tuples, sets, dataclasses and every
    other object are values, saved whole with their exact types (tensors inside them included, not resharded).
    """
    if type(value) in _MAPPINGS:
        return True
    if type(value) is list:
        return any(isinstance(item, torch.Tensor) or _walks_into(item) for item in value)
    return False


def _flatten(state: Mapping[Any, Any]) -> tuple[dict[Any, Any], dict[str, Any]]:
    """(structure, {fqn: leaf}) of a nested state.

    The structure is the state's dicts and lists, same types and keys (int keys stay ints), with every leaf replaced
    by None; a leaf's fqn is its path joined with dots, as in a PyTorch state dict. Two paths that join to the same
    fqn (``{"a.b": x, "a": {"b": y}}``) raise InvalidArgumentError.
    """
    flat: dict[str, Any] = {}

    def walk(value: Any, path: tuple[Any, ...]) -> Any:
        if type(value) in _MAPPINGS:
            return type(value)((key, walk(item, path + (key,))) for key, item in value.items())
        if type(value) is list and _walks_into(value):
            return [walk(item, path + (i,)) for i, item in enumerate(value)]
        fqn = _fqn(path)
        if not fqn.isascii():
            try:
                fqn.encode("utf-8")
            except UnicodeEncodeError:
                # Names go into the index (UTF-8 JSON) and the shards' headers, which hold valid Unicode only.
                raise InvalidArgumentError(f"the name {fqn!r} of an entry of the state is not valid Unicode (a lone surrogate)") from None
        if fqn in flat:
            raise InvalidArgumentError(f"two entries of the state are both named {quote(fqn)} once their keys are joined with '.'")
        flat[fqn] = value
        return None

    if not isinstance(state, Mapping):
        raise TypeError(f"the state to checkpoint must be a dict, not {type(state).__qualname__}")
    return walk(dict(state), ()), flat


def _merge(a: Any, b: Any, path: tuple[Any, ...]) -> Any:
    """The union of two ranks' structures; they must agree where both have an entry."""
    if a is None and b is None:
        return None
    if type(a) in _MAPPINGS and type(b) is type(a):
        merged = type(a)(a)
        for key, item in b.items():
            merged[key] = _merge(a[key], item, path + (key,)) if key in a else item
        return merged
    if type(a) is list and type(b) is list:
        common = [_merge(x, y, path + (i,)) for i, (x, y) in enumerate(zip(a, b))]
        return common + a[len(common):] + b[len(common):]
    raise InvalidArgumentError(
        f"the ranks' states differ in shape at {quote(_fqn(path))}: {type(a).__name__} on one rank, {type(b).__name__} on another"
    )


# ---------------------------------------------------------------------------------------------------------------------
# Schema documents: the safestructures file of a value with no tensor data is only a header, whose schema is kept as
# JSON in the index (readable there) and turned back into those bytes to load.


def _schema_of(blob: bytes) -> Any | None:
    """The schema document of a safestructures file holding no tensors, or None when it holds tensor data."""
    size = int.from_bytes(blob[:8], "little")
    if len(blob) != 8 + size:
        return None
    header = json.loads(blob[8:])
    if set(header) != {"__metadata__"} or set(header["__metadata__"]) != {"__safestructures__"}:
        return None
    return json.loads(header["__metadata__"]["__safestructures__"])


def _blob_of(document: Any) -> bytes:
    """The bytes of a safestructures file holding only the schema ``document`` (what :func:`_schema_of` read)."""
    schema = json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    header = json.dumps({"__metadata__": {"__safestructures__": schema}}, separators=(",", ":"), ensure_ascii=False).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header


def _structure_document(structure: dict[Any, Any]) -> Any:
    document = _schema_of(_api.save(structure))
    if document is None:  # a structure holds containers and None only, so its file has no tensor data
        raise AssertionError("the structure of a checkpoint was saved with tensor data")
    return document


# ---------------------------------------------------------------------------------------------------------------------
# Tensors <-> numpy arrays for the flat safetensors API of the core.


def _to_numpy(tensor: torch.Tensor, name: str) -> np.ndarray:
    t = tensor.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    t = t.resolve_conj().resolve_neg().contiguous()
    if t.dtype in _BIT_VIEWS:
        import ml_dtypes

        bits, numpy_name = _BIT_VIEWS[t.dtype]
        return t.view(bits).numpy().view(getattr(ml_dtypes, numpy_name))
    try:
        return t.numpy()
    except TypeError as e:
        raise UnsupportedTypeError(f"tensor {quote(name)}: torch dtype {t.dtype} has no safetensors dtype") from e


def _to_torch(array: np.ndarray) -> torch.Tensor:
    if array.dtype.name in _FROM_BIT_VIEWS:
        dtype, bits = _FROM_BIT_VIEWS[array.dtype.name]
        return torch.from_numpy(array.view(bits)).view(dtype)
    return torch.from_numpy(array)


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


# ---------------------------------------------------------------------------------------------------------------------
# Planners


class SafestructuresSavePlanner(DefaultSavePlanner):
    """DCP save planner for nested states: tensors go through DCP, everything else through safestructures.

    The state is walked through its dicts and lists (see the module docs); each tensor (plain, ``DTensor`` or
    ``ShardedTensor``) is a DCP tensor item named by its path (``optim.state.0.exp_avg``), so DCP deduplicates it
    across ranks and can reshard it on load. Every other leaf (an int, a string, a tuple, a dataclass...) is a DCP
    byte item whose bytes are ``safestructures.save(value)``, never ``torch.save``. The dicts and lists themselves
    (their types and keys, int keys included) travel as the checkpoint's structure, in the planner data.
    """

    def __init__(self, *, dedup_save_to_lowest_rank: bool = False) -> None:
        # DCP's own flattening turns int keys into strings and drops empty dicts: the planner flattens by itself.
        super().__init__(flatten_state_dict=False, flatten_sharded_tensors=True, dedup_save_to_lowest_rank=dedup_save_to_lowest_rank)
        self.structure: dict[Any, Any] = {}

    def set_up_planner(self, state_dict: dict[str, Any], storage_meta: StorageMeta | None = None, is_coordinator: bool = False) -> None:
        self.structure, flat = _flatten(state_dict)
        super().set_up_planner(flat, storage_meta, is_coordinator)

    def create_local_plan(self) -> SavePlan:
        plan = dataclasses.replace(super().create_local_plan(), planner_data=self.structure)
        self.plan = plan
        return plan

    def create_global_plan(self, all_plans: list[SavePlan]) -> tuple[list[SavePlan], Metadata]:
        structure: Any = None
        for plan in all_plans:
            if plan.planner_data is not None:
                structure = plan.planner_data if structure is None else _merge(structure, plan.planner_data, ())
        plans, metadata = super().create_global_plan(all_plans)
        self.metadata = dataclasses.replace(metadata, planner_data=structure)
        return plans, self.metadata

    def transform_object(self, write_item: WriteItem, object: Any) -> Any:
        if write_item.type == WriteItemType.BYTE_IO:
            try:
                return io.BytesIO(_api.save(object))
            except SafestructuresError as e:
                # The core's message gives the path inside the value; this gives the value's own name.
                raise type(e)(f"value {quote(write_item.index.fqn)}: {e}", code=e.code) from e
        return object


class SafestructuresLoadPlanner(DefaultLoadPlanner):
    """DCP load planner that rebuilds the saved nested state, tensors loaded in place and resharded by DCP.

    The checkpoint's structure decides the result: each top-level key of the state given to the load becomes the
    saved value of that key, with its dicts, lists and exact key types. Tensors are loaded into the tensors the given
    state holds at the same path (a ``DTensor`` there is loaded in its own sharding, and a module's state dict updates
    the module); a saved tensor with no tensor at its path in the given state is allocated, whole, on the CPU.
    Non-tensor values are loaded with ``safestructures.load``: classes named in them are looked up only among
    ``types`` and the registered ones (see :func:`safestructures.load_file`), and ``strict=True`` raises for others.

    A key or a tensor of the given state that the checkpoint lacks raises InvalidArgumentError, unless
    ``allow_partial_load=True`` (it is then left as it is).
    """

    def __init__(self, *, types: Iterable[type] = (), strict: bool = False, allow_partial_load: bool = False) -> None:
        super().__init__(flatten_state_dict=False, flatten_sharded_tensors=True, allow_partial_load=allow_partial_load)
        self.types = tuple(types)
        self.strict = strict
        self._slots: dict[str, tuple[Any, Any]] = {}

    def set_up_planner(self, state_dict: dict[str, Any], metadata: Metadata | None = None, is_coordinator: bool = False) -> None:
        if metadata is None:
            raise ValueError("SafestructuresLoadPlanner needs the checkpoint's metadata")
        # The base class turns meta tensors into real ones and flattens ShardedTensors; the state is walked after.
        super().set_up_planner(state_dict, metadata, is_coordinator)
        state = self.original_state_dict
        structure = _load_structure(metadata.planner_data, self.types, self.strict)
        _, given = _flatten(state)
        entries = metadata.state_dict_metadata
        if not self.allow_partial_load:
            for fqn, value in given.items():
                if isinstance(value, torch.Tensor) and fqn not in entries:
                    raise InvalidArgumentError(f"tensor {quote(fqn)} of the state to load is not in the checkpoint")
        flat: dict[str, Any] = {}
        self._slots = {}

        def rebuild(node: Any, path: tuple[Any, ...], parent: Any, key: Any) -> Any:
            if type(node) in _MAPPINGS:
                out = type(node)()
                for k, item in node.items():
                    out[k] = rebuild(item, path + (k,), out, k)
                return out
            if type(node) is list:
                out_list: list[Any] = [None] * len(node)
                for i, item in enumerate(node):
                    out_list[i] = rebuild(item, path + (i,), out_list, i)
                return out_list
            if node is not None:
                raise InvalidFileError(f"the checkpoint's structure holds a {type(node).__name__} at {quote(_fqn(path))}")
            fqn = _fqn(path)
            entry = entries.get(fqn)
            if isinstance(entry, TensorStorageMetadata):
                target = given.get(fqn)
                if not isinstance(target, torch.Tensor):
                    target = torch.empty(entry.size, dtype=entry.properties.dtype)
                flat[fqn] = target
                return target
            if isinstance(entry, BytesStorageMetadata):
                flat[fqn] = None
                self._slots[fqn] = (parent, key)
                return None
            raise InvalidFileError(f"the checkpoint's structure names {quote(fqn)}, which the checkpoint does not hold")

        for key in list(state):
            if key in structure:
                state[key] = rebuild(structure[key], (key,), state, key)
            elif not self.allow_partial_load:
                raise InvalidArgumentError(f"key {quote(str(key))} of the state to load is not in the checkpoint")
        self.state_dict = flat
        self.mappings = {}

    def load_bytes(self, read_item: ReadItem, value: io.BytesIO) -> None:
        fqn = read_item.dest_index.fqn
        try:
            loaded = _api.load(value.getvalue(), types=self.types, strict=self.strict)
        except InvalidFileError as e:
            raise InvalidFileError(f"value {quote(fqn)}: {e}", code=e.code) from e
        parent, key = self._slots[fqn]
        parent[key] = loaded


# ---------------------------------------------------------------------------------------------------------------------
# Storage


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
        self.is_coordinator = False
        self._shards: list[str] = []

    def reset(self, checkpoint_id: str | os.PathLike[str] | None = None) -> None:
        if checkpoint_id is not None:
            self.path = Path(checkpoint_id)
        self.save_id = str(uuid.uuid4())

    def set_up_storage_writer(self, is_coordinator: bool, *args: Any, **kwargs: Any) -> None:
        self.is_coordinator = is_coordinator

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
        arrays: dict[str, np.ndarray] = {}
        results: list[WriteResult] = []
        for item in plan.items:
            data = planner.resolve_data(item)
            if item.type == WriteItemType.BYTE_IO:
                blob = data.getvalue()
                document = _schema_of(blob)
                if document is not None:
                    results.append(WriteResult(index=item.index, size_in_bytes=len(blob), storage_data={"schema": document}))
                    continue
                # A value holding tensor data (a tuple of tensors, say): its safestructures file, as a U8 tensor.
                name, array = item.index.fqn, np.frombuffer(blob, dtype=np.uint8)
            else:
                name = _chunk_name(item)
                array = _to_numpy(data, name)
                expected = list(item.tensor_data.chunk.sizes) if item.tensor_data is not None else None
                if list(array.shape) != expected:
                    raise InvalidArgumentError(f"tensor {quote(name)}: the planner gave shape {list(array.shape)} for a chunk of shape {expected}")
            if name in arrays:
                raise InvalidArgumentError(f"two items of the checkpoint are both stored as {quote(name)} in {file}")
            arrays[name] = array
            results.append(WriteResult(index=item.index, size_in_bytes=array.nbytes, storage_data={"file": file, "name": name}))
        save_tensors(arrays, self.path / file, metadata={"format": "pt"}, fsync=self.fsync)
        return _done(results)

    def finish(self, metadata: Metadata, results: list[list[WriteResult]]) -> None:
        stored: dict[tuple[str, tuple[int, ...] | None], dict[str, Any]] = {}
        for result in (r for rank in results for r in rank):
            offset = None if result.index.offset is None else tuple(result.index.offset)
            stored[(result.index.fqn, offset)] = dict(result.storage_data, nbytes=result.size_in_bytes)
        tensors: dict[str, Any] = {}
        values: dict[str, Any] = {}
        weight_map: dict[str, str] = {}
        total_size = 0
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
        for info in stored.values():
            if "file" in info:
                weight_map[info["name"]] = info["file"]
                total_size += info["nbytes"]
        # DCP leaves these two to the writer, as its FileSystemWriter does.
        meta = metadata.storage_meta if metadata.storage_meta is not None else self.storage_meta()
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
            "structure": _structure_document(metadata.planner_data if metadata.planner_data is not None else {}),
            "tensors": tensors,
            "values": values,
        }
        index = {"metadata": {"total_size": total_size, INDEX_KEY: description}, "weight_map": dict(sorted(weight_map.items()))}
        write_text_atomically(str(self.path / INDEX_NAME), json.dumps(index, indent=2, ensure_ascii=False, allow_nan=False) + "\n",
                              self.fsync)
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
        metadata = _metadata_from_index(self.path, read_index(self.path))
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
        by_file: dict[str | None, list[tuple[ReadItem, dict[str, Any]]]] = {}
        for item in plan.items:
            info = self.storage_data.get(item.storage_index)
            if info is None:
                raise InvalidFileError(f"{INDEX_NAME} in {self.path} has no storage for {quote(item.storage_index.fqn)} at offsets {list(item.storage_index.offset or [])}")
            by_file.setdefault(info.get("file"), []).append((item, info))
        for file, items in by_file.items():
            arrays = self._open(file) if file is not None else {}
            for item, info in items:
                if item.type == LoadItemType.BYTE_IO:
                    blob = _blob_of(info["schema"]) if file is None else self._tensor(arrays, file, info["name"]).tobytes()
                    planner.load_bytes(item, io.BytesIO(blob))
                    continue
                source = _to_torch(self._tensor(arrays, file, info["name"]))
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

    def _open(self, file: str) -> dict[str, np.ndarray]:
        path = self.path / file
        if not path.is_file():
            raise InvalidFileError(f"shard {file} of the checkpoint in {self.path} is missing")
        try:
            return load_tensors(path)
        except InvalidFileError as e:
            raise InvalidFileError(f"shard {file}: {e}", code=e.code) from e

    @staticmethod
    def _tensor(arrays: dict[str, np.ndarray], file: str, name: str) -> np.ndarray:
        if name not in arrays:
            raise InvalidFileError(f"shard {file} has no tensor {quote(name)}, which {INDEX_NAME} places there")
        return arrays[name]

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike[str]) -> bool:
        return isinstance(checkpoint_id, (str, os.PathLike)) and (Path(checkpoint_id) / INDEX_NAME).is_file()


# ---------------------------------------------------------------------------------------------------------------------
# The index


def read_index(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed ``model.safetensors.index.json`` of the checkpoint directory ``path``, checked to be one that
    :class:`SafestructuresWriter` wrote (InvalidFileError otherwise)."""
    file = Path(path) / INDEX_NAME
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise InvalidFileError(f"{file} is missing: {Path(path)} is not a checkpoint directory") from e
    try:
        index = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidFileError(f"{file} is not valid JSON: {e}") from e
    description = index.get("metadata", {}).get(INDEX_KEY) if isinstance(index, dict) and isinstance(index.get("metadata"), dict) else None
    if not isinstance(description, dict) or description.get("format") != _FORMAT:
        raise InvalidFileError(f"{file} has no metadata.{INDEX_KEY}: it was not written by safestructures.distributed")
    if description.get("version") != _VERSION:
        raise InvalidFileError(f"{file}: {INDEX_KEY} version {description.get('version')!r} is not supported (expected {_VERSION})")
    if not isinstance(index.get("weight_map"), dict):
        raise InvalidFileError(f"{file} has no weight_map object")
    return index


def _ints(value: Any, what: str, file: Path) -> list[int]:
    if type(value) is not list or any(type(n) is not int or n < 0 for n in value):
        raise InvalidFileError(f"{file}: {what} must be a list of non-negative integers, got {value!r}")
    return value


def _metadata_from_index(path: Path, index: dict[str, Any]) -> Metadata:
    """DCP's Metadata, rebuilt from the index's JSON (what DCP itself keeps in a pickle)."""
    file = path / INDEX_NAME
    description = index["metadata"][INDEX_KEY]
    weight_map = index["weight_map"]
    entries: dict[str, Any] = {}
    storage: dict[MetadataIndex, dict[str, Any]] = {}

    def placed(fqn: str, info: Any) -> tuple[str, str]:
        if not isinstance(info, dict) or type(info.get("file")) is not str or type(info.get("name")) is not str:
            raise InvalidFileError(f"{file}: the entry of {quote(fqn)} names no file and tensor")
        name, shard = info["name"], info["file"]
        if weight_map.get(name) != shard:
            raise InvalidFileError(f"{file}: weight_map places tensor {quote(name)} in {weight_map.get(name)}, the checkpoint metadata in {shard}")
        if Path(shard).name != shard or not shard.endswith(".safetensors"):
            raise InvalidFileError(f"{file}: {quote(shard)} is not a shard file name of this directory")
        return shard, name

    tensors, values = description.get("tensors"), description.get("values")
    if not isinstance(tensors, dict) or not isinstance(values, dict):
        raise InvalidFileError(f"{file}: {INDEX_KEY} must hold 'tensors' and 'values' objects")
    for fqn, entry in tensors.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("chunks"), list):
            raise InvalidFileError(f"{file}: tensor {quote(fqn)} has no list of chunks")
        dtype = _TORCH_DTYPES.get(entry.get("dtype")) if type(entry.get("dtype")) is str else None
        if dtype is None:
            raise InvalidFileError(f"{file}: tensor {quote(fqn)} has an unknown dtype {entry.get('dtype')!r}")
        size = _ints(entry.get("size"), f"the size of {quote(fqn)}", file)
        chunks = []
        for chunk in entry["chunks"]:
            if not isinstance(chunk, dict):
                raise InvalidFileError(f"{file}: a chunk of {quote(fqn)} is not an object")
            offsets = _ints(chunk.get("offsets"), f"the offsets of a chunk of {quote(fqn)}", file)
            sizes = _ints(chunk.get("sizes"), f"the sizes of a chunk of {quote(fqn)}", file)
            if len(offsets) != len(size) or len(sizes) != len(size) or any(o + n > s for o, n, s in zip(offsets, sizes, size)):
                raise InvalidFileError(f"{file}: chunk {offsets} + {sizes} of {quote(fqn)} lies outside its size {size}")
            shard, name = placed(fqn, chunk)
            chunks.append(ChunkStorageMetadata(offsets=torch.Size(offsets), sizes=torch.Size(sizes)))
            storage[MetadataIndex(fqn, offsets)] = {"file": shard, "name": name, "sizes": sizes, "dtype": dtype}
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
    storage_meta = StorageMeta()
    if isinstance(meta, dict):
        storage_meta = StorageMeta(
            checkpoint_id=meta.get("checkpoint_id") if type(meta.get("checkpoint_id")) is str else None,
            save_id=meta.get("save_id") if type(meta.get("save_id")) is str else None,
            modules=[m for m in meta.get("modules", []) if type(m) is str] if type(meta.get("modules")) is list else [],
        )
    version = description.get("dcp_version")
    return Metadata(
        state_dict_metadata=entries,
        planner_data=description.get("structure"),
        storage_data=storage,
        storage_meta=storage_meta,
        version=version if type(version) is str else None,
    )


def _load_structure(document: Any, types: Iterable[type], strict: bool) -> dict[Any, Any]:
    """The checkpoint's structure (dicts and lists with None leaves) from its schema document in the index."""
    if not isinstance(document, dict):
        raise InvalidFileError(f"{INDEX_NAME}: the checkpoint has no structure document")
    try:
        structure = _api.load(_blob_of(document), types=types, strict=strict)
    except InvalidFileError as e:
        raise InvalidFileError(f"{INDEX_NAME}: the checkpoint's structure: {e}", code=e.code) from e
    if type(structure) is not dict:
        raise InvalidFileError(f"{INDEX_NAME}: the checkpoint's structure is a {type(structure).__name__}, not a dict")
    return structure


# ---------------------------------------------------------------------------------------------------------------------
# Convenience wrappers


def _single_process(process_group: Any) -> bool:
    return process_group is None and not (_dist.is_available() and _dist.is_initialized())


def _unwrapped(error: CheckpointException, process_group: Any) -> BaseException:
    """The error a rank raised, out of DCP's wrapper of every rank's errors: this rank's own, else the lowest rank's.

    DCP wraps errors even in a single process; the wrappers raise the original (an InvalidFileError naming the file
    and tensor, say), chained to DCP's exception, which keeps every rank's traceback."""
    failures = error.failures
    rank = _dist.get_rank(process_group) if _dist.is_initialized() else 0
    return failures[rank if rank in failures else min(failures)][0]


def save(
    state_dict: dict[str, Any],
    path: str | os.PathLike[str],
    *,
    process_group: Any = None,
    fsync: bool = False,
) -> Metadata:
    """Checkpoint a nested state into the directory ``path`` with ``torch.distributed.checkpoint.save``.

    Call it on every rank with that rank's state (same structure everywhere; ``DTensor``s hold their local shards).
    Without an initialized process group it saves from this process alone. Tensors are written once across ranks
    (DCP deduplicates replicated ones), each rank to its own shard file; everything else in the state is saved with
    safestructures (see :class:`SafestructuresSavePlanner`). Returns DCP's metadata of the checkpoint.
    """
    single = _single_process(process_group)
    with warnings.catch_warnings():
        # DCP warns that it saves from one process when no process group exists: that is what was asked for.
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        try:
            return dcp.save(
                state_dict,
                storage_writer=SafestructuresWriter(path, fsync=fsync),
                planner=SafestructuresSavePlanner(),
                process_group=process_group,
                no_dist=single,
            )
        except CheckpointException as e:
            raise _unwrapped(e, process_group) from e


def load(
    path: str | os.PathLike[str],
    state_dict: dict[str, Any] | None = None,
    *,
    types: Iterable[type] = (),
    strict: bool = False,
    allow_partial_load: bool = False,
    process_group: Any = None,
) -> dict[str, Any]:
    """Load the checkpoint in the directory ``path`` with ``torch.distributed.checkpoint.load`` and return the state.

    ``state_dict`` is the state to load into (DCP loads in place): its tensors receive the saved values, resharded to
    their own placement (a ``DTensor`` saved sharded one way loads sharded another way), and each of its keys becomes
    the saved value rebuilt whole (see :class:`SafestructuresLoadPlanner`). With ``state_dict=None`` every saved key
    is loaded, tensors as whole CPU tensors. ``types`` and ``strict`` apply to classes named in the saved values, as
    in :func:`safestructures.load_file`. Call it on every rank of the process group, or in one process without one.

    Raises:
        InvalidFileError: the checkpoint is malformed (a shard missing, the index and a shard disagreeing); the
            message names the file and the tensor.
        InvalidArgumentError: a key or tensor of ``state_dict`` is not in the checkpoint (and not
            ``allow_partial_load``).
    """
    types = tuple(types)
    reader = SafestructuresReader(path)
    # Read (and check) the index before DCP does, so a bad checkpoint raises its own error rather than DCP's wrapper.
    metadata = reader.read_metadata()
    if state_dict is None:
        state_dict = dict.fromkeys(_load_structure(metadata.planner_data, types, strict))
    single = _single_process(process_group)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        try:
            dcp.load(
                state_dict,
                storage_reader=reader,
                planner=SafestructuresLoadPlanner(types=types, strict=strict, allow_partial_load=allow_partial_load),
                process_group=process_group,
                no_dist=single,
            )
        except CheckpointException as e:
            raise _unwrapped(e, process_group) from e
    return state_dict

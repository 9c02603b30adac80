"""The DCP planners: saving a nested state (tensors through DCP, every other value through safestructures, the dicts
and lists as the checkpoint's structure) and rebuilding it on load."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterable
from typing import Any

import torch
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner, DefaultSavePlanner
from torch.distributed.checkpoint.metadata import BytesStorageMetadata, Metadata, StorageMeta, TensorStorageMetadata
from torch.distributed.checkpoint.planner import ReadItem, SavePlan, WriteItem, WriteItemType

from .. import _walkers
from .._errors import InvalidArgumentError, InvalidFileError, SafestructuresError, quote
from ._structure import flatten, merge, rebuild
from ._index import load_structure

__all__ = ["SafestructuresLoadPlanner", "SafestructuresSavePlanner"]


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
        self.structure, flat = flatten(state_dict)
        super().set_up_planner(flat, storage_meta, is_coordinator)

    def create_local_plan(self) -> SavePlan:
        self.plan = dataclasses.replace(super().create_local_plan(), planner_data=self.structure)
        return self.plan

    def create_global_plan(self, all_plans: list[SavePlan]) -> tuple[list[SavePlan], Metadata]:
        structure: Any = None
        for plan in all_plans:
            if plan.planner_data is not None:
                structure = plan.planner_data if structure is None else merge(structure, plan.planner_data, ())
        plans, metadata = super().create_global_plan(all_plans)
        self.metadata = dataclasses.replace(metadata, planner_data=structure)
        return plans, self.metadata

    def transform_object(self, write_item: WriteItem, object: Any) -> Any:
        if write_item.type == WriteItemType.BYTE_IO:
            try:
                return io.BytesIO(_walkers.save(object))
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
        structure = load_structure(metadata.planner_data, self.types, self.strict)
        _, given = flatten(state)
        entries = metadata.state_dict_metadata
        if not self.allow_partial_load:
            for fqn, value in given.items():
                if isinstance(value, torch.Tensor) and fqn not in entries:
                    raise InvalidArgumentError(f"tensor {quote(fqn)} of the state to load is not in the checkpoint")
        flat: dict[str, Any] = {}
        self._slots = {}

        def leaf(fqn: str, parent: Any, key: Any) -> Any:
            entry = entries.get(fqn)
            if isinstance(entry, TensorStorageMetadata):
                target = given.get(fqn)
                if not isinstance(target, torch.Tensor):
                    try:
                        # Its chunks tile it (the index is refused where they do not), so each element is read.
                        target = torch.empty(entry.size, dtype=entry.properties.dtype)
                    except RuntimeError as e:  # a size the index claims, which no memory holds
                        raise InvalidFileError(f"the checkpoint's tensor {quote(fqn)} of size {list(entry.size)} cannot be "
                                               f"made: {str(e).splitlines()[0]}") from None
                flat[fqn] = target
                return target
            if isinstance(entry, BytesStorageMetadata):
                flat[fqn] = None
                self._slots[fqn] = (parent, key)
                return None
            raise InvalidFileError(f"the checkpoint's structure names {quote(fqn)}, which the checkpoint does not hold")

        for key in list(state):
            if key in structure:
                state[key] = rebuild(structure[key], (key,), state, key, leaf)
            elif not self.allow_partial_load:
                raise InvalidArgumentError(f"key {quote(str(key))} of the state to load is not in the checkpoint")
        self.state_dict = flat
        self.mappings = {}

    def load_bytes(self, read_item: ReadItem, value: io.BytesIO) -> None:
        fqn = read_item.dest_index.fqn
        try:
            loaded = _walkers.load(value.getvalue(), types=self.types, strict=self.strict)
        except InvalidFileError as e:
            raise InvalidFileError(f"value {quote(fqn)}: {e}", code=e.code) from e
        parent, key = self._slots[fqn]
        parent[key] = loaded

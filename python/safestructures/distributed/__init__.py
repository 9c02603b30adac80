"""PyTorch Distributed Checkpoint (DCP) storage and planners that write Hugging Face-style sharded safetensors, with the
non-tensor structure in the safestructures schema and no pickle anywhere in the checkpoint.
The planners (``_planners``) walk the state's dicts and lists (``_structure``); the storage (``_storage``) writes a
shard per rank and the index (``_index``) that keeps DCP's metadata as JSON."""

from __future__ import annotations

from .._errors import FrameworkNotAvailableError

try:
    import torch.distributed as _dist
except ImportError as _e:  # torch missing, or a build without the distributed package
    raise FrameworkNotAvailableError(
        f"safestructures.distributed needs PyTorch with torch.distributed, which cannot be imported here ({_e})"
    ) from _e
if not _dist.is_available():
    raise FrameworkNotAvailableError(
        "safestructures.distributed needs torch.distributed, and this PyTorch build has none "
        "(torch.distributed.is_available() is False)"
    )

import concurrent.futures
import os
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.metadata import Metadata

from .._format import INDEX_NAME
from .._sharded import shard_name
from ._index import load_structure, read_index
from ._planners import SafestructuresLoadPlanner, SafestructuresSavePlanner
from ._storage import SafestructuresReader, SafestructuresWriter

__all__ = [
    "INDEX_NAME",
    "SafestructuresLoadPlanner",
    "SafestructuresReader",
    "SafestructuresSavePlanner",
    "SafestructuresWriter",
    "async_save",
    "load",
    "read_index",
    "save",
    "shard_name",
]


def _run(call: Callable[..., Any], state_dict: dict[str, Any], process_group: Any, **storage: Any) -> Any:
    """``dcp.save`` or ``dcp.load`` of ``state_dict``, from this process alone when no process group is initialized; the
    error a rank raised, out of DCP's wrapper of every rank's errors: this rank's own, else the lowest rank's.

    DCP wraps errors even in a single process; the error raised here (an InvalidFileError naming the file and tensor,
    say) is chained to DCP's exception, which keeps every rank's traceback."""
    single = process_group is None and not _dist.is_initialized()
    with warnings.catch_warnings():
        # DCP warns that it saves from one process when no process group exists: that is what was asked for.
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        return _rank_error(lambda: call(state_dict, process_group=process_group, no_dist=single, **storage), process_group)


def _rank_error(call: Callable[[], Any], process_group: Any) -> Any:
    """``call()``; or, when DCP raises its wrapper of every rank's errors, the error of this rank, else of the lowest."""
    try:
        return call()
    except CheckpointException as e:
        failures = e.failures
        rank = _dist.get_rank(process_group) if _dist.is_initialized() else 0
        raise failures[rank if rank in failures else min(failures)][0] from e


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
    return _run(dcp.save, state_dict, process_group, storage_writer=SafestructuresWriter(path, fsync=fsync),
                planner=SafestructuresSavePlanner())


def async_save(
    state_dict: dict[str, Any],
    path: str | os.PathLike[str],
    *,
    process_group: Any = None,
    fsync: bool = False,
) -> concurrent.futures.Future[Metadata]:
    """:func:`save` with ``torch.distributed.checkpoint.async_save``: returns once DCP has staged the state (a CPU copy of
    its tensors: the caller may change them in place right away) with a :class:`concurrent.futures.Future` whose
    result is DCP's metadata once every rank's shard and the index are written. Call it on every rank, as :func:`save`.
    DCP's writer thread uses ``process_group`` (the default one by default), which must have a CPU backend (gloo); a
    group of its own keeps the checkpoint's collectives apart from the training's. The future's error is the one a
    rank raised, as :func:`save` raises it.
    """
    single = process_group is None and not _dist.is_initialized()
    if single:
        # DCP's writer thread warns that it saves from one process, which is what was asked for; the warning filters
        # are the process's (a thread cannot have its own), so this one message is ignored from now on.
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
    started = dcp.async_save(state_dict, process_group=process_group, no_dist=single,
                             storage_writer=SafestructuresWriter(path, fsync=fsync), planner=SafestructuresSavePlanner())
    done: concurrent.futures.Future[Metadata] = concurrent.futures.Future()

    def settle(future: concurrent.futures.Future[Metadata]) -> None:
        try:
            done.set_result(_rank_error(future.result, process_group))
        except BaseException as e:  # the rank's own error, as save raises it
            done.set_exception(e)

    started.add_done_callback(settle)
    return done


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
        state_dict = dict.fromkeys(load_structure(metadata.planner_data, types, strict))
    _run(dcp.load, state_dict, process_group, storage_reader=reader,
         planner=SafestructuresLoadPlanner(types=types, strict=strict, allow_partial_load=allow_partial_load))
    return state_dict

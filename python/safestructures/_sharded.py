"""Sharded saves: one structure over several safetensors files in the Hugging Face layout
(``model-00001-of-00003.safetensors`` + ``model.safetensors.index.json``), the schema kept in the index."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

from . import _core
from ._errors import InvalidArgumentError, InvalidFileError, quote

__all__ = ["INDEX_NAME", "SHARD_PATTERN", "check_shards", "index_path", "parse_size", "read_index", "save_sharded", "shard_name",
           "write_text_atomically"]

INDEX_NAME = "model.safetensors.index.json"
PREFIX = "model"
#: The index key holding the schema document (as in a single file's __metadata__).
SCHEMA_KEY = "__safestructures__"
#: The key, in the index's metadata and in every shard's, of the id of the save that wrote them: a shard left by
#: another save (a crash between renames, two saves at once) is refused rather than loaded as part of this one.
SAVE_KEY = "__safestructures_save__"
#: The key of a PyTorch Distributed Checkpoint's index (safestructures.distributed).
DCP_KEY = "safestructures_dcp"
_RESERVED = ("total_size", SCHEMA_KEY, SAVE_KEY, "_safestructures_schema_", "_safestructures_schema_version_")
_SHARD_NAME = re.compile(r"[A-Za-z0-9_.\-]+\.safetensors")
#: The names shard_name gives.
SHARD_PATTERN = re.compile(rf"{PREFIX}-\d{{5}}-of-\d{{5}}\.safetensors")
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(size: int | str) -> int:
    """Bytes from an int or a text such as ``"5GB"`` or ``"500MiB"`` (as transformers' ``max_shard_size`` takes)."""
    if type(size) is int:
        value = size
    elif isinstance(size, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?I?B?)\s*", size.upper())
        if match is None or match.group(2) not in _UNITS:
            raise InvalidArgumentError(f"max_shard_size {size!r} is not a size such as 500000000, '5GB' or '500MiB'")
        value = int(float(match.group(1)) * _UNITS[match.group(2)])
    else:
        raise TypeError(f"max_shard_size must be an int or a str such as '5GB', not {type(size).__name__}")
    if value <= 0:
        raise InvalidArgumentError(f"max_shard_size must be positive, not {size!r}")
    return value


def index_path(path: str) -> str | None:
    """The index a path names: the path itself when it is an index file, the index inside a directory; else None."""
    if os.path.isdir(path):
        return os.path.join(path, INDEX_NAME)
    if path.endswith(".index.json"):
        return path
    return None


def shard_name(index: int, count: int) -> str:
    """The file name of shard ``index`` (1-based) of ``count`` in the Hugging Face convention:
    ``model-00001-of-00003.safetensors``."""
    return f"{PREFIX}-{index:05d}-of-{count:05d}.safetensors"


def write_text_atomically(path: str, text: str, fsync: bool) -> None:
    """Replace ``path`` with ``text`` through a temporary file beside it: the old file or the new one, never a part."""
    temp = write_temporary(path, text, fsync)
    try:
        os.replace(temp, path)
    except BaseException:
        _remove(temp)
        raise


def write_temporary(path: str, text: str, fsync: bool) -> str:
    """Writes ``text`` to a new temporary file beside ``path`` (``.NAME.XXXX.partial``) and returns its path."""
    import tempfile  # only when saving: it imports random, shutil and more, which a load must not pull in

    directory = os.path.dirname(path) or "."
    fd, temp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".partial", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(temp, 0o644)
    except BaseException:
        _remove(temp)
        raise
    return temp


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _old_shards(index: str) -> set[str]:
    """The shard files an existing index lists (to remove those a new save no longer uses)."""
    try:
        with open(index, encoding="utf-8") as f:
            weight_map = json.load(f).get("weight_map", {})
        return {v for v in weight_map.values() if isinstance(v, str) and _SHARD_NAME.fullmatch(v)}
    except (OSError, ValueError, AttributeError):
        return set()


@contextlib.contextmanager
def _directory_lock(directory: str) -> Iterator[None]:
    """An exclusive flock on the directory itself (no lock file left behind), released on exit."""
    import fcntl

    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def save_sharded(data: Any, directory: str, metadata: Mapping[str, str] | None, max_shard_size: int, max_depth: int,
                 fsync: bool, context: dict[str, Any]) -> None:
    """Write ``data`` into ``directory`` as shards of at most ``max_shard_size`` tensor bytes plus the index.

    Every shard is written under a temporary name first, then the index; only then are they renamed into place, so a
    failure while writing (an object that cannot be saved, a full disk) leaves an earlier checkpoint in the directory
    as it was. Shards of an earlier save that this one does not use are removed last.
    """
    for key in metadata or ():
        # The index's metadata holds the caller's beside total_size and the schema: neither may be replaced, and the
        # keys of safestructures 1.0.0 are refused as a single file's save refuses them.
        if key in _RESERVED:
            raise InvalidArgumentError(f"metadata key {quote(key)} is reserved for safestructures' own use"
                                       + (" (the index's total size)" if key == "total_size" else ""), code="InvalidMetadata")
    os.makedirs(directory, exist_ok=True)
    index = os.path.join(directory, INDEX_NAME)
    save_id = os.urandom(12).hex()
    schema, temps, weight_map, total = _core.save_sharded(data, directory, PREFIX, save_id, max_depth, max_shard_size, fsync, context)
    index_temp = None
    names = [shard_name(k + 1, len(temps)) for k in range(len(temps))]
    try:
        document = {
            "metadata": {"total_size": total, **(metadata or {}), SAVE_KEY: save_id, SCHEMA_KEY: schema},
            "weight_map": {tensor: names[shard] for tensor, shard in weight_map},
        }
        index_temp = write_temporary(index, json.dumps(document, ensure_ascii=False, indent=2), fsync)
        # Everything is written: only renames are left, shards first and the index last, so an index never names a
        # shard that is not in place yet. Saves into one directory take turns here (a lock on the directory), so two at
        # once leave one whole checkpoint, the last one's, rather than a mix.
        with _directory_lock(directory):
            previous = _old_shards(index)
            for name, temp in zip(names, temps):
                os.replace(temp, os.path.join(directory, name))
            os.replace(index_temp, index)
            for stale in previous - set(names):
                _remove(os.path.join(directory, stale))
    except BaseException:
        for temp in temps:
            _remove(temp)
        if index_temp is not None:
            _remove(index_temp)
        raise


def read_index(index: str, max_size: int) -> tuple[list[str], str, dict[str, str], dict[str, int], str | None]:
    """(shard paths, schema document, user metadata, {tensor: shard number}) from a sharded save's index;
    InvalidFileError naming what is wrong."""
    try:
        size = os.path.getsize(index)
    except FileNotFoundError:
        raise FileNotFoundError(2, f"no {INDEX_NAME} here: not a sharded save", index) from None
    if size > max_size:
        raise InvalidFileError(f"{index}: the index is {size} bytes, over the limit of {max_size}")
    with open(index, "rb") as f:
        raw = f.read()
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidFileError(f"{index}: not a JSON index: {e}") from None
    if not isinstance(document, dict) or not isinstance(document.get("weight_map"), dict) or not isinstance(document.get("metadata"), dict):
        raise InvalidFileError(f"{index}: an index is an object with \"metadata\" and \"weight_map\" objects")
    schema = document["metadata"].get(SCHEMA_KEY)
    if DCP_KEY in document["metadata"] and schema is None:
        raise InvalidFileError(f"{index}: a PyTorch Distributed Checkpoint; load it with safestructures.distributed.load() "
                               "(load_file does so), it cannot be opened lazily")
    if not isinstance(schema, str):
        raise InvalidFileError(f"{index}: the index has no safestructures schema (metadata {quote(SCHEMA_KEY)}); "
                               "load its shards with load_file one by one")
    directory = os.path.dirname(index)
    shards: list[str] = []
    for tensor, shard in document["weight_map"].items():
        # Only plain file names beside the index: an index must not point a load at any other file.
        if not isinstance(shard, str) or not _SHARD_NAME.fullmatch(shard) or shard.startswith("."):
            raise InvalidFileError(f"{index}: tensor {quote(str(tensor))} is mapped to {shard!r}, which is not a shard file name")
        if shard not in shards:
            shards.append(shard)
    if not shards:  # data without tensors: its one shard holds none
        shards = [shard_name(1, 1)]
    save_id = document["metadata"].get(SAVE_KEY)
    if save_id is not None and not isinstance(save_id, str):
        raise InvalidFileError(f"{index}: metadata {quote(SAVE_KEY)} must be a string")
    metadata = {k: v for k, v in document["metadata"].items() if k not in (SCHEMA_KEY, SAVE_KEY, "total_size")}
    if not all(isinstance(v, str) for v in metadata.values()):
        raise InvalidFileError(f"{index}: metadata values other than total_size must be strings")
    numbers = {s: k for k, s in enumerate(shards)}
    where = {tensor: numbers[shard] for tensor, shard in document["weight_map"].items()}
    return [os.path.join(directory, s) for s in shards], schema, metadata, where, save_id


def is_dcp_index(index: str) -> bool:
    """Whether an index is a PyTorch Distributed Checkpoint's (false for anything unreadable: the load reports it)."""
    try:
        with open(index, "rb") as f:
            raw = f.read(64 << 20)
        # Without the key's text anywhere, it is not one: the index (which holds the whole schema) is then parsed once,
        # by the load, not twice.
        if f'"{DCP_KEY}"'.encode() not in raw:
            return False
        document = json.loads(raw)
        return isinstance(document, dict) and isinstance(document.get("metadata"), dict) and DCP_KEY in document["metadata"]
    except (OSError, ValueError):
        return False


def check_shards(index: str, document: Any, where: dict[str, int], paths: list[str], save_id: str | None = None) -> None:
    """The index and the shards agree: every tensor of the index is in the shard it names, and every tensor of a shard
    is in the index, mapped to that shard. A directory whose files do not belong together (from two saves, say) is
    refused rather than loaded as a mix."""
    for tensor, shard in where.items():
        found = document.tensor(tensor)
        if found is None or found[3] != shard:
            raise InvalidFileError(f"{index}: the index maps tensor {quote(tensor)} to {os.path.basename(paths[shard])}, "
                                   "which does not hold it")
    for shard, path in enumerate(paths):
        if save_id is not None and (document.metadata(shard) or {}).get(SAVE_KEY) != save_id:
            raise InvalidFileError(f"{index}: shard {os.path.basename(path)} was not written by the save that wrote the "
                                   "index (another save's file, left by an interrupted save or by two saves at once)")
        for name, *_ in document.tensors(shard):
            if where.get(name) != shard:
                raise InvalidFileError(f"{index}: shard {os.path.basename(path)} holds tensor {quote(name)}, which the "
                                       "index does not map to it")

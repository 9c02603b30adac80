"""Sharded saves: one structure over several safetensors files in the Hugging Face layout
(``model-00001-of-00003.safetensors`` + ``model.safetensors.index.json``), the schema kept in the index."""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import IO, Any

from . import _core
from ._errors import InvalidArgumentError, InvalidFileError, quote
from ._limits import DEFAULT_MAX_HEADER_SIZE
from ._format import (CHECKSUMS_KEY, INDEX_METADATA, INDEX_NAME, INDEX_WEIGHT_MAP, RESERVED_INDEX_KEYS, SAVE_KEY, SCHEMA_KEY,
                      TOTAL_SIZE_KEY, file_json)
from ._progress import saving

__all__ = ["INDEX_NAME", "LOCAL", "SHARD_FILE_NAME", "SHARD_PATTERN", "Place", "aside_id", "check_index_metadata",
           "check_regular_file", "check_replaceable", "directory_lock", "install", "locked_by_another", "old_shards",
           "parse_size", "read_index_file", "remove_if_present", "remove_stale_temporaries", "save_lock", "save_running",
           "save_sharded", "shard_name", "write_atomically", "write_temporary"]

PREFIX = "model"
#: The shard file names an index may map tensors to: plain, visible names beside the index, never a path elsewhere.
SHARD_FILE_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*\.safetensors")
#: The names shard_name gives.
SHARD_PATTERN = re.compile(rf"{PREFIX}-\d{{5}}-of-\d{{5}}\.safetensors")
#: A save's id (save_sharded: 12 random bytes in hex), as the names of its files and its index give it.
_SAVE_ID = "[0-9a-f]{24}"
#: The temporary files of a sharded save (save_sharded): its shards ``.model-<k>.<save id>.partial`` (named by the core
#: writer) and its index ``.model.safetensors.index.json.<save id>.<random>.partial``; and the lock file each save holds
#: while it runs, ``.model.<save id>.lock``.
_TEMPORARY = re.compile(rf"\.(?:{PREFIX}-\d+|{re.escape(INDEX_NAME)})\.({_SAVE_ID})(?:\.[A-Za-z0-9_]+)?\.partial")
_LOCK = re.compile(rf"\.{PREFIX}\.({_SAVE_ID})\.lock")
#: A shard of the save an index names, moved aside while a later save renames its own shards into place (see
#: previous_shard): ``.<shard>.<that save's id>.previous``.
_PREVIOUS = re.compile(rf"\.({SHARD_FILE_NAME.pattern})\.({_SAVE_ID})\.previous")
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(size: int | str) -> int:
    """Bytes from an int or a text such as ``"5GB"`` or ``"500MiB"`` (as transformers' ``max_shard_size`` takes)."""
    if type(size) is int:
        value = size
    elif isinstance(size, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?I?B?)\s*", size.upper())
        if match is None or match.group(2) not in _UNITS:
            raise InvalidArgumentError(f"max_shard_size {size!r} is not a size such as 500000000, '5GB' or '500MiB'")
        # Exact (a float of 400 digits is infinity, which int() refuses with OverflowError).
        value = int(Fraction(match.group(1)) * _UNITS[match.group(2)])
    else:
        raise TypeError(f"max_shard_size must be an int or a str such as '5GB', not {type(size).__name__}")
    if value <= 0:
        raise InvalidArgumentError(f"max_shard_size must be positive, not {size!r}")
    # The core counts bytes in 64 bits: a larger size (no file is that large) is no limit, which this is too.
    return min(value, (1 << 64) - 1)


def check_regular_file(path: str, what: str = "file") -> None:
    """Refuses, without opening it, a path that is not a regular file (a FIFO would block the open, a device or a
    socket would be read without end): InvalidFileError naming it. A symbolic link to a regular file is fine (the
    Hugging Face cache links ``snapshots/<rev>/<shard>`` to ``../../blobs/<hash>``). OSError (FileNotFoundError...) when
    the path cannot be looked at."""
    mode = os.stat(path).st_mode  # follows links; never blocks, whatever the file is
    if not stat.S_ISREG(mode):
        raise InvalidFileError(f"{path}: the {what} is {_kind(mode)}, not a regular file")


def read_index_file(index: str, limit: int) -> bytes:
    """The bytes of the index file ``index``, read no further than ``limit``: InvalidFileError naming it when it is not
    a regular file (checked on the file opened, without waiting: a FIFO put in its place after a look would block the
    read) or holds more than ``limit`` bytes. FileNotFoundError when there is none."""
    fd = os.open(index, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        mode, size = (found := os.fstat(fd)).st_mode, found.st_size
        if not stat.S_ISREG(mode):
            raise InvalidFileError(f"{index}: the index is {_kind(mode)}, not a regular file")
        if size > limit:
            raise InvalidFileError(f"{index}: the index is {size} bytes, over the limit of {limit}")
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise InvalidFileError(f"{index}: the index is over the limit of {limit} bytes (it grew as it was read)")
    return raw


def check_replaceable(path: str) -> None:
    """Refuses a save's target that is there and is neither a regular file nor a directory, nor a link to one: a save
    writes beside its target and renames over it, which would replace a FIFO or a device (``/dev/null``, for a process
    that may) with a regular file, or the link that names one (``/dev/stdout``). InvalidArgumentError naming it and the
    way to write into it. A link to a regular file is replaced itself, never what it points to; a directory is refused
    by the rename (IsADirectoryError)."""
    try:
        mode = os.lstat(path).st_mode
        link = stat.S_ISLNK(mode)
        if link:
            mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return  # nothing there, or a link to nothing: the save makes a file
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise InvalidArgumentError(f"{path}: the target is {'a link to ' if link else ''}{_kind(mode)}, which a save "
                                   "would replace with a regular file: to write into it, save to a file object "
                                   "(open(path, 'wb'))", code="NotARegularFile")


def _kind(mode: int) -> str:
    """What a file of ``mode`` (not a regular file) is, as messages name it."""
    return ("a FIFO" if stat.S_ISFIFO(mode) else "a directory" if stat.S_ISDIR(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")


def shard_name(index: int, count: int) -> str:
    """The file name of shard ``index`` (1-based) of ``count`` in the Hugging Face convention:
    ``model-00001-of-00003.safetensors``."""
    return f"{PREFIX}-{index:05d}-of-{count:05d}.safetensors"


def write_atomically(path: str, data: bytes | Callable[[IO[bytes]], None], fsync: bool = False, mode: int = 0o644,
                     replace: bool = True) -> None:
    """Writes ``path`` (see :func:`write_temporary` for ``data``) through a temporary file beside it, renamed into place
    once whole: the old file or the new one, never a part. Without ``replace`` an existing file is never replaced
    (FileExistsError). A FIFO or a device there is refused (:func:`check_replaceable`)."""
    check_replaceable(path)
    temp = write_temporary(path, data, fsync, mode=mode)
    try:
        if replace:
            os.replace(temp, path)
        else:
            os.link(temp, path)  # fails if the target exists, atomically (a rename would replace it)
            os.unlink(temp)
    except BaseException:
        remove_if_present(temp)
        raise


def write_temporary(path: str, data: bytes | Callable[[IO[bytes]], None], fsync: bool = False, tag: str = "",
                    mode: int = 0o644) -> str:
    """Writes ``data`` (bytes, or a function that writes them to the file it is given) to a new temporary file beside
    ``path`` (``.NAME.XXXX.partial``, ``.NAME.TAG.XXXX.partial`` with a ``tag``), with permissions ``mode``, and
    returns its path; on failure nothing is left."""
    import tempfile  # only when saving: it imports random, shutil and more, which a load must not pull in

    directory = os.path.dirname(path) or "."
    prefix = "." + os.path.basename(path) + "." + (tag + "." if tag else "")
    fd, temp = tempfile.mkstemp(prefix=prefix, suffix=".partial", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(temp, mode)
    except BaseException:
        remove_if_present(temp)
        raise
    return temp


def remove_if_present(path: str) -> bool:
    """Removes ``path``, and says whether it was there (nothing is done when it is already gone)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def _old_shards(index: str) -> tuple[set[str], str | None]:
    """:func:`old_shards` of the index file at ``index``, if it is a regular file within the limit of a load's."""
    try:
        return old_shards(read_index_file(index, DEFAULT_MAX_HEADER_SIZE))
    except (OSError, InvalidFileError):
        return set(), None


def old_shards(raw: bytes) -> tuple[set[str], str | None]:
    """The shard files an existing index (its bytes) lists, to remove those a new save no longer uses, and the id its
    shards are moved aside under (:func:`aside_id`); None for an index that cannot be read."""
    try:
        document = json.loads(raw)
        weight_map = document.get(INDEX_WEIGHT_MAP, {})
        shards = {v for v in weight_map.values() if isinstance(v, str) and SHARD_FILE_NAME.fullmatch(v)}
        return shards, aside_id(raw, document.get(INDEX_METADATA, {}).get(SAVE_KEY))
    except (ValueError, AttributeError, RecursionError):
        return set(), None


def aside_id(raw: bytes, save_id: Any) -> str:
    """The id under which a later save moves aside the shards of the index ``raw`` (previous_shard): the id of the save
    that wrote it, or, for an index no sharded save of safestructures wrote (another tool's, an older version's), one
    made from its bytes, which a load reading them makes alike. (Without one, a save cut between its renames left such
    an index naming some new shards and some old: a load took tensors of two checkpoints as one.)"""
    if isinstance(save_id, str) and re.fullmatch(_SAVE_ID, save_id):
        return save_id
    import hashlib  # only here: `import safestructures` stays without it

    return hashlib.sha256(raw).hexdigest()[:24]


def previous_shard(directory: str, name: str, save_id: str, join: Callable[..., str] = os.path.join) -> str:
    """Where shard ``name`` of the save ``save_id`` waits while a later save renames a shard of the same name into
    place, until that save's index replaces ``save_id``'s. A save cut between those renames (SIGKILL, power loss)
    leaves the index of ``save_id`` beside shards of its own: loads read ``save_id``'s shards from here, and the next
    save puts them back first."""
    return join(directory, f".{name}.{save_id}.previous")


def shard_of(path: str) -> str:
    """The name of the shard at ``path``: its file's name, or the name it was moved aside from (previous_shard)."""
    name = os.path.basename(path)
    match = _PREVIOUS.fullmatch(name)
    return name if match is None else match.group(1)


@dataclass(frozen=True)
class Place:
    """Where a sharded save puts its files, as the rules of replacing a checkpoint (:func:`install`) need it: a local
    directory (:data:`LOCAL`), or a URL's through fsspec (``_elsewhere``). ``remove`` ignores a file already gone;
    ``names`` gives the names of the files in a directory."""

    join: Callable[..., str]
    names: Callable[[str], list[str]]
    exists: Callable[[str], bool]
    move: Callable[[str, str], Any]
    remove: Callable[[str], Any]


LOCAL = Place(os.path.join, os.listdir, os.path.lexists, os.replace, remove_if_present)


def install(place: Place, directory: str, shards: Mapping[str, str], index: str, put: Callable[[str, str], Any],
            old: tuple[set[str], str | None]) -> None:
    """Puts a sharded save's files in place over the checkpoint whose index ``old`` describes (:func:`old_shards`):
    ``put(source, target)`` puts each shard (``shards``: name -> source) and then the ``index`` source, last, so an
    index never names a shard not in place yet. A shard of the old index's save of the same name is moved aside first
    (previous_shard), so that the checkpoint the old index names stays whole until the new index replaces it; a put
    that fails puts back what was moved. Then the old shards the new index does not use are removed, and what was
    moved aside."""
    previous, previous_id = old
    _restore_previous(place, directory, previous_id)
    moved: list[tuple[str, str]] = []
    try:
        for name, source in shards.items():
            target = place.join(directory, name)
            if previous_id is not None and name in previous and place.exists(target):
                aside = previous_shard(directory, name, previous_id, place.join)
                place.move(target, aside)
                moved.append((aside, target))
            put(source, target)
    except BaseException:
        for aside, target in reversed(moved):
            place.move(aside, target)
        raise
    put(index, place.join(directory, INDEX_NAME))
    for stale in previous - set(shards):
        place.remove(place.join(directory, stale))
    for aside, _target in moved:  # the index is this save's: what was moved aside is stale
        place.remove(aside)


def _restore_previous(place: Place, directory: str, index_aside_id: str | None) -> None:
    """Puts the shards a cut save moved aside (previous_shard) back in place where they are of the index in place
    (its aside_id); those of any other index were replaced since, and are removed."""
    try:
        entries = place.names(directory)
    except OSError:
        return
    for name in entries:
        match = _PREVIOUS.fullmatch(name)
        if match is None:
            continue
        if match.group(2) == index_aside_id:
            place.move(place.join(directory, name), place.join(directory, match.group(1)))
        else:
            place.remove(place.join(directory, name))


@contextlib.contextmanager
def save_lock(directory: str, save_id: str) -> Iterator[None]:
    """Holds ``.model.<save id>.lock`` in ``directory`` locked (flock) while a save runs, so that other saves can tell
    its temporary files from those of a save that was killed. The lock file appears already locked (created and locked
    under another name, then renamed), and is removed when the save ends."""
    import fcntl
    import tempfile

    fd, new = tempfile.mkstemp(prefix=f".{PREFIX}.{save_id}.", suffix=".lock-new", dir=directory)
    lock = os.path.join(directory, f".{PREFIX}.{save_id}.lock")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.replace(new, lock)
        try:
            yield
        finally:
            remove_if_present(lock)
    finally:
        os.close(fd)
        remove_if_present(new)


def remove_stale_temporaries(directory: str) -> list[str]:
    """Removes the temporary files that sharded saves killed before they finished (SIGKILL, power loss) left in
    ``directory``, and returns their names.

    The rule: a save holds a lock on its own lock file (``.model.<save id>.lock``, flock) from before it writes its
    first temporary file until it has renamed its last one. Temporary files whose save's lock file is absent or not
    locked belong to a save that is no longer running, and are removed; those of a save running now (in this process
    or another, on this machine) are left alone. (On a file system without flock, such as some NFS set-ups, the lock
    is not shared between machines.)
    """
    found: dict[str, list[str]] = {}
    try:
        entries = [entry.name for entry in os.scandir(directory)]
    except OSError:
        return []
    for name in entries:
        match = _TEMPORARY.fullmatch(name) or _LOCK.fullmatch(name)
        if match is not None:
            found.setdefault(match.group(1), []).append(name)
    removed = []
    for save_id, names in found.items():
        if save_running(directory, save_id):
            continue
        for name in sorted(names, key=lambda n: n.endswith(".lock")):  # the lock file last
            if remove_if_present(os.path.join(directory, name)):
                removed.append(name)
    return removed


def save_running(directory: str, save_id: str) -> bool:
    """Whether the save ``save_id`` (of :func:`save_lock`) holds its lock in ``directory`` now: False when its lock file
    is absent (that save is over), not a regular file (no save made it) or not locked (its process is gone); True when
    held, or when the lock cannot be looked at (its files are then left alone)."""
    return locked_by_another(os.path.join(directory, f".{PREFIX}.{save_id}.lock")) is not False


def locked_by_another(path: str) -> bool | None:
    """Whether an flock is held on the file at ``path`` (by a save's :func:`save_lock`, by a Recorder): False when
    nothing is there, when it is no regular file (none of those lockers made it) or when nobody holds it; None when it
    cannot be looked at (each caller decides what that means)."""
    import fcntl

    try:
        # A FIFO, which a plain open would wait on for ever, a link or a device is no locker's file; O_NONBLOCK and
        # O_NOFOLLOW for one swapped in meanwhile.
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # closing releases the lock just taken
    return False


@contextlib.contextmanager
def directory_lock(directory: str) -> Iterator[None]:
    """An exclusive flock on the directory itself (no lock file left behind), released on exit."""
    import fcntl

    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def index_text(metadata: Mapping[str, Any]) -> dict[str, str]:
    """An index's metadata as its checksums cover it: every value as text (``total_size``, a JSON number, as JSON
    writes it)."""
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in metadata.items()}


def index_document(raw: bytes | str, where: str) -> Any:
    """The JSON document of an index (a sharded save's, a Hugging Face folder's, a distributed checkpoint's), named
    ``where`` in messages: InvalidFileError for text that is no JSON (or no UTF-8), or nests past Python's recursion
    limit (json's parser recurses per level). Python's json takes ``NaN`` and ``Infinity``, which JSON lacks (other
    readers of the index refuse them; no command could write the document back as JSON), and numbers past a double's
    range as infinities: refused as well."""
    try:
        return file_json(raw)
    except RecursionError:
        raise InvalidFileError(f"{where}: the index nests too deeply to be one") from None
    except InvalidFileError as e:
        raise InvalidFileError(f"{where}: {e}", code=e.code) from None
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidFileError(f"{where}: not a JSON index: {e}") from None


def check_index_metadata(metadata: Mapping[str, str] | None) -> None:
    """Refuses the keys a sharded save's caller may not put in its index's metadata (InvalidArgumentError)."""
    for key in metadata or ():
        # The index's metadata holds the caller's beside total_size and the schema: neither may be replaced, and the
        # keys of safestructures 1.0.0 are refused as a single file's save refuses them.
        if key in RESERVED_INDEX_KEYS:
            raise InvalidArgumentError(f"metadata key {quote(key)} is reserved for safestructures' own use"
                                       + (" (the index's total size)" if key == TOTAL_SIZE_KEY else ""), code="InvalidMetadata")


def save_sharded(data: Any, directory: str, metadata: Mapping[str, str] | None, max_shard_size: int, max_depth: int,
                 fsync: bool, context: dict[str, Any], checksums: bool = True, snapshot: Any = None,
                 progress: bool = False) -> None:
    """Write ``data`` into ``directory`` as shards of at most ``max_shard_size`` tensor bytes plus the index; or, given
    a ``snapshot`` (``_core.snapshot_sharded``, taken earlier by a background save), what it holds (``data`` unused).

    Every shard is written under a temporary name first, then the index; only then are they renamed into place, so a
    failure while writing (an object that cannot be saved, a full disk) leaves an earlier checkpoint in the directory
    as it was. Shards of an earlier save that this one does not use are removed last. ``progress`` shows the shards'
    tensor bytes on a bar as they are written.
    """
    check_index_metadata(metadata)
    save_id = os.urandom(12).hex()
    with _made_directory(directory):
        remove_stale_temporaries(directory)
        _save_sharded_into(data, directory, metadata, max_shard_size, max_depth, fsync, context, checksums, snapshot,
                           progress, save_id)


@contextlib.contextmanager
def _made_directory(directory: str) -> Iterator[None]:
    """Makes ``directory`` (and its missing parents) for the block; a block that fails removes those it made again,
    where they are still empty, so that a failed save leaves no empty directory where there was none."""
    made = []
    at = os.path.abspath(directory)
    while not os.path.lexists(at):
        made.append(at)
        at = os.path.dirname(at)
    os.makedirs(directory, exist_ok=True)
    try:
        yield
    except BaseException:
        for path in made:  # the deepest first
            try:
                os.rmdir(path)
            except OSError:  # not empty (another save's files), or gone: left as it is
                break
        raise


def _save_sharded_into(data: Any, directory: str, metadata: Mapping[str, str] | None, max_shard_size: int, max_depth: int,
                       fsync: bool, context: dict[str, Any], checksums: bool, snapshot: Any, progress: bool,
                       save_id: str) -> None:
    """:func:`save_sharded` in ``directory``, which exists."""
    with save_lock(directory, save_id):
        index = os.path.join(directory, INDEX_NAME)
        if snapshot is None:
            written = saving(progress, directory, lambda report: _core.save_sharded(
                data, directory, PREFIX, save_id, max_depth, max_shard_size, fsync, context, checksums, report))
        else:
            written = saving(progress, directory, lambda report: _core.write_snapshot_sharded(
                snapshot, directory, PREFIX, save_id, max_shard_size, fsync, checksums, report))
        schema, temps, weight_map, total, digests = written
        index_temp = None
        names = [shard_name(k + 1, len(temps)) for k in range(len(temps))]
        try:
            index_metadata = {TOTAL_SIZE_KEY: total, **(metadata or {}), SAVE_KEY: save_id, SCHEMA_KEY: schema}
            placements = {tensor: names[shard] for tensor, shard in weight_map}
            if checksums:
                # The index's structure, and each shard's checksums entry (which covers the shard whole).
                index_metadata[CHECKSUMS_KEY] = _core.index_checksums(index_text(index_metadata), placements,
                                                                      list(zip(names, digests)))
            document = {INDEX_METADATA: index_metadata, INDEX_WEIGHT_MAP: placements}
            text = json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")
            index_temp = write_temporary(index, text, fsync, tag=save_id)
            # Everything is written: only renames are left, shards first and the index last, so an index never names
            # a shard that is not in place yet. Saves into one directory take turns here (a lock on the directory), so
            # two at once leave one whole checkpoint, the last one's, rather than a mix.
            with directory_lock(directory):
                install(LOCAL, directory, dict(zip(names, temps)), index_temp, os.replace, _old_shards(index))
        except BaseException:
            for temp in temps:
                remove_if_present(temp)
            if index_temp is not None:
                remove_if_present(index_temp)
            raise

"""The ``safestructures`` command line (also ``python -m safestructures``): inspect, verify, get and upgrade."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import pkgutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from . import _core, _progress, _registry, _v1
from ._api import load_file, save_file
from ._cli_render import (
    TooLarge, _cut, _describe_value, _is_tensor, _print_json, _size, _to_json, _tree_lines,
)
from ._cli_tree import PathNotFound, UsageError, _split, find, find_value, referenced_tensors, verify_torch_only
from ._errors import IntegrityError, InvalidFileError, SafestructuresError, UnsupportedTypeError, _count, quote
from ._format import TAG
from ._lazy import SafeFile, open_source
from ._lazy_schema import describe, path_text
from ._limits import DEFAULT_MAX_DEPTH, DEFAULT_MAX_HEADER_SIZE, DEFAULT_MAX_NODES, default_max_bytes
from ._sharded import write_atomically
from ._ranges import read_whole
from ._remote import is_url
from ._source import DCP, PLAIN, PLAIN_SHARDS, SHARDED, V1, V2, Source, file_format, resolve, verify_index
from ._walkers import load_arguments
from .plugins import plugins_by_name

__all__ = ["main"]


# --- the opened file ----------------------------------------------------------------------------------------------


@dataclass
class _Opened:
    """A file the commands work on: a lazily opened one (``lazy``), or the loaded value of a 1.0.0 file (``value``)."""

    path: str
    fmt: str  # "safestructures v2", "plain safetensors", "safestructures 1.0.0"
    metadata: dict[str, Any] | None
    tensors: dict[str, tuple[str, tuple[int, ...], int]]  # name -> (safetensors dtype, shape, nbytes), data only
    shards: int
    lazy: SafeFile | None = None
    value: Any = None  # the whole data of a 1.0.0 file, or the {name: tensor} of a plain sharded checkpoint
    size: int = 0  # the bytes of every file read (what get's default --max-bytes is tied to)
    warnings: list[str] = field(default_factory=list)  # what verify reports beside OK
    source: Source | None = None  # what resolve found at the path (the files verify checks the checksums of)

    def summary(self) -> str:
        """One line: the format, tensors and their bytes, shards and the user metadata."""
        total = sum(nbytes for _dtype, _shape, nbytes in self.tensors.values())
        parts = [self.fmt]
        if self.shards > 1:
            parts.append(f"{self.shards} shards")
        parts.append(f"{_count(len(self.tensors), 'tensor')}, {_size(total)} of tensor data")
        if self.metadata:
            shown = {k: _cut(v) if isinstance(v, str) else v for k, v in self.metadata.items()}
            parts.append(f"metadata {json.dumps(shown, ensure_ascii=False)}")
        else:
            parts.append("no metadata")
        return f"{self.path}: " + ", ".join(parts)

    def close(self) -> None:
        """Release the lazily opened file."""
        if self.lazy is not None:
            self.lazy.close()


def _open(path: str) -> _Opened:
    """Open ``path`` for a command. A 1.0.0 file is loaded whole (as numpy: its tensors are views of the mapping, so
    this reads no tensor data); a checkpoint of plain files (or a distributed one) is loaded as the ``{name: tensor}``
    dict of its index; other files are opened lazily (header and schema only)."""
    if not is_url(path) and not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    source = resolve(path, DEFAULT_MAX_HEADER_SIZE)
    if source.kind in (PLAIN_SHARDS, DCP) and not source.ranged:  # a remote one is opened lazily, as other files are
        return _open_plain_shards(source)
    load_args, _context = load_arguments("numpy", "cpu", None, (), False, None)
    f, fmt = open_source(source, load_args, (DEFAULT_MAX_DEPTH, DEFAULT_MAX_NODES, DEFAULT_MAX_HEADER_SIZE))
    opened = _Opened(path, fmt, f.metadata, f.tensors(), f._document().shard_count, lazy=f, size=f._size, source=source)
    if fmt == V1:
        f.close()
        opened.metadata, opened.lazy, opened.value = _v1.user_metadata(f.metadata), None, load_file(path, framework="numpy")
    return opened


def _open_plain_shards(source: Source) -> _Opened:
    """A sharded checkpoint of plain safetensors files, as the ``{name: tensor}`` dict its index maps (tensors in
    index order, numpy views of the mapped shards: no data read). A tensor the index maps to a shard that lacks it is
    an error; a tensor of a shard the index does not map to it is a warning."""
    from .frameworks import numpy as np_adapter

    # Each shard's tensors as the core read its header: name -> (buffer, dtype, shape, offset, nbytes).
    shards = [{name: (buffer, *entry) for name, *entry in table} for buffer, _metadata, table in map(_core.read_file, source.paths)]
    value, tensors = {}, {}
    for name, shard in source.where.items():
        if name not in shards[shard]:
            raise InvalidFileError(f"{source.index}: the index maps tensor {quote(name)} to "
                                   f"{os.path.basename(source.paths[shard])}, which does not hold it")
        buffer, dtype, shape, offset, nbytes = shards[shard][name]
        value[name] = np_adapter.from_file(buffer, dtype, shape, offset, nbytes, name)
        tensors[name] = (dtype, tuple(shape), nbytes)
    unmapped = [f"{quote(n)} ({os.path.basename(source.paths[shard])})" for shard, held in enumerate(shards) for n in held
                if source.where.get(n) != shard]
    warnings = []
    if unmapped:
        warnings.append(f"{_count(len(unmapped), 'tensor')} in the shards that the index does not map there: {_first_ten(unmapped)}")
    size = sum(os.path.getsize(path) for path in source.paths)
    return _Opened(source.name, PLAIN, source.metadata or None, tensors, len(shards), value=value, warnings=warnings, size=size,
                   source=source)


# --- commands -------------------------------------------------------------------------------------------------------


def _first_ten(names: list[str]) -> str:
    """Names a warning lists: the first ten, then "..." for the rest."""
    return ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")


def _nonnegative(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {n}")
    return n


def _inspect_types(args: argparse.Namespace) -> int:
    """``inspect --types``: each class name the file mentions, its kind and count, and whether a load would resolve it
    (among the classes registered, the --type classes and the --plugin classes); nothing from the file is imported."""
    with contextlib.closing(_open(args.file)) as opened:
        if opened.lazy is None:
            raise UsageError(f"{args.file} is a {opened.fmt} file; --types reads safestructures v2 files")
        found = opened.lazy.type_names()
    classes = _registry.resolver(args.type or ())["names"]
    plugin_names = plugins_by_name(args.plugin or None) if args.plugin else {}
    rows = [{"kind": kind, "type": name, "count": count,
             "resolves": name in (plugin_names if kind == TAG.Plugin else classes)}
            for kind, names in sorted(found.items()) for name, count in sorted(names.items())]
    if args.json:
        _print_json({"file": args.file, "types": rows})
        return 0
    if not rows:
        _write_out(f"{args.file}: names no classes\n")
    for row in rows:
        mark = "resolves" if row["resolves"] else "unresolved (loads as a record)"
        _write_out(f"{row['type']}  [{row['kind']}, {_count(row['count'], 'node')}]  {mark}\n")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    if args.types:
        return _inspect_types(args)
    with contextlib.closing(_open(args.file)) as opened:
        if opened.lazy is not None:
            doc = opened.lazy._document()
            description = describe(opened.lazy._schema, doc.root, (), args.depth, doc.tensor, True, args.items,
                                   raw_keys=not args.json)
        else:
            description = _describe_value(opened.value, (), args.depth, args.items, not args.json, {})
            if opened.fmt == PLAIN:  # a sharded checkpoint's dict: its keys are the tensors' names
                for name, tensor in description.get("items", []):
                    tensor["tensor"] = name
        if args.json:
            header = {"file": opened.path, "format": opened.fmt, "shards": opened.shards, "metadata": opened.metadata,
                      "tensors": len(opened.tensors),
                      "tensor_bytes": sum(nbytes for _d, _s, nbytes in opened.tensors.values())}
            _print_json({"header": header, "tree": description})
        else:
            _write_out(opened.summary() + "\n")
            _tree_lines(description, _write_out)
    return 0


def _shows_progress() -> bool:
    """Whether a long command draws a progress bar: on a terminal (standard error), with tqdm installed."""
    return sys.stderr.isatty() and _progress.installed()


def _checksum_mismatches(opened: _Opened) -> tuple[bool, list[str]]:
    """(whether any file read has checksums, what does not match them): every tensor and the structure of every file,
    and a sharded save's index and shards against the index's, each mismatch named; nothing stops at the first."""
    assert opened.source is not None
    found, mismatches = False, []
    ranged = opened.source.ranged
    shows = _shows_progress() and not ranged  # a URL's bar would read its headers again
    total = _progress.tensor_bytes(opened.source.paths) if shows else None
    with _progress.bar(shows, total, f"verify {_progress.label(opened.path)}") as shown:
        for shard, path in enumerate(opened.source.paths):
            if ranged:  # a URL: each file read whole, once
                has, damaged, _digest = _core.verify_bytes(read_whole(ranged[shard], DEFAULT_MAX_HEADER_SIZE), path)
            else:
                told = None if shown is None else _progress.advancing(shown)
                has, damaged, _digest = _core.verify_file(path, DEFAULT_MAX_HEADER_SIZE, told)
            found = found or has
            mismatches += [f"{path}: {message}" for message in damaged]
    if opened.lazy is not None and opened.source.kind == SHARDED:
        try:
            verify_index(opened.source, opened.lazy._document())
        except IntegrityError as e:
            mismatches.append(str(e))
    return found, mismatches


def _verify(args: argparse.Namespace) -> int:
    with contextlib.closing(_open(args.file)) as opened:
        has_checksums, mismatches = _checksum_mismatches(opened)
        if mismatches:
            for mismatch in mismatches:
                _write_out(f"safestructures verify: {mismatch}\n", sys.stderr)
            return 1
        if opened.lazy is not None:
            # Every node built as numpy: tensors checked against their dtype and shape, every class name, key and
            # reference. No framework is imported, whatever the file names.
            try:
                opened.lazy.load(framework="numpy")
            except UnsupportedTypeError:
                # A dtype only torch has (torch.complex32): those tensors are checked against their nodes, the rest
                # built as numpy.
                if not verify_torch_only(opened.lazy):
                    raise
            if opened.fmt == V2:
                unused = [quote(n) for n in sorted(set(opened.tensors) - referenced_tensors(opened.lazy))]
                if unused:
                    opened.warnings.append(f"{_count(len(unused), 'tensor')} in the file that the data does not use: "
                                           f"{_first_ten(unused)}")
        for warning in opened.warnings:
            _write_out(f"safestructures verify: warning: {warning}\n", sys.stderr)
        if not has_checksums:
            print("safestructures verify: note: no checksums found (saved without them, before them, or by another "
                  "tool): the layout and the structure were checked, not the tensors' bytes", file=sys.stderr)
        _write_out(f"OK: {opened.summary()}\n")
    return 0


def _write_npy(array: Any, out: IO[bytes]) -> None:
    """Write an array as .npy. numpy has no name of its own for ml_dtypes' types (bfloat16, float8_*, int4...):
    ``np.save`` would write them as opaque void (``|V2``), so their header names the ml_dtypes type instead, which
    ``np.load`` reads back once ``ml_dtypes`` is imported."""
    import numpy as np

    array = np.ascontiguousarray(array)
    if type(array.dtype.type).__module__.startswith("ml_dtypes") or array.dtype.type.__module__.startswith("ml_dtypes"):
        np.lib.format.write_array_header_1_0(out, {"descr": array.dtype.name, "fortran_order": False, "shape": array.shape})
        out.write(array.tobytes())
    else:
        np.lib.format.write_array(out, array, allow_pickle=False)


def _get(args: argparse.Namespace) -> int:
    if args.output not in (None, "-") and not args.force and os.path.lexists(args.output):
        raise FileExistsError(17, "File exists", args.output)  # before any work: never replaced without --force
    with contextlib.closing(_open(args.file)) as opened:
        max_bytes = args.max_bytes if args.max_bytes is not None else default_max_bytes(opened.size)
        parts = _split(args.path)
        if opened.lazy is not None:
            node = find(opened.lazy, parts)
            path, value = node._path, node.load(framework="numpy")
        else:
            path, value = find_value(opened.value, parts)
        if _is_tensor(value) and not args.json:
            if args.output is None:
                raise UsageError(f"{path_text(path)} is a tensor ({value.dtype} {list(value.shape)}): give -o FILE.npy "
                                 "to write it (-o - for standard output), or --json for its values")
            # A view (an expanded tensor: stride 0) may stand for far more bytes than the file holds: refused before
            # anything is allocated or written.
            nbytes = math.prod(value.shape) * value.dtype.itemsize
            if nbytes > max_bytes:
                raise TooLarge(f"{path_text(path)} is {value.dtype} {list(value.shape)}: written out it takes {nbytes:,} "
                               f"bytes, past the limit of {max_bytes:,} (4 times the file's size plus 256 MiB; "
                               "--max-bytes N raises it)")
            if args.output == "-":
                _write_npy(value, sys.stdout.buffer)
                sys.stdout.buffer.flush()
            else:
                mask = os.umask(0)  # a new file's permissions: the umask read (there is no other way), restored
                os.umask(mask)
                write_atomically(args.output, lambda out: _write_npy(value, out), mode=0o666 & ~mask,
                                 replace=args.force)
                print(f"wrote {args.output} ({value.dtype} {list(value.shape)}, {_size(value.nbytes)})", file=sys.stderr)
            return 0
        if args.output is not None:
            raise UsageError(f"{path_text(path)} is not a tensor: -o writes tensors only (values are printed as JSON)")
        _print_json(_to_json(value, path, args.json, max_bytes))
    return 0


def _write_out(line: str, stream: IO[str] | None = None) -> None:
    """Writes a line of text read from a file (a class name, a path's text, a message naming either) to standard
    output, or to `stream`: a character that is not printable as backslash escapes, as repr() writes it, so that no file
    can send the terminal an escape sequence (clear the screen, set its title, write the clipboard), reorder the text
    shown or break the line to forge another one; what the output cannot encode (a lone surrogate) likewise, rather
    than failing."""
    out = sys.stdout if stream is None else stream
    body, end = (line[:-1], "\n") if line.endswith("\n") else (line, "")
    if not body.isprintable():
        body = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in body)
    try:
        out.write(body + end)
    except UnicodeEncodeError:
        encoding = out.encoding or "utf-8"
        out.write((body + end).encode(encoding, "backslashreplace").decode(encoding))


def _plugin(spec: str) -> Any:
    """A plugin class named on the command line as ``module:Class`` (the user names the code to run, not a file)."""
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise argparse.ArgumentTypeError(f"a plugin is given as module:Class, not {spec!r}")
    try:
        return pkgutil.resolve_name(spec)
    except (ImportError, AttributeError, ValueError) as e:
        raise argparse.ArgumentTypeError(f"cannot find plugin {spec!r}: {e}") from None


def _upgrade(args: argparse.Namespace) -> int:
    _buffer, metadata, _tensors = _core.read_file(args.old)
    if file_format(False, metadata) != V1:
        raise UsageError(f"{args.old} is not a safestructures 1.0.0 file")
    shown = _shows_progress()
    data = load_file(args.old, plugins=args.plugin or None, strict=args.strict, progress=shown)
    save_file(data, args.new, metadata=_v1.user_metadata(metadata), plugins=args.plugin or None, progress=shown)
    print(f"wrote {args.new}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="safestructures", description="Work with safestructures files (and plain safetensors files).",
        epilog="FILE is a .safetensors file, or a sharded directory (or its model.safetensors.index.json). Exit "
        "status: 0 success, 1 a bad or unreadable file (the reason on standard error), 2 a usage error.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    inspect = commands.add_parser(
        "inspect", help="show the tree a file holds: types, dtypes, shapes and sizes",
        description="Show what a file holds as a tree: containers with their sizes, tensors with dtype, shape, bytes "
        "and framework, scalars with their values, classes by name. Reads the header and schema only (a 1.0.0 file "
        "is loaded, its tensors mapped, not read).",
    )
    inspect.add_argument("file", metavar="FILE", help="the file, or a sharded directory")
    inspect.add_argument("--depth", type=_nonnegative, metavar="N", help="show N levels below the root (default: all)")
    inspect.add_argument("--items", type=_nonnegative, metavar="N", help="show at most N children of each container")
    inspect.add_argument("--json", action="store_true", help="print {\"header\": ..., \"tree\": ...} as JSON")
    inspect.add_argument("--types", action="store_true", help="list the class names the file mentions (read from the "
                         "schema, nothing imported) and whether a load would resolve each")
    inspect.add_argument("--type", action="append", type=_plugin, metavar="MODULE:CLASS",
                         help="with --types: a class a load would be given in types= (repeatable)")
    inspect.add_argument("--plugin", action="append", type=_plugin, metavar="MODULE:CLASS",
                         help="with --types: a 1.0.0-style plugin class a load would be given (repeatable)")
    inspect.set_defaults(run=_inspect)

    verify = commands.add_parser(
        "verify", help="check a whole file: checksums, header, schema, every value and tensor",
        description="Check a file completely: the checksums saved with it (every tensor's bytes, the structure and "
        "metadata, and for a sharded save the index and every shard), its header, its schema, and every node built "
        "(as numpy, so no framework is needed), every tensor's bytes inside the file and consistent with its dtype "
        "and shape. Prints 'OK: ...' and exits 0 on a good file; prints the reason (naming each tensor that does not "
        "match its checksum, or the structure, or the path in the data) and exits 1 on a bad one. Tensors of the "
        "file the data does not use are reported as a warning; a file without checksums as a note (the file is "
        "still OK).",
    )
    verify.add_argument("file", metavar="FILE", help="the file, or a sharded directory")
    verify.set_defaults(run=_verify)

    get = commands.add_parser(
        "get", help="print a value as JSON, or write a tensor as .npy",
        description="Print the value at PATH as JSON, or write the tensor at PATH as a .npy file. PATH is dotted as "
        "tensor names are (model.layers.0.weight; '' or '.' for the whole data): sequence items by index, keys that "
        "hold dots as they are; or written as error messages write it, $[\"model\"][\"layers\"][0], for exact keys "
        "(\"1\" is a string, 1 an int). A bfloat16/float8 tensor's .npy names its ml_dtypes type: import ml_dtypes "
        "before np.load.",
    )
    get.add_argument("file", metavar="FILE", help="the file, or a sharded directory")
    get.add_argument("path", metavar="PATH", help="the dotted path of the value")
    how = get.add_mutually_exclusive_group()
    how.add_argument("-o", "--output", metavar="OUT.npy", help="where to write a tensor ('-' for standard output); "
                     "an existing file is not replaced without --force")
    how.add_argument("--json", action="store_true", help="print tensors' values as JSON arrays instead")
    get.add_argument("--force", action="store_true", help="replace OUT.npy if it exists")
    get.add_argument("--max-bytes", type=_nonnegative, metavar="N", help="the most bytes a tensor written out (-o, or "
                     "--json values) may take (default: 4 times the file's size plus 256 MiB); a view, such as an "
                     "expanded tensor, may stand for far more than the file holds")
    get.set_defaults(run=_get)

    upgrade = commands.add_parser(
        "upgrade",
        help="rewrite a safestructures 1.0.0 file in the current format",
        description="Rewrite a file written by safestructures 1.0.0 in the current format (the same data, the same "
        "metadata). Plugin types of the old file are rebuilt through the --plugin classes given, and saved through "
        "them again; without one they are kept as records.",
    )
    upgrade.add_argument("old", help="the 1.0.0 file")
    upgrade.add_argument("new", help="where to write the upgraded file (replaced atomically)")
    upgrade.add_argument("--plugin", action="append", type=_plugin, metavar="MODULE:CLASS", help="a 1.0.0-style plugin class (repeatable)")
    upgrade.add_argument("--strict", action="store_true", help="fail on a type no --plugin handles, instead of keeping it as a record")
    upgrade.set_defaults(run=_upgrade)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 1 a bad file or data, 2 a usage error)."""
    args = _parser().parse_args(argv)
    # The walks recurse once per level of the data; files may nest up to max_depth (1000) levels, each a few frames.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        return int(args.run(args))
    except BrokenPipeError:  # output piped into a command that stopped reading (head): not an error of the file
        try:  # what is left in standard output's buffer goes nowhere, instead of failing again at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # not a real file (output captured in-process)
            pass
        return 1
    except (UsageError, PathNotFound, SafestructuresError, OSError) as e:
        message = f"{e.filename} exists (--force replaces it)" if isinstance(e, FileExistsError) else str(e)
        # Name the file, as the header's errors do, so that a message from a batch of files says which one it is.
        where = getattr(args, "file", None)
        if isinstance(e, SafestructuresError) and where is not None and not message.startswith(where):
            message = f"{where}: {message}"
        _write_out(f"safestructures {args.command}: {message}\n", sys.stderr)
        return 2 if isinstance(e, UsageError) else 1
    finally:
        sys.setrecursionlimit(limit)

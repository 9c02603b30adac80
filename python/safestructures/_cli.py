"""The ``safestructures`` command line (also ``python -m safestructures``)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from . import _core
from ._api import load_file, save_file
from ._errors import SafestructuresError

__all__ = ["main"]


def _plugin(spec: str) -> Any:
    """A plugin class named on the command line as ``module:Class`` (the user names the code to run, not a file)."""
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise argparse.ArgumentTypeError(f"a plugin is given as module:Class, not {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
        for part in class_name.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as e:
        raise argparse.ArgumentTypeError(f"cannot find plugin {spec!r}: {e}") from None
    return target


def _upgrade(args: argparse.Namespace) -> int:
    from . import _v1

    _buffer, metadata, _tensors = _core.read_file(args.old)
    if not _v1.is_v1(metadata):
        print(f"safestructures upgrade: {args.old} is not a safestructures 1.0.0 file", file=sys.stderr)
        return 2
    data = load_file(args.old, plugins=args.plugin or None, strict=args.strict)
    kept = {k: v for k, v in (metadata or {}).items() if k not in (_v1.SCHEMA_KEY, _v1.VERSION_KEY)}
    save_file(data, args.new, metadata=kept, plugins=args.plugin or None)
    print(f"wrote {args.new}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="safestructures", description="Work with safestructures files.")
    commands = parser.add_subparsers(dest="command", required=True)
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
    try:
        return int(args.run(args))
    except (SafestructuresError, OSError) as e:
        print(f"safestructures {args.command}: {e}", file=sys.stderr)
        return 1

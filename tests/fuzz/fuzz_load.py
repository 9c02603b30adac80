"""atheris target: safestructures.load(bytes) on arbitrary bytes, through the C++ core, the Python-side tree builder,
the numpy adapter and the 1.0.0 reader. A SafestructuresError subclass is the expected outcome for bad input; any
other exception (RecursionError, MemoryError, SystemError, TypeError...), a crash or a hang is a bug.

Run by scripts/fuzz.sh against a sanitized, coverage-instrumented build of the extension (build/fuzz/pkg; see
tests/fuzz/README.md for the command line). Arguments are libFuzzer's: a corpus folder to fuzz, or files to replay.
Plain `.venv/bin/python tests/fuzz/fuzz_load.py FILE` replays against the installed package.

Each input is loaded twice: as a whole file, and as the text of a schema document wrapped into a valid file that
holds the tensors "t" (F32 [3, 4]) and "u8" (U8 [3]); the corpus holds both kinds (*.safetensors and *.json), so
mutations of a schema are not lost to a broken header or length prefix.

Wrapped schemas are also opened lazily (safestructures.open, from a file on /dev/shm): the tree is described and each
child of the root is loaded on its own, which resolves references and storages outside the part loaded.

Tensors are built with framework="numpy": a fuzzed "fw" field must not make a run import torch, tensorflow or jax
(seconds of start-up and hundreds of MB per import) -- the numpy adapter still builds every tensor and view.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import tempfile

import atheris

# Modules that load() imports lazily are imported here, so that they are instrumented too.
with atheris.instrument_imports(include=["safestructures"]):
    import safestructures
    import safestructures._v1
    import safestructures.frameworks.numpy

import numpy  # noqa: F401  (imported once here rather than inside the first run)

Expected = safestructures.SafestructuresError


WRAP_TENSORS = '"t":{"dtype":"F32","shape":[3,4],"data_offsets":[0,48]},"u8":{"dtype":"U8","shape":[3],"data_offsets":[48,51]}'
WRAP_DATA = struct.pack("<12f", *range(12)) + bytes([1, 2, 3])


def wrap(schema: str) -> bytes:
    """A valid safetensors file with `schema` as its __safestructures__ metadata."""
    header = '{"__metadata__":{"__safestructures__":' + json.dumps(schema) + "}," + WRAP_TENSORS + "}"
    encoded = header.encode()
    return struct.pack("<Q", len(encoded)) + encoded + WRAP_DATA


def check_load(data: bytes) -> None:
    try:
        safestructures.load(data, framework="numpy")
    except Expected:
        return
    # Accepted: a writable buffer takes the other path (writable views) and must load too.
    try:
        safestructures.load(bytearray(data), framework="numpy")
    except Expected as e:
        raise AssertionError(f"load(bytes) succeeded but load(bytearray) raised {e!r}") from e


PARTIAL_FILE = os.path.join("/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir(), f"fuzz_load_{os.getpid()}.safetensors")


def check_partial(data: bytes) -> None:
    with open(PARTIAL_FILE, "wb") as f:
        f.write(data)
    try:
        with safestructures.open(PARTIAL_FILE, framework="numpy") as opened:
            root = opened.tree
            root.describe()
            if root.is_container:
                for child in list(root.values())[:16]:
                    child.load()
    except Expected:
        return


def TestOneInput(data: bytes) -> None:
    check_load(data)
    try:
        schema = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    wrapped = wrap(schema)
    check_load(wrapped)
    check_partial(wrapped)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

"""Writes the inputs of the fuzz_structure target (committed): its seed corpus (tests/fuzz/corpus/fuzz_structure/) and
the regression inputs of issue 14's loading cases (tests/fuzz/regressions/fuzz_structure/). Run from the repository
root: .venv/bin/python tests/fuzz/make_structure_corpus.py

Seeds are fixed pseudo-random byte strings of several lengths (the generator reads any bytes as choices of the
grammar), plus files saved by the project's own writer in the target's raw form (``SSFILE\\n`` + the file), so that
mutations start from real structures too. Regression inputs are whole files in the compressed raw form
(``SSZLIB\\n`` + zlib of the file), built with tests/python/crafted.py, each sized so that a build with issue 14's fixes
replays it in well under a second under the sanitizers (where Python's allocations go through ASan and a walk costs
about ten times its plain cost). The quadratic cases (6, 8) are therefore replayed at a size where they check the
fixed behaviour, not the blow-up; tests/python/test_crafted_meaning.py runs them at full size, in subprocesses with
time and memory budgets, on the plain build.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import random
import shutil
import struct
import sys
import uuid
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))

import crafted  # noqa: E402  (tests/python/crafted.py)
import numpy as np  # noqa: E402
import safestructures as ss  # noqa: E402

CORPUS = HERE / "corpus" / "fuzz_structure"
REGRESSIONS = HERE / "regressions" / "fuzz_structure"
RAW = b"SSFILE\n"
ZLIB = b"SSZLIB\n"


def seeds() -> dict[str, bytes]:
    rng = random.Random(14)
    out = {f"random-{n:02d}": bytes(rng.getrandbits(8) for _ in range(length))
           for n, length in enumerate([8, 16, 32, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4000] * 2)}
    shared = [1, 2]
    cycle: list = [0]
    cycle.append(cycle)
    grid = np.arange(12, dtype=np.float32).reshape(3, 4)
    samples = {
        "scalars": {"i": 2**63 - 1, "big": 2**70, "f": -0.0, "nan": float("nan"), "inf": float("-inf"), "s": "\ud800x",
                    "b": b"xy" * 40, "ba": bytearray(b"z"), "c": 1 - 2j, "none": None, "e": ...},
        "containers": {"l": [shared, shared], "t": (1, (2,)), "s": {1, 2}, "fs": frozenset({"a"}),
                       "od": collections.OrderedDict(a=1), "dd": collections.defaultdict(list, {1: [2]}),
                       "ctr": collections.Counter("aab"), "dq": collections.deque([1], maxlen=3), "cycle": cycle,
                       (1, "k"): {2.5: None}, frozenset({3}): range(0, 10, 3)},
        "stdlib": {"d": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=1), "X")),
                   "td": datetime.timedelta(days=-1), "dec": decimal.Decimal("-0"), "fr": fractions.Fraction(1, 3),
                   "u": uuid.UUID(int=1), "sl": slice(1, None, -1), "p": Path("a/b")},
        "tensors": {"w": grid, "view": grid[:, ::2], "be": np.arange(3, dtype=">i4"), "c128": np.ones(2, np.complex128),
                    "npscalar": np.float32(1.5), "u": np.array(["ab"]), "dt": np.datetime64("2024-01-01", "ns")},
    }
    for name, value in samples.items():
        out[f"saved-{name}"] = RAW + ss.save(value)
    return out


def regressions() -> dict[str, bytes]:
    """Issue 14's loading cases (numbered as in the issue), as whole files."""
    c = crafted
    files = {
        # 1. a lone surrogate where an error message echoes it: a segfault (NULL from nb::str(...).c_str())
        "01-surrogate-npscalar-dtype": c.surrogate_scalar_dtype(),
        "01-surrogate-tensor-dtype": c.surrogate_tensor_dtype(),
        "01-surrogate-torch-dtype": c.surrogate_torch_dtype(),
        "01-surrogate-in-every-field": c.surrogate_in_every_field(),
        # 2. a doubling tuple hashed as a set item and as a dict key: 2**30 leaves walked by hash()
        "02-hashed-doubling-set": c.hashed_expansion(30, "set"),
        "02-hashed-doubling-dict-key": c.hashed_expansion(30, "dict"),
        "02-hashed-doubling-frozenset": c.hashed_expansion(30, "frozenset"),
        # 4. many nodes naming one tensor, each copying it: 700 nodes x 1 MiB
        "04-bytes-named-700-times": c.tensor_named_many_times("bytes", nodes=700),
        "04-bytearray-named-700-times": c.tensor_named_many_times("bytearray", nodes=700),
        "04-big-endian-named-700-times": c.tensor_named_many_times("big-endian", nodes=700),
        "04-f4-named-400-times": c.tensor_named_many_times("F4", nodes=400),
        # 5. a zero-stride view over 4 bytes, converted: 2**28 elements (1 GiB) materialised
        "05-zero-stride-view-big-endian": view_with(dtype=">i4"),
        # (a file saying "fw": "jax" or "tensorflow" converts the view there, on a load with framework=None; this target
        # never imports those frameworks, so today's build fails these two by trying to import them, issue 14's case 10)
        "05-zero-stride-view-fw-jax": view_with(fw="jax", base_fw="jax"),
        "05-zero-stride-view-fw-tensorflow": view_with(fw="tensorflow", base_fw="tensorflow"),
        # 6. keys that all hash to 0: quadratic insertion
        "06-colliding-int-keys-dict": c.colliding_keys(3000),
        "06-colliding-int-keys-set": c.colliding_keys(2000, "set"),
        # 8. many Ellipsis leaves (and tuple keys) that describe()/keys() build one partial load at a time
        "08-many-ellipsis-describe": c.many_leaves(4000, {"$": "Ellipsis"}),
        "08-many-tuple-keys": c.many_tuple_keys(1500),
        # 13 (and 15). forged classes: an object node for a registered IntEnum; an ext class without from_data
        "13-forged-intenum-object": c.object_node("fuzz.Perm", base="int", value=999),
        "13-forged-intenum-object-value-1": c.object_node("fuzz.Perm", base="int", value=1),
        "13-ext-class-as-object": c.object_node("fuzz.Ext", attrs={"data": 1, "via_from_data": False}),
        # security.md 94. a big int beside Decimals of its hash value, each comparison converting it to decimal
        "94-decimals-beside-a-big-int": c.decimals_beside_a_big_int(1_000_000, sets=100),
        "94-frozensets-of-decimals-and-a-big-int": c.frozensets_of_decimals_and_a_big_int(1_000_000, sets=100),
    }
    return {name: ZLIB + zlib.compress(data, 9) for name, data in files.items()}


def view_with(base_fw: str = "numpy", **fields: object) -> bytes:
    """A 4-byte I32 tensor and a view of it with both strides 0 and shape (2**14, 2**14), with ``fields`` added."""
    base = {"$": "tensor", "name": "b", "fw": base_fw}
    view = {"$": "tensor", "storage": "b", "offset": 0, "shape": [1 << 14, 1 << 14], "stride": [0, 0], "fw": "numpy",
            **fields}
    return crafted.file_bytes({"base": base, "view": view}, {"b": ("I32", [1], struct.pack("<i", 7))})


def write(folder: Path, files: dict[str, bytes], clean: bool) -> None:
    if clean:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    print(f"{folder}: {len(files)} files, {sum(map(len, files.values())):,} bytes")


if __name__ == "__main__":
    write(CORPUS, seeds(), clean=True)
    write(REGRESSIONS, regressions(), clean=False)  # inputs saved from fuzzing findings stay

"""atheris target: structure-aware fuzzing of loads. Each input is read as the choices of a generator that builds a
schema by the grammar of docs/format.md section 5 (structure_gen.py: tags with their fields of right and wrong kinds,
ids and refs including cycles and doubling structures, keys in every hashable position, views, logical dtypes,
framework names, numbers at their limits, lone surrogates) and wraps it, with the tensors it names, into a valid
safetensors file. An input that starts with ``SSFILE\\n`` is instead the file itself (the rest of the input), and one
that starts with ``SSZLIB\\n`` the file compressed with zlib: the regression inputs of issue 14 are saved that way
(make_structure_corpus.py writes them).

Every file goes through:
  - ``safestructures.load(bytes)`` with ``framework=None`` and ``framework="numpy"`` (and ``"torch"`` when
    STRUCTURE_FUZZ_TORCH=1: importing torch costs seconds and lowers executions/s);
  - ``safestructures.open()`` of a temporary file (on /dev/shm), ``.tree.describe()``, ``.keys()`` when the root is a
    mapping, and ``load()`` of the root's first children;
  - a check of what loaded: a member of a registered enum is a member of it, a class registered with to_data/from_data
    was built by its from_data (format.md 5.2: a class is built only through the node kind of its registration).

Expected outcomes: success, a SafestructuresError or an OSError. A finding (raised as an AssertionError that names
the step, so libFuzzer saves the input and stops) is any other exception, a crash or sanitizer report, a step that
imports a framework module (a file never chooses an import; the target itself only imports numpy), or a budget
overrun: an input taking more than STRUCTURE_FUZZ_SECONDS (default 5) in all, or a step whose peak resident memory
grows by more than STRUCTURE_FUZZ_MB (default 512; measured with /proc/self/clear_refs and VmHWM). libFuzzer's
-timeout, -rss_limit_mb and -malloc_limit_mb stay the hard stops for hangs and single huge allocations.

STRUCTURE_FUZZ_KNOWN=avoid bounds the generator's productions that reproduce the known findings of issue 14 (deep
doubling structures where they are hashed, many colliding keys, long runs of one node, huge zero-stride views,
surrogates in dtypes) and tolerates framework imports and forged registered classes, so that a run against a build that
still has those bugs can find new ones.

Run by scripts/fuzz.sh against the sanitized build (build/fuzz/pkg); arguments are libFuzzer's. Replay one input:
  PYTHONPATH=build/fuzz/pkg LD_PRELOAD=$PWD/build/fuzz/asan_with_fuzzer.so ASAN_OPTIONS=detect_leaks=0 \\
    .venv/bin/python tests/fuzz/fuzz_structure.py FILE
and see the file an input stands for: .venv/bin/python tests/fuzz/fuzz_structure.py --dump INPUT OUT.safetensors
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import importlib.abc
import os
import sys
import tempfile
import time
import zlib
from typing import Any

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

with atheris.instrument_imports(include=["safestructures"]):
    import safestructures
    import safestructures._v1
    import safestructures.frameworks.numpy

import numpy  # noqa: F401  (imported once here rather than inside the first run)

import structure_gen

RAW_PREFIX = b"SSFILE\n"
ZLIB_PREFIX = b"SSZLIB\n"  # the same, zlib-compressed (regression files of a few MB that compress to a few KB)
BUDGET_SECONDS = float(os.environ.get("STRUCTURE_FUZZ_SECONDS", "5"))
BUDGET_MB = int(os.environ.get("STRUCTURE_FUZZ_MB", "512"))
AVOID_KNOWN = os.environ.get("STRUCTURE_FUZZ_KNOWN", "") == "avoid"
WITH_TORCH = os.environ.get("STRUCTURE_FUZZ_TORCH", "") == "1"
VERBOSE = os.environ.get("STRUCTURE_FUZZ_VERBOSE", "") == "1"  # prints each step's time and memory
CAPS = structure_gen.Caps.avoiding_known() if AVOID_KNOWN else structure_gen.Caps()
EXPECTED = (safestructures.SafestructuresError, OSError)


class Finding(AssertionError):
    pass


# --- no import chosen by a file ---------------------------------------------------------------------------------------

FRAMEWORK_MODULES = {"tensorflow", "keras", "jax", "jaxlib", "paddle", "mlx", "torch"}
BLOCKED = FRAMEWORK_MODULES - ({"torch"} if WITH_TORCH else set())
attempted_imports: list[str] = []


class _ImportBlocker(importlib.abc.MetaPathFinder):
    """Refuses the frameworks the target does not load (seconds and hundreds of MB each, and paddle's import runs
    shell commands) and records the attempt: a load that imports one is a finding."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname.split(".", 1)[0] in BLOCKED:
            attempted_imports.append(fullname)
            raise ModuleNotFoundError(f"fuzz_structure blocks importing {fullname}", name=fullname)
        return None


if WITH_TORCH:
    import torch  # noqa: F401
sys.meta_path.insert(0, _ImportBlocker())


# --- the classes a file may name ----------------------------------------------------------------------------------------

@safestructures.register(name="fuzz.Perm")
class Perm(enum.IntEnum):
    A = 1
    B = 2


@safestructures.register(name="fuzz.Flags")
class Flags(enum.IntFlag):
    R = 1
    W = 2


@safestructures.register(name="fuzz.Color")
class Color(enum.Enum):
    A = "a"
    B = (1, 2)


class Ext:
    def __init__(self, data: Any, via_from_data: bool) -> None:
        self.data = data
        self.via_from_data = via_from_data


safestructures.register(Ext, name="fuzz.Ext", to_data=lambda e: e.data, from_data=lambda d: Ext(d, True))


@safestructures.register(name="fuzz.Point")
@dataclasses.dataclass
class Point:
    x: Any = None
    y: Any = None


Pair = safestructures.register(collections.namedtuple("Pair", "a b"), name="fuzz.Pair")


@safestructures.register(name="fuzz.MyDict")
class MyDict(dict):
    pass


@safestructures.register(name="fuzz.MyInt")
class MyInt(int):
    pass


@safestructures.register(name="fuzz.Plain")
class Plain:
    pass


def check_loaded(value: Any, step: str) -> None:
    """Walks what a load returned (each object once: shared structure is not expanded) for objects of registered
    classes that their registration could not have built."""
    if AVOID_KNOWN:  # issue 14's case 13: tolerated while looking for new findings
        return
    seen: set[int] = set()
    stack = [value]
    visits = 0
    while stack and visits < 200_000:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        visits += 1
        cls = type(obj)
        if cls in (Perm, Flags, Color):
            try:
                made = cls(obj._value_)
                # A value with bits no member has is made anew by each call (a load leaves it out of the class's
                # cache, which would grow for good): such a one is genuine when of the class and equal as an int.
                genuine = made is obj or (isinstance(obj, int) and bool(obj._value_ & ~getattr(cls, "_flag_mask_", -1))
                                          and int(made) == int(obj) == obj._value_)
            except Exception as e:  # noqa: BLE001 - a forged member may lack anything
                raise Finding(f"FUZZ BUG: {step}: a {cls.__name__} that is no member of it ({type(e).__name__}: {e})") from e
            if not genuine:
                raise Finding(f"FUZZ BUG: {step}: a {cls.__name__} member that is not the enum's own (value "
                              f"{obj._value_!r})")
        elif cls is Ext:
            if obj.__dict__.get("via_from_data") is not True:
                raise Finding(f"FUZZ BUG: {step}: a fuzz.Ext built without its from_data")
        if isinstance(obj, (list, tuple, set, frozenset, collections.deque)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif hasattr(obj, "__dict__") and not isinstance(obj, type) and cls.__module__ not in ("numpy", "torch"):
            stack.extend(vars(obj).values())


# --- budgets ------------------------------------------------------------------------------------------------------------

def _status_kb(field: str) -> int:
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


try:
    with open("/proc/self/clear_refs", "w") as _f:
        _f.write("5")
    CAN_MEASURE = True
except OSError:
    CAN_MEASURE = False


def step(name: str, run: Any, *args: Any, **kwargs: Any) -> Any:
    """Runs one call: returns its result, or None for an expected error; raises Finding for anything else, for an
    import, or when the call's peak memory grows past the budget."""
    if CAN_MEASURE:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # the peak (VmHWM) starts again from the current resident size
        before = _status_kb(b"VmRSS:")
    del attempted_imports[:]
    modules = set(sys.modules)
    started = time.perf_counter()
    try:
        result = run(*args, **kwargs)
    except EXPECTED:
        result = None
    except Finding:
        raise
    except BaseException as e:  # noqa: BLE001 - everything else is a finding, MemoryError and RecursionError too
        raise Finding(f"FUZZ BUG: {name} raised {type(e).__name__}: {str(e)[:500]}") from e
    finally:
        if VERBOSE:
            grown_kb = _status_kb(b"VmHWM:") - before if CAN_MEASURE else 0
            print(f"fuzz_structure: {name}: {time.perf_counter() - started:.3f} s, peak +{grown_kb >> 10} MB",
                  file=sys.stderr)
        if CAN_MEASURE:
            grown = (_status_kb(b"VmHWM:") - before) >> 10
            if grown > BUDGET_MB:
                raise Finding(f"FUZZ BUG: {name} grew the peak resident memory by {grown} MB (budget {BUDGET_MB} MB)")
    if len(sys.modules) != len(modules):  # torch itself is imported (STRUCTURE_FUZZ_TORCH=1): its submodules count
        attempted_imports.extend(m for m in set(sys.modules) - modules if m.split(".", 1)[0] in FRAMEWORK_MODULES)
    if attempted_imports and not AVOID_KNOWN:
        raise Finding(f"FUZZ BUG: {name} imported or tried to import {sorted(set(attempted_imports))[:10]}")
    return result


# --- the checks ---------------------------------------------------------------------------------------------------------

TEMP_FILE = os.path.join("/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir(),
                         f"fuzz_structure_{os.getpid()}.safetensors")


def lazy(path: str) -> None:
    with safestructures.open(path, framework="numpy") as opened:
        root = step("open().tree", lambda: opened.tree)
        if root is None:
            return
        step("open().tree.describe()", root.describe)
        if not root.is_container:
            return
        if root.kind in ("dict", "OrderedDict", "Counter", "defaultdict"):
            step("open().keys()", opened.keys)
        children = step("open().tree.values()", root.values) or []
        for child in children[:4]:
            loaded = step(f"open() child {child.path_text}.load()", child.load)
            check_loaded(loaded, "child load")


def check_file(data: bytes) -> None:
    start = time.perf_counter()
    frameworks: list[str | None] = [None, "numpy"] + (["torch"] if WITH_TORCH else [])
    for framework in frameworks:
        loaded = step(f"load(framework={framework!r})", safestructures.load, data, framework=framework)
        check_loaded(loaded, f"load(framework={framework!r})")
        del loaded
    with open(TEMP_FILE, "wb") as f:
        f.write(data)
    try:
        step("open()", lazy, TEMP_FILE)
    finally:
        os.unlink(TEMP_FILE)
    took = time.perf_counter() - start
    if took > BUDGET_SECONDS:
        raise Finding(f"FUZZ BUG: the input took {took:.2f} s (budget {BUDGET_SECONDS} s)")


def file_of(data: bytes) -> bytes:
    if data.startswith(RAW_PREFIX):
        return data[len(RAW_PREFIX):]
    if data.startswith(ZLIB_PREFIX):
        try:
            return zlib.decompressobj().decompress(data[len(ZLIB_PREFIX):], 64 << 20)
        except zlib.error:
            return b""
    return structure_gen.generate(data, CAPS)


def TestOneInput(data: bytes) -> None:
    check_file(file_of(data))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--dump":
        with open(sys.argv[2], "rb") as f:
            data = f.read()
        with open(sys.argv[3], "wb") as f:
            f.write(file_of(data))
        return
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

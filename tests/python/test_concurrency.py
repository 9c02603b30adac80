"""Threads, reference counts and leaks. Saves and loads run from many threads at once (the core releases the GIL
while it maps, validates and writes) and give exact results; saves racing to one file leave it whole; threads with
small stacks are refused cleanly rather than crashing. The extension leaves the reference counts of what it is given
as they were, loaded arrays hold their buffer (a mapping of the file, or the bytes loaded from) exactly as long as
they live, and a million-fold save and load (scaled down to stay fast) does not grow the process."""

from __future__ import annotations

import gc
import os
import sys
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

import safestructures
from conftest import (
    MEMORY_MB_SOURCE,
    assert_same,
    file_mappings,
    nested_sample,
    run_python_json,
    structured_file_bytes,
    temporary_files,
)

THREADS = 8
ITERATIONS = 50


def run_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Runs ``work(i)`` for i in range(count), each in its own thread, all released at once; re-raises the first
    failure."""
    barrier = threading.Barrier(count)

    def start(i: int) -> Any:
        barrier.wait(timeout=60)
        return work(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(start, i) for i in range(count)]
        return [future.result(timeout=300) for future in futures]


def test_threads_save_and_load_their_own_data(tmp_path: Path) -> None:
    def work(thread: int) -> int:
        path = tmp_path / f"thread{thread}.safetensors"
        previous: tuple[Any, Any] | None = None
        for i in range(ITERATIONS):
            data = nested_sample(thread * 1000 + i)
            safestructures.save_file(data, path)
            loaded = safestructures.load_file(path)
            assert_same(loaded, data)
            assert loaded["shared"] is loaded["again"]
            assert_same(safestructures.load(safestructures.save(data)), data)
            # What the last round loaded views a file since replaced: it keeps its own content.
            if previous is not None:
                assert_same(*previous)
            previous = (loaded, data)
        return ITERATIONS

    assert run_threads(THREADS, work) == [ITERATIONS] * THREADS
    assert temporary_files(tmp_path) == []


def test_threads_save_and_load_flat_files(tmp_path: Path) -> None:
    def work(thread: int) -> None:
        path = tmp_path / f"flat{thread}.safetensors"
        for i in range(ITERATIONS):
            tensors = {"w": np.full((64, 3), thread * 1000 + i, dtype=np.int64), "b": np.arange(i, dtype=np.float32)}
            safestructures.save_tensors(tensors, path, {"i": str(i)})
            loaded = safestructures.load_tensors(path)
            assert set(loaded) == {"w", "b"}
            for name, array in tensors.items():
                assert np.array_equal(loaded[name], array) and loaded[name].dtype == array.dtype
            assert safestructures.load_metadata(path) == {"i": str(i)}

    run_threads(THREADS, work)


def test_threads_load_one_file(tmp_path: Path) -> None:
    data = nested_sample(1, size=10_000)
    path = tmp_path / "shared.safetensors"
    safestructures.save_file(data, path)
    payload = path.read_bytes()

    def work(thread: int) -> None:
        for i in range(ITERATIONS):
            loaded = safestructures.load_file(path) if (thread + i) % 2 else safestructures.load(payload)
            assert_same(loaded, data)

    run_threads(THREADS, work)


def test_racing_saves_to_one_file_leave_it_whole(tmp_path: Path) -> None:
    # Writers keep replacing one file with their versions while readers load it: every load finds one whole version.
    path = tmp_path / "raced.safetensors"
    size = 1 << 20
    versions = {v: {"version": v, "w": np.full(size, v, dtype=np.uint8), "tail": [v] * 10} for v in range(4)}
    safestructures.save_file(versions[0], path)
    writers_done = threading.Event()
    seen: list[int] = []

    def write(writer: int) -> None:
        for _ in range(10):
            safestructures.save_file(versions[writer], path)

    def read(reader: int) -> None:
        while not writers_done.is_set() or not seen:
            loaded = safestructures.load_file(path)
            v = loaded["version"]
            assert loaded["w"].shape == (size,) and (loaded["w"] == v).all() and loaded["tail"] == [v] * 10
            seen.append(v)

    writers_finished = threading.Barrier(4, action=writers_done.set)

    def work(i: int) -> None:
        if i < 4:
            try:
                write(i)
            finally:
                writers_finished.wait(timeout=120)
        else:
            read(i)

    run_threads(8, work)
    assert seen and set(seen) <= set(versions)
    assert temporary_files(tmp_path) == []
    assert safestructures.load_file(path)["version"] in versions


#: In threads with stacks of several sizes, loads and saves data nested 3000 levels deep (allowed by max_depth) and
#: shallow data; prints what each gave: "ok" or the error code.
SMALL_STACKS = """
import json, threading
import safestructures
deep = []
for _ in range(2999):
    deep = [deep]
shallow = {"a": [1, {"b": (2,)}]}
deep_bytes, shallow_bytes = safestructures.save(deep, max_depth=5000), safestructures.save(shallow)
results = {}
for size in (256 << 10, 320 << 10, 512 << 10, 1 << 20, 8 << 20):
    threading.stack_size(size)
    outcome = {}
    def run():
        for name, call in (("save deep", lambda: safestructures.save(deep, max_depth=5000)),
                           ("load deep", lambda: safestructures.load(deep_bytes, max_depth=5000)),
                           ("save shallow", lambda: safestructures.save(shallow)),
                           ("load shallow", lambda: safestructures.load(shallow_bytes))):
            try:
                call()
                outcome[name] = "ok"
            except safestructures.SafestructuresError as e:
                outcome[name] = e.code
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    results[size >> 10] = outcome
print(json.dumps(results))
"""


def test_threads_with_small_stacks_are_refused_cleanly() -> None:
    results = run_python_json(SMALL_STACKS, timeout=120)
    for size, outcome in results.items():
        assert set(outcome.values()) <= {"ok", "NestingTooDeep"}, (size, outcome)
        if int(size) > 256:
            assert outcome["save shallow"] == outcome["load shallow"] == "ok", (size, outcome)
    assert results["8192"] == {"save deep": "ok", "load deep": "ok", "save shallow": "ok", "load shallow": "ok"}


def test_a_thread_with_a_256_kib_stack_saves_and_loads_shallow_data() -> None:
    results = run_python_json(SMALL_STACKS, timeout=120)
    assert results["256"]["save shallow"] == results["256"]["load shallow"] == "ok", results["256"]


# ---------------------------------------------------------------------------------------------------------------------
# Reference counts


def failure(call: Callable[[], Any]) -> str:
    """Runs ``call``, which must raise a SafestructuresError, and returns the error's class name: the exception (and
    the traceback with the frames that hold the arguments) is gone when this returns.

    The tests below call no gc.collect() unless they build a cycle on purpose: what they check must be released by
    reference counting alone."""
    try:
        call()
    except safestructures.SafestructuresError as e:
        return type(e).__name__
    raise AssertionError("no error raised")


def test_saving_leaves_reference_counts_unchanged(tmp_path: Path) -> None:
    array = np.arange(10.0)
    strided = np.arange(20, dtype=np.int32)[::2]
    big = 2**100 + 1
    key = "".join(["k", "e", "y"])  # noqa: FLY002 (a str of its own, not an interned constant)
    inner = [array, strided, big, key, b"x" * 100]
    data = {key: inner, "again": inner, "tuple": (array, {1, 2}), "nested": {"deep": [inner]}}
    metadata = {"run": "".join(["r", "1"])}  # noqa: FLY002
    bad = {"inner": inner, "z": object()}
    objects = [array, strided, strided.base, big, key, inner, data, data["tuple"], data["nested"], metadata, metadata["run"], bad]
    before = [sys.getrefcount(o) for o in objects]
    for _ in range(3):
        safestructures.save(data, metadata)
        safestructures.save_file(data, tmp_path / "counted.safetensors", metadata)
        assert failure(lambda: safestructures.save(bad)) == "UnsupportedTypeError"
        assert failure(lambda: safestructures.save_file(bad, tmp_path / "bad.safetensors")) == "UnsupportedTypeError"
        assert failure(lambda: safestructures.save(data, {"__safestructures__": "x"})) == "InvalidArgumentError"
    assert [sys.getrefcount(o) for o in objects] == before


def test_loading_leaves_the_reference_count_of_the_bytes_unchanged() -> None:
    payload = safestructures.save({"w": np.arange(1000.0), "x": [1, 2]})
    bad = structured_file_bytes([{"$": "tensor", "name": "t", "fw": "numpy"}, {"$": "nope"}], {"t": ("U8", [4], b"abcd")})
    counts = sys.getrefcount(payload), sys.getrefcount(bad)
    loaded = safestructures.load(payload)
    assert sys.getrefcount(payload) > counts[0]  # the array holds its buffer
    array = weakref.ref(loaded["w"])
    del loaded
    assert array() is None  # no cycle keeps the array alive
    assert failure(lambda: safestructures.load(bad)) == "InvalidFileError"  # after the tensor was built
    assert (sys.getrefcount(payload), sys.getrefcount(bad)) == counts


def test_a_loaded_array_holds_the_mapping_exactly_as_long_as_it_lives(tmp_path: Path) -> None:
    path = tmp_path / "mapped.safetensors"
    safestructures.save_file({"w": np.arange(1000.0), "b": np.ones(3, dtype=np.int8), "x": [1]}, path)
    assert file_mappings(path) == []
    loaded = safestructures.load_file(path)
    assert file_mappings(path)
    w = loaded["w"]
    del loaded
    assert file_mappings(path), "the array no longer holds the mapping"
    view = w[10:20]
    del w
    assert file_mappings(path), "a view of the array no longer holds the mapping"
    alive = weakref.ref(view)
    del view
    assert alive() is None
    assert file_mappings(path) == []


def test_data_with_a_cycle_releases_the_mapping_once_collected(tmp_path: Path) -> None:
    path = tmp_path / "cycle.safetensors"
    cyclic: list[Any] = [np.arange(10.0)]
    cyclic.append(cyclic)
    safestructures.save_file({"c": cyclic}, path)
    loaded = safestructures.load_file(path)
    assert loaded["c"][1] is loaded["c"]
    array = weakref.ref(loaded["c"][0])
    del loaded
    gc.collect()
    assert array() is None
    assert file_mappings(path) == []


def test_a_failed_load_releases_the_mapping(tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(structured_file_bytes([{"$": "tensor", "name": "t", "fw": "numpy"}, [1], {"$": "nope"}], {"t": ("U8", [4], b"abcd")}))
    for _ in range(3):
        assert failure(lambda: safestructures.load_file(path)) == "InvalidFileError"
    assert file_mappings(path) == []


def test_flat_arrays_hold_the_mapping_exactly_as_long_as_they_live(tmp_path: Path) -> None:
    path = tmp_path / "flat.safetensors"
    safestructures.save_tensors({"a": np.arange(5.0), "b": np.zeros(2)}, path)
    tensors = safestructures.load_tensors(path)
    a = tensors["a"]
    del tensors
    assert file_mappings(path)
    del a
    assert file_mappings(path) == []


# ---------------------------------------------------------------------------------------------------------------------
# Leaks: many round trips of a tiny structure, successful and failing, in a fresh process.

#: argv: iterations, a scratch file path, a file that fails to load after a tensor is built. Three phases (round trips
#: through bytes, failing loads and saves, round trips through a file), each run for a tenth of its iterations to warm
#: up, then all of them; reports the RSS (MiB) before and after, and, for a shorter run under tracemalloc, the Python
#: memory still allocated (bytes) before and after.
LEAK_SCRIPT = MEMORY_MB_SOURCE + """
import gc, json, sys, time, tracemalloc
import numpy as np
import safestructures

iterations, path, bad_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with open(bad_path, "rb") as f:
    bad_file = f.read()
data = {"a": np.arange(4, dtype=np.float32), "b": [1, "x", (2.5, None)], "c": {1: b"xy"}, "d": {"k": [np.ones(2)]}, "e": {1, 2}}
bad_data = {"a": np.zeros(3), "b": [1, 2], "z": object()}

def bytes_round_trips(n):
    for _ in range(n):
        loaded = safestructures.load(safestructures.save(data))
    assert loaded["b"] == [1, "x", (2.5, None)]

def failures(n):
    for _ in range(n):
        try:
            safestructures.load(bad_file)
        except safestructures.InvalidFileError:
            pass
        try:
            safestructures.save(bad_data)
        except safestructures.UnsupportedTypeError:
            pass

def file_round_trips(n):
    for _ in range(n):
        safestructures.save_file(data, path)
        loaded = safestructures.load_file(path)
    assert loaded["c"] == {1: b"xy"}

phases = [("bytes", bytes_round_trips, iterations), ("failures", failures, iterations // 10), ("files", file_round_trips, iterations // 400)]
report = {}
for name, run, n in phases:
    start = time.perf_counter()
    run(n // 10)
    gc.collect()
    before = memory_mb("VmRSS")
    run(n)
    gc.collect()
    report[name] = {"iterations": n, "rss_before": before, "rss_after": memory_mb("VmRSS")}
    traced = min(n // 10, 5000)
    tracemalloc.start()
    run(traced // 10)
    gc.collect()
    traced_before = tracemalloc.get_traced_memory()[0]
    run(traced)
    gc.collect()
    report[name].update(traced_before=traced_before, traced_after=tracemalloc.get_traced_memory()[0], seconds=time.perf_counter() - start)
    tracemalloc.stop()
print(json.dumps(report))
"""


def test_round_trips_do_not_leak(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(structured_file_bytes([{"$": "tensor", "name": "t", "fw": "numpy"}, [1, 2], {"$": "nope"}], {"t": ("U8", [4], b"abcd")}))
    report = run_python_json(LEAK_SCRIPT, "200000", str(tmp_path / "scratch.safetensors"), str(bad), timeout=300)
    for name, phase in report.items():
        assert phase["rss_after"] - phase["rss_before"] < 10, (name, phase)  # MiB, over 500 to 200,000 iterations
        assert phase["traced_after"] - phase["traced_before"] < 64 * 1024, (name, phase)  # bytes, over 50 to 5,000
    assert sorted(os.listdir(tmp_path)) == ["bad.safetensors", "scratch.safetensors"]


def test_loaded_data_is_independent_across_threads(tmp_path: Path) -> None:
    # Arrays loaded from one file by different threads are private copies-on-write: writing to one changes neither the
    # file nor the others.
    path = tmp_path / "private.safetensors"
    safestructures.save_file({"w": np.zeros(1000)}, path)

    def work(thread: int) -> None:
        for _ in range(ITERATIONS):
            w = safestructures.load_file(path)["w"]
            assert not w.any()
            w[:] = thread + 1
            assert (w == thread + 1).all()

    run_threads(THREADS, work)
    assert not safestructures.load_file(path)["w"].any()

"""The benchmark harness: every workload against its peers in one run, files on /dev/shm and on disk, ratios (ours /
peer) checked against the targets of issues 8 and 18, a results table (Markdown and JSON) and a chart (PNG).

Run through bench/run.sh, which sets up the environments first; `python bench/bench.py --help` lists the options.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import mmap
import os
import pickle
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads as wl  # noqa: E402
import timing  # noqa: E402
from timing import drop_page_cache, summary, timed  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OURS = "safestructures"
V1 = "safestructures 1.0.0"
# W1's checksum measurements: our save without checksums, and verify's check of every checksum of our file.
NO_CHECKSUMS = "safestructures, checksums=False"
VERIFY = "safestructures verify"
# W8: our background save (the time it holds the caller) against our blocking save.
BLOCKING = "safestructures, blocking"


@dataclass
class Peer:
    """One way to save and load a workload's data. `prepare` turns the workload's data into what this peer takes
    (untimed); `load` returns the loaded object, whose tensors the harness then touches inside the timed region."""

    name: str
    save: Callable[[Any, str], Any]
    load: Callable[[str], Any]
    prepare: Callable[[Any], Any] = lambda data: data
    floor: bool = False  # not a real peer: the cost of the bytes alone, for reference
    unavailable: str = ""  # why this peer cannot run here, if it cannot
    # Called, untimed, with what `save` returned: a background save's wait for its write (the timed save is the time
    # the caller is held).
    finish: Callable[[Any], Any] = lambda saved: None


@dataclass
class Workload:
    key: str
    title: str
    build: Callable[[wl.Sizes], Any]
    peers: list[Peer]
    touch: bool = True
    ops: tuple[str, ...] = ("save", "load")
    warmup: int = 1
    repeats: int = 5
    # Saving a few hundred MB to disk is bimodal for every peer (about 0.1 s or 1 s, as ext4 and the virtual disk
    # please, measured with a raw write() alone), so big workloads take more repeats there for a stabler median.
    disk_repeats: int | None = None
    v1: bool = False
    memory_medium: bool = False  # also measure save()/load() on bytes in memory
    # Measured in memory only, each peer's (save, load) of bytes from these (instead of _memory_peers): W6's calls.
    memory_only: Callable[[wl.Sizes], dict[str, tuple[Callable[[Any, str], Any], Callable[[str], Any]]]] | None = None


@dataclass(frozen=True)
class Target:
    """A ratio bound: time ours / time peer <= bound (or, with `faster`, peer / ours >= bound)."""

    workload: str
    op: str
    peer: str
    bound: float
    faster: bool = False

    def met(self, ratio: float) -> bool:
        return 1 / ratio >= self.bound if self.faster else ratio <= self.bound

    def text(self) -> str:
        return f">= {self.bound:g}x faster" if self.faster else f"<= {self.bound:g}"


TARGETS = [
    Target("W1", "save", "safetensors", 1.0),
    Target("W1", "save", "raw bytes", 1.25),
    Target("W1", "load", "safetensors", 1.0),
    Target("W1", "save", NO_CHECKSUMS, 1.10),
    Target("W2", "save", "torch.save/load", 0.5),
    Target("W2", "load", "torch.save/load", 0.5),
    Target("W2", "save", "safetensors", 1.0),
    Target("W2", "load", "safetensors", 1.0),
    Target("W3", "save", "torch.save/load", 0.5),
    Target("W3", "load", "torch.save/load", 0.5),
    Target("W3", "save", "pickle", 1.0),
    Target("W3", "load", "pickle", 1.0),
    Target("W3", "save", V1, 20, faster=True),
    Target("W3", "load", V1, 20, faster=True),
    Target("W4", "save", "pickle", 1.5),
    Target("W4", "load", "pickle", 1.5),
    Target("W4", "save", V1, 30, faster=True),
    Target("W4", "load", V1, 30, faster=True),
    # Issue 21: the structure within 1.5x of pickle at every size, and a tiny call's fixed cost within 1.5x of pickle's
    # and below safetensors' for the same tensor.
    Target("W4-10k", "save", "pickle", 1.5),
    Target("W4-10k", "load", "pickle", 1.5),
    Target("W4-1M", "save", "pickle", 1.5),
    Target("W4-1M", "load", "pickle", 1.5),
    Target("W6", "save", "pickle", 1.5),
    Target("W6", "load", "pickle", 1.5),
    Target("W6", "save", "safetensors", 1.0),
    Target("W6", "load", "safetensors", 1.0),
    Target("W5", "load", "safetensors", 1.0),
    Target("W8", "save", BLOCKING, 0.5),
    # W7 (bench/recorder.py): recording through one Recorder against one file per call, each peer's forward passes
    # included: at most 1.0x the fastest per-call peer, so at most 1.0x each.
    *(Target("W7", "record", peer, 1.0) for peer in ("safestructures per call", "safetensors per call", "torch.save per call")),
]


# ---------------------------------------------------------------------------------------------------------------- peers


def _ours() -> Peer:
    import safestructures as ss

    return Peer(OURS, lambda data, path: ss.save_file(data, path), lambda path: ss.load_file(path))


def _checksum_peers() -> list[Peer]:
    """The cost of the checksums: our save without them (the checksums' cost is ours / this), and `safestructures
    verify`'s check of every checksum (no load; its throughput is set against the bare read of "raw bytes")."""
    import safestructures as ss
    from safestructures import _core

    def verify(path: str) -> list[Any]:
        has_checksums, mismatches, _digest = _core.verify_file(path)
        assert has_checksums and not mismatches
        return []  # nothing loaded: nothing for the harness to touch

    return [
        Peer(NO_CHECKSUMS, lambda data, path: ss.save_file(data, path, checksums=False), lambda path: ss.load_file(path)),
        Peer(VERIFY, lambda data, path: ss.save_file(data, path), verify, floor=True),
    ]


def _write_bytes(data: list[Any], path: str) -> None:
    # The floor of any save: the tensors' own bytes handed to write(), no header, no copy.
    with open(path, "wb") as f:
        for t in data:
            f.write(t.numpy())


def _map_bytes(path: str) -> list[Any]:
    # The floor of any load: a private mapping of the file, as one array whose pages the harness touches.
    import numpy as np

    with open(path, "rb") as f:
        mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    return [np.frombuffer(mapping, dtype=np.uint8)]


def _torch_peer(name: str = "torch.save/load") -> Peer:
    import torch

    return Peer(name, lambda data, path: torch.save(data, path), lambda path: torch.load(path, weights_only=True, mmap=True))


def _pickle_peer() -> Peer:
    def save(data: Any, path: str) -> None:
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=5)

    def load(path: str) -> Any:
        with open(path, "rb") as f:
            return pickle.load(f)

    return Peer("pickle", save, load)


def _json_peer() -> Peer:
    def save(data: Any, path: str) -> None:
        with open(path, "w") as f:
            f.write(json.dumps(data))

    def load(path: str) -> Any:
        with open(path) as f:
            return json.loads(f.read())

    return Peer("json", save, load)


def _safetensors_peer(prepare: Callable[[Any], Any], metadata: Callable[[Any], dict[str, str] | None] = lambda d: None) -> Peer:
    from safetensors.torch import load_file, save_file

    return Peer("safetensors", lambda data, path: save_file(data[0], path, metadata=data[1]), load_file,
                prepare=lambda data: (prepare(data), metadata(data)))


def _tiny_call_peers(sizes: wl.Sizes) -> dict[str, tuple[Callable[[Any, str], Any], Callable[[str], Any]]]:
    """W6: `sizes.tiny_calls` saves (then loads) of the tiny record in memory per measurement, for ours, pickle, and
    safetensors on the record's one tensor (what it would take to store that tensor alone)."""
    import safestructures as ss
    from safetensors.numpy import load as st_load, save as st_save

    calls = range(sizes.tiny_calls)
    held: dict[str, Any] = {}

    def batched(name: str, dumps: Callable[[Any], Any], loads: Callable[[Any], Any], prepare: Callable[[Any], Any] = lambda d: d):
        def save(data: Any, path: str) -> None:
            value = prepare(data)
            for _ in calls:
                held[name] = dumps(value)

        def load(path: str) -> Any:
            for _ in calls:
                out = loads(held[name])
            return out
        return save, load

    return {
        OURS: batched(OURS, ss.save, ss.load),
        "pickle": batched("pickle", lambda d: pickle.dumps(d, protocol=5), pickle.loads),
        "safetensors": batched("safetensors", st_save, st_load, prepare=lambda d: {"t": d["t"]}),
    }


def _lazy_leaf_name(sizes: wl.Sizes) -> tuple[str, str]:
    """The leaf W5 loads: in the middle of the file (group 50 of 100 at full size)."""
    group = min(50, sizes.lazy_tensors // 100 - 1)
    return f"g{group}", "t50"


def _ours_lazy(sizes: wl.Sizes) -> Peer:
    import safestructures as ss

    group, leaf = _lazy_leaf_name(sizes)

    def load(path: str) -> list[Any]:
        with ss.open(path) as f:
            return [f.load(f"{group}.{leaf}")]

    peer = Peer(OURS, lambda data, path: ss.save_file(data, path), load)
    if not hasattr(ss, "open"):
        peer.unavailable = "safestructures.open (the lazy API) is not in this build yet"
    return peer


def _safetensors_lazy(sizes: wl.Sizes) -> Peer:
    from safetensors import safe_open
    from safetensors.torch import save_file

    group, leaf = _lazy_leaf_name(sizes)

    def load(path: str) -> list[Any]:
        with safe_open(path, "pt") as f:
            return [f.get_tensor(f"{group}.{leaf}")]

    return Peer("safetensors", lambda data, path: save_file(data, path), load, prepare=wl.flat)


def _background_peers() -> list[Peer]:
    """W8: our background save, timed until it returns (the caller is held while it snapshots), then waited for
    untimed; our blocking save; orbax-checkpoint's blocking and async saves of the same data as a numpy tree."""
    import safestructures as ss

    peers = [
        Peer(OURS, lambda data, path: ss.save_file(data, path, background=True), ss.load_file,
             finish=lambda future: future.result()),
        Peer(BLOCKING, lambda data, path: ss.save_file(data, path), ss.load_file),
    ]
    names = ("orbax, blocking", "orbax, async")
    if importlib.util.find_spec("orbax") is None:
        reason = "orbax-checkpoint is not installed (bench/requirements.txt pins it; bench/run.sh installs it)"
        return peers + [Peer(name, lambda d, p: None, lambda p: None, unavailable=reason) for name in names]

    @functools.cache
    def checkpointer(name: str) -> Any:
        import orbax.checkpoint as ocp  # imports JAX: only in the process that runs W8, once

        kind = ocp.AsyncCheckpointer if name == "orbax, async" else ocp.Checkpointer
        return kind(ocp.PyTreeCheckpointHandler())

    def saver(name: str) -> Callable[[Any, str], Any]:
        def save(tree: Any, path: str) -> None:
            import orbax.checkpoint as ocp

            checkpointer(name).save(os.path.abspath(path), args=ocp.args.PyTreeSave(tree))
        return save

    restore = lambda path: checkpointer(names[0]).restore(os.path.abspath(path))  # noqa: E731
    return peers + [
        Peer(names[0], saver(names[0]), restore, prepare=wl.numpy_tree),
        Peer(names[1], saver(names[1]), restore, prepare=wl.numpy_tree,
             finish=lambda _saved: checkpointer(names[1]).wait_until_finished()),
    ]


def workloads(sizes: wl.Sizes, quick: bool) -> list[Workload]:
    """The five workloads of issue 8, issue 21's W4 sizes and tiny calls (W6), and W8 of issue 18 (background
    checkpoints), each with its peers (ours first)."""
    ckpt_flat = lambda data: data["model"]  # noqa: E731
    ckpt_meta = lambda data: {"config": json.dumps(data["config"])}  # noqa: E731
    r = (lambda n: 1) if quick else (lambda n: n)
    w = (lambda n: 0) if quick else (lambda n: n)
    return [
        Workload("W1", "checkpoint: GPT-2-small state dict + config", wl.checkpoint, [
            _ours(),
            _safetensors_peer(ckpt_flat, ckpt_meta),
            _torch_peer(),
            Peer("raw bytes", _write_bytes, _map_bytes, prepare=lambda data: list(data["model"].values()), floor=True),
            *_checksum_peers(),
        ], warmup=w(1), repeats=r(5), disk_repeats=r(11)),
        Workload("W2", "10,000 tiny tensors (32x32 float32) in a nested dict", lambda s: wl.tiny_tensors(s.tiny_tensors), [
            _ours(), _safetensors_peer(wl.flat), _torch_peer(),
        ], warmup=w(1), repeats=r(7)),
        Workload("W3", "recorded activations: 200 steps x 12 layers", wl.activations, [
            _ours(), _torch_peer(), _pickle_peer(),
            Peer("raw bytes", _write_bytes, _map_bytes, prepare=wl.tensors_in, floor=True),
        ], warmup=w(1), repeats=r(5), disk_repeats=r(9), v1=True),
        Workload("W4", "pure Python: 100,000 nodes", lambda s: wl.pure_python(s.nodes), [
            _ours(), _pickle_peer(), _json_peer(),
        ], touch=False, warmup=w(2), repeats=r(9), v1=True, memory_medium=True),
        Workload("W4-10k", "pure Python: 10,000 nodes", lambda s: wl.pure_python(s.nodes_small), [
            _ours(), _pickle_peer(), _json_peer(),
        ], touch=False, warmup=w(5), repeats=r(31), memory_medium=True),
        Workload("W4-1M", "pure Python: 1,000,000 nodes", lambda s: wl.pure_python(s.nodes_large), [
            _ours(), _pickle_peer(), _json_peer(),
        ], touch=False, warmup=w(1), repeats=r(5), memory_medium=True),
        Workload("W6", "tiny calls: a dict of three values and a 16-float tensor, in memory", lambda s: wl.tiny_call(), [
            # Timed through _tiny_call_peers only: these name the peers (safetensors stores the tensor alone).
            _ours(), _pickle_peer(), Peer("safetensors", lambda data, path: None, lambda path: None),
        ], touch=False, warmup=w(3), repeats=r(15), memory_only=_tiny_call_peers),
        Workload("W5", "lazy: open a 10,000-tensor file, load one leaf", lambda s: wl.tiny_tensors(s.lazy_tensors), [
            _ours_lazy(sizes), _safetensors_lazy(sizes),
        ], ops=("load",), warmup=w(3), repeats=r(30)),
        Workload("W8", f"training checkpoint in the background: {sizes.state_mib} MiB torch state", wl.training_state,
                 _background_peers(), ops=("save",), warmup=w(1), repeats=r(5), disk_repeats=r(7)),
    ]


# -------------------------------------------------------------------------------------------------------------- running


def _memory_peers() -> dict[str, tuple[Callable[[Any, str], Any], Callable[[str], Any]]]:
    """save(data, path) / load(path) for the in-memory medium (path ignored: the bytes are kept here)."""
    import safestructures as ss

    held: dict[str, Any] = {}

    def keep(name: str, dumps: Callable[[Any], Any]) -> Callable[[Any, str], None]:
        def save(data: Any, path: str) -> None:
            held[name] = dumps(data)
        return save

    return {
        OURS: (keep(OURS, ss.save), lambda path: ss.load(held[OURS])),
        "pickle": (keep("pickle", lambda d: pickle.dumps(d, protocol=5)), lambda path: pickle.loads(held["pickle"])),
        "json": (keep("json", json.dumps), lambda path: json.loads(held["json"])),
    }


def _remove(path: str) -> None:
    """Removes a peer's file, or its folder (orbax writes one; a sharded save too)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def run_workload(work: Workload, sizes: wl.Sizes, media: dict[str, Path], log: Callable[[str], None],
                 file_bytes: dict[str, int] | None = None) -> dict[str, Any]:
    """Times every peer's save and load of one workload on every medium, peers interleaved within each repeat (so
    drift in the machine's speed hits all of them alike). Returns {medium: {op: {peer: [seconds...]}}}."""
    log(f"{work.key}: building the data")
    data = work.build(sizes)
    peers = [p for p in work.peers if not p.unavailable]
    prepared = {p.name: p.prepare(data) for p in peers}
    results: dict[str, Any] = {}
    all_media = dict(media)
    if work.memory_medium:
        all_media = {"memory": Path("/nonexistent")} | all_media
    if work.memory_only:
        all_media = {"memory": Path("/nonexistent")}
    for medium, directory in all_media.items():
        timings: dict[str, dict[str, list[float]]] = {op: {p.name: [] for p in peers} for op in ("save", "load")}
        disk = medium == "disk"
        if work.memory_only:
            ops = work.memory_only(sizes)
        else:
            ops = _memory_peers() if medium == "memory" else {p.name: (p.save, p.load) for p in peers}
        paths = {p.name: str(directory / f"{work.key}-{p.name.replace(' ', '_').replace('/', '_')}.bin") for p in peers}
        repeats = work.disk_repeats if disk and work.disk_repeats else work.repeats
        for rep in range(work.warmup + repeats):
            order = peers[rep % len(peers):] + peers[: rep % len(peers)]
            order = [p for p in order if p.name in ops]
            for p in order:
                save, _ = ops[p.name]
                if "save" not in work.ops and rep > 0:
                    continue  # a load-only workload writes its files once
                _remove(paths[p.name])
                if disk:
                    os.sync()
                saved: list[Any] = []
                seconds = timed(lambda: saved.append(save(prepared[p.name], paths[p.name])))
                if medium != "memory":
                    p.finish(saved[0])
                if file_bytes is not None and medium != "memory" and os.path.isfile(paths[p.name]):
                    file_bytes[p.name] = os.path.getsize(paths[p.name])
                if disk:
                    os.sync()  # untimed: the next measurement must not pay for this one's write-back
                if rep >= work.warmup and "save" in work.ops:
                    timings["save"][p.name].append(seconds)
            for p in order if "load" in work.ops else []:
                _, load = ops[p.name]
                if disk:
                    drop_page_cache()
                holder: list[Any] = []

                def load_and_touch() -> None:
                    loaded = load(paths[p.name])
                    if work.touch:
                        wl.touch(wl.tensors_in(loaded))
                    holder.append(loaded)  # freed outside the timed region

                seconds = timed(load_and_touch)
                del holder
                if rep >= work.warmup:
                    timings["load"][p.name].append(seconds)
        results[medium] = {op: timings[op] for op in work.ops}
        log(f"{work.key} {medium}: " + ", ".join(
            f"{op} {name} {summary(s)['median'] * 1e3:.1f} ms" for op in work.ops for name, s in timings[op].items() if s))
    return results


def run_isolated(key: str, quick: bool, media: dict[str, Path], log: Callable[[str], None]) -> dict[str, Any]:
    """run_workload for one workload in a fresh interpreter (this file with --worker), so that no workload runs in a
    process shaped by the ones before it (its heap, its allocator's and the extension's per-thread caches): W5's lazy
    open measured 1.2x slower after W1-W4 in the same process than alone. Returns its timings and file sizes (see
    worker)."""
    args = [sys.executable, str(Path(__file__).resolve()), "--worker", key]
    if quick:
        args.append("--quick")
    for medium, directory in media.items():
        args += ["--medium", f"{medium}={directory}"]
    done = subprocess.run(args, stdout=subprocess.PIPE, text=True, check=False)  # its log goes straight to stderr
    if done.returncode != 0:
        raise SystemExit(f"{key} failed (exit status {done.returncode})")
    log(f"{key}: done")
    return json.loads(done.stdout)


def worker(key: str, quick: bool, media_specs: list[str]) -> None:
    """The --worker side of run_isolated: prints {"timings": {medium: {op: {peer: [seconds...]}}}, "file_bytes": {peer:
    size of its file}} as JSON."""
    sizes = wl.QUICK if quick else wl.FULL
    timing.COLLECT = not quick
    media = {spec.split("=", 1)[0]: Path(spec.split("=", 1)[1]) for spec in media_specs}
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{key} {time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    work = next(w for w in workloads(sizes, quick) if w.key == key)
    file_bytes: dict[str, int] = {}
    timings = run_workload(work, sizes, media, log, file_bytes)
    json.dump({"timings": timings, "file_bytes": file_bytes}, sys.stdout)


def run_v1(work: Workload, quick: bool, media: dict[str, Path], log: Callable[[str], None]) -> dict[str, Any] | str:
    """safestructures 1.0.0 on the same data, in its own virtual environment (.venv-v1), as a subprocess."""
    python = REPO / ".venv-v1" / "bin" / "python"
    if not python.exists():
        return "not available: .venv-v1 is missing (bench/run.sh creates it)"
    args = [str(python), str(REPO / "bench" / "v1_worker.py"), "--workload", work.key, "--warmup", str(min(work.warmup, 1)),
            "--repeats", str(1 if quick else 3), "--touch" if work.touch else "--no-touch"]
    if quick:
        args.append("--quick")
    for medium, directory in media.items():
        args += ["--medium", f"{medium}={directory}"]
    log(f"{work.key}: {V1} in .venv-v1")
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"failed: {done.stderr.strip()[-2000:]}"
    return json.loads(done.stdout)


def run_recorder(quick: bool, media: dict[str, Path], log: Callable[[str], None]) -> dict[str, Any]:
    """W7 (bench/recorder.py) on every medium (a smoke run: the first only), its Recorder as OURS in the timings; its
    peak memory once (/dev/shm)."""
    import recorder

    entry: dict[str, Any] = {"timings": {}}
    for medium, directory in list(media.items())[:1] if quick else media.items():
        run = recorder.run(quick, directory / "W7", log, memory=medium == "shm" or len(media) == 1 or quick)
        timings = run["timings"]
        timings[OURS] = timings.pop(recorder.OURS)
        entry["timings"][medium] = {"record": timings}
        entry["title"] = run["title"]
        if "memory" in run:
            entry["memory"] = run["memory"]
    return entry


def memory_file_name(peer: str) -> str:
    """The file bench/memory.py loads for `peer`."""
    return "W1-" + peer.replace(" ", "_").replace("/", "_")


MEMORY_PEERS = (OURS, "safetensors", "torch.save/load", "raw bytes")


def run_memory(sizes_name: str, peers: list[str], log: Callable[[str], None]) -> dict[str, Any]:
    """W1 peak memory, each (peer, op) in a fresh interpreter (bench/memory.py) so that peaks do not mix."""
    results: dict[str, Any] = {}
    sizes = wl.FULL if sizes_name == "full" else wl.QUICK
    w1 = next(w for w in workloads(sizes, sizes_name == "quick") if w.key == "W1")
    data = w1.build(sizes)
    directory = Path("/dev/shm") / f"ss-bench-mem-{os.getpid()}"
    directory.mkdir(exist_ok=True)
    try:
        for op in ("save", "load"):
            for peer in peers:
                log(f"W1 peak memory: {op} {peer}")
                if op == "load":
                    # Written here, where the peers are already imported, so that the measuring process only loads.
                    p = next(p for p in w1.peers if p.name == peer)
                    p.save(p.prepare(data), str(directory / memory_file_name(peer)))
                done = subprocess.run(
                    [sys.executable, str(REPO / "bench" / "memory.py"), "--sizes", sizes_name, "--peer", peer, "--op", op,
                     "--dir", str(directory)], capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    results.setdefault(op, {})[peer] = {"error": done.stderr.strip()[-2000:]}
                else:
                    results.setdefault(op, {})[peer] = json.loads(done.stdout)
    finally:
        for f in directory.iterdir():
            f.unlink()
        directory.rmdir()
    return results


# -------------------------------------------------------------------------------------------------------------- reports


def ratio_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (workload, medium, op, peer): medians, spreads, ratio ours / peer, and the target where one is set."""
    rows = []
    for key, work in results["workloads"].items():
        for medium, ops in work["timings"].items():
            for op, peers in ops.items():
                if not peers.get(OURS):
                    continue
                ours = summary(peers[OURS])
                for peer, samples in peers.items():
                    if peer == OURS or not samples:
                        continue
                    theirs = summary(samples)
                    ratio = ours["median"] / theirs["median"]
                    target = next((t for t in TARGETS if (t.workload, t.op, t.peer) == (key, op, peer)), None)
                    rows.append({
                        "workload": key, "medium": medium, "op": op, "peer": peer, "ours": ours, "peer_time": theirs,
                        "ratio": ratio, "target": target.text() if target else "",
                        "met": None if target is None else target.met(ratio),
                    })
    return rows


def _ms(s: dict[str, float]) -> str:
    spread = (s["q3"] - s["q1"]) / s["median"] * 100 if s["median"] else 0.0
    value = s["median"] * 1e3
    return f"{value:.3g} ±{spread:.0f}%" if value < 100 else f"{value:.0f} ±{spread:.0f}%"


def _ratio_text(ratio: float) -> str:
    return f"{ratio:.2f}" if ratio >= 0.1 else f"{ratio:.3f} ({1 / ratio:.0f}x faster)"


def summary_table(rows: list[dict[str, Any]]) -> str:
    """One row per (workload, op, peer): times on /dev/shm, the ratio on every medium, the target and whether it held
    (on every medium measured)."""
    media = [m for m in ("memory", "shm", "disk") if any(r["medium"] == m for r in rows)]
    head = "| workload | op | vs peer | ours (ms, shm) | peer (ms, shm) | " + " | ".join(f"ratio {m}" for m in media) + " | target | met |"
    lines = [head, "|" + "---|" * 3 + "---:|" * (2 + len(media)) + "---|---|"]
    keys: list[tuple[str, str, str]] = []
    for r in rows:
        if (r["workload"], r["op"], r["peer"]) not in keys:
            keys.append((r["workload"], r["op"], r["peer"]))
    for key in keys:
        by_medium = {r["medium"]: r for r in rows if (r["workload"], r["op"], r["peer"]) == key}
        shm = by_medium.get("shm")
        first = next(iter(by_medium.values()))
        met = [r["met"] for r in by_medium.values() if r["met"] is not None]
        verdict = "" if not met else ("yes" if all(met) else ("**no**" if not any(met) else "partly"))
        cells = [_ratio_text(by_medium[m]["ratio"]) if m in by_medium else "" for m in media]
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {_ms(shm['ours']) if shm else ''} | {_ms(shm['peer_time']) if shm else ''} | "
                     + " | ".join(cells) + f" | {first['target']} | {verdict} |")
    return "\n".join(lines) + "\n"


def _checksum_lines(results: dict[str, Any]) -> list[str]:
    """W1's checksums: what they add to a save, and verify's throughput against a bare read of the tensors' bytes."""
    w1 = results["workloads"].get("W1")
    if not w1 or VERIFY not in w1.get("file_bytes", {}):
        return []
    lines = ["", "W1 checksums (median of repeats):", "", "| medium | save with / without | verify | bare read (raw bytes) |",
             "|---|---:|---:|---:|"]
    for medium, ops in w1["timings"].items():
        if medium == "memory" or not ops["load"].get(VERIFY):
            continue
        save = summary(ops["save"][OURS])["median"] / summary(ops["save"][NO_CHECKSUMS])["median"]
        verify = w1["file_bytes"][VERIFY] / summary(ops["load"][VERIFY])["median"] / 1e9
        bare = w1["file_bytes"]["raw bytes"] / summary(ops["load"]["raw bytes"])["median"] / 1e9
        lines.append(f"| {medium} | {save:.3f} | {verify:.2f} GB/s | {bare:.2f} GB/s |")
    return lines


def markdown(results: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The results as Markdown: the summary, every measurement, W1 peak memory, and what is not available."""
    lines = [
        "Summary (ratio = time safestructures / time peer, median of repeats; below 1 means safestructures is faster):",
        "",
        summary_table(rows),
        "Every measurement (median ± interquartile range as a share of the median):",
        "",
        "| workload | op | medium | ours (ms) | peer | peer (ms) | ours / peer | target | met |",
        "|---|---|---|---:|---|---:|---:|---|---|",
    ]
    for r in rows:
        speed = _ratio_text(r["ratio"])
        met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
        lines.append(f"| {r['workload']} | {r['op']} | {r['medium']} | {_ms(r['ours'])} | {r['peer']} | {_ms(r['peer_time'])} | "
                     f"{speed} | {r['target']} | {met} |")
    lines += _checksum_lines(results)
    memory = results.get("memory")
    if memory:
        lines += ["", "W1 peak memory over the input (MiB; fresh process per measurement, files on /dev/shm):", "",
                  "| op | peer | extra peak (VmHWM) | anonymous memory held after |", "|---|---|---:|---:|"]
        for op, peers in memory.items():
            for peer, m in peers.items():
                if "error" in m:
                    lines.append(f"| {op} | {peer} | error | |")
                else:
                    lines.append(f"| {op} | {peer} | {m['extra_peak_mib']:.1f} | {m['anon_after_mib']:.1f} |")
    w7 = results["workloads"].get("W7", {}).get("memory")
    if w7:
        lines += ["", "W7 peak memory above the model (MiB; fresh process per measurement):", "",
                  "| batches | peer | peak above the model | largest single record |", "|---|---|---:|---:|"]
        for batches, peers in w7.items():
            for peer, m in peers.items():
                largest = f"{m['largest_record'] / 2**20:.1f}" if "largest_record" in m else ""
                peak = "error" if "error" in m else f"{m['peak_above_model'] / 2**20:.1f}"
                lines.append(f"| {batches} | {peer} | {peak} | {largest} |")
    missing = [f"- {k}: {v}" for k, v in results.get("unavailable", {}).items()]
    if missing:
        lines += ["", "Not available in this run:", "", *missing]
    return "\n".join(lines) + "\n"


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    """Horizontal bars of ours / peer per (workload, op, peer), one bar per medium, log scale, targets marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels: list[str] = []
    for r in rows:
        label = f"{r['workload']} {r['op']} vs {r['peer']}"
        if label not in labels:
            labels.append(label)
    media = sorted({r["medium"] for r in rows}, key=["memory", "shm", "disk"].index)
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(labels) * len(media) / 1.6 + 1.5))
    height = 0.8 / len(media)
    colors = {"memory": "#8c6bb1", "shm": "#2b8cbe", "disk": "#f16913"}
    for m_index, medium in enumerate(media):
        ys, xs = [], []
        for r in rows:
            if r["medium"] == medium:
                ys.append(labels.index(f"{r['workload']} {r['op']} vs {r['peer']}") + m_index * height - 0.4 + height / 2)
                xs.append(r["ratio"])
        ax.barh(ys, xs, height=height, color=colors[medium], label=medium)
    for r in rows:
        t = next((t for t in TARGETS if (t.workload, t.op, t.peer) == (r["workload"], r["op"], r["peer"])), None)
        if t is not None:
            y = labels.index(f"{r['workload']} {r['op']} vs {r['peer']}")
            ax.plot([1 / t.bound if t.faster else t.bound] * 2, [y - 0.45, y + 0.45], color="black", linewidth=1.5)
    ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("time ours / time peer (log scale; < 1 means safestructures is faster; black ticks: targets)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("safestructures vs peers, median of repeats", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def environment(page_cache_dropped: bool, media: dict[str, Path]) -> dict[str, Any]:
    import numpy
    import safetensors
    import torch

    import safestructures

    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit, "cpu": cpu, "cores": os.cpu_count(),
        "kernel": platform.release(), "python": platform.python_version(), "torch": torch.__version__,
        "safetensors": safetensors.__version__, "numpy": numpy.__version__, "safestructures": safestructures.__version__,
        "media": {k: str(v) for k, v in media.items()},
        "disk_loads": "cold (page cache dropped before each load)" if page_cache_dropped else "warm (page cache could not be dropped)",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes and one repeat: a smoke run of seconds")
    parser.add_argument("--only", default="W1,W2,W3,W4,W5,W4-10k,W4-1M,W6,W7,W8", help="comma-separated workloads to run")
    parser.add_argument("--media", default="shm,disk", help="comma-separated: shm (/dev/shm), disk (--disk-dir)")
    parser.add_argument("--disk-dir", default=str(REPO / "build" / "bench-files"), help="a directory on a real disk")
    parser.add_argument("--out", default=None, help="where results.json, results.md and chart.png go "
                        "(default: bench/results, or build/bench-quick with --quick)")
    parser.add_argument("--no-v1", action="store_true", help=f"skip {V1} (needs .venv-v1)")
    parser.add_argument("--no-memory", action="store_true", help="skip the W1 peak-memory measurements")
    parser.add_argument("--memory-peers", default=",".join(MEMORY_PEERS), help="comma-separated peers whose W1 peak memory is measured")
    parser.add_argument("--no-chart", action="store_true", help="skip the PNG chart (needs matplotlib)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one workload, print its timings
    parser.add_argument("--medium", action="append", default=[], help=argparse.SUPPRESS)  # internal, with --worker
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.quick, args.medium)
        return 0

    sizes, sizes_name = (wl.QUICK, "quick") if args.quick else (wl.FULL, "full")
    timing.COLLECT = not args.quick
    out = Path(args.out) if args.out else (REPO / "build" / "bench-quick" if args.quick else REPO / "bench" / "results")
    out.mkdir(parents=True, exist_ok=True)
    chosen = set(args.only.split(","))
    media: dict[str, Path] = {}
    for medium in args.media.split(","):
        directory = Path("/dev/shm") / f"ss-bench-{os.getpid()}" if medium == "shm" else Path(args.disk_dir) / f"run-{os.getpid()}"
        directory.mkdir(parents=True, exist_ok=True)
        media[medium] = directory
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    dropped = "disk" in media and drop_page_cache()
    results: dict[str, Any] = {"sizes": sizes_name, "workloads": {}, "unavailable": {}}
    try:
        for work in workloads(sizes, args.quick):
            if work.key not in chosen:
                continue
            for p in work.peers:
                if p.unavailable:
                    results["unavailable"][f"{work.key} {p.name}"] = p.unavailable
            entry = {"title": work.title, **run_isolated(work.key, args.quick, media, log)}
            if work.v1 and not args.no_v1:
                v1 = run_v1(work, args.quick, media, log)
                if isinstance(v1, str):
                    results["unavailable"][f"{work.key} {V1}"] = v1
                else:
                    for medium, ops in v1.items():
                        for op, samples in ops.items():
                            entry["timings"][medium][op][V1] = samples
            results["workloads"][work.key] = entry
        if "W7" in chosen:
            results["workloads"]["W7"] = run_recorder(args.quick, media, log)
        if "W1" in chosen and not args.no_memory:
            results["memory"] = run_memory(sizes_name, args.memory_peers.split(","), log)
    finally:
        for directory in media.values():
            for f in directory.iterdir():
                _remove(str(f))
            directory.rmdir()
    results["environment"] = environment(dropped, media)
    rows = ratio_rows(results)
    results["rows"] = rows
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    table = markdown(results, rows)
    (out / "results.md").write_text(table)
    if not args.no_chart:
        chart(rows, out / "chart.png")
    print(table)
    env = results["environment"]
    print(f"{env['date']}, commit {env['commit']}, {env['cpu']} ({env['cores']} cores), torch {env['torch']}, safetensors "
          f"{env['safetensors']}; disk loads {env['disk_loads']}; results in {out}")
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())

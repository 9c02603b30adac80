"""W7, the recorder (issue 22): ResNet-50's forward hooks (transformers' ResNetModel(ResNetConfig()), random weights, no
download; batch 2 at 112x112) record every module's inputs and output, through safestructures.Recorder into one file,
against one file per hook call with safestructures, safetensors and torch.save, in the same run.

Time: the forward passes with their hooks, files written (the same forward passes for every peer; "forward only" is
their cost without hooks, for reference). Peers are interleaved within each repeat; medians. No peer syncs to disk
(the recorder runs with fsync=False, its flush still commits). Memory: each peer records in a fresh interpreter; the
peak resident size is reset after the model is built and run once without hooks, and the peak above that is
reported, for two numbers of batches, beside the largest single record (its tensor bytes).

Run by bench.py (--only W7), or alone: `python bench/recorder.py --batches 3 --repeats 3 --dir /dev/shm/x`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import reset_peak, status_kib, timed  # noqa: E402

OURS = "safestructures Recorder"
PER_CALL = ("safestructures per call", "safetensors per call", "torch.save per call")
FORWARD = "forward only"
MIB = 1 << 20


def build(batches: int, quick: bool = False) -> tuple[Any, list[Any]]:
    """ResNet-50 and `batches` inputs; `quick` (the harness's smoke run): a ResNet of one small block per stage on
    32x32 inputs, the same code paths in a fraction of the time."""
    import torch
    from transformers import ResNetConfig, ResNetModel

    torch.manual_seed(0)
    config = ResNetConfig(depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 32, 64], embedding_size=8) if quick else ResNetConfig()
    side = 32 if quick else 112
    return ResNetModel(config).eval(), [torch.randn(2, 3, side, side) for _ in range(batches)]


def _tensors(value: Any, out: list[Any]) -> list[Any]:
    """The torch tensors in a hook's inputs or output (tuples, lists, dicts, model outputs), in order."""
    import torch

    if isinstance(value, torch.Tensor):
        out.append(value)
    elif isinstance(value, (tuple, list)):
        for v in value:
            _tensors(v, out)
    elif isinstance(value, dict):
        for v in value.values():
            _tensors(v, out)
    return out


def _per_call_writer(peer: str, directory: Path) -> Callable[[str, int, Any, Any, Any], None]:
    import safestructures as ss
    import torch
    from safetensors.torch import save_file as st_save

    def write(name: str, k: int, args: Any, kwargs: Any, output: Any) -> None:
        path = str(directory / f"{name or 'model'}-{k}")
        if peer == "safestructures per call":
            ss.save_file({"inputs": args, "kwargs": kwargs, "output": output}, path + ".safetensors")
        elif peer == "torch.save per call":
            torch.save({"inputs": args, "kwargs": kwargs, "output": output}, path + ".pt")
        else:  # safetensors takes a flat dict of distinct tensors: one met twice (an identity shortcut) is kept once
            flat, seen = {}, set()
            for part, value in (("inputs", args), ("kwargs", kwargs), ("output", output)):
                for i, t in enumerate(_tensors(value, [])):
                    if t.data_ptr() not in seen:
                        seen.add(t.data_ptr())
                        flat[f"{part}.{i}"] = t.contiguous()
            st_save(flat, path + ".safetensors")

    return write


def record(peer: str, model: Any, inputs: list[Any], target: Path) -> None:
    """Runs every batch through `model` with `peer` recording every module call under `target`."""
    import safestructures as ss
    import torch

    with torch.no_grad():
        if peer == FORWARD:
            for x in inputs:
                model(x)
            return
        if peer == OURS:
            with ss.Recorder(target / "recording.safetensors", fsync=False) as rec, ss.record_module(model, rec):
                for x in inputs:
                    model(x)
            return
        write = _per_call_writer(peer, target)
        calls: dict[str, int] = {}
        handles = []
        for name, module in model.named_modules():
            def hook(_m: Any, args: Any, kwargs: Any, output: Any, name: str = name) -> None:
                calls[name] = calls.get(name, -1) + 1
                write(name, calls[name], args, kwargs, output)
            handles.append(module.register_forward_hook(hook, with_kwargs=True))
        try:
            for x in inputs:
                model(x)
        finally:
            for h in handles:
                h.remove()


def _fresh(directory: Path) -> Path:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def _cpu_seconds() -> float:
    """The process's CPU time, user and system, all threads: on a machine others load, wall time measures them."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def time_peers(batches: int, warmup: int, repeats: int, directory: Path, quick: bool = False,
               clock: str = "wall") -> dict[str, list[float]]:
    """{peer: [seconds per repeat]} (wall time, or with clock="cpu" the process's CPU time), peers interleaved in a
    rotating order."""
    model, inputs = build(batches, quick)
    peers = [OURS, *PER_CALL, FORWARD]
    timings: dict[str, list[float]] = {p: [] for p in peers}
    for rep in range(warmup + repeats):
        for p in peers[rep % len(peers):] + peers[:rep % len(peers)]:
            target = _fresh(directory / p.replace(" ", "_").replace(".", "_"))
            if clock == "cpu":
                start = _cpu_seconds()
                record(p, model, inputs, target)
                seconds = _cpu_seconds() - start
            else:
                seconds = timed(lambda: record(p, model, inputs, target))
            if rep >= warmup:
                timings[p].append(seconds)
            shutil.rmtree(target)
    return timings


def largest_record(path: Path) -> int:
    """The tensor bytes of the largest single record (one module call) of a recording."""
    import safestructures as ss

    sizes: dict[str, int] = {}
    for name, (_dtype, _shape, nbytes) in ss.open(path).tensors().items():
        stream_and_call = name.rsplit(".", 1)[0].split(".inputs")[0].split(".output")[0].split(".kwargs")[0]
        sizes[stream_and_call] = sizes.get(stream_and_call, 0) + nbytes
    return max(sizes.values())


def memory_worker(peer: str, batches: int, directory: Path, quick: bool = False) -> dict[str, Any]:
    """One peer's peak memory above the model (run in a fresh interpreter)."""
    model, inputs = build(batches, quick)
    record(FORWARD, model, inputs[:1], directory)  # the forward pass's own memory, reached once before the reset
    base = status_kib("VmRSS")
    reset_peak()
    record(peer, model, inputs, _fresh(directory))
    above = (status_kib("VmHWM") - base) * 1024
    out: dict[str, Any] = {"peak_above_model": above}
    if peer == OURS:
        out["largest_record"] = largest_record(directory / "recording.safetensors")
        out["file_bytes"] = (directory / "recording.safetensors").stat().st_size
    return out


def measure_memory(batch_counts: list[int], directory: Path, quick: bool = False) -> dict[str, Any]:
    """{batches: {peer: memory_worker's result}}; a smoke run measures the recorder and the bare forward pass only."""
    results: dict[str, Any] = {}
    for batches in batch_counts:
        for peer in (OURS, FORWARD) if quick else (OURS, FORWARD, *PER_CALL):
            sub = directory / f"mem-{batches}-{peer.replace(' ', '_')}"
            done = subprocess.run([sys.executable, __file__, "--memory-worker", peer, "--batches", str(batches), "--dir", str(sub),
                                   *(["--quick"] if quick else [])], capture_output=True, text=True, check=False)
            shutil.rmtree(sub, ignore_errors=True)
            results.setdefault(str(batches), {})[peer] = (json.loads(done.stdout) if done.returncode == 0
                                                          else {"error": done.stderr.strip()[-2000:]})
    return results


def run(quick: bool, directory: Path, log: Callable[[str], None], memory: bool = True) -> dict[str, Any]:
    """W7 for bench.py: {"title", "timings": {peer: [seconds]}, "memory": {batches: {peer: {...}}}} (memory only when
    asked), files under `directory` (removed after)."""
    batches, warmup, repeats = (2, 0, 1) if quick else (8, 1, 5)
    try:
        log(f"W7 {directory}: {batches} batches, {repeats} repeats")
        out: dict[str, Any] = {"title": f"recorder: ResNet-50 forward hooks, {batches} batches of 2x3x112x112",
                               "timings": time_peers(batches, warmup, repeats, directory, quick)}
        if memory:
            log("W7: peak memory")
            out["memory"] = measure_memory([1, 2] if quick else [4, 16], directory, quick)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default=f"/dev/shm/ss-recorder-{os.getpid()}")
    parser.add_argument("--memory-worker", help=argparse.SUPPRESS)
    parser.add_argument("--memory", default="2,6", help="comma-separated batch counts whose peak memory is measured")
    parser.add_argument("--quick", action="store_true", help="a small ResNet on 32x32 inputs: a smoke run")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="time peers by wall or CPU time")
    parser.add_argument("--threads", type=int, default=0, help="torch's intra-op threads (0: its default)")
    args = parser.parse_args()
    directory = Path(args.dir)
    if args.memory_worker:
        print(json.dumps(memory_worker(args.memory_worker, args.batches, directory, args.quick)))
        return
    try:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        timings = time_peers(args.batches, 1, args.repeats, directory, args.quick, args.clock)
        memory = measure_memory([int(b) for b in args.memory.split(",")], directory, args.quick)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(json.dumps({"timings": timings, "memory": memory}, indent=1))


if __name__ == "__main__":
    main()

"""The README demo: save a realistic training snapshot (nested data with arrays), show what the file holds, load it
back exactly, and read the same file with the stock safetensors package.

Run it with `bash scripts/demo.sh` (which sets everything up first), or `python examples/demo.py [DIRECTORY]`.
"""

from __future__ import annotations

import collections
import datetime
import json
import math
import pathlib
import struct
import sys
import tempfile

import ml_dtypes
import numpy as np
import safetensors

import safestructures as ss


def make_snapshot(rng: np.random.Generator) -> dict:
    """What a training loop holds at a checkpoint, beyond a flat state dict."""
    embedding = rng.standard_normal((64, 32), dtype=np.float32)
    layers = [
        {"weight": rng.standard_normal((32, 32)).astype(ml_dtypes.bfloat16), "bias": np.zeros(32, np.float32)}
        for _ in range(2)
    ]
    return {
        "model": {"embedding": embedding, "layers": layers, "lm_head": embedding},  # tied weights: one array, twice
        "optimizer": {
            "step": 1200,
            "lr": 3e-4,
            "betas": (0.9, 0.999),
            "moments": [{"exp_avg": np.zeros_like(layer["bias"]), "exp_avg_sq": np.zeros_like(layer["bias"])} for layer in layers],
        },
        "rng": rng.bit_generator.state,  # holds 128-bit integers
        "config": {
            "run": "demo",
            "started": datetime.datetime(2026, 11, 28, 9, 30, tzinfo=datetime.timezone.utc),
            "data_dir": pathlib.PurePosixPath("/data/shards"),
            "layer_sizes": (32, 32),
            "dropout": None,
            "vocab": {0: "<pad>", 1: "<eos>"},  # integer keys stay integers
        },
        "metrics": collections.OrderedDict(
            (step, {"loss": loss, "grad_norm": norm}) for step, loss, norm in [(1000, 2.31, 1.2), (1100, 2.05, math.nan)]
        ),
        "activations": [(step, rng.standard_normal((4, 32), dtype=np.float32)) for step in range(3)],
        "seen_ids": {3, 1, 2},
    }


def header(path: pathlib.Path) -> dict:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n])


def same(a: object, b: object) -> bool:
    """Exact equality: same types all the way down, arrays bit for bit, nan equal to nan."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def main() -> None:
    out_dir = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(tempfile.mkdtemp(prefix="safestructures-demo-"))
    path = out_dir / "snapshot.safetensors"
    snapshot = make_snapshot(np.random.default_rng(0))

    ss.save_file(snapshot, path, metadata={"project": "demo"})

    h = header(path)
    metadata = h.pop("__metadata__")
    print(f"{path.name}: {path.stat().st_size:,} bytes, a valid safetensors file with {len(h)} tensors:")
    for name, entry in h.items():
        begin, end = entry["data_offsets"]
        print(f"  {name:<32} {entry['dtype']:<5} {str(entry['shape']):<9} {end - begin:>6,} bytes")
    schema = metadata.pop("__safestructures__")
    print(f"metadata: {metadata}, plus the structure ({len(schema):,} bytes of JSON), which begins:")
    print("  " + schema[:300] + " ...")

    loaded = ss.load_file(path)
    assert same(loaded, snapshot), "the snapshot must come back exactly"
    assert loaded["model"]["lm_head"] is loaded["model"]["embedding"], "tied weights stay one array"
    print("\nloaded back exactly: types (tuple, set, OrderedDict, datetime, PurePosixPath, int keys), dtypes (bfloat16),")
    print("values (nan, 128-bit ints), and sharing (lm_head is embedding) all as saved")
    print(f"  optimizer.betas = {loaded['optimizer']['betas']!r}")
    print(f"  config.started  = {loaded['config']['started']!r}")
    print(f"  metrics         = {dict(loaded['metrics'])}")
    print(f"  rng state       = {loaded['rng']['state']['state']} (a {loaded['rng']['state']['state'].bit_length()}-bit int)")

    # Any safetensors tool reads the same file: the tensors, with the paths as names.
    with safetensors.safe_open(path, framework="numpy") as f:
        embedding = f.get_tensor("model.embedding")
    assert np.array_equal(embedding, snapshot["model"]["embedding"])
    print("\nthe stock safetensors reader loads tensor 'model.embedding' from it too")
    print(f"file kept at {path}")


if __name__ == "__main__":
    main()

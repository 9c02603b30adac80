"""The README demo: save a small model checkpoint as a safetensors file, load it back, and show what the file holds.

Run it with `bash scripts/demo.sh` (which sets everything up first), or `python examples/demo.py [PATH]`.
"""

from __future__ import annotations

import json
import struct
import sys
import tempfile
from pathlib import Path

import ml_dtypes
import numpy as np
import safetensors

import safestructures as ss


def make_checkpoint(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A two-layer MLP in mixed precision, the way training code holds one."""
    w1 = rng.standard_normal((256, 128), dtype=np.float32)
    return {
        "model.layers.0.weight": w1.astype(ml_dtypes.bfloat16),
        "model.layers.0.bias": np.zeros(256, dtype=ml_dtypes.bfloat16),
        "model.layers.1.weight": rng.standard_normal((10, 256), dtype=np.float32),
        "model.layers.1.bias": np.zeros(10, dtype=np.float32),
        # A transposed view: written in C order straight from its strided memory, no copy first.
        "model.layers.0.weight_t": w1.T,
        "model.quantized": rng.standard_normal(64).astype(ml_dtypes.float8_e4m3fn),
        "optimizer.step": np.array(1200, dtype=np.int64),
        "optimizer.lr_schedule": np.linspace(1e-3, 1e-5, 5),
    }


def describe(path: Path) -> None:
    """Print the file's header the way any safetensors tool sees it."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    print(f"{path.name}: {len(raw):,} bytes, header {n} bytes")
    for key, value in header.pop("__metadata__", {}).items():
        print(f"  metadata {key} = {value}")
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        print(f"  {name:<28} {entry['dtype']:<8} {str(entry['shape']):<12} {end - begin:>9,} bytes at {begin}")


def main() -> None:
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="safestructures-demo-"))
    path = out_dir / "checkpoint.safetensors"
    checkpoint = make_checkpoint(np.random.default_rng(0))
    metadata = {"model": "mlp-2", "framework": "numpy"}

    ss.save_tensors(checkpoint, path, metadata)
    describe(path)

    loaded = ss.load_tensors(path)
    for name, array in checkpoint.items():
        same = loaded[name].dtype == array.dtype and loaded[name].shape == array.shape
        assert same and loaded[name].tobytes() == array.tobytes(), name
    print(f"\nloaded {len(loaded)} tensors back, every dtype and bit identical (bf16 and fp8 included)")
    print(f"metadata: {ss.load_metadata(path)}")

    # Zero-copy: the arrays are views of a private mapping of the file.
    with open("/proc/self/maps") as maps:
        mapped = [line for line in maps if line.rstrip().endswith(str(path))]
    print(f"arrays are views of {len(mapped)} mapping(s) of the file, writable copy-on-write: "
          f"{loaded['model.layers.1.bias'].flags.writeable}")

    # The stock safetensors reader loads the same file (it has no bf16/fp8 numpy types, so ask for the others).
    with safetensors.safe_open(path, framework="numpy") as f:
        names = [k for k in f.keys() if not k.endswith(("layers.0.weight", "layers.0.bias", "quantized"))]
        reference = {k: f.get_tensor(k) for k in names}
    assert all(np.array_equal(reference[k], loaded[k]) for k in names)
    print(f"the reference safetensors reader loads it too ({len(names)} numpy-native tensors compared equal)")
    print(f"\nfile kept at {path}")


if __name__ == "__main__":
    main()

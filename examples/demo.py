"""The README demo: record what every layer of a small PyTorch model sees and returns over a few batches (forward
hooks into a Recorder, one file written as the calls happen), save the record with the model's weights in one
safetensors file, load it back exactly, and show what the file holds; then train the model a few steps, checkpointing
in the background through a CheckpointManager, and resume from the latest step.

Run it with `bash scripts/demo.sh` (which sets everything up first), or `python examples/demo.py [DIRECTORY]`.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import struct
import sys
import tempfile

import torch
from torch import nn

import safestructures as ss


class Attention(nn.Module):
    """Returns a tuple, as attention layers do: the output and the attention weights."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # three views of one tensor
        weights = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1)
        return self.out(weights @ v), weights


class Block(nn.Module):
    """Returns a dict, as many model blocks do."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.attention = Attention(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        attended, weights = self.attention(self.norm(x))
        x = x + attended
        return {"hidden": x + self.mlp(x), "attention": weights}


class TinyLM(nn.Module):
    def __init__(self, vocab: int = 50, width: int = 16, depth: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.blocks = nn.ModuleList(Block(width) for _ in range(depth))
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.embed.weight  # tied weights

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)["hidden"]
        return self.head(x)


def record_activations(model: nn.Module, batches: list[torch.Tensor], path: pathlib.Path) -> dict[str, list[dict]]:
    """Every named module's inputs (a tuple) and output (a tensor, tuple or dict), per batch, recorded as the calls
    happen into one file by a Recorder (bounded memory, whatever the number of batches), then loaded back: a dict of
    lists, one list per module ("" is the model itself), one record per call."""
    with ss.Recorder(path, fsync=False) as recorder, ss.record_module(model, recorder), torch.no_grad():
        for batch in batches:
            model(batch)
    recording = ss.load_file(path)
    with torch.no_grad():
        for batch, call in zip(batches, recording[""]):
            assert same(call["output"], model(batch)), "each call is recorded exactly as it returned"
    return recording


def header(path: pathlib.Path) -> dict:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n])


def same(a: object, b: object) -> bool:
    """Exact equality: the same types all the way down, tensors with equal dtype, shape and values."""
    if type(a) is not type(b):
        return False
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def train_with_checkpoints(out_dir: pathlib.Path) -> None:
    """A short training loop that checkpoints every other step in the background through a CheckpointManager (the
    loop goes on while the file is written), then resumes from the latest step."""
    torch.manual_seed(0)
    model = TinyLM()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    manager = ss.CheckpointManager(out_dir / "checkpoints", keep_last=2, keep_every=4)
    at_step_6 = None
    for step in range(1, 9):
        tokens = torch.randint(0, 50, (4, 8))
        loss = nn.functional.cross_entropy(model(tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()  # changes the weights in place, while the last checkpoint may still be being written
        if step % 2 == 0:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "loss": loss.item()}
            manager.save(step, state, background=True)  # snapshotted here, written by a background thread
            if step == 6:
                at_step_6 = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    manager.wait()
    assert manager.steps() == [4, 6, 8], "keep_last=2 keeps 6 and 8, keep_every=4 keeps 4 too"
    assert same(dict(manager.load(6)["model"]), at_step_6), "a background save holds the values at its call"
    latest = manager.load()
    resumed = TinyLM()
    resumed.load_state_dict(latest["model"])
    resumed_optimizer = torch.optim.AdamW(resumed.parameters(), lr=1e-2)
    resumed_optimizer.load_state_dict(latest["optimizer"])
    assert same(resumed.state_dict(), model.state_dict()), "the latest step resumes where training stopped"
    assert same(resumed_optimizer.state_dict(), optimizer.state_dict()), "the optimizer's state too"
    print(f"\ntrained 8 steps, checkpointing every other step in the background through CheckpointManager: steps "
          f"{manager.steps()} kept (keep_last=2, keep_every=4); resumed from step {latest['step']} (loss "
          f"{latest['loss']:.3f}), model and AdamW state exactly as they were")


def main() -> None:
    out_dir = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(tempfile.mkdtemp(prefix="safestructures-demo-"))
    path = out_dir / "activations.safetensors"
    torch.manual_seed(0)
    model = TinyLM().to(torch.bfloat16)
    batches = [torch.randint(0, 50, (2, 6)) for _ in range(3)]
    record = {
        "config": {"vocab": 50, "width": 16, "depth": 2, "dtype": torch.bfloat16, "recorded": datetime.date(2026, 11, 28)},
        "weights": model.state_dict(),
        "batches": batches,
        "activations": record_activations(model, batches, out_dir / "recording.safetensors"),
    }
    recording = out_dir / "recording.safetensors"
    print(f"{recording.name}: the forward hooks recorded {sum(map(len, record['activations'].values()))} calls of "
          f"{len(record['activations'])} modules into one file as they happened ({recording.stat().st_size:,} bytes), "
          "loaded back exactly")

    ss.save_file(record, path, metadata={"model": "TinyLM"})

    h = header(path)
    metadata = h.pop("__metadata__")
    total = sum(entry["data_offsets"][1] - entry["data_offsets"][0] for entry in h.values())
    print(f"{path.name}: {path.stat().st_size:,} bytes, a valid safetensors file: {len(h)} tensors, {total:,} bytes of data")
    for name in list(h)[:12]:
        entry = h[name]
        print(f"  {name:<48} {entry['dtype']:<5} {entry['shape']}")
    print(f"  ... {len(h) - 12} more, named by their path in the record")
    schema = metadata.pop("__safestructures__")
    checksums = json.loads(metadata.pop("__safestructures_checksums__"))
    print(f"metadata: {metadata}, plus the structure ({len(schema):,} bytes of JSON) and checksums "
          f"({checksums['algorithm']} of the header and of each of the {len(checksums['tensors'])} tensors)")

    loaded = ss.load_file(path)
    assert same(loaded, record), "the record must come back exactly"
    weights = loaded["weights"]
    assert weights["head.weight"].untyped_storage().data_ptr() == weights["embed.weight"].untyped_storage().data_ptr()
    attention = loaded["activations"]["blocks.0.attention"][0]
    print("\nloaded back exactly, as torch tensors (bfloat16 kept), tuples, dicts and all:")
    print(f"  blocks.0.attention, batch 0: inputs is a {type(attention['inputs']).__name__} of "
          f"{len(attention['inputs'])}, output is a {type(attention['output']).__name__} of shapes "
          f"{[tuple(t.shape) for t in attention['output']]}")
    block = loaded["activations"]["blocks.1"][2]["output"]
    print(f"  blocks.1, batch 2: output is a dict with keys {list(block)}, hidden {block['hidden'].dtype}")
    print("  tied weights (head.weight, embed.weight) are stored once and still share memory")
    as_numpy = ss.load_file(path, framework="numpy")
    print(f"  with framework='numpy' the same file gives numpy arrays: {type(as_numpy['batches'][0]).__name__}, "
          f"{as_numpy['weights']['embed.weight'].dtype}")

    with ss.open(path) as f:
        node = f["activations"]["blocks.1"]
        print(f"\nopened lazily (header and structure only): {list(f)}; activations['blocks.1'] is a {node.kind} of "
              f"{len(node)} calls, its first output {f.node(('activations', 'blocks.1', 0, 'output', 'hidden'))}")
        one = f.node(("activations", "blocks.1", 2)).load()
        assert same(one, record["activations"]["blocks.1"][2]), "a part loads exactly as in the whole"
        print("  loaded just that call: its tensors' pages are the only tensor data read")

    damaged = out_dir / "damaged.safetensors"
    raw = bytearray(path.read_bytes())
    begin = 8 + int.from_bytes(raw[:8], "little") + h["weights.embed.weight"]["data_offsets"][0]
    raw[begin + 5] ^= 0x01  # one bit of one weight, as a bad disk or a bad copy would flip it
    damaged.write_bytes(bytes(raw))
    try:
        ss.load_file(damaged, verify=True)
        raise AssertionError("a flipped bit must not load with verify=True")
    except ss.IntegrityError as e:
        print(f"\none bit flipped in a copy: load_file(..., verify=True) raises IntegrityError:\n  {e}")

    shards = out_dir / "sharded"
    ss.save_file(record, shards, metadata={"model": "TinyLM"}, max_shard_size=4096)
    files = sorted(p.name for p in shards.iterdir())
    assert same(ss.load_file(shards), record), "a sharded save loads exactly as one file"
    print(f"saved again in shards of at most 4 KiB of tensors: {files[0]} ... {files[-1]} ({len(files)} files), "
          "loaded back exactly")
    train_with_checkpoints(out_dir)
    print(f"\nfiles kept in {out_dir}")


if __name__ == "__main__":
    main()

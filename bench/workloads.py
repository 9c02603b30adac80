"""The benchmark's data: one builder per workload, and the page-touching helper every peer's load goes through.

Imported by the harness (this project's .venv) and by the safestructures 1.0.0 worker (.venv-v1, numpy and torch
only), so it uses nothing but the standard library, numpy and torch, and both processes build identical data.
"""

from __future__ import annotations

import ctypes
import random
import sys
from dataclasses import dataclass
from typing import Any

PAGE = 4096


@dataclass(frozen=True)
class Sizes:
    """How big each workload is; `full` is what the issue asks for, `quick` keeps a smoke run to seconds."""

    gpt2_layers: int
    gpt2_width: int
    gpt2_vocab: int
    tiny_tensors: int
    steps: int
    layers: int
    nodes: int
    lazy_tensors: int
    # W4 at the other two sizes of issue 21, and how many tiny calls W6 times together.
    nodes_small: int = 10_000
    nodes_large: int = 1_000_000
    tiny_calls: int = 1_000


FULL = Sizes(gpt2_layers=12, gpt2_width=768, gpt2_vocab=50257, tiny_tensors=10_000, steps=200, layers=12, nodes=100_000, lazy_tensors=10_000)
QUICK = Sizes(gpt2_layers=2, gpt2_width=64, gpt2_vocab=1000, tiny_tensors=200, steps=4, layers=3, nodes=2_000, lazy_tensors=200,
              nodes_small=500, nodes_large=20_000, tiny_calls=20)


def gpt2_state_dict(sizes: Sizes) -> dict[str, Any]:
    """A GPT-2-small-shaped float32 state dict (124.4M parameters at full size), in Hugging Face's naming."""
    import torch

    torch.manual_seed(0)
    d, ctx = sizes.gpt2_width, 1024 if sizes is FULL else 64
    shapes: dict[str, tuple[int, ...]] = {"transformer.wte.weight": (sizes.gpt2_vocab, d), "transformer.wpe.weight": (ctx, d)}
    for i in range(sizes.gpt2_layers):
        p = f"transformer.h.{i}."
        shapes.update(
            {
                p + "ln_1.weight": (d,), p + "ln_1.bias": (d,),
                p + "attn.c_attn.weight": (d, 3 * d), p + "attn.c_attn.bias": (3 * d,),
                p + "attn.c_proj.weight": (d, d), p + "attn.c_proj.bias": (d,),
                p + "ln_2.weight": (d,), p + "ln_2.bias": (d,),
                p + "mlp.c_fc.weight": (d, 4 * d), p + "mlp.c_fc.bias": (4 * d,),
                p + "mlp.c_proj.weight": (4 * d, d), p + "mlp.c_proj.bias": (d,),
            }
        )
    shapes.update({"transformer.ln_f.weight": (d,), "transformer.ln_f.bias": (d,)})
    # rand, not randn: the values do not matter to any peer, and rand fills 124M floats in a fraction of the time.
    return {name: torch.rand(shape) for name, shape in shapes.items()}


def gpt2_config(sizes: Sizes) -> dict[str, Any]:
    """The model config saved beside the weights (Hugging Face's GPT2Config fields)."""
    return {
        "model_type": "gpt2", "vocab_size": sizes.gpt2_vocab, "n_positions": 1024, "n_embd": sizes.gpt2_width,
        "n_layer": sizes.gpt2_layers, "n_head": 12, "activation_function": "gelu_new", "resid_pdrop": 0.1,
        "embd_pdrop": 0.1, "attn_pdrop": 0.1, "layer_norm_epsilon": 1e-5, "initializer_range": 0.02,
        "bos_token_id": 50256, "eos_token_id": 50256, "architectures": ["GPT2LMHeadModel"], "tie_word_embeddings": True,
    }


def checkpoint(sizes: Sizes) -> dict[str, Any]:
    """W1: {"model": state dict, "config": dict}."""
    return {"model": gpt2_state_dict(sizes), "config": gpt2_config(sizes)}


def tiny_tensors(count: int) -> dict[str, dict[str, Any]]:
    """W2/W5: `count` float32 32x32 tensors, 100 to a group: {"g0": {"t0": ..., ...}, ...}."""
    import torch

    torch.manual_seed(1)
    data: dict[str, dict[str, Any]] = {}
    for k in range(count):
        data.setdefault(f"g{k // 100}", {})[f"t{k % 100}"] = torch.rand(32, 32)
    return data


def flat(nested: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The flat {"g0.t0": tensor} form of tiny_tensors, for the peers that only take flat dicts."""
    return {f"{g}.{t}": v for g, group in nested.items() for t, v in group.items()}


def activations(sizes: Sizes) -> list[dict[str, dict[str, Any]]]:
    """W3: per step, per layer {input, output: float32 64x256, loss: float, shape: tuple, name: str}."""
    import torch

    torch.manual_seed(2)
    steps = []
    for s in range(sizes.steps):
        step = {}
        for layer in range(sizes.layers):
            step[f"layer{layer}"] = {
                "input": torch.rand(64, 256),
                "output": torch.rand(64, 256),
                "loss": 1.0 / (1 + s + layer),
                "shape": (64, 256),
                "name": f"transformer.h.{layer}.mlp",
            }
        steps.append(step)
    return steps


def pure_python(nodes: int) -> dict[str, Any]:
    """W4: about `nodes` nodes of dicts, lists, tuples, str, int, float and None, shaped like a run log (records of
    metrics and tags), deterministic. Keys are strings so that json applies too."""
    rng = random.Random(3)
    records = []
    count = 0
    while count < nodes:
        record = {
            "step": count,
            "loss": rng.random(),
            "lr": 1e-4 * rng.random(),
            "tags": ["train", f"epoch{count % 7}", None],
            "shape": (rng.randrange(1, 512), rng.randrange(1, 512)),
            "stats": {"mean": rng.random(), "std": rng.random(), "n": rng.randrange(10**6), "note": "ok" if count % 3 else None},
        }
        records.append(record)
        # dict 1 + 3 scalars + list 1+3 + tuple 1+2 + dict 1+4: every container and scalar counted once.
        count += 16
    return {"run": "bench", "version": 2, "records": records}


def tiny_call() -> dict[str, Any]:
    """W6: what one small save or load holds (a step's record): a few values and one small tensor (16 float32)."""
    import numpy as np

    return {"step": 10, "lr": 1e-3, "name": "run", "t": np.arange(16, dtype=np.float32)}


def count_nodes(value: Any) -> int:
    """Every container and scalar in `value`, dict keys excluded."""
    if isinstance(value, dict):
        return 1 + sum(count_nodes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return 1 + sum(count_nodes(v) for v in value)
    return 1


def tensors_in(value: Any) -> list[Any]:
    """Every torch tensor or numpy array in nested data, in insertion order (which is every peer's file order), so
    that touching them reads each file front to back, as kernel readahead expects."""
    out: list[Any] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(reversed(list(v.values())))
        elif isinstance(v, (list, tuple)):
            stack.extend(reversed(v))
        elif hasattr(v, "data_ptr") or hasattr(v, "__array_interface__"):
            out.append(v)
    return out


def touch(tensors: list[Any]) -> int:
    """Reads one byte of every 4 KiB page of every tensor (so lazily mapped data is really paged in), tensors in
    address order; returns their sum. The same code runs for every peer: big tensors through one strided torch/numpy
    reduction, small ones byte by byte through ctypes, which costs far less than a framework call per tensor."""
    import numpy as np

    torch = sys.modules.get("torch")
    located = []
    for t in tensors:
        if hasattr(t, "data_ptr"):
            located.append((t.data_ptr(), t.numel() * t.element_size(), t))
        else:
            located.append((t.__array_interface__["data"][0], t.nbytes, t))
    # In address order: for every loader that maps its file, that is the file's order, which readahead expects.
    located.sort(key=lambda item: item[0])
    total = 0
    for ptr, nbytes, t in located:
        if nbytes > 16 * PAGE:
            flat = t.reshape(-1).view(torch.uint8) if hasattr(t, "data_ptr") else np.asarray(t).reshape(-1).view(np.uint8)
            total += int(flat[::PAGE].sum())
            continue
        for off in range(0, nbytes, PAGE):
            total += ctypes.c_ubyte.from_address(ptr + off).value
    return total

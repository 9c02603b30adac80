"""The examples of the README and of docs/ run as a reader would run them: each ```python block, with the few names it
takes from the text around it defined first, runs in a fresh process in an empty folder, and what its comments say
is checked; the command-line sessions of docs/cli.md (``$ safestructures ...``) print exactly what the page shows.
(docs/plugins.md runs in test_guide.py; blocks that need a network, an S3 bucket or an HTTP server, are left out.)"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def fenced_blocks(page: str) -> list[tuple[str, str]]:
    """Every fenced block of ``page`` (a path under the repository), in order: (its info string, its text)."""
    blocks, info, lines = [], None, []
    for line in (ROOT / page).read_text(encoding="utf-8").splitlines(keepends=True):
        if line.startswith("```"):
            if info is None:
                info, lines = line[3:].strip(), []
            else:
                blocks.append((info, "".join(lines)))
                info = None
        elif info is not None:
            lines.append(line)
    assert info is None, f"{page} leaves a block open"
    return blocks


def python_blocks(page: str) -> list[str]:
    """The code of every ```python block of ``page``, in order."""
    return [text for info, text in fenced_blocks(page) if info == "python"]


def example_env(**more: str) -> dict[str, str]:
    """The environment of an example: this one, with the package the tests import first on the path (a relative
    PYTHONPATH would not hold in the example's folder)."""
    import safestructures

    package_root = str(Path(safestructures.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, *filter(None, [os.environ.get("PYTHONPATH")])]), **more}


def run_example(code: str, cwd: Path, stdin: bytes = b"", env: dict[str, str] | None = None) -> bytes:
    """Runs ``code`` as a script in ``cwd`` and returns what it wrote on standard output; a failure shows its
    standard error."""
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, input=stdin, capture_output=True, timeout=300,
                          env=example_env(**(env or {})))
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-4000:]
    return done.stdout


TORCH_RUN = """
import copy, os, torch, safestructures as ss
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
optimizer = torch.optim.AdamW(model.parameters())
model(torch.ones(3, 4)).sum().backward()
state = {"model": model.state_dict(), "optim": optimizer.state_dict()}
step = 100
batches = [torch.randn(2, 4) for _ in range(3)]
"""


def test_readme_use_and_lazy_access(tmp_path: Path) -> None:
    use, lazy = python_blocks("README.md")[:2]
    run_example(use + lazy + """
import os
with ss.open("ckpt.safetensors") as f:
    assert f.keys() == ["model", "step", "betas", 1]
    assert repr(f["model"]["layers"][0]["weight"]) == "<Node tensor float32[4, 4] at model.layers.0.weight>"
assert type(layer) is dict and list(layer) == ["weight"] and layer["weight"].dtype == np.float32
assert np.array_equal(layer["weight"], w)
assert sorted(os.listdir("ckpt")) == ["model-00001-of-00001.safetensors", "model.safetensors.index.json"]
assert back["model"]["tied"] is back["model"]["layers"][0]["weight"] and np.array_equal(back["model"]["tied"], w)
assert back["step"] == 7 and type(back["betas"]) is tuple and back["betas"] == (0.9, 0.999)
assert list(back) == ["model", "step", "betas", 1] and back[1]["loss"] != back[1]["loss"]
""", tmp_path)


def test_readme_background_saves_and_checkpoints(tmp_path: Path) -> None:
    block = python_blocks("README.md")[3]
    group = f"""
import torch.distributed as dist
dist.init_process_group("gloo", init_method="tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
before = copy.deepcopy(state)
optimizer.zero_grad(set_to_none=False)
model(torch.ones(3, 4)).sum().backward()
"""
    run_example(TORCH_RUN + group + block + """
saved = ss.load_file("ckpt.safetensors")  # the values at the call, not those optimizer.step() made
assert all(torch.equal(saved["model"][k], before["model"][k]) for k in before["model"])
assert not torch.equal(model.state_dict()["0.weight"], before["model"]["0.weight"])
assert manager.steps() == [100, 101] and manager.latest_step() == 101
assert manager.path(101).endswith("step-00000101") and os.path.isdir(manager.path(101))
again = manager.load(101)
assert torch.equal(again["model"]["0.weight"], state["model"]["0.weight"]) 
assert again["optim"]["state"] == {} and again["optim"]["param_groups"][0]["params"] == [0, 1, 2, 3]  # taken before a step
dist.destroy_process_group()
""", tmp_path)


def test_readme_recorder(tmp_path: Path) -> None:
    block = python_blocks("README.md")[4]
    run_example(TORCH_RUN + block + """
assert list(acts) == ["0", "1", "2", ""] and [len(calls) for calls in acts.values()] == [3, 3, 3, 3]  # as calls end
first = acts["0"][0]
assert first["inputs"][0].dtype == torch.float32 and torch.equal(first["inputs"][0], batches[0])
assert torch.equal(acts[""][2]["output"], model(batches[2])) and first["kwargs"] == {}
""", tmp_path)


def test_recorder_page(tmp_path: Path) -> None:
    appended, named, modules, keras = python_blocks("docs/recorder.md")
    run_example(TORCH_RUN + """
loss, logits = 0.5, torch.arange(6.0).reshape(2, 3)
""" + appended + """
assert [r["step"] for r in records] == [0, 1, 2] and all(r["loss"] == 0.5 for r in records)
assert all(torch.equal(r["logits"], logits) for r in records)
x0, h1, a1 = torch.ones(2), torch.zeros(3), torch.ones(1, dtype=torch.int64)
""" + named + """
back = ss.load_file("acts.safetensors")
assert list(back) == ["blocks.0", "blocks.1"] and torch.equal(back["blocks.0"][0], x0)
assert list(back["blocks.1"][0]) == ["h", "attn"] and back["blocks.1"][0]["attn"].dtype == torch.int64
""" + modules + """
assert sorted(acts) == ["", "0", "1", "2"] and torch.equal(acts["2"][1]["output"], model(batches[1]))
""", tmp_path)
    run_example("""
import numpy as np, tensorflow as tf, safestructures as ss
inputs = tf.keras.Input((8, 8, 3))
keras_model = tf.keras.Model(inputs, tf.keras.layers.Conv2D(4, 3, name="conv1_conv")(inputs))
batches = [np.ones((2, 8, 8, 3), np.float32), np.zeros((1, 8, 8, 3), np.float32)]
""" + keras + """
assert [tuple(call["output"].shape) for call in acts["conv1_conv"]] == [(2, 6, 6, 4), (1, 6, 6, 4)]
assert isinstance(acts["conv1_conv"][0]["output"], tf.Tensor)
""", tmp_path)


def test_checkpoints_page(tmp_path: Path) -> None:
    background, manager = python_blocks("docs/checkpoints.md")
    run_example("""
import os, torch, safestructures as ss
state, metadata = {"model": {"w": torch.zeros(4)}}, {"run": "r1"}
""" + background + """
assert ss.load_file("ckpt.safetensors")["model"]["w"].tolist() == [0.0] * 4 and ss.open("ckpt.safetensors").metadata == metadata
model = torch.nn.Linear(2, 2)
optim = torch.optim.SGD(model.parameters(), lr=0.1)
start, steps = 2000, 4000   # a run resumed at step 2000
def train_step():
    pass
""" + manager + """
assert manager.steps() == [2000, 3000, 3700, 3800, 3900] and manager.latest_step() == 3900
assert manager.load()["step"] == 3900 and manager.path(3800) == os.path.abspath("run/step-00003800.safetensors")
""", tmp_path)


def test_files_anywhere_page_streams(tmp_path: Path) -> None:
    import numpy as np

    import safestructures as ss

    block = python_blocks("docs/files-anywhere.md")[0]
    data = {"model": {"layers": [{"w": np.arange(4.0)}]}, "step": 3}
    piped = {"from": "stdin", "w": np.ones(2, np.int16)}
    ss.save_file(data, tmp_path / "ckpt.safetensors")
    out = run_example("""
import sys, numpy as np, safestructures as ss
data = {"model": {"layers": [{"w": np.arange(4.0)}]}, "step": 3}
""" + block + """
assert np.array_equal(back["model"]["layers"][0]["w"], np.arange(4.0)) and back["step"] == 3
assert list(layer) == ["w"] and np.array_equal(layer["w"], np.arange(4.0))
assert data["from"] == "stdin" and data["w"].dtype == np.int16 and data["w"].tolist() == [1, 1]
""", tmp_path, stdin=ss.save(piped))
    assert out == ss.save(data)


def test_distributed_page(tmp_path: Path) -> None:
    module, restore, dcp = python_blocks("docs/distributed.md")
    torchrun = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    run_example(module + restore + dcp + """
assert isinstance(target["model"]["weight"], torch.Tensor) and torch.equal(target["model"]["weight"], model.weight)
""", tmp_path, env=torchrun)


# --- docs/cli.md ---------------------------------------------------------------------------------------------------

#: The sessions of docs/cli.md that are not run: their files come from elsewhere than the page's script.
CLI_ELSEWHERE = ("safestructures inspect --types run.safetensors", "safestructures verify edited.safetensors")


def cli_sessions() -> list[list[tuple[str, str]]]:
    """The page's shell sessions: each plain block whose lines start with ``$ ``, as [(command, its output)]."""
    sessions = []
    for info, body in fenced_blocks("docs/cli.md"):
        if info or not body.startswith("$ "):
            continue
        steps = [(chunk.partition("\n")[0], chunk.partition("\n")[2]) for chunk in re.split(r"^\$ ", body, flags=re.MULTILINE)[1:]]
        if not any(command in CLI_ELSEWHERE for command, _output in steps):
            sessions.append(steps)
    return sessions


def test_cli_page_sessions_print_what_the_page_shows(tmp_path: Path) -> None:
    script, load_npy = python_blocks("docs/cli.md")
    run_example(script, tmp_path)
    shim = tmp_path / "bin" / "safestructures"
    shim.parent.mkdir()
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m safestructures \"$@\"\n")
    shim.chmod(0o755)
    env = example_env(PATH=f"{shim.parent}{os.pathsep}{os.environ['PATH']}")
    sessions = cli_sessions()
    assert len(sessions) == 5 and sum(len(steps) for steps in sessions) == 12
    statuses = []
    for steps in sessions:
        status = 0
        for command, shown in steps:
            if command == "echo $?":  # the status of the command before it
                assert shown == f"{status}\n"
                continue
            done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
            assert done.stdout + done.stderr == shown, command
            status = done.returncode
            statuses.append(status)
    assert statuses == [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]  # the errors: the cut file, and an index past the list
    run_example(load_npy + "\nassert embed.dtype == ml_dtypes.bfloat16 and embed.shape == (512, 256)\n", tmp_path)

"""Hostile or careless in-process data of the eleventh round's helper attack-h (cases 110 on; docs/security.md's table
lists them): what code that runs while a save reads tensor memory after its walk (a stream's write(), another thread)
can free under it. Each attack has its legitimate twin, which must keep working."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

import safestructures as ss

torch = pytest.importorskip("torch")


def run_isolated(body: str) -> str:
    """Runs ``body`` (with ``ss`` and ``torch`` imported) in a fresh interpreter: a crash fails the test without taking
    the suite with it. Returns what it printed."""
    code = "import io, collections\nimport torch\nimport safestructures as ss\n" + body
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"exit status {result.returncode}: {result.stderr[-3000:]}"
    return result.stdout


# --- 110. a tensor's storage replaced while its memory is written ------------------------------------------------------

REPLACED_BY_WRITE = """
count, elements = {count}, {elements}
tensors = [torch.full((elements,), 1.0) for _ in range(count)]
fresh = []
class Sink(io.RawIOBase):
    def __init__(self):
        self.out, self.calls = bytearray(), 0
    def writable(self):
        return True
    def write(self, chunk):
        self.calls += 1
        if self.calls == 1:  # the header: the walk is over, no tensor byte written yet
            for t in tensors:
                t.set_(torch.empty(0))  # the memory the save is about to write is freed
            fresh.extend(torch.full((elements,), 7.0) for _ in range(count))  # and handed out again
        self.out += bytes(chunk)
        return len(chunk)
sink = Sink()
ss.save_file({{"t": tensors}}, sink)
loaded = ss.load(bytes(sink.out))["t"]
print(len(loaded), sorted(collections.Counter(float(v) for t in loaded for v in t.unique()).items()))
"""


@pytest.mark.parametrize(("count", "elements"), [(400, 4096), (40, 262144)])
def test_case_110_a_storage_replaced_by_the_streams_write_is_still_written(count: int, elements: int) -> None:
    # Before: the writer read the freed memory: 400 tensors of 16 KiB loaded holding 0.0 and pointer bits (heap
    # memory of the process, under valid checksums); 40 of 1 MiB gave SIGSEGV.
    assert run_isolated(REPLACED_BY_WRITE.format(count=count, elements=elements)) == f"{count} [(1.0, {count})]\n"


THREAD_REPLACES = """
import threading
tensors = [torch.full((262144,), 1.0) for _ in range(200)]
started = threading.Event()
def replace():
    started.wait()
    for t in tensors:
        t.set_(torch.empty(0))
    keep = [torch.full((262144,), 7.0) for _ in range(200)]
class Sink(io.BytesIO):
    def write(self, chunk):
        started.set()  # the header: the other thread runs while the tensors are copied, the GIL released
        return super().write(chunk)
thread = threading.Thread(target=replace)
thread.start()
sink = Sink()
ss.save_file({"t": tensors}, sink)
thread.join()
loaded = ss.load(sink.getvalue())["t"]
print(len(loaded), {float(v) for t in loaded for v in t.unique()} <= {1.0})
"""


def test_case_110_a_storage_replaced_by_another_thread_during_the_write_is_still_written() -> None:
    # Before: SIGSEGV, or a file written from freed memory, as the other thread's replacements fell during the write.
    assert run_isolated(THREAD_REPLACES) == "200 True\n"


@pytest.mark.usefixtures("clean_registry")
def test_case_110_twin_a_storage_replaced_by_to_data_during_the_walk_is_still_refused(tmp_path: Path) -> None:
    # The walk still reads the tensor's own address: a change the save's own code made before the write is refused.
    t = torch.ones(1024)

    class Replace:
        pass

    def replace(obj: Replace) -> int:
        t.data = torch.zeros(4)
        return 1

    ss.register(Replace, to_data=replace, from_data=lambda d: Replace())
    with pytest.raises(ss.UnsupportedTypeError, match=r'^tensor "a" changed while the data was saved'):
        ss.save_file({"a": t, "b": Replace()}, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_case_110_twin_tensors_streamed_and_saved_load_exactly(tmp_path: Path) -> None:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    data = {"w": base, "t": base.t(), "step": base[:, ::2], "p": torch.nn.Parameter(torch.ones(3)), "h": torch.ones(2, dtype=torch.bfloat16)}
    sink = io.BytesIO()
    ss.save_file(data, sink)
    ss.save_file(data, tmp_path / "x.safetensors")
    future = ss.save_file(data, tmp_path / "bg.safetensors", background=True)
    base.set_(torch.full((4, 6), 9.0))  # after a background save returns, its data is its own
    future.result()
    for loaded in (ss.load(sink.getvalue()), ss.load_file(tmp_path / "x.safetensors"), ss.load_file(tmp_path / "bg.safetensors")):
        assert loaded["w"].tolist() == torch.arange(24.0).reshape(4, 6).tolist()
        assert loaded["t"].tolist() == torch.arange(24.0).reshape(4, 6).t().tolist()
        assert loaded["step"].tolist() == torch.arange(24.0).reshape(4, 6)[:, ::2].tolist()
        assert type(loaded["p"]) is torch.nn.Parameter and loaded["p"].tolist() == [1.0, 1.0, 1.0]
        assert loaded["h"].dtype == torch.bfloat16 and loaded["h"].tolist() == [1.0, 1.0]

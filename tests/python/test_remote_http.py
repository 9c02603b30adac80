"""Lazy reads over HTTP from a local server on 127.0.0.1 that honours Range and counts what it serves: ``open`` fetches
the header, then only the bytes of the parts loaded (adjacent tensors in one request, a large part in parallel
requests); a server whose file is shorter than it says, or whose header is huge, gives a clear error."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import safestructures as ss
from safestructures import InvalidFileError
from safestructures._ranges import FIRST_READ, PART_SIZE
from conftest import assert_same
from http_range_server import serving

pytest.importorskip("fsspec")
pytest.importorskip("aiohttp")

MiB = 1 << 20


@pytest.fixture(scope="module")
def large() -> tuple[dict[str, Any], bytes]:
    """About 100 MiB: four 24 MiB layers, a 256 KiB part and twenty small tensors side by side."""
    data = {
        "layers": [np.full(6 * MiB, i, dtype=np.float32) for i in range(4)],
        "part": np.arange(64 << 10, dtype=np.float32),
        "small": [np.arange(10, dtype=np.int32) + i for i in range(20)],
    }
    return data, ss.save(data)


def test_loading_one_part_fetches_the_header_and_that_part(large: tuple[dict[str, Any], bytes]) -> None:
    data, raw = large
    assert len(raw) > 96 * MiB  # 100.9 MB
    with serving({"/m.safetensors": raw}) as (base, served):
        with ss.open(f"{base}/m.safetensors") as f:
            assert served.ranges == [(0, FIRST_READ)]  # the header, in the first request
            part = f.load("part")
            assert part.dtype == np.float32
            np.testing.assert_array_equal(part, data["part"])
            assert served.bytes_served == FIRST_READ + 256 * 1024  # 327680 of 100930680 bytes
            assert len(served.ranges) == 2
            assert f.fetcher is not None and f.fetcher.bytes_fetched == 256 * 1024
            assert f.load("part") is not part  # built again, not fetched again
            assert served.bytes_served == FIRST_READ + 256 * 1024


def test_adjacent_tensors_come_in_one_request(large: tuple[dict[str, Any], bytes]) -> None:
    data, raw = large
    with serving({"/m.safetensors": raw}) as (base, served), ss.open(f"{base}/m.safetensors") as f:
        served.reset()
        assert_same(f.load("small"), data["small"])
        assert len(served.ranges) == 1
        assert served.bytes_served == 20 * 10 * 4


def test_a_large_part_is_fetched_in_parallel_parts(large: tuple[dict[str, Any], bytes]) -> None:
    data, raw = large
    with serving({"/m.safetensors": raw}) as (base, served), ss.open(f"{base}/m.safetensors") as f:
        served.reset()
        layer = f.load("layers.2")
        assert layer.dtype == np.float32 and layer.shape == (6 * MiB,) and bool((layer == 2).all())
        parts = sorted(served.ranges)
        assert [end - start for start, end in parts] == [PART_SIZE] * 3
        assert all(parts[k][1] == parts[k + 1][0] for k in range(2))
        assert served.bytes_served == 24 * MiB


def test_load_file_fetches_the_file_once(large: tuple[dict[str, Any], bytes]) -> None:
    data, raw = large
    with serving({"/m.safetensors": raw}) as (base, served):
        assert_same(ss.load_file(f"{base}/m.safetensors", verify=True), data)
        assert served.bytes_served == len(raw)


def test_a_file_shorter_than_the_server_says_is_an_error_not_a_hang() -> None:
    raw = ss.save({"a": np.arange(20_000, dtype=np.float64), "b": np.arange(20_000, dtype=np.float64)})
    with serving({"/t.safetensors": raw[:len(raw) - 4000]}, claimed={"/t.safetensors": len(raw)}) as (base, _served):
        with ss.open(f"{base}/t.safetensors") as f:
            with pytest.raises(OSError, match=r"asked for bytes \[\d+, \d+\) of a file of \d+ bytes, the server says it "
                                              r"sends \d+ bytes: the file is shorter than its size said"):
                f.load("b")


def test_a_server_that_ignores_ranges_gives_an_error_saying_so() -> None:
    raw = ss.save({"a": np.arange(20_000, dtype=np.float64)})
    with serving({"/r.safetensors": raw}, ranges=False) as (base, _served):
        with pytest.raises(OSError, match=rf"asked for bytes \[0, {FIRST_READ}\) of a file of {len(raw)} bytes, the "
                                          r"server ignored the range \(status 200\): it does not serve ranges\?"):
            ss.open(f"{base}/r.safetensors")


def test_a_huge_header_is_refused_before_it_is_fetched() -> None:
    hostile = (10**12).to_bytes(8, "little") + b"{}" + b" " * 200_000
    with serving({"/h.safetensors": hostile}) as (base, served):
        with pytest.raises(InvalidFileError, match="the header is 1000000000000 bytes, over the limit") as raised:
            ss.open(f"{base}/h.safetensors")
        assert raised.value.code == "HeaderTooLarge"
        assert served.bytes_served == FIRST_READ


def test_a_plain_safetensors_file_opens_lazily_over_http() -> None:
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    tensors = {f"layer.{i}.weight": np.full(1000, i, dtype=np.float32) for i in range(50)}
    tensors["embed"] = np.arange(200_000, dtype=np.float32)
    raw = safetensors_numpy.save(tensors)
    with serving({"/model.safetensors": raw}) as (base, served), ss.open(f"{base}/model.safetensors") as f:
        assert served.ranges == [(0, FIRST_READ)]
        served.reset()
        embed = f.load("embed")
        assert embed.dtype == np.float32
        np.testing.assert_array_equal(embed, tensors["embed"])
        begin = f._document().tensor("embed")[4]
        # The embedding (first in the file) less what the header's first read already brought.
        assert served.ranges == [(FIRST_READ, begin + 800_000)]
        served.reset()
        whole = f.load()
        assert sorted(whole) == sorted(tensors)
        for name, tensor in tensors.items():
            np.testing.assert_array_equal(whole[name], tensor)
        # The fifty layers (after the embedding, in name order) in one request; the embedding not fetched again.
        assert len(served.ranges) == 1 and served.bytes_served == 50 * 4000

"""s3:// through s3fs against moto's S3 server on 127.0.0.1 (a real S3 protocol endpoint, no cloud): save_file (one
file, and sharded), load_file, and open reading by ranges."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import safestructures as ss
from safestructures._ranges import FIRST_READ
from conftest import assert_same

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def bucket() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    patch = pytest.MonkeyPatch()
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_ENDPOINT_URL": f"http://{host}:{port}"}.items():
        patch.setenv(name, value)
    import fsspec

    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir("safestructures-test")
    try:
        yield "s3://safestructures-test"
    finally:
        patch.undo()
        server.stop()


def sample() -> dict[str, Any]:
    return {"model": {"w": np.arange(30_000, dtype=np.float32).reshape(100, 300), "b": np.zeros(3, dtype=np.int64)},
            "step": 7, "tags": ("a", "b")}


def test_s3_file_round_trip_and_lazy_open(bucket: str) -> None:
    data = sample()
    url = f"{bucket}/run/ckpt.safetensors"
    ss.save_file(data, url, {"run": "r1"})
    import fsspec

    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    assert fs.ls(f"{bucket}/run", detail=False) == ["safestructures-test/run/ckpt.safetensors"]  # no temporary left
    assert fs.cat_file(url) == ss.save(data, {"run": "r1"})
    assert_same(ss.load_file(url, verify=True), data)
    with ss.open(url) as f:
        assert f.metadata == {"run": "r1"}
        b = f.load("model.b")
        assert b.dtype == np.int64 and b.tolist() == [0, 0, 0]
        assert f.fetcher is not None and f.fetcher.bytes_fetched == 0  # in the first 64 KiB, with the header
        assert_same(f.load("model.w"), data["model"]["w"])
        # That tensor's bytes past what the first read brought, once.
        assert f.fetcher.bytes_fetched == f._document().tensor("model.w")[4] + 120_000 - FIRST_READ
        f.load("model.w")
        assert f.fetcher.bytes_fetched == f._document().tensor("model.w")[4] + 120_000 - FIRST_READ


def test_s3_sharded_save(bucket: str) -> None:
    data = sample()
    ss.save_file(data, f"{bucket}/sharded", max_shard_size=1000)
    assert_same(ss.load_file(f"{bucket}/sharded", verify=True), data)
    with ss.open(f"{bucket}/sharded/model.safetensors.index.json") as f:
        assert_same(f.load("model.w"), data["model"]["w"])


def test_s3_sharded_saves_over_earlier_ones_leave_only_their_own_files(bucket: str) -> None:
    import fsspec

    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    url = f"{bucket}/again"

    def names() -> list[str]:
        return sorted(path.rsplit("/", 1)[1] for path in fs.ls(url, detail=False, refresh=True))

    three = ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors",
             "model.safetensors.index.json"]
    for value in (1.0, 2.0):
        # The second save's shards have the first's names: each old one is moved aside (an S3 copy and delete) before
        # the upload over it, and removed once the index is up.
        ss.save_file({"w": np.full(64, value), "b": np.full(64, value), "c": np.full(64, value)}, url, max_shard_size=600)
        assert names() == three
        assert ss.load_file(url, verify=True)["c"].tolist() == [value] * 64
    # The earlier third shard, which the new index does not use, is removed.
    ss.save_file({"w": np.full(64, 3.0), "b": np.full(64, 3.0)}, url, max_shard_size=600)
    assert names() == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"]
    loaded = ss.load_file(url, verify=True)
    assert sorted(loaded) == ["b", "w"] and loaded["w"].tolist() == loaded["b"].tolist() == [3.0] * 64

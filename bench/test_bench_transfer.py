"""Shard transfer over loopback Mosquitto vs the broker's own tools on the same bytes.

    .venv/bin/python -m pytest bench/test_bench_transfer.py --benchmark-enable

Baseline: `mosquitto_sub -C 1` receiving what `mosquitto_pub -f` sends (one 4 MiB
message, QoS 1, both processes already started is not possible with the CLI tools,
so their start-up is part of the baseline).  Ours: BlobFetcher pulling the same
4 MiB blob from a BlobServer in 64 KiB chunks, each sha256-checked, window 16 (1 MiB in flight).
Target (DESIGN.md): at least half the baseline's throughput.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from edge_maas.registry.blobs import BlobStore
from edge_maas.transport.chunks import BlobFetcher, BlobServer
from edge_maas.transport.client import MqttClient
from edge_maas.transport.local_broker import Mosquitto

SIZE = 4 << 20


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Mosquitto(tmp_path_factory.mktemp("broker")).start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def blob(tmp_path_factory):
    data = np.random.default_rng(0).bytes(SIZE)
    path = tmp_path_factory.mktemp("blob") / "blob.bin"
    path.write_bytes(data)
    return data, path


def test_mosquitto_tools(benchmark, broker, blob):
    if not shutil.which("mosquitto_pub"):
        pytest.skip("mosquitto clients not installed")
    benchmark.group = "transfer 4 MiB over loopback Mosquitto"
    data, path = blob

    def once():
        sub = subprocess.Popen(["mosquitto_sub", "-p", str(broker.port), "-t", "bench/x", "-C", "1", "-q", "1"],
                               stdout=subprocess.PIPE)  # fmt: skip
        # the subscriber must be subscribed before the publish: retry publishing until it receives
        subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-t", "bench/x", "-q", "1", "-f", str(path)], check=True)
        out, _ = sub.communicate(timeout=30)
        return out

    out = benchmark.pedantic(once, rounds=5, warmup_rounds=1)
    assert len(out) >= SIZE


def test_blob_fetcher(benchmark, broker, blob, tmp_path):
    benchmark.group = "transfer 4 MiB over loopback Mosquitto"
    data, _ = blob
    store = BlobStore(tmp_path / "s")
    sha = store.put(data)
    reg = MqttClient(broker.url, "bench-registry").start()
    BlobServer(reg, store.get)
    dev = MqttClient(broker.url, "bench-device").start()
    fetcher = BlobFetcher(dev, chunk_size=64 * 1024, window=16)
    got = benchmark.pedantic(lambda: fetcher.fetch(sha, len(data)), rounds=5, warmup_rounds=1)
    assert got == data
    reg.stop()
    dev.stop()

"""Chunked blob transfer through a real Mosquitto: exact bytes, bytes on the wire,
malformed and forged messages, a corrupt store, a broker restart mid-transfer."""

from __future__ import annotations

import hashlib
import threading
import time

import numpy as np
import pytest
from conftest import zoo_bytes

from edge_maas.errors import TransportError
from edge_maas.registry.blobs import BlobStore
from edge_maas.transport import topics
from edge_maas.transport.chunks import BlobFetcher, BlobServer
from edge_maas.transport.client import MqttClient
from edge_maas.transport.messages import ChunkHeader, ChunkRequest, encode


@pytest.fixture
def registry(mosquitto, tmp_path):
    store = BlobStore(tmp_path / "blobs")
    client = MqttClient(mosquitto.url, "registry").start()
    server = BlobServer(client, store.get)
    yield store, server
    client.stop()


@pytest.fixture
def device(mosquitto):
    client = MqttClient(mosquitto.url, "dev-1").start()
    yield client
    client.stop()


def test_shard_arrives_byte_exact_with_little_overhead(registry, device):
    store, _ = registry
    blob = zoo_bytes("mobilenetv2_035_96")
    sha = store.put(blob)
    fetcher = BlobFetcher(device, chunk_size=32 * 1024, window=8)
    seen = []
    got = fetcher.fetch(sha, len(blob), progress=lambda k, n: seen.append((k, n)))
    assert got == blob
    assert seen[-1][0] == seen[-1][1] == -(-len(blob) // (32 * 1024))
    assert len(blob) <= device.bytes_in < len(blob) * 1.02  # headers are ~200 B per 32 KiB chunk


def test_malformed_requests_are_dropped_and_serving_continues(registry, device):
    store, server = registry
    blob = b"x" * 5000
    sha = store.put(blob)
    for junk in [b"", b"not json", b'{"corr": "a"}', ChunkRequest(corr="c", reply_to="r", sha256=sha,
                 chunk_size=1024, first=0, count=1).model_dump_json().encode()[:-5]]:  # fmt: skip
        device.publish(topics.blob_request(), junk)
    assert BlobFetcher(device, chunk_size=1024).fetch(sha, len(blob)) == blob
    assert server.rejected == 4


def test_unknown_and_corrupt_blobs_are_refused(registry, device):
    store, _ = registry
    fetcher = BlobFetcher(device, chunk_size=1024, chunk_timeout=2)
    with pytest.raises(TransportError, match="unknown blob"):
        fetcher.fetch("ab" * 32, 10)
    for i in range(20):  # hashes a worker is asked for by requests: nothing kept per refused hash
        with pytest.raises(TransportError, match="unknown blob"):
            fetcher.fetch(f"{i:02x}" * 32, 10)
    assert fetcher.held == {} and fetcher.held_chunk == {}
    sha = store.put(b"y" * 3000)
    store.path(sha).write_bytes(b"z" * 3000)  # bit rot on the registry's disk
    with pytest.raises(TransportError, match="corrupt"):
        fetcher.fetch(sha, 3000)


def test_forged_chunks_are_discarded(mosquitto, registry, device):
    """A rogue publisher answers every request first with a body that fails its checksum."""
    store, _ = registry
    blob = np.random.default_rng(0).bytes(20_000)
    sha = store.put(blob)
    rogue = MqttClient(mosquitto.url, "rogue").start()
    listening = threading.Event()

    def forge(topic, payload):
        listening.set()
        req = ChunkRequest.model_validate_json(payload)
        if req.sha256 != sha:
            return
        body = blob[req.first * req.chunk_size : (req.first + 1) * req.chunk_size]
        head = ChunkHeader(corr=req.corr, sha256=sha, index=req.first, total_size=len(blob),
                           chunk_sha256=hashlib.sha256(body).hexdigest())  # fmt: skip
        rogue.publish(req.reply_to, encode(head, b"\x00" + body[1:]))

    rogue.subscribe(topics.blob_request(), forge)
    probe = ChunkRequest(corr="p", reply_to="probe", sha256="cd" * 32, chunk_size=1024, first=0, count=1)
    while not listening.wait(0.1):  # the rogue's subscription is live once it hears a probe
        device.publish(topics.blob_request(), probe.model_dump_json().encode())
    fetcher = BlobFetcher(device, chunk_size=4096)
    assert fetcher.fetch(sha, len(blob)) == blob
    deadline = time.monotonic() + 5  # the forgeries race the real chunks; wait for them to be judged
    while fetcher.discarded == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fetcher.discarded >= 1
    rogue.stop()


def test_broker_restart_mid_transfer_resumes_without_refetching(mosquitto, registry, device):
    store, server = registry
    blob = np.random.default_rng(1).bytes(3 * 1024 * 1024)
    sha = store.put(blob)
    n = len(blob) // 16384
    fetcher = BlobFetcher(device, chunk_size=16384, window=4, chunk_timeout=1.0, max_retries=20)
    result: dict = {}
    t = threading.Thread(target=lambda: result.setdefault("data", fetcher.fetch(sha, len(blob))))
    t.start()
    while len(fetcher.held.get(sha, {})) < n // 4 and t.is_alive():
        time.sleep(0.005)
    held_at_restart = len(fetcher.held.get(sha, {}))
    mosquitto.restart(down_for=0.5)
    t.join(timeout=60)
    assert result.get("data") == blob
    assert 0 < held_at_restart < n
    # finished chunks are never asked for again: only the in-flight window may be re-sent
    assert server.served_chunks <= n + 4 * 21


def test_duplicate_and_out_of_order_chunks(mosquitto, device):
    """A server that answers every window backwards and twice: the blob still assembles."""
    blob = np.random.default_rng(2).bytes(50_000)
    sha = hashlib.sha256(blob).hexdigest()
    server = MqttClient(mosquitto.url, "shuffler").start()

    def answer(topic, payload):
        req = ChunkRequest.model_validate_json(payload)
        n = -(-len(blob) // req.chunk_size)
        for i in reversed(range(req.first, min(req.first + req.count, n))):
            body = blob[i * req.chunk_size : (i + 1) * req.chunk_size]
            head = ChunkHeader(corr=req.corr, sha256=sha, index=i, total_size=len(blob),
                               chunk_sha256=hashlib.sha256(body).hexdigest())  # fmt: skip
            for _ in range(2):
                server.publish(req.reply_to, encode(head, body))

    server.subscribe(topics.blob_request(), answer)
    assert BlobFetcher(device, chunk_size=4096, window=5).fetch(sha, len(blob)) == blob
    server.stop()


def test_mqtt5_clients(mosquitto, tmp_path, caplog):
    """The same transfer with MQTT 5 on both ends, with progress logged for a long blob."""
    import logging

    import paho.mqtt.client as mqtt

    store = BlobStore(tmp_path / "b5")
    blob = np.random.default_rng(3).bytes(200_000)
    sha = store.put(blob)
    reg = MqttClient(mosquitto.url, "registry5", protocol=mqtt.MQTTv5).start()
    BlobServer(reg, store.get)
    dev = MqttClient(mosquitto.url, "dev5", protocol=mqtt.MQTTv5).start()
    with caplog.at_level(logging.INFO, logger="edge_maas.transport.chunks"):
        assert BlobFetcher(dev, chunk_size=4096).fetch(sha, len(blob)) == blob
    assert any("chunks (" in r.message for r in caplog.records)
    reg.stop()
    dev.stop()


def test_asyncapi_document_is_in_sync():
    """docs/asyncapi.json is generated from the message models: regenerate with
    `python -m edge_maas.transport.asyncapi > docs/asyncapi.json`."""
    from pathlib import Path

    from edge_maas.transport.asyncapi import render

    doc = Path(__file__).parent.parent / "docs" / "asyncapi.json"
    assert doc.read_text() == render()

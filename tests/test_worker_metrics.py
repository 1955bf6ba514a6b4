"""A worker's Prometheus metrics (edge_maas/worker/metrics.py), read over real HTTP from a worker on a real Mosquitto:
the queue-depth gauge an autoscaler scales on rises while requests pile up behind a busy worker and falls back to 0
once they are answered; served/failed/shed counters and the latency histogram count each answer; the CLI flag
serves them from a real `edge-maas worker` process."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request

import numpy as np
import pytest
from conftest import publish_split
from prometheus_client.parser import text_string_to_metric_families
from test_cli import EXE

from edge_maas.errors import TransportError
from edge_maas.manifest import Manifest
from edge_maas.pipeline import Pipeline
from edge_maas.registry import signing
from edge_maas.registry.blobs import BlobStore
from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient
from edge_maas.transport.messages import (
    OffloadReply,
    OffloadRequest,
    decode,
    encode,
    pack_tensors,
    unpack_tensors,
)
from edge_maas.worker.worker import Batching, Worker


def scrape(port: int) -> dict[tuple[str, str], float]:
    """GET /metrics: {(sample name, worker label): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    return {(s.name, s.labels.get("worker", "")): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}  # fmt: skip


def wait_for(cond, timeout=15.0, what=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (v := cond()) is not None and v is not False:
            return v
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def published(tmp_path):
    """branchy_cnn in 3 shards, published (the registry does not serve yet); the device-side copy to make requests."""
    reg, rec, pub = publish_split(tmp_path)
    local = Pipeline.from_loaded(Manifest.load(tmp_path / "split" / "manifest.json"), tmp_path / "split", "native")
    return reg, rec, local, pub


def request(rec, local, ident: str, reply_to: str, seed: int) -> tuple[bytes, dict]:
    """A real offload request for stages 1.. of one random input, and the outputs all-local gives."""
    x = {s.name: np.random.default_rng(seed).integers(-128, 128, s.shape, dtype=np.int8) for s in local.inputs}
    boundary = local.run_prefix(x, 1)
    metas, body = pack_tensors({s.name: boundary[s.name] for s in local.suffix(1).inputs})
    req = OffloadRequest(id=ident, reply_to=reply_to, manifest_sha256=rec.manifest_sha256,
                         manifest_size=rec.manifest_size, first_stage=1, inputs=metas, deadline_ms=60_000)  # fmt: skip
    return encode(req, body), {k: v.copy() for k, v in local.run(x).items()}  # copies: the next run reuses buffers


def test_queue_depth_rises_while_the_worker_is_busy_and_falls_back_to_zero(mosquitto, published):
    reg, rec, local, pub = published
    wc = MqttClient(mosquitto.url, "w1").start()
    w = Worker("w1", wc, BlobStore(reg.root.parent / "w1"), signing.load_public(pub), batching=Batching(max_batch=1),
               metrics_port=0)  # fmt: skip
    # the registry is not serving yet: the first request's install waits for the manifest (retried every 0.5 s),
    # and the requests behind it queue up, as behind any slow batch
    w.installer.fetcher.chunk_timeout = 0.5
    w.installer.fetcher.max_retries = 40
    before = scrape(w.metrics_port)
    assert before[("edge_maas_worker_queue_depth", "w1")] == 0
    assert before[("edge_maas_worker_requests_served_total", "w1")] == 0  # series exist before the first event
    assert before[("edge_maas_worker_requests_shed_total", "w1")] == 0

    prober = MqttClient(mosquitto.url, "prober").start()
    replies: list[OffloadReply] = []
    prober.subscribe(topics.offload_reply("prober"), lambda t, p: replies.append(decode(p, OffloadReply)))
    wants = {}
    for i in range(5):
        payload, wants[f"r{i}"] = request(rec, local, f"r{i}", topics.offload_reply("prober"), seed=i)
        prober.publish(topics.offload("branchy"), payload)
    # one request is being installed for, four wait: the gauge says so
    wait_for(lambda: scrape(w.metrics_port)[("edge_maas_worker_queue_depth", "w1")] == 4, what="a queue depth of 4")
    assert not replies

    rc = MqttClient(mosquitto.url, "registry").start()
    reg.serve(rc)  # the registry comes up: the install completes and the queue drains
    wait_for(lambda: len(replies) == 5, what="5 replies")
    m = wait_for(lambda: (s := scrape(w.metrics_port))[("edge_maas_worker_requests_served_total", "w1")] == 5 and s,
                 what="5 served")  # fmt: skip
    assert m[("edge_maas_worker_queue_depth", "w1")] == 0
    assert m[("edge_maas_worker_requests_failed_total", "w1")] == 0
    assert m[("edge_maas_worker_request_seconds_count", "w1")] == 5
    assert m[("edge_maas_worker_request_seconds_sum", "w1")] > 0.25  # the queued ones waited for the install
    for reply, body in replies:
        want = wants[reply.id]
        got = unpack_tensors(reply.outputs, body)
        assert reply.error is None and all(np.array_equal(got[k], v) for k, v in want.items())

    # an error answer counts as failed, not served
    payload, _ = request(rec, local, "bad", topics.offload_reply("prober"), seed=9)
    req, body = decode(payload, OffloadRequest)
    prober.publish(topics.offload("branchy"), encode(req.model_copy(update={"first_stage": 99}), body))
    wait_for(lambda: scrape(w.metrics_port)[("edge_maas_worker_requests_failed_total", "w1")] == 1, what="1 failed")
    w.close()
    with pytest.raises(OSError):  # close() stops the HTTP server
        scrape(w.metrics_port)
    for c in (wc, prober, rc):
        c.stop()


def test_a_full_queue_sheds_and_counts_it(mosquitto, published):
    reg, rec, local, pub = published
    wc = MqttClient(mosquitto.url, "w2").start()
    w = Worker("w2", wc, BlobStore(reg.root.parent / "w2"), signing.load_public(pub), batching=Batching(max_batch=1),
               max_queue=2, metrics_port=0)  # fmt: skip
    w.installer.fetcher.chunk_timeout = 0.5
    w.installer.fetcher.max_retries = 40
    prober = MqttClient(mosquitto.url, "prober").start()
    replies: list[OffloadReply] = []
    prober.subscribe(topics.offload_reply("prober"), lambda t, p: replies.append(decode(p, OffloadReply)[0]))

    def send(i):
        prober.publish(topics.offload("branchy"), request(rec, local, f"r{i}", topics.offload_reply("prober"), i)[0])

    send(0)  # taken by the worker, which then waits for the registry
    send(1)  # queued behind it
    wait_for(lambda: scrape(w.metrics_port)[("edge_maas_worker_queue_depth", "w2")] == 1, what="one queued")
    for i in range(2, 5):  # one more fits the queue (max_queue 2), two are shed at once
        send(i)
    wait_for(lambda: len(replies) == 2, what="2 shed replies")
    assert all("overloaded" in r.error for r in replies)
    m = scrape(w.metrics_port)
    assert m[("edge_maas_worker_requests_shed_total", "w2")] == 2
    assert m[("edge_maas_worker_requests_failed_total", "w2")] == 0
    assert m[("edge_maas_worker_queue_depth", "w2")] == 2
    rc = MqttClient(mosquitto.url, "registry").start()
    reg.serve(rc)
    wait_for(lambda: scrape(w.metrics_port)[("edge_maas_worker_requests_served_total", "w2")] == 3, what="3 served")
    assert scrape(w.metrics_port)[("edge_maas_worker_queue_depth", "w2")] == 0
    w.close()
    for c in (wc, prober, rc):
        c.stop()


def test_a_taken_port_is_a_clean_error(mosquitto, tmp_path):
    pub = signing.new_key(tmp_path / "k")
    taken = socket.socket()
    taken.bind(("0.0.0.0", 0))
    taken.listen()
    c = MqttClient(mosquitto.url, "w3").start()
    with pytest.raises(TransportError, match=f"cannot serve worker metrics on 0.0.0.0:{taken.getsockname()[1]}"):
        Worker("w3", c, BlobStore(tmp_path / "w3"), signing.load_public(pub), metrics_port=taken.getsockname()[1],
               metrics_host="0.0.0.0")
    c.stop()
    taken.close()


def test_cli_worker_serves_metrics(mosquitto, tmp_path):
    pub = signing.new_key(tmp_path / "k")
    proc = subprocess.Popen([EXE, "worker", "--name", "w-metrics", "--broker", mosquitto.url, "--registry-key", str(pub),
                             "--cache", str(tmp_path / "cache"), "--metrics-port", "0"],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert "metrics on 127.0.0.1:" in line, line  # localhost unless --metrics-host says otherwise
        port = int(line.split("metrics on 127.0.0.1:")[1].split("/")[0])
        m = scrape(port)
        assert m[("edge_maas_worker_queue_depth", "w-metrics")] == 0
        assert ("edge_maas_worker_request_seconds_bucket", "w-metrics") in m
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0

"""Offload (first slice): a device runs a prefix, a worker on a shared subscription runs
the rest; every split is byte-identical to all-local; timeouts and worker errors fall back
to local execution; two workers share the load; bad requests get error replies."""

from __future__ import annotations

import json
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import MODELS, ZOO_NAMES, publish_split, zoo_bytes, zoo_expected

from edge_maas.backends.remote import RemoteSplit, offload_requester
from edge_maas.config import ConfigError, DeviceProfile, OffloadSettings, load_profile, load_worker_profile
from edge_maas.device.agent import DeviceAgent
from edge_maas.manifest import Manifest
from edge_maas.partition import plan_balanced, split_model
from edge_maas.partition.costs import graph_macs
from edge_maas.pipeline import Pipeline
from edge_maas.registry import signing
from edge_maas.registry.blobs import BlobStore
from edge_maas.registry.service import Registry
from edge_maas.tflite import load_graph
from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient
from edge_maas.transport.compression import compress
from edge_maas.transport.infer_client import InferClient
from edge_maas.transport.messages import (
    OffloadReply,
    OffloadRequest,
    ReportedState,
    TensorMeta,
    decode,
    encode,
    pack_tensors,
)
from edge_maas.worker.worker import Batching, Worker


@dataclass
class Cloud:
    rec: object  # the published VersionRecord
    worker: object  # factory: name -> a started in-process Worker
    local: Pipeline  # the device's copy (native backend)
    registry_pub: Path
    split_dir: Path
    registry: Registry
    registry_client: MqttClient

    def pipeline(self) -> Pipeline:
        """Another device-side copy: a pipeline (its arenas) is not shared between threads."""
        return Pipeline.from_loaded(Manifest.load(self.split_dir / "manifest.json"), self.split_dir, "native")


@pytest.fixture
def cloud(mosquitto, tmp_path):
    """A registry serving branchy_cnn in 3 shards, and a factory for workers."""
    reg, rec, pub = publish_split(tmp_path)
    reg_client = MqttClient(mosquitto.url, "registry").start()
    reg.serve(reg_client)
    started = []

    def worker(name, batching=Batching(), backend="litert", options=None):
        c = MqttClient(mosquitto.url, name).start()
        w = Worker(name, c, BlobStore(tmp_path / name), signing.load_public(pub), batching=batching, backend=backend,
                   options=options)  # fmt: skip
        started.append(w)
        return w

    local = Pipeline.from_loaded(Manifest.load(tmp_path / "split" / "manifest.json"), tmp_path / "split", "native")
    yield Cloud(rec, worker, local, pub, tmp_path / "split", reg, reg_client)
    for w in started:
        w.close()
        w.client.stop()
    reg_client.stop()


def _device(mosquitto, local, rec, deadline=5.0, name="device"):
    return RemoteSplit(MqttClient(mosquitto.url, name).start(), local, "branchy", rec.manifest_sha256,
                       rec.manifest_size, deadline_s=deadline)  # fmt: skip


def _inputs(local, n, seed=0):
    rng = np.random.default_rng(seed)
    return [{s.name: rng.integers(-128, 128, s.shape, dtype=np.int8) for s in local.inputs} for _ in range(n)]


def test_every_split_is_bit_exact_with_all_local(mosquitto, cloud):
    rec, worker, local = cloud.rec, cloud.worker, cloud.local
    worker("w1")
    dev = _device(mosquitto, local, rec)
    for x in _inputs(local, 5):
        want = local.run(x)
        for split in range(len(local.stages) + 1):
            got, where = dev.run(x, split)
            assert where.startswith("remote") or split == len(local.stages), where
            assert all(np.array_equal(got[k], want[k]) for k in want), split
    dev.client.stop()


def test_no_worker_falls_back_locally_and_late_replies_are_dropped(mosquitto, cloud):
    rec, worker, local = cloud.rec, cloud.worker, cloud.local
    dev = _device(mosquitto, local, rec, deadline=0.3)
    x = _inputs(local, 1)[0]
    got, where = dev.run(x, 1)
    assert where == "fallback" and all(np.array_equal(got[k], v) for k, v in local.run(x).items())
    assert dev.stats.fallback == 1
    dev.client.stop()


def test_two_workers_share_the_load_and_one_can_die(mosquitto, cloud):
    rec, worker, local = cloud.rec, cloud.worker, cloud.local
    w1, w2 = worker("w1"), worker("w2")
    dev = _device(mosquitto, local, rec)
    xs = _inputs(local, 40, seed=1)
    where = [dev.run(x, 1)[1] for x in xs]
    assert {"remote:w1", "remote:w2"} <= set(where), where
    w1.close()
    w1.client.stop()
    after = [dev.run(x, 1)[1] for x in xs[:10]]
    assert set(after) == {"remote:w2"}
    dev.client.stop()


def test_bad_offload_requests_get_error_replies(mosquitto, cloud):
    rec, worker, local = cloud.rec, cloud.worker, cloud.local
    w = worker("w1")
    c = MqttClient(mosquitto.url, "prober").start()
    got, ev = [], threading.Event()
    c.subscribe(topics.offload_reply("prober"), lambda t, p: (got.append(decode(p, OffloadReply)[0]), ev.set()))

    def ask(body=b"", **kw):
        ev.clear()
        base = dict(id="r1", reply_to=topics.offload_reply("prober"), manifest_sha256=rec.manifest_sha256,
                    manifest_size=rec.manifest_size, first_stage=1, inputs=(), deadline_ms=5000)  # fmt: skip
        base.update(kw)
        c.publish(topics.offload("branchy"), encode(OffloadRequest(**base), body))
        assert ev.wait(10)
        return got[-1]

    r = ask(id="u1", manifest_sha256="ab" * 32)  # a manifest the registry does not have
    assert r.error and "unknown blob" in r.error
    r = ask(id="shape", inputs=(TensorMeta(name="nope", dtype="int8", shape=(1, 4)),))  # body lacks the bytes
    assert r.error and "0 bytes, expected 4" in r.error
    real = local.suffix(1).inputs[0]
    r = ask(id="wrong-shape", inputs=(TensorMeta(name=real.name, dtype="int8", shape=(1, 2)),), body=b"\x00\x00")
    assert r.error and "expected int8" in r.error  # the bytes add up, the shape is not the stage's
    r = ask(id="huge", inputs=(TensorMeta(name=real.name, dtype="int8", shape=(1 << 30,)),))
    assert r.error and "exceed the limit" in r.error
    r = ask(id="stage", first_stage=99)
    assert r.error and "no stage 99" in r.error
    c.publish(topics.offload("branchy"), b"\x00\x00\x00\x05junk")  # malformed: dropped, no reply
    assert w.rejected >= 3
    x = _inputs(local, 1)[0]
    dev = _device(mosquitto, local, rec)
    assert dev.run(x, 1)[1] == "remote:w1"  # still serving
    dev.client.stop()
    c.stop()


def test_concurrent_requests_are_batched_and_stay_exact(mosquitto, cloud):
    rec, worker, local = cloud.rec, cloud.worker, cloud.local
    w = worker("w1", Batching(max_batch=8, max_delay_ms=300))
    devs = [_device(mosquitto, cloud.pipeline(), rec, name=f"dev{i}") for i in range(8)]
    xs = _inputs(local, 8, seed=3)
    results: list = [None] * 8
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, devs[i].run(xs[i], 1))) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for x, (out, where) in zip(xs, results):
        assert where == "remote:w1"
        assert all(np.array_equal(out[k], v) for k, v in local.run(x).items())
    assert max(w.batch_sizes) > 1, w.batch_sizes  # 8 requests within 300 ms share batches
    status = w.status()
    assert status.served == 8 and {s.stage for s in status.stages} == {1, 2}
    assert all(s.mean_batch > 1 and s.ms_per_request > 0 for s in status.stages)
    for d in devs:
        d.client.stop()


def test_a_duplicate_request_is_answered_once_per_copy_and_run_once(mosquitto, cloud):
    rec, worker, local = cloud.rec, cloud.worker, cloud.local
    w = worker("w1", Batching(max_batch=8, max_delay_ms=200))
    c = MqttClient(mosquitto.url, "prober").start()
    got: list[OffloadReply] = []
    c.subscribe(topics.offload_reply("prober"), lambda t, p: got.append(decode(p, OffloadReply)[0]))
    x = _inputs(local, 1)[0]
    boundary = {s.name: local.run_prefix(x, 1)[s.name] for s in local.suffix(1).inputs}
    metas, body = pack_tensors(boundary)
    req = encode(OffloadRequest(id="dup", reply_to=topics.offload_reply("prober"), manifest_sha256=rec.manifest_sha256,
                                manifest_size=rec.manifest_size, first_stage=1, inputs=metas, deadline_ms=5000), body)
    for _ in range(2):  # same batch: run once, answered once
        c.publish(topics.offload("branchy"), req)
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    c.publish(topics.offload("branchy"), req)  # a later retry: answered from the idempotency cache
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    assert [r.id for r in got] == ["dup", "dup"] and got[0] == got[1]
    assert w.served == 1
    c.stop()


def test_device_daemon_offloads_per_its_profile_and_reports_why(mosquitto, cloud, tmp_path):
    """A device whose profile enables offload: its first request probes the link (nothing heard
    from a worker yet) and runs its suffix on the worker; answers over MQTT stay exact; the
    planner's inputs and decision are in the retained reported state."""
    cloud.worker("w1")
    reports: list[ReportedState] = []
    monitor = MqttClient(mosquitto.url, "monitor").start()
    monitor.subscribe(topics.reported("dev-off"), lambda t, p: reports.append(ReportedState.model_validate_json(p)))
    settings = OffloadSettings(enabled=True, deadline_ms=5000, probe_every_s=3600)
    dc = MqttClient(mosquitto.url, "dev-off").start()
    agent = DeviceAgent("dev-off", dc, BlobStore(tmp_path / "dev-cache"), signing.load_public(cloud.registry_pub),
                        backend="native", backend_options={"threads": 1}, offload=settings)  # fmt: skip
    cloud.registry.deploy(cloud.registry_client, "branchy", "1", ["dev-off"])
    deadline = time.monotonic() + 30
    while agent.active is None and time.monotonic() < deadline:
        time.sleep(0.05)
    asker = InferClient(MqttClient(mosquitto.url, "asker").start())
    for x in _inputs(cloud.local, 6, seed=9):
        version, out = asker.infer("dev-off", x)
        assert version == "1" and all(np.array_equal(out[k], v) for k, v in cloud.local.run(x).items())
    state = agent.active.offloader.state()
    assert state.remote >= 1 and state.remote + state.fallback + state.local == 6, state  # the probe went remote
    assert len(state.costs_ms) == state.stages + 1 and len(state.local_stage_ms) == state.stages
    while time.monotonic() < deadline and not any(r.offload and r.offload.remote for r in reports):
        time.sleep(0.05)
    shown = next(r.offload for r in reports if r.offload and r.offload.remote)
    assert "ms predicted" in shown.reason and shown.policy == "latency"
    agent.close()
    for c in (dc, asker.client, monitor):
        c.stop()


def test_offload_profile_validation():
    with pytest.raises(ValueError, match="max_bytes"):
        OffloadSettings(enabled=True, policy="bytes")
    assert OffloadSettings(policy="bytes", max_bytes=4096).byte_cap() == 4096
    assert OffloadSettings(max_bytes=4096).byte_cap() is None  # policy latency: no cap
    with pytest.raises(ValueError, match="remote"):
        DeviceProfile(device_id="d", runtime={"backends_allowed": ["litert"]}, offload={"enabled": True})
    for name in ("rpi4", "jetson_orin_nano", "x86_gateway"):  # the shipped profiles load
        load_profile(MODELS.parents[1] / "firmware_configs" / f"{name}.toml")


def test_worker_profile_from_file_and_flags():
    shipped = MODELS.parents[1] / "firmware_configs" / "workers" / "cloud_cpu.toml"
    p = load_worker_profile(shipped, {"name": None, "max_batch": 4})
    assert (p.name, p.max_batch, p.group, p.backend_options()) == ("cloud-cpu-01", 4, "workers",
                                                                  {"threads": 1, "xnnpack": False})  # fmt: skip
    assert p.mqtt.broker.startswith("mqtts://")
    with pytest.raises(ConfigError, match="name"):  # no file: the flags must say everything needed
        load_worker_profile(None, {"cache_dir": "/tmp/c", "registry_key": "/tmp/k.pub"})
    with pytest.raises(ConfigError, match="max_batch"):
        load_worker_profile(shipped, {"max_batch": 0})


@pytest.mark.parametrize("codec", ["zlib", "rle"])
def test_compressed_boundaries_are_exact_and_corrupt_ones_refused(mosquitto, cloud, codec):
    cloud.worker("w1")
    dev = RemoteSplit(MqttClient(mosquitto.url, "dev-c").start(), cloud.local, "branchy", cloud.rec.manifest_sha256,
                      cloud.rec.manifest_size, deadline_s=5.0, codec=codec)  # fmt: skip
    for x in _inputs(cloud.local, 3, seed=11):
        for split in (1, 2):
            out, where = dev.run(x, split)
            assert where == "remote:w1" and all(np.array_equal(out[k], v) for k, v in cloud.local.run(x).items())
    c = MqttClient(mosquitto.url, "prober").start()
    got, ev = [], threading.Event()
    c.subscribe(topics.offload_reply("prober"), lambda t, p: (got.append(decode(p, OffloadReply)[0]), ev.set()))
    meta = TensorMeta(name=cloud.local.suffix(2).inputs[0].name, dtype="int8", shape=cloud.local.suffix(2).inputs[0].shape)
    bad = compress(b"\x01" * 64, codec)[:-3]  # truncated, and for the wrong size
    c.publish(topics.offload("branchy"), encode(OffloadRequest(
        id="bad", reply_to=topics.offload_reply("prober"), manifest_sha256=cloud.rec.manifest_sha256,
        manifest_size=cloud.rec.manifest_size, first_stage=2, inputs=(meta,), deadline_ms=5000, codec=codec), bad))
    assert ev.wait(10) and got[0].error and codec in got[0].error
    assert dev.run(_inputs(cloud.local, 1)[0], 2)[1] == "remote:w1"  # still serving
    for cl in (c, dev.client):
        cl.stop()


def test_every_zoo_model_offloaded_at_every_split_matches_the_whole_model(mosquitto, tmp_path):
    """Device on the native kernels, worker on the interpreter's built-in kernels with batching:
    for every zoo model and every split, the bytes equal the whole model's expected outputs."""
    pub = signing.new_key(tmp_path / "k")
    reg = Registry(tmp_path / "reg", tmp_path / "k")
    clients = [MqttClient(mosquitto.url, n).start() for n in ("registry", "wz", "devz")]
    reg.serve(clients[0])
    w = Worker("wz", clients[1], BlobStore(tmp_path / "wz"), signing.load_public(pub), batching=Batching(4, 50))
    requester = offload_requester(clients[2])  # one reply topic for the device's RemoteSplits
    try:
        for name in ZOO_NAMES:
            blob = zoo_bytes(name)
            g = load_graph(blob)
            split_model(g, plan_balanced(g, 3, graph_macs(g)), tmp_path / name, name, source_bytes=blob)
            rec = reg.publish(tmp_path / name)
            local = Pipeline.from_loaded(Manifest.load(tmp_path / name / "manifest.json"), tmp_path / name, "native")
            dev = RemoteSplit(clients[2], local, name, rec.manifest_sha256, rec.manifest_size, deadline_s=10.0,
                              requester=requester)  # fmt: skip
            xs, expected = zoo_expected(name)
            (in_name,), (out_name,) = [s.name for s in local.inputs], [s.name for s in local.outputs]
            for i in range(3):
                for split in range(len(local.stages)):
                    out, where = dev.run({in_name: xs[i : i + 1]}, split)
                    assert where == "remote:wz", (name, split, where)
                    assert np.array_equal(out[out_name], expected[i : i + 1]), (name, split, i)
    finally:
        w.close()
        for c in clients:
            c.stop()


def test_a_bad_request_fails_only_itself_and_cannot_stop_the_worker(mosquitto, cloud):
    """In one batch: good, malformed-body, good -> two results and one error, one reply each.
    A request whose reply_to is a wildcard (paho refuses to publish there) is dropped as
    malformed, and the worker keeps serving."""
    rec, local = cloud.rec, cloud.local
    w = cloud.worker("w1", Batching(max_batch=8, max_delay_ms=300))
    c = MqttClient(mosquitto.url, "prober").start()
    got: list[OffloadReply] = []
    c.subscribe(topics.offload_reply("prober"), lambda t, p: got.append(decode(p, OffloadReply)[0]))
    x = _inputs(local, 1, seed=4)[0]
    metas, body = pack_tensors({s.name: local.run_prefix(x, 1)[s.name] for s in local.suffix(1).inputs})

    def req(rid, reply_to=topics.offload_reply("prober")):
        return OffloadRequest(id=rid, reply_to=reply_to, manifest_sha256=rec.manifest_sha256,
                              manifest_size=rec.manifest_size, first_stage=1, inputs=metas, deadline_ms=5000)  # fmt: skip

    c.publish(topics.offload("branchy"), encode(req("g1"), body))
    c.publish(topics.offload("branchy"), encode(req("bad"), body[:-1]))
    c.publish(topics.offload("branchy"), encode(req("g2"), body))
    wild = req("wild").model_dump()
    wild["reply_to"] = "em/v1/client/#"
    header = json.dumps(wild).encode()
    c.publish(topics.offload("branchy"), struct.pack(">I", len(header)) + header + body)
    c.publish(topics.offload("branchy"), encode(req("g3"), body))
    deadline = time.monotonic() + 10
    while len(got) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    by_id = {r.id: r for r in got}
    assert sorted(r.id for r in got) == ["bad", "g1", "g2", "g3"]  # one reply each; "wild" dropped
    assert by_id["bad"].error and all(by_id[g].error is None for g in ("g1", "g2", "g3"))
    want = local.run(x)
    for g in ("g1", "g3"):
        assert by_id[g].outputs and by_id[g].batch >= 1
    assert w.rejected >= 2 and w._thread.is_alive()
    dev = _device(mosquitto, local, rec)
    out, where = dev.run(x, 1)
    assert where == "remote:w1" and all(np.array_equal(out[k], v) for k, v in want.items())
    for cl in (c, dev.client):
        cl.stop()

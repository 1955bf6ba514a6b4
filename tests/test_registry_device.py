"""Registry -> MQTT -> devices, end to end on a real Mosquitto: signed publish, deploy to
two devices, fetch only missing shards, health-checked swap, failed health check keeps
the running version."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time

import numpy as np
import pytest
from conftest import zoo_bytes, zoo_expected

from edge_maas.backends.litert import LiteRTBackend
from edge_maas.device.agent import DeviceAgent
from edge_maas.errors import ManifestError
from edge_maas.manifest import Golden, Manifest, TensorData
from edge_maas.partition import plan_balanced, split_model
from edge_maas.partition.costs import graph_macs
from edge_maas.pipeline import Pipeline
from edge_maas.registry import signing
from edge_maas.registry.blobs import BlobStore
from edge_maas.registry.service import Registry
from edge_maas.tflite import load_graph
from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient
from edge_maas.transport.messages import ReportedState


def _split_v1(tmp_path):
    blob = zoo_bytes("mlp_digits")
    g = load_graph(blob)
    split_model(g, plan_balanced(g, 3, graph_macs(g)), tmp_path / "v1", "mlp_digits", version="1", source_bytes=blob)
    return tmp_path / "v1"


def _variant(src, dst, version, patch_last_shard=True, break_golden=False, winner=0):
    """A new version of a split: last shard's bias changed (only that shard differs): class
    `winner` wins everywhere."""
    shutil.copytree(src, dst)
    m = Manifest.load(dst / "manifest.json")
    shards = list(m.shards)
    if patch_last_shard:
        last = shards[-1]
        data = (dst / last.file).read_bytes()
        g = load_graph(data)
        fc = next(op for op in g.ops if op.op == "FULLY_CONNECTED")
        bias = g.constant(g.tensors[fc.inputs[2]])
        old = bias.astype("<i4").tobytes()
        assert data.count(old) == 1
        new = bias.astype(np.int64)
        new[winner] += 1 << 20  # one class wins everywhere: v2's outputs visibly differ from v1's
        data = data.replace(old, new.astype("<i4").tobytes())
        (dst / last.file).write_bytes(data)
        shards[-1] = last.model_copy(update={"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
    m = m.model_copy(update={"model": m.model.model_copy(update={"version": version}), "shards": tuple(shards)})
    pipe = Pipeline.from_loaded(m, dst, "litert", xnnpack=False)
    out = pipe.run({t.name: t.to_array() for t in m.golden.inputs})
    outs = tuple(TensorData.from_array(t.name, out[t.name] + (1 if break_golden else 0)) for t in m.golden.outputs)
    m = m.model_copy(update={"golden": Golden(inputs=m.golden.inputs, outputs=outs)})
    (dst / "manifest.json").write_text(m.to_json())
    return dst


def _publish_two_running_first(world, tmp_path, device):
    """Publish v1 and v2 (last shard changed), deploy v1 to `device`, wait until it runs."""
    reg, reg_client, _, reports = world
    v1 = _split_v1(tmp_path)
    v2 = _variant(v1, tmp_path / "v2", "2")
    for d in (v1, v2):
        reg.publish(d)
    reg.deploy(reg_client, "mlp_digits", "1", [device])
    reports.wait(lambda s: s.get(device) and s[device].version == "1")
    return v1, v2


class Reports:
    """Collects every device's retained reported state."""

    def __init__(self, url):
        self.latest: dict[str, ReportedState] = {}
        self.cv = threading.Condition()
        self.client = MqttClient(url, "monitor").start()
        self.client.subscribe(f"{topics.PREFIX}/device/+/reported", self._on)

    def _on(self, topic, payload):
        s = ReportedState.model_validate_json(payload)
        with self.cv:
            self.latest[s.device_id] = s
            self.cv.notify_all()

    def wait(self, pred, timeout=30):
        with self.cv:
            assert self.cv.wait_for(lambda: pred(self.latest), timeout), self.latest


@pytest.fixture
def world(mosquitto, tmp_path):
    pub = signing.new_key(tmp_path / "registry.key")
    reg = Registry(tmp_path / "registry", tmp_path / "registry.key")
    reg_client = MqttClient(mosquitto.url, "registry").start()
    reg.serve(reg_client)
    devices = {}
    for d in ("dev-a", "dev-b"):
        c = MqttClient(mosquitto.url, d).start()
        devices[d] = DeviceAgent(d, c, BlobStore(tmp_path / d / "cache"), signing.load_public(pub), chunk_size=2048)
    reports = Reports(mosquitto.url)
    yield reg, reg_client, devices, reports
    for a in devices.values():
        a.close()
        a.client.stop()
    reports.client.stop()
    reg_client.stop()


def test_publish_deploy_update_only_changed_shard_and_failed_health_check(world, tmp_path):
    reg, reg_client, devices, reports = world
    v1 = _split_v1(tmp_path)
    v2 = _variant(v1, tmp_path / "v2", "2")
    v3 = _variant(v2, tmp_path / "v3", "3", patch_last_shard=False, break_golden=True)
    for d in (v1, v2, v3):
        reg.publish(d)

    reg.deploy(reg_client, "mlp_digits", "1", list(devices))
    reports.wait(lambda s: all(s.get(d) and s[d].version == "1" for d in devices))
    xs, ys = zoo_expected("mlp_digits")
    for agent in devices.values():
        out = agent.infer({agent.active.pipeline.inputs[0].name: xs[0][None]})
        assert out[agent.active.pipeline.outputs[0].name][0].tobytes() == ys[0].tobytes()

    before = {d: a.client.bytes_in for d, a in devices.items()}
    reg.deploy(reg_client, "mlp_digits", "2", list(devices))
    reports.wait(lambda s: all(s[d].version == "2" for d in devices))
    m2 = Manifest.load(v2 / "manifest.json")
    last, manifest_bytes = m2.shards[-1].size, reg.catalog.version("mlp_digits", "2").manifest_size
    for d, agent in devices.items():
        wire = agent.client.bytes_in - before[d]
        # only the changed shard and the manifest crossed the wire (plus chunk headers and reports)
        assert last + manifest_bytes <= wire < last + manifest_bytes + 8000, wire
        assert reports.latest[d].previous_version == "1"
        whole = LiteRTBackend(zoo_bytes("mlp_digits"), xnnpack=False).run({"serving_default_pixels:0": xs[:1]})
        new = agent.infer({"serving_default_pixels:0": xs[:1]})
        assert not np.array_equal(new[next(iter(new))], whole[next(iter(whole))])  # v2 really differs

    reg.deploy(reg_client, "mlp_digits", "3", list(devices))
    reports.wait(lambda s: all(s[d].last_error and "health check failed" in s[d].last_error for d in devices))
    assert all(reports.latest[d].version == "2" for d in devices)


def test_tampered_manifest_is_refused(world, tmp_path):
    reg, reg_client, devices, reports = world
    v1 = _split_v1(tmp_path)
    rec = reg.publish(v1)
    signed = Manifest.from_json(reg.blobs.get(rec.manifest_sha256))
    forged = signed.model_copy(update={"model": signed.model.model_copy(update={"version": "1"})})
    signing.verify(forged, signing.load_public(tmp_path / "registry.pub"))  # untouched copy verifies
    doc = json.loads(signed.to_json())
    doc["golden"]["outputs"][0]["data"] = doc["golden"]["inputs"][0]["data"][:8] + doc["golden"]["outputs"][0]["data"][8:]
    with pytest.raises(ManifestError, match="0 valid signature.*tampered"):
        signing.verify(Manifest.model_validate(doc), signing.load_public(tmp_path / "registry.pub"))
    # a forged manifest blob served by the registry: the device refuses it and keeps nothing
    bad = Manifest.model_validate(doc).to_json().encode()
    sha = reg.blobs.put(bad)
    from edge_maas.transport.messages import DesiredState

    # the desired state itself is genuine (signed by the registry): only the manifest is forged
    msg = DesiredState(device_id="dev-a", model="mlp_digits", version="1", release=1, manifest_sha256=sha,
                       manifest_size=len(bad), seq=reg.catalog.next_seq("dev-a"), expires=signing.expiry(60))
    reg_client.publish(topics.desired("dev-a"), signing.sign_desired(msg, reg.key).model_dump_json().encode(), retain=True)
    reports.wait(lambda s: s.get("dev-a") and s["dev-a"].last_error and "tampered" in s["dev-a"].last_error)
    assert devices["dev-a"].active is None
    time.sleep(0.1)


def test_swap_under_load_never_fails_or_mixes_versions(world, tmp_path, mosquitto):
    """A client keeps sending infer requests over MQTT while v1 -> v2 swaps: every reply is
    exactly v1's or v2's output for its input, none fails."""
    from edge_maas.transport.infer_client import InferClient

    reg, reg_client, devices, reports = world
    v1, v2 = _publish_two_running_first(world, tmp_path, "dev-a")
    xs, _ = zoo_expected("mlp_digits")
    name = "serving_default_pixels:0"
    want = {v: [Pipeline.from_loaded(Manifest.load(d / "manifest.json"), d, "litert", xnnpack=False)
                .run({name: x[None]}) for x in xs] for v, d in (("1", v1), ("2", v2))}  # fmt: skip
    caller = InferClient(MqttClient(mosquitto.url, "caller").start())
    seen, stop = [], threading.Event()

    def load():
        i = 0
        while not stop.is_set():
            x = xs[i % len(xs)]
            version, out = caller.infer("dev-a", {name: x[None]})
            ref = want[version][i % len(xs)]
            assert all(np.array_equal(out[k], ref[k]) for k in ref), (version, i)
            seen.append(version)
            i += 1

    t = threading.Thread(target=load)
    t.start()
    while seen.count("1") < 20 and t.is_alive():
        time.sleep(0.01)
    reg.deploy(reg_client, "mlp_digits", "2", ["dev-a"])
    reports.wait(lambda s: s["dev-a"].version == "2")
    n = len(seen)
    while len(seen) < n + 20 and t.is_alive():
        time.sleep(0.01)
    stop.set()
    t.join(timeout=20)
    assert not t.is_alive() and devices["dev-a"].failed == 0
    assert seen[0] == "1" and seen[-1] == "2"
    assert seen == sorted(seen)  # never back to v1 after the swap
    caller.client.stop()


def test_rollback_and_restart_from_cache(world, tmp_path, mosquitto):
    reg, reg_client, devices, reports = world
    _publish_two_running_first(world, tmp_path, "dev-b")
    reg.deploy(reg_client, "mlp_digits", "2", ["dev-b"])
    reports.wait(lambda s: s["dev-b"].version == "2")
    assert reg.rollback(reg_client, "dev-b") == ("mlp_digits", "1")
    reports.wait(lambda s: s["dev-b"].version == "1")
    # v1 was cached: the rollback fetched nothing new; a restarted agent resumes v1 offline
    agent = devices["dev-b"]
    agent.close()
    agent.client.stop()
    offline = MqttClient("mqtt://127.0.0.1:1", "dev-b-restarted")  # never started: no broker at all
    restored = DeviceAgent("dev-b", offline, agent.cache, agent.key)
    assert restored.active is not None and restored.active.version == "1"
    xs, ys = zoo_expected("mlp_digits")
    out = restored.infer({"serving_default_pixels:0": xs[:1]})
    assert out[next(iter(out))][0].tobytes() == ys[0].tobytes()
    restored.close()
    devices["dev-b"] = _Closed(agent)


class _Closed:
    """Stands in for an agent the test already stopped (the fixture closes the rest)."""

    def __init__(self, agent):
        self.client = agent.client

    def close(self):
        pass


def test_cache_eviction_is_lru_and_spares_what_versions_need(tmp_path):
    store = BlobStore(tmp_path / "c")
    old, needed, recent = (store.put(bytes([i]) * 1000) for i in range(3))
    now = time.time()
    for sha, age in ((old, 300), (needed, 200), (recent, 100)):
        os.utime(store.path(sha), (now - age, now - age))
    assert store.evict(budget=1500, keep={needed}) == [old, recent]
    assert store.has(needed) and store.total_bytes() == 1000
    assert store.evict(budget=0, keep={needed}) == []  # never below what is needed


def test_store_listing_survives_concurrent_writes_evictions_and_discards(tmp_path):
    """The store is listed (total_bytes: the /metrics cache gauge; evict: the budget) while other threads write
    blobs (a temporary file renamed away), evict them and read them: a file gone between the listing and its stat
    is no error, and a read racing an eviction answers None, as for an absent blob.  Before, a scrape during an
    install answered 500 (FileNotFoundError on a write's temporary file)."""
    store = BlobStore(tmp_path / "c")
    stop, errors = threading.Event(), []

    def guard(fn):
        def run():
            try:
                while not stop.is_set():
                    fn()
            except Exception as exc:  # noqa: BLE001 (reported below)
                errors.append(repr(exc))

        return threading.Thread(target=run, daemon=True)

    counter = iter(range(10**9))
    written: list[str] = []
    threads = [
        guard(lambda: written.append(store.put(next(counter).to_bytes(8, "little") * 512))),
        guard(lambda: store.evict(budget=64 * 4096, keep=set())),
        guard(lambda: written and store.get(written[-1])),
        guard(store.total_bytes),
    ]
    for t in threads:
        t.start()
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert not errors, errors[:3]
    assert len(written) > 100 and 0 < store.total_bytes()


def test_device_cache_stays_within_budget(world, tmp_path):
    reg, reg_client, devices, reports = world
    agent = devices["dev-a"]
    _publish_two_running_first(world, tmp_path, "dev-a")
    agent.cache_budget = 1  # tiny: only what v2 (active) and v1 (previous) need may stay
    junk = agent.cache.put(b"an old version's shard" * 100)
    reg.deploy(reg_client, "mlp_digits", "2", ["dev-a"])
    reports.wait(lambda s: s["dev-a"].version == "2")
    needed = {s.sha256 for a in (agent.active, agent.previous) for s in a.manifest.shards}
    names = {p.name for p in agent.cache.root.glob("??/*")}
    assert needed <= names and junk not in names and len(names - needed) <= 2  # plus the two manifests


def test_concurrent_python_and_mqtt_requests_do_not_share_buffers(mosquitto, tmp_path):
    """infer() from several threads and infer over MQTT at once, on the native backend (one
    arena per stage): every answer equals the expected bytes."""
    from edge_maas.transport.infer_client import InferClient

    pub = signing.new_key(tmp_path / "registry.key")
    reg = Registry(tmp_path / "registry", tmp_path / "registry.key")
    reg_client = MqttClient(mosquitto.url, "registry").start()
    reg.serve(reg_client)
    agent = DeviceAgent("dev-n", MqttClient(mosquitto.url, "dev-n").start(), BlobStore(tmp_path / "c"),
                        signing.load_public(pub), backend="native", backend_options={"threads": 1})  # fmt: skip
    reg.publish(_split_v1(tmp_path))
    reports = Reports(mosquitto.url)
    reg.deploy(reg_client, "mlp_digits", "1", ["dev-n"])
    reports.wait(lambda s: s.get("dev-n") and s["dev-n"].version == "1")
    xs, ys = zoo_expected("mlp_digits")
    name = agent.active.pipeline.inputs[0].name
    wrong: list[int] = []

    def local(offset):
        for i in range(offset, len(xs), 3):
            out = agent.infer({name: xs[i][None]})
            wrong.extend([i] if next(iter(out.values()))[0].tobytes() != ys[i].tobytes() else [])

    asker = InferClient(MqttClient(mosquitto.url, "asker").start())

    def remote():
        for i in range(0, len(xs), 5):
            _, out = asker.infer("dev-n", {name: xs[i][None]})
            wrong.extend([-i] if next(iter(out.values()))[0].tobytes() != ys[i].tobytes() else [])

    threads = [threading.Thread(target=local, args=(k,)) for k in range(3)] + [threading.Thread(target=remote)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
    agent.close()
    for c in (agent.client, asker.client, reports.client, reg_client):
        c.stop()

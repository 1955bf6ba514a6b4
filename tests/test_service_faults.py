"""Services in the field: faults on workers and devices (issue 10), over a real Mosquitto with real models, real
Workers and DeviceAgents as tests/test_service_device.py builds them.

Proves: a worker checks every offload request against its own signed manifest, also when the submodel it names is
already loaded for another service (an unlisted submodel, a split's manifest, a tampered manifest, a v1-style request
against a service, wrong tensors, a wrong first stage: one error reply each, and it keeps serving); a request id
reused for something else is not answered from the idempotency cache; one worker pool serves two services sharing a
backbone for two devices, loading the backbone once and batching it across them; a new version's golden check does
not race the running version on their shared backends; a version that fails half-way (a corrupt or missing blob on
the registry, a head that does not load) leaves the running one serving with its backends loaded, says why, and a
good version installs after; a restart from the cache brings back held submodels without the network and the rest
on workers; a worker away during probation is not the version's failure; a failing stage is named with its task; a
worker's reply cannot overwrite tensors the device computed."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import numpy as np
import pytest
import test_service_device
from test_compose import MNV2, new_head, whole
from test_registry_device import _split_v1
from test_service_device import _check

from edge_maas.backends.remote import offload_requester
from edge_maas.config import OffloadSettings, RolloutSettings
from edge_maas.errors import EdgeMaasError, StageUnavailableError
from edge_maas.partition.compose import Source, compose_service
from edge_maas.registry import signing
from edge_maas.registry.blobs import BlobStore
from edge_maas.service import ServiceManifest
from edge_maas.service_pipeline import ServicePipeline
from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient
from edge_maas.transport.messages import (
    OffloadReply,
    OffloadRequest,
    WorkerStatus,
    decode,
    encode,
    pack_tensors,
    unpack_tensors,
)
from edge_maas.worker.worker import Batching, Worker

fleet = test_service_device.fleet  # the same fixtures: registry, reports, device and worker factories; services
services = test_service_device.services
X_A, X_B = new_head(MNV2, 3), new_head(MNV2, 4)  # tasks of a second service on the same frozen backbone


@pytest.fixture(scope="module")
def other(services, tmp_path_factory):
    """A second service ("other", tasks cls_x and cls_y) whose backbone is vision's, byte for byte."""
    d = tmp_path_factory.mktemp("other")
    compose_service([Source("cls_x", X_A), Source("cls_y", X_B)], d / "1", "other", version="1")
    vision = ServiceManifest.load(services[0] / "2" / "manifest.json")
    m = ServiceManifest.load(d / "1" / "manifest.json")
    assert m.submodel("backbone").sha256 == vision.submodel("backbone").sha256
    return d / "1"


class Probe:
    """Raw offload requests over the broker, as a device's RemoteSubmodel sends them (and as it must not)."""

    def __init__(self, url: str, name: str):
        self.client = MqttClient(url, name).start()
        self.requests = offload_requester(self.client)

    def ask(self, manifest: tuple[str, int], inputs: dict, submodel: str | None = None, first_stage: int = 0,
            rid: str | None = None) -> tuple[OffloadReply, dict | None]:  # fmt: skip
        metas, body = pack_tensors(inputs)
        rid = rid or self.requests.new_id()
        req = OffloadRequest(id=rid, reply_to=self.requests.reply_topic, manifest_sha256=manifest[0],
                             manifest_size=manifest[1], first_stage=first_stage, inputs=metas, deadline_ms=20_000,
                             submodel_sha256=submodel)  # fmt: skip
        answer = self.requests.request(topics.offload("vision"), rid, encode(req, body), 20)
        assert answer is not None, "every request gets a reply"
        reply, out = answer
        return reply, (unpack_tensors(reply.outputs, out) if reply.error is None else None)


def _blob(rec) -> tuple[str, int]:
    return rec.manifest_sha256, rec.manifest_size


def test_worker_checks_each_request_against_its_own_signed_manifest(fleet, services, other, tmp_path, mosquitto):
    reg, _, _, _, worker = fleet
    d, xs, _ = services
    vision_rec, other_rec = reg.publish(d / "2"), reg.publish(other)
    split_rec = reg.publish(_split_v1(tmp_path))
    vision, oth = ServiceManifest.load(d / "2" / "manifest.json"), ServiceManifest.load(other / "manifest.json")
    ref = ServicePipeline.from_manifest(d / "2" / "manifest.json", "native", threads=1)
    feed = {"input_0": xs[0]}
    feats = ref.backends["backbone"].run(feed)
    backbone, head_x = vision.submodel("backbone").sha256, oth.submodel("head_cls_x").sha256
    w = worker("gpu-f")
    probe = Probe(mosquitto.url, "probe-f")

    reply, out = probe.ask(_blob(vision_rec), feed, backbone)  # a good request: the backbone's exact bytes
    assert reply.error is None
    for k, v in feats.items():
        np.testing.assert_array_equal(out[k], v)
    reply, _ = probe.ask(_blob(other_rec), feats, head_x)  # loads other's head on the worker
    assert reply.error is None

    # the submodel is loaded (for other), but vision does not list it: refused, not served from what is loaded
    reply, _ = probe.ask(_blob(vision_rec), feats, head_x)
    assert reply.error and f"vision@2 has no submodel {head_x[:12]}" in reply.error
    # a split (v1) manifest has no submodels, even if the hash named is loaded
    reply, _ = probe.ask(_blob(split_rec), feed, backbone)
    assert reply.error and "mlp_digits@1 is a split model" in reply.error
    # a v1-style request (no submodel) against a service
    reply, _ = probe.ask(_blob(vision_rec), feed)
    assert reply.error and "vision@2 is a service: name the submodel" in reply.error
    # a submodel is one stage
    reply, _ = probe.ask(_blob(vision_rec), feed, backbone, first_stage=1)
    assert reply.error and "first_stage must be 0" in reply.error
    # wrong tensors: name, shape, dtype
    for bad, why in (({"image": xs[0]}, "missing input tensor 'input_0'"),
                     ({"input_0": xs[0][:, :48]}, "expected int8[1, 96, 96, 3]"),
                     ({"input_0": xs[0].astype(np.int16)}, "is int16")):  # fmt: skip
        reply, _ = probe.ask(_blob(vision_rec), bad, backbone)
        assert reply.error and why in reply.error, reply.error
    # a tampered manifest served by the registry (signature fails), naming the loaded backbone
    doc = json.loads(reg.blobs.get(vision_rec.manifest_sha256))
    doc["tasks"] = doc["tasks"][:1]
    forged = json.dumps(doc).encode()
    reply, _ = probe.ask((reg.blobs.put(forged), len(forged)), feed, backbone)
    assert reply.error and "tampered" in reply.error

    reply, out = probe.ask(_blob(vision_rec), {"input_0": xs[1]}, backbone)  # still serving
    assert reply.error is None
    np.testing.assert_array_equal(next(iter(out.values())), next(iter(ref.backends["backbone"].run(
        {"input_0": xs[1]}).values())))  # fmt: skip
    assert w.rejected == 8 and w.served == 3
    ref.close()
    probe.client.stop()


def test_a_reused_request_id_is_not_answered_with_another_requests_outputs(fleet, services, mosquitto):
    reg, _, _, _, worker = fleet
    d, xs, _ = services
    rec = reg.publish(d / "2")
    m = ServiceManifest.load(d / "2" / "manifest.json")
    ref = ServicePipeline.from_manifest(d / "2" / "manifest.json", "native", threads=1)
    feats = ref.backends["backbone"].run({"input_0": xs[0]})
    worker("gpu-id")
    probe = Probe(mosquitto.url, "probe-id")
    for name in ("head_cls_a", "head_cls_b", "head_cls_a"):  # one id, three requests (the last a true retry)
        reply, out = probe.ask(_blob(rec), feats, m.submodel(name).sha256, rid="same-id")
        assert reply.error is None
        want = ref.backends[name].run(feats)
        assert out.keys() == want.keys(), name
        for k in want:
            np.testing.assert_array_equal(out[k], want[k], err_msg=name)
    ref.close()
    probe.client.stop()


def test_one_worker_pool_two_services_two_devices_backbone_loaded_once(fleet, services, other, tmp_path, mosquitto):
    reg, reg_client, reports, device, _ = fleet
    d, xs, want = services

    want_x = {t: [whole(data, x) for x in xs] for t, data in {"cls_x": X_A, "cls_y": X_B}.items()}
    reg.publish(d / "2"), reg.publish(other)
    m = ServiceManifest.load(d / "2" / "manifest.json")
    bb = m.submodel("backbone").sha256
    c = MqttClient(mosquitto.url, "gpu-pool").start()
    w = Worker("gpu-pool", c, BlobStore(tmp_path / "gpu-pool"), signing.load_public(tmp_path / "registry.pub"),
               backend="native", options={"threads": 1}, status_every_s=0.2,
               batching=Batching(max_batch=8, max_delay_ms=400))  # fmt: skip
    try:
        budget = m.submodel("backbone").size - 1  # the heads only: the backbone runs on the worker
        cam_v, cam_o = (device(n, hold_budget=budget, offload=OffloadSettings(deadline_ms=10_000))
                        for n in ("cam-v", "cam-o"))  # fmt: skip
        reg.deploy(reg_client, "vision", "2", ["cam-v"])
        reg.deploy(reg_client, "other", "1", ["cam-o"])
        reports.wait(lambda s: s.get("cam-v") and s["cam-v"].version == "2" and s.get("cam-o")
                     and s["cam-o"].version == "1")  # fmt: skip
        assert reports.latest["cam-v"].service.remote == (bb,) == reports.latest["cam-o"].service.remote
        _check(cam_v.infer({"input_0": xs[0]}, ["cls_a", "cls_b", "cls_c"]), want, 0, ["cls_a", "cls_b", "cls_c"])
        loaded = w._pipelines[bb]
        results, go = {}, threading.Barrier(2)

        def ask(dev, tasks, key):
            go.wait()
            results[key] = [dev.infer({"input_0": x}, tasks) for x in xs]

        threads = [threading.Thread(target=ask, args=(cam_v, ["cls_a", "cls_c"], "v")),
                   threading.Thread(target=ask, args=(cam_o, ["cls_x", "cls_y"], "o"))]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for i in range(len(xs)):
            _check(results["v"][i], want, i, ["cls_a", "cls_c"])
            _check(results["o"][i], want_x, i, ["cls_x", "cls_y"])
        assert w._pipelines[bb] is loaded and list(w._pipelines) == [bb]  # loaded once for both services
        assert max(w.batch_sizes) >= 2  # the two devices' requests for the backbone ran as one batch
        assert w.served == 1 + 2 * len(xs) and w.rejected == 0
    finally:
        w.close()
        c.stop()


def test_golden_check_of_a_new_version_does_not_race_the_running_one(fleet, services):
    """The new version's health check runs the shared backbone on the install thread while requests run it on the
    serving thread: native arenas are per backend, so two overlapping runs would corrupt each other."""
    reg, reg_client, reports, device, _ = fleet
    d, xs, want = services
    for v in ("2", "3"):
        reg.publish(d / v)
    dev = device("cam-race")
    reg.deploy(reg_client, "vision", "2", ["cam-race"])
    reports.wait(lambda s: s.get("cam-race") and s["cam-race"].version == "2")
    wrong, done, stop = [], [0], threading.Event()

    def load():
        i = 0
        while not stop.is_set():
            k = i % len(xs)
            out = dev.infer({"input_0": xs[k]}, ["cls_a", "cls_c"])  # tasks the same in versions 2 and 3
            for t in ("cls_a", "cls_c"):
                got = next(v for n, v in out.items() if n.startswith(f"{t}/"))
                if not np.array_equal(got, want[t][k]):
                    wrong.append((t, k))
            done[0] += 1
            i += 1

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for step in range(2):
            reg.deploy(reg_client, "vision", "3", ["cam-race"])
            reports.wait(lambda s: s["cam-race"].version == "3" or "health check" in (s["cam-race"].last_error or ""))
            assert dev.active.version == "3", dev.last_error
            assert reg.rollback(reg_client, "cam-race") == ("vision", "2")  # reinstalls 2: every backend reused
            reports.wait(lambda s: s["cam-race"].version == "2" or "health check" in (s["cam-race"].last_error or ""))
            assert dev.active.version == "2", dev.last_error
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert done[0] > 10 and not wrong and dev.failed == 0


def test_a_version_failing_half_way_leaves_the_running_one_serving(fleet, services, tmp_path):
    reg, reg_client, reports, device, _ = fleet
    d, xs, want = services
    reg.publish(d / "2")
    rec3 = reg.publish(d / "3")
    m3 = ServiceManifest.load(d / "3" / "manifest.json")
    dev = device("cam-h", rollout=RolloutSettings(retry_initial_s=0.2, retry_max_s=0.5))
    reg.deploy(reg_client, "vision", "2", ["cam-h"])
    reports.wait(lambda s: s.get("cam-h") and s["cam-h"].version == "2")
    loaded = dict(dev.active.service.backends)
    every = ["cls_a", "cls_b", "cls_c"]

    # 1. version 3's new head is corrupt on the registry's disk (then gone): fetch refused, retried
    path = reg.blobs.path(m3.submodel("head_cls_b").sha256)
    good = path.read_bytes()
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    reg.deploy(reg_client, "vision", "3", ["cam-h"])
    reports.wait(lambda s: "vision@3" in (s["cam-h"].last_error or "") and "retry" in s["cam-h"].last_error)
    assert "head_cls_b" in reports.latest["cam-h"].last_error or m3.submodel("head_cls_b").sha256[:12] in \
        reports.latest["cam-h"].last_error  # fmt: skip
    assert dev.active.version == "2" and dev.active.service.backends == loaded
    _check(dev.infer({"input_0": xs[0]}, every), want, 0, every)
    reg.blobs.put(good)  # the registry is repaired: the retry installs version 3
    reports.wait(lambda s: s["cam-h"].version == "3")
    assert dev.fetcher.fetched_bytes >= m3.submodel("head_cls_b").size + rec3.manifest_size
    assert all(dev.active.service.backends[n] is loaded[n] for n in ("backbone", "head_cls_a", "head_cls_c"))
    out = dev.infer({"input_0": xs[1]}, every)
    _check(out, {**want, "cls_b": want["new_b"]}, 1, every)

    # 2. version 4: a new head for cls_b that loads, then a cls_c head that does not (signed garbage)
    folder = tmp_path / "v4"
    compose_service([Source("cls_a", MNV2), Source("cls_b", new_head(MNV2, 9)), Source("cls_c", new_head(MNV2, 2))],
                    folder, "vision", version="4")  # fmt: skip
    garbage = b"TFL3 not a model at all" * 8
    (folder / "head_cls_c.tflite").write_bytes(garbage)
    m4 = ServiceManifest.load(folder / "manifest.json")
    subs = tuple(s.model_copy(update={"sha256": hashlib.sha256(garbage).hexdigest(), "size": len(garbage)})
                 if s.name == "head_cls_c" else s for s in m4.submodels)  # fmt: skip
    (folder / "manifest.json").write_text(m4.model_copy(update={"submodels": subs}).to_json())
    reg.publish(folder)
    running = dict(dev.active.service.backends)
    reg.deploy(reg_client, "vision", "4", ["cam-h"])
    reports.wait(lambda s: "vision@4" in (s["cam-h"].last_error or ""))
    assert dev.active.version == "3" and dev.active.service.backends == running
    for i, x in enumerate(xs):  # every task of version 3 on its loaded backends, none closed
        _check(dev.infer({"input_0": x}, every), {**want, "cls_b": want["new_b"]}, i, every)
    assert dev.failed == 0 and dev.auto_rollback is None


def test_restart_from_cache_holds_what_it_held_and_offloads_the_rest(fleet, services):
    reg, reg_client, reports, device, worker = fleet
    d, xs, want = services
    m = ServiceManifest.load(d / "2" / "manifest.json")
    reg.publish(d / "2")
    size = {s.name: s.size for s in m.submodels}
    budget = size["backbone"] + size["head_cls_a"] + size["head_cls_b"] // 2  # task a held, heads b, c on workers
    worker("gpu-r")
    every = ["cls_a", "cls_b", "cls_c"]
    kw = {"hold_budget": budget, "offload": OffloadSettings(deadline_ms=5000)}
    dev = device("cam-r", **kw)
    reg.deploy(reg_client, "vision", "2", ["cam-r"])
    reports.wait(lambda s: s.get("cam-r") and s["cam-r"].version == "2")
    _check(dev.infer({"input_0": xs[0]}, every), want, 0, every)
    dev.close()
    dev.client.stop()

    again = device("cam-r", **kw)  # same cache folder
    assert again.active is not None and again.active.version == "2"  # restored in the constructor, no fetch
    assert again.fetcher.fetched_blobs == 0
    svc = again.active.service
    assert {n for n, k in svc.kinds.items() if k == "remote"} == {"head_cls_b", "head_cls_c"}
    _check(again.infer({"input_0": xs[1]}, ["cls_a"]), want, 1, ["cls_a"])  # held: runs at once
    deadline = time.monotonic() + 10
    while not again._board.any_online() and time.monotonic() < deadline:  # the worker's retained status
        time.sleep(0.02)
    for i, x in enumerate(xs):
        _check(again.infer({"input_0": x}, every), want, i, every)
    assert again.fetcher.fetched_blobs == 0 and not again.cache.has(m.submodel("head_cls_b").sha256)


def test_a_worker_away_during_probation_is_not_the_versions_failure(fleet, services):
    reg, reg_client, reports, device, _ = fleet
    d, xs, want = services
    v1, v2 = ServiceManifest.load(d / "1" / "manifest.json"), ServiceManifest.load(d / "2" / "manifest.json")
    reg.publish(d / "1"), reg.publish(d / "2")
    budget = sum(s.size for s in v1.submodels)  # all of version 1; version 2's new head does not fit
    assert v2.submodel("head_cls_c").size > 0
    dev = device("cam-p", hold_budget=budget, offload=OffloadSettings(deadline_ms=1000),
                 rollout=RolloutSettings(probation_requests=6, max_failures=1))  # fmt: skip
    reg.deploy(reg_client, "vision", "1", ["cam-p"])
    reports.wait(lambda s: s.get("cam-p") and s["cam-p"].version == "1")
    reg.deploy(reg_client, "vision", "2", ["cam-p"])
    reports.wait(lambda s: s["cam-p"].version == "2")
    assert dev._probation is not None
    for _ in range(8):  # no worker online: cls_c fails fast, naming task and stage, each time
        with pytest.raises(StageUnavailableError, match="task cls_c: stage head_cls_c .*no worker is online"):
            dev.infer({"input_0": xs[0]}, ["cls_a", "cls_c"])
    assert dev.active.version == "2" and dev.auto_rollback is None and dev._probation is not None
    for i in range(6):
        _check(dev.infer({"input_0": xs[i % 3]}, ["cls_a", "cls_b"]), want, i % 3, ["cls_a", "cls_b"])
    assert dev._probation is None and dev.active.version == "2" and dev.auto_rollback is None  # passed


def test_a_failing_stage_is_named_with_its_task(services):
    d, xs, _ = services
    pipe = ServicePipeline.from_manifest(d / "2" / "manifest.json", "litert", xnnpack=False)
    m = pipe.manifest
    head = pipe.backends["head_cls_b"]
    getattr(head, "backend", head).close()  # a backend that cannot run any more (its interpreter released)
    where = rf"vision@2: task cls_b: stage head_cls_b \(submodel {m.submodel('head_cls_b').sha256[:12]}\) failed"
    with pytest.raises(EdgeMaasError, match=where + ": AttributeError"):
        pipe.run({"input_0": xs[0]}, ["cls_a", "cls_b"])
    assert pipe.run({"input_0": xs[0]}, ["cls_a", "cls_c"]).keys() == {"cls_a", "cls_c"}  # the others run on
    pipe.close()


def test_a_workers_reply_cannot_overwrite_what_the_device_computed(fleet, services, mosquitto):
    """A worker answering head_cls_b with an extra tensor named like head_cls_a's output: task cls_a, computed here
    before head_cls_b runs, must keep its own output."""
    reg, reg_client, reports, device, _ = fleet
    d, xs, want = services
    m = ServiceManifest.load(d / "2" / "manifest.json")
    reg.publish(d / "2")
    stolen = m.task("cls_a").outputs[0]
    head_b = m.submodel("head_cls_b")
    assert [s.name for s in m.task_plan(["cls_a", "cls_b"])] == ["backbone", "head_cls_a", "head_cls_b"]
    rogue = MqttClient(mosquitto.url, "rogue").start()

    def answer(topic, payload):
        req, _ = decode(payload, OffloadRequest)
        sub = m.by_sha256(req.submodel_sha256)
        outs = {t.name: np.zeros(t.shape, t.dtype) for t in sub.outputs}
        desc = m.tensor(stolen)
        outs[stolen] = np.full(desc.shape, 7, desc.dtype)
        metas, body = pack_tensors(outs)
        rogue.publish(req.reply_to, encode(OffloadReply(id=req.id, worker="rogue", outputs=metas), body), qos=0)

    rogue.subscribe(topics.offload("+"), answer)
    status = WorkerStatus(worker="rogue", status="online", backend="native", max_batch=1, max_delay_ms=0, served=0,
                          rejected=0, queue_depth=0)  # fmt: skip
    rogue.publish(topics.worker_status("rogue"), status.model_dump_json().encode(), retain=True)
    size = {s.name: s.size for s in m.submodels}
    dev = device("cam-w", hold_budget=size["backbone"] + size["head_cls_a"] + size["head_cls_b"] // 2,
                 offload=OffloadSettings(deadline_ms=3000))  # fmt: skip
    reg.deploy(reg_client, "vision", "2", ["cam-w"])
    reports.wait(lambda s: s.get("cam-w") and s["cam-w"].version == "2")
    assert head_b.sha256 in reports.latest["cam-w"].service.remote
    deadline = time.monotonic() + 10
    while not dev._board.any_online() and time.monotonic() < deadline:
        time.sleep(0.02)
    out = dev.infer({"input_0": xs[0]}, ["cls_a", "cls_b"])
    _check(out, want, 0, ["cls_a"])  # computed here, not replaced by the worker's extra tensor
    assert len(out) == len(m.task("cls_a").outputs) + len(m.task("cls_b").outputs)
    rogue.publish(topics.worker_status("rogue"), b"", retain=True)
    rogue.stop()

"""The services part of the demo (issue 10's story), on real data: the zoo's digits MLP cut after its two hidden
layers is the backbone; tasks are learned on its features from a few held-out digits by transfer learning.

A backbone with two tasks is deployed; a third task is trained and deployed by shipping only its head (bytes on the
wire printed); one request answers several tasks (the backbone runs once); one head is retrained and hot-swapped
under load with zero failed requests; rollback; a second device whose budget cannot hold the backbone runs it on a
worker, and says why a request fails once the worker is gone.  Every answer is compared byte for byte."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from edge_maas import zoo
from edge_maas.backends import make_backend
from edge_maas.config import OffloadSettings
from edge_maas.datasets import digits_test_int8
from edge_maas.device.agent import DeviceAgent
from edge_maas.errors import EdgeMaasError
from edge_maas.heads.service_head import train_service_task
from edge_maas.partition import plan_at_tensors, split_model
from edge_maas.registry import signing
from edge_maas.registry.blobs import BlobStore
from edge_maas.registry.service import Registry
from edge_maas.service import ServiceManifest
from edge_maas.service_pipeline import ServicePipeline
from edge_maas.tflite import load_graph
from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient
from edge_maas.transport.infer_client import InferClient
from edge_maas.transport.messages import ReportedState
from edge_maas.worker.worker import Worker

SERVICE = "digits"
LABELS = {"digits": lambda y: y, "ge5": lambda y: (y >= 5).astype(np.int64), "parity": lambda y: y % 2}


class _Fleet:
    """The registry, its MQTT client, and every device's latest retained report."""

    def __init__(self, url: str, work: Path, clients: list[MqttClient]):
        self.url, self.work, self.clients = url, work, clients
        self.pub = signing.new_key(work / "registry.key")
        self.reg = Registry(work / "registry", work / "registry.key")
        self.client = self.mqtt("registry")
        self.reg.serve(self.client)
        self.reports: dict[str, ReportedState] = {}
        self.cv = threading.Condition()
        self.client.subscribe(topics.reported("+"), self._on_report)

    def mqtt(self, name: str) -> MqttClient:
        self.clients.append(MqttClient(self.url, name).start())
        return self.clients[-1]

    def _on_report(self, topic: str, payload: bytes) -> None:
        s = ReportedState.model_validate_json(payload)
        with self.cv:
            self.reports[s.device_id] = s
            self.cv.notify_all()

    def deploy(self, version: str, device: str, rollback: bool = False) -> ReportedState:
        if rollback:
            self.reg.rollback(self.client, device)
        else:
            self.reg.deploy(self.client, SERVICE, version, [device])
        with self.cv:
            if not self.cv.wait_for(lambda: (s := self.reports.get(device)) and (s.version == version or (
                    s.last_error and s.version != version and "retry" not in s.last_error)), 60):  # fmt: skip
                raise EdgeMaasError(f"{device} did not report {SERVICE}@{version} within 60 s")
            s = self.reports[device]
        if s.version != version:
            raise EdgeMaasError(f"{device} refused {SERVICE}@{version}: {s.last_error}")
        return s

    def publish(self, folder: Path) -> str:
        rec = self.reg.publish(folder)
        st = self.reg.last_publish
        kept = f", {st.blobs - st.new_blobs} already stored" if st.new_blobs < st.blobs else ""
        print(f"[registry] published {rec.model}@{rec.version} (release {rec.release}, signed): {st.new_blobs} of "
              f"{st.blobs} submodels new ({st.new_bytes} bytes){kept}; manifest {rec.manifest_size} bytes; store "
              f"now {self.reg.blobs.total_bytes()} bytes")  # fmt: skip
        return rec.version


def _reference(folder: Path) -> ServicePipeline:
    """The service as the folder holds it now, on the interpreter's built-in kernels: what devices must answer."""
    return ServicePipeline.from_manifest(folder / "manifest.json", "litert", xnnpack=False)


def _expected(folder: Path, xs: np.ndarray, tasks: list[str]) -> list[dict[str, np.ndarray]]:
    from edge_maas.service import flatten_outputs

    ref = _reference(folder)
    try:
        return [flatten_outputs(ref.run(x, tasks)) for x in xs]
    finally:
        ref.close()


def _serve_all(caller: InferClient, device: str, xs, want, tasks) -> tuple[int, dict[str, np.ndarray]]:
    """Send every input as one request for all ``tasks``; (replies equal to ``want``, predictions per task)."""
    same, pred = 0, {t: [] for t in tasks}
    for x, w in zip(xs, want):
        _, out = caller.infer(device, x, tasks=tasks)
        same += int(out.keys() == w.keys() and all(np.array_equal(out[k], w[k]) for k in w))
        for t in tasks:
            (k,) = [k for k in out if k.startswith(f"{t}/")]
            pred[t].append(int(np.argmax(out[k])))
    return same, {t: np.array(p) for t, p in pred.items()}


def _accuracy(pred: dict[str, np.ndarray], y: np.ndarray) -> str:
    return ", ".join(f"{t} {np.mean(p == LABELS[t](y)):.3f}" for t, p in pred.items())


def _train(folder: Path, at: str, data: Path, task: str, **kw):
    r = train_service_task(folder / "manifest.json", at, data, task, holdout=0.75, **kw)
    a = r.accuracy
    how = "retrained" if kw.get("replace") else "trained"
    print(f"[transfer] task {task} {how} on {r.head.n_train} held-out digits (backbone frozen): float {a.float:.3f}, "
          f"int8 {a.int8:.3f} on {a.n} others; interpreter == native head on {r.checked}; head {r.submodel.size} "
          f"bytes; service {r.previous_version} -> {r.manifest.service.version}")  # fmt: skip
    return r.manifest.service.version


def run_service_demo(broker_url: str | None, backend: str = "native") -> bool:
    """The story end to end; True when every check held.  ``broker_url`` None: an embedded broker."""
    from edge_maas.transport.embedded_broker import EmbeddedBroker

    broker = EmbeddedBroker().start() if broker_url is None else None
    url = broker.url if broker else broker_url
    work = Path(tempfile.mkdtemp(prefix="edge_maas_services_"))
    clients: list[MqttClient] = []
    stop: list = []
    try:
        return _story(url, work, clients, backend, embedded=broker is not None, stop=stop)
    finally:
        for s in stop:
            s()
        for c in clients:
            c.stop()
        if broker is not None:
            broker.stop()


def _story(url: str, work: Path, clients: list[MqttClient], backend: str, embedded: bool, stop: list) -> bool:
    ok = True
    source = zoo.model_path("mlp_digits").read_bytes()
    g = load_graph(source)
    at_name = g.tensors[g.ops[1].outputs[0]].name  # after the two hidden layers: the features, int8[1, 32]
    folder = work / "svc"
    split_model(g, plan_at_tensors(g, [at_name]), folder, SERVICE, "1", source_bytes=source)
    q = g.tensors[g.inputs[0]].quant
    pixels, y = digits_test_int8(q.scale[0], q.zero_point[0])
    for task in ("ge5", "parity"):
        np.savez(work / f"{task}.npz", x=pixels[:, 0], y=LABELS[task](y))
    xs = [{g.tensors[g.inputs[0]].name: x} for x in pixels]  # requests: the service input keeps the model's name
    print(f"\n== services: one backbone, many tasks (work dir {work}) ==")

    v = _train(folder, at_name, work / "ge5.npz", "ge5")
    m = ServiceManifest.load(folder / "manifest.json")
    print(f"[service]  {SERVICE}@{v}: submodels " + ", ".join(f"{s.name} ({s.size} B)" for s in m.submodels)
          + f"; tasks {', '.join(t.name for t in m.tasks)}")  # fmt: skip
    fleet = _Fleet(url, work, clients)
    fleet.publish(folder)
    options = {"threads": 1} if backend == "native" else {"xnnpack": False}
    cam1 = DeviceAgent("cam-1", fleet.mqtt("cam-1"), BlobStore(work / "cam-1"), signing.load_public(fleet.pub),
                       backend=backend, backend_options=options)  # fmt: skip
    stop.append(cam1.close)
    fleet.deploy(v, "cam-1")
    print(f"[device]   cam-1 runs {SERVICE}@{v} ({backend}): fetched {cam1.fetcher.fetched_bytes} bytes in "
          f"{cam1.fetcher.fetched_blobs} blobs, signature + sha256 + golden pairs checked")  # fmt: skip
    caller = InferClient(fleet.mqtt("caller"))
    tasks = ["digits", "ge5"]
    whole = make_backend("litert", source, xnnpack=False)
    want = _expected(folder, xs, tasks)
    out_name = f"digits/{whole.outputs[0].name}"
    same_whole = sum(np.array_equal(w[out_name], whole.run(x)[whole.outputs[0].name]) for x, w in zip(xs, want))
    same, pred = _serve_all(caller, "cam-1", xs, want, tasks)
    print(f"[infer]    {len(xs)} requests for {'+'.join(tasks)} over MQTT: {same}/{len(xs)} byte-equal to the "
          f"reference; task digits == the whole original model on {same_whole}/{len(xs)}; accuracy "
          f"{_accuracy(pred, y)}")  # fmt: skip
    ok &= same == len(xs) == same_whole

    # a third task by transfer learning: only its head and the manifest travel
    v = _train(folder, at_name, work / "parity.npz", "parity", hidden=16)
    fleet.publish(folder)
    backbone = cam1.active.service.backends["shard_00"]
    before_b, before_n, wire = cam1.fetcher.fetched_bytes, cam1.fetcher.fetched_blobs, cam1.client.bytes_in
    fleet.deploy(v, "cam-1")
    m = ServiceManifest.load(folder / "manifest.json")
    moved = cam1.fetcher.fetched_bytes - before_b
    kept = cam1.active.service.backends["shard_00"] is backbone
    print(f"[ship]     cam-1 -> {SERVICE}@{v}: {cam1.fetcher.fetched_blobs - before_n} blobs, {moved} bytes fetched "
          f"(head_parity {m.submodel('head_parity').size} B + manifest "
          f"{fleet.reg.catalog.version(SERVICE, v).manifest_size} B), {cam1.client.bytes_in - wire} bytes on the "
          f"wire in all; backbone {'kept loaded, not refetched' if kept else 'RELOADED'}")  # fmt: skip
    ok &= kept and moved == m.submodel("head_parity").size + fleet.reg.catalog.version(SERVICE, v).manifest_size

    tasks = ["digits", "ge5", "parity"]
    want = _expected(folder, xs, tasks)
    runs = cam1.active.service.runs["shard_00"]
    _, out = caller.infer("cam-1", xs[0], tasks=tasks)
    answers = {k.split("/")[0]: int(np.argmax(a)) for k, a in out.items()}
    once = cam1.active.service.runs["shard_00"] - runs == 1
    print(f"[request]  one request for {', '.join(tasks)} on a digit {y[0]}: {answers}; backbone ran "
          f"{'once' if once else 'MORE THAN ONCE'}")  # fmt: skip
    same, pred = _serve_all(caller, "cam-1", xs, want, tasks)
    print(f"[infer]    {len(xs)} requests for 3 tasks: {same}/{len(xs)} byte-equal; accuracy {_accuracy(pred, y)}")
    ok &= once and same == len(xs)
    v3, want3 = v, want

    # one head retrained and hot-swapped while requests keep coming
    v = _train(folder, at_name, work / "ge5.npz", "ge5", hidden=16, replace=True)
    fleet.publish(folder)
    want4 = _expected(folder, xs, tasks)
    ok &= _hot_swap(fleet, caller, "cam-1", v, v3, xs, {v3: want3, v: want4}, tasks)

    fleet.deploy(v3, "cam-1", rollback=True)
    same, _ = _serve_all(caller, "cam-1", xs[:50], want3[:50], tasks)
    print(f"[rollback] cam-1 back on {SERVICE}@{v3} (signed rollback): {same}/50 requests equal to {v3}'s answers")
    ok &= same == 50

    ok &= _partial(fleet, caller, v3, xs, want3, tasks, backend, options, embedded, stop)
    return ok


def _hot_swap(fleet: _Fleet, caller: InferClient, device: str, new: str, old: str, xs, want, tasks) -> bool:
    seen, bad, errors, halt = [], [], [], threading.Event()

    def load():
        i = 0
        while not halt.is_set():
            k = i % len(xs)
            try:
                version, out = caller.infer(device, xs[k], tasks=tasks)
            except EdgeMaasError as exc:
                errors.append(str(exc))
                continue
            w = want.get(version, {})
            if not (w and all(np.array_equal(out[n], w[k][n]) for n in w[k])):
                bad.append(version)
            seen.append(version)
            i += 1

    t = threading.Thread(target=load, daemon=True)
    t.start()
    while len(seen) < 30 and t.is_alive():
        time.sleep(0.01)
    fleet.deploy(new, device)
    n = len(seen)
    while len(seen) < n + 30 and t.is_alive():
        time.sleep(0.01)
    halt.set()
    t.join(timeout=30)
    print(f"[hot swap] head_ge5 swapped {old} -> {new} under load: {len(seen)} requests ({seen.count(old)} on {old}, "
          f"{seen.count(new)} on {new}), {len(errors)} failed, {len(bad)} wrong bytes; other heads and the "
          f"backbone untouched")  # fmt: skip
    return not errors and not bad and seen[-1] == new


def _partial(fleet: _Fleet, caller: InferClient, version: str, xs, want, tasks, backend, options, embedded,
             stop: list) -> bool:  # fmt: skip
    """A device that cannot hold the backbone: it runs on a worker; without the worker, a clear error.  The
    embedded broker (amqtt) has no shared subscriptions: the worker subscribes plainly there."""
    m = ServiceManifest.from_json(fleet.reg.blobs.get(fleet.reg.catalog.version(SERVICE, version).manifest_sha256))
    heavy = max(m.submodels, key=lambda s: s.size)
    budget = sum(s.size for s in m.submodels) - heavy.size
    worker = Worker("gpu-worker", fleet.mqtt("gpu-worker"), BlobStore(fleet.work / "worker"),
                    signing.load_public(fleet.pub), group=None if embedded else "workers", backend=backend,
                    options=options, status_every_s=0.5)  # fmt: skip
    stop.append(worker.close)
    cam2 = DeviceAgent("cam-2", fleet.mqtt("cam-2"), BlobStore(fleet.work / "cam-2"), signing.load_public(fleet.pub),
                       backend=backend, backend_options=options, hold_budget=budget,
                       offload=OffloadSettings(deadline_ms=1000))  # fmt: skip
    stop.append(cam2.close)
    st = fleet.deploy(version, "cam-2").service
    print(f"[partial]  cam-2 holds {budget} bytes of {budget + heavy.size}: {len(st.held)} submodels here, "
          f"{heavy.name} ({heavy.size} B, the heaviest) on a worker")  # fmt: skip
    same, _ = _serve_all(caller, "cam-2", xs, want, tasks)
    print(f"[offload]  {len(xs)} requests for 3 tasks on cam-2: {same}/{len(xs)} byte-equal to cam-1's answers; "
          f"the worker ran {heavy.name} {worker.served} times")  # fmt: skip
    worker.client.stop()  # the worker dies
    t0 = time.perf_counter()
    try:
        caller.infer("cam-2", xs[0], tasks=["ge5"])
        failed = ""
    except EdgeMaasError as exc:
        failed = str(exc)
    print(f"[no worker] worker gone: a request failed after {(time.perf_counter() - t0) * 1e3:.0f} ms "
          f"(deadline 1000): {failed or 'IT DID NOT FAIL'}")  # fmt: skip
    return same == len(xs) and worker.served >= len(xs) and f"stage {heavy.name}" in failed

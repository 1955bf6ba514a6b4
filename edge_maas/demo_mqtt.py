"""The MaaS part of the demo: a registry publishes the split model (signed), serves it
over MQTT, a device agent fetches, verifies, health-checks and runs it, a client sends
every request over MQTT, and a cloud worker takes the last stage (offload, then fallback)."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from edge_maas.device.agent import DeviceAgent
from edge_maas.registry import signing
from edge_maas.registry.blobs import BlobStore
from edge_maas.registry.service import Registry
from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient
from edge_maas.transport.infer_client import InferClient
from edge_maas.transport.messages import ReportedState


def _offload_demo(broker_url, shared, work, rec, pub, pipeline, name, xs, want, clients) -> bool:
    """A cloud worker joins; the device runs every stage but the last and offloads that one,
    then the worker goes away and the same request falls back to local execution."""
    from edge_maas.backends.remote import RemoteSplit
    from edge_maas.planner import Planner
    from edge_maas.worker.worker import Worker

    clients.append(MqttClient(broker_url, "demo-worker").start())
    worker = Worker("demo-worker", clients[-1], BlobStore(work / "worker-cache"), signing.load_public(pub),
                    group="workers" if shared else None)  # fmt: skip
    clients.append(MqttClient(broker_url, "demo-offloader").start())
    split = len(pipeline.stages) - 1
    remote = RemoteSplit(clients[-1], pipeline, rec.model, rec.manifest_sha256, rec.manifest_size, deadline_s=5.0)
    same, where, t0 = 0, {}, time.perf_counter()
    for x, y in zip(xs, want):
        out, w = remote.run({name: x}, split)
        where[w] = where.get(w, 0) + 1
        same += int(all(np.array_equal(out[k], y[k]) for k in y))
    dt = (time.perf_counter() - t0) / len(xs)
    how = "$share subscription" if shared else "plain subscription: amqtt has no shared subscriptions"
    print(f"[offload]  stages 0..{split - 1} here, stage {split} on the worker ({how}): {where}, "
          f"reply == local whole model on {same}/{len(xs)}, {dt * 1e3:.2f} ms per request")  # fmt: skip
    st = worker.status()
    print(f"[worker]   served {st.served}, per stage: "
          + ", ".join(f"stage {s.stage} {s.ms_per_request:.3f} ms/request, mean batch {s.mean_batch:.1f}" for s in st.stages))
    planner = Planner.for_pipeline(pipeline, {name: xs[0]})
    for _ in range(5):
        remote.run_planned({name: xs[0]}, planner)
    print(f"[planner]  {planner.best().reason}")
    worker.close()
    clients[-2].stop()  # the worker leaves
    remote.deadline_s = 0.3
    out, w = remote.run({name: xs[0]}, split)
    fell_back = w == "fallback" and all(np.array_equal(out[k], want[0][k]) for k in want[0])
    print(f"[fallback] worker gone: the request ran {w} after its {remote.deadline_s * 1e3:.0f} ms deadline, "
          f"output {'==' if fell_back else '!='} local")  # fmt: skip
    return same == len(xs) and where.get("remote:demo-worker", 0) == len(xs) and fell_back


def run_mqtt_demo(split_dir: Path, broker_url: str | None, backend: str, options: dict, xs, want) -> bool:
    """Returns True when every MQTT reply equals the local whole-model output."""
    from edge_maas.transport.embedded_broker import EmbeddedBroker

    broker = None
    if broker_url is None:
        broker = EmbeddedBroker().start()
        broker_url = broker.url
        print(f"[broker]   no --broker given: embedded amqtt broker on {broker_url}")
    else:
        print(f"[broker]   {broker_url}")
    work = Path(tempfile.mkdtemp(prefix="edge_maas_maas_"))
    clients: list[MqttClient] = []
    try:
        pub = signing.new_key(work / "registry.key")
        registry = Registry(work / "registry", work / "registry.key")
        rec = registry.publish(split_dir)
        reg_client = MqttClient(broker_url, "registry").start()
        clients.append(reg_client)
        registry.serve(reg_client)
        print(f"[registry] published {rec.model}@{rec.version}, manifest signed (Ed25519), {work / 'registry'}")

        dev_client = MqttClient(broker_url, "demo-device").start()
        clients.append(dev_client)
        options = {"xnnpack": False} if backend == "litert" else dict(options)
        agent = DeviceAgent("demo-device", dev_client, BlobStore(work / "device-cache"), signing.load_public(pub),
                            backend=backend, backend_options=options)  # fmt: skip
        ready = threading.Event()
        state: dict = {}

        def on_report(topic, payload):
            s = ReportedState.model_validate_json(payload)
            state["s"] = s
            if s.version == rec.version or s.last_error:
                ready.set()

        reg_client.subscribe(topics.reported("demo-device"), on_report)
        t0 = time.perf_counter()
        registry.deploy(reg_client, rec.model, rec.version, ["demo-device"])
        if not ready.wait(60) or state["s"].version != rec.version:
            print(f"[device]   FAILED to deploy: {state.get('s')}")
            return False
        print(f"[device]   fetched {dev_client.bytes_in} bytes, verified signature + sha256, golden health check ok, "
              f"running {rec.model}@{rec.version} after {(time.perf_counter() - t0) * 1e3:.0f} ms")  # fmt: skip

        caller_client = MqttClient(broker_url, "demo-caller").start()
        clients.append(caller_client)
        caller = InferClient(caller_client)
        name = agent.active.pipeline.inputs[0].name
        same, t0 = 0, time.perf_counter()
        for x, y in zip(xs, want):
            _, out = caller.infer("demo-device", {name: x})
            same += int(all(np.array_equal(out[k], y[k]) for k in y))
        dt = (time.perf_counter() - t0) / len(xs)
        print(f"[mqtt]     {len(xs)} infer requests over MQTT: reply == local whole model on {same}/{len(xs)}, "
              f"{dt * 1e3:.2f} ms round trip")  # fmt: skip
        offloaded = _offload_demo(broker_url, broker is None, work, rec, pub, agent.active.pipeline, name, xs, want, clients)
        agent.close()
        return same == len(xs) and offloaded
    finally:
        for c in clients:
            c.stop()
        if broker is not None:
            broker.stop()

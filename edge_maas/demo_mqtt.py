"""The MaaS part of the demo: a registry publishes the split model (signed), serves it
over MQTT, a device agent fetches, verifies, health-checks and runs it, and a client
sends every request over MQTT."""

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
        print("[offload]  not yet: cloud offload of a stage is the offload issue")
        agent.close()
        return same == len(xs)
    finally:
        for c in clients:
            c.stop()
        if broker is not None:
            broker.stop()

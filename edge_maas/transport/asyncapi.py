"""The AsyncAPI 2.6 document of the MQTT protocol, generated from the message models
(docs/asyncapi.json; a test keeps it in sync).  Prose: docs/protocol.md."""

from __future__ import annotations

import json

from edge_maas.manifest import Manifest
from edge_maas.service import ServiceManifest
from edge_maas.transport import messages as m
from edge_maas.transport.topics import PREFIX

FRAME = "4-byte big-endian header length, the JSON header below, then raw bytes"

CHANNELS = [
    # channel, who publishes, message model, description, retained, qos
    (f"{PREFIX}/device/{{device_id}}/desired", "registry", m.SignedDesired,
     "The version a device should run (retained; written by the registry only): signed by a threshold of the "
     "root's release (targets) keys, addressed to one device, with a strictly increasing seq, an expiry, and "
     "rollback=true only for an operator's rollback.", True, 1),
    (f"{PREFIX}/trust/root/{{version}}", "registry", m.RootMetadata,
     "Root of trust version N (retained; TUF root metadata): devices chain v1 -> v2 -> ... checking a threshold "
     "of the previous and of the new root keys.", True, 1),
    (f"{PREFIX}/device/{{device_id}}/reported", "device", m.ReportedState,
     "What the device runs, health, last error (retained; last will status=offline).", True, 1),
    (f"{PREFIX}/registry/blob/get", "device", m.ChunkRequest, "Chunk requests for a blob by sha256.", False, 1),
    (f"{PREFIX}/client/{{client_id}}/blob", "registry", m.ChunkHeader,
     f"One chunk (framed: {FRAME}: the chunk).", False, 1),
    (f"{PREFIX}/device/{{device_id}}/infer", "client", m.InferRequest,
     f"Inference request (framed: {FRAME}: the inputs, in order); `tasks` names the service's tasks to answer "
     "in this one request (outputs keyed TASK/TENSOR).", False, 0),
    (f"{PREFIX}/client/{{client_id}}/infer", "device", m.InferReply,
     f"Inference reply (framed: {FRAME}: the outputs, in order).", False, 0),
    (f"{PREFIX}/offload/{{model}}", "device", m.OffloadRequest,
     f"Run stages first_stage.. of a split model, or with `submodel_sha256` one submodel of a service (model: "
     f"the service's name), on a worker; workers take it through $share/<group>/ (framed: {FRAME}: "
     "the boundary tensors, in order, compressed with `codec`).", False, 0),
    (f"{PREFIX}/client/{{client_id}}/offload", "worker", m.OffloadReply,
     f"Offload reply, outputs or error (framed: {FRAME}: the outputs, in order).", False, 0),
    (f"{PREFIX}/worker/{{worker}}/status", "worker", m.WorkerStatus,
     "Load, batching and per-stage latency (retained; last will status=offline).", True, 1),
]  # fmt: skip


def document() -> dict:
    channels = {}
    for name, writer, model, desc, retained, qos in CHANNELS:
        params = {p: {"schema": {"type": "string"}} for p in ("device_id", "client_id", "model", "worker", "version")
                  if f"{{{p}}}" in name}  # fmt: skip
        channels[name] = {
            "description": f"{desc} Written by: {writer}.",
            **({"parameters": params} if params else {}),
            "subscribe": {
                "message": {"name": model.__name__, "payload": model.model_json_schema()},
                "bindings": {"mqtt": {"qos": qos, "retain": retained}},
            },
        }
    return {
        "asyncapi": "2.6.0",
        "info": {"title": "edge_maas MQTT protocol", "version": "1",
                 "description": "Blobs travel as chunks by sha256; the manifest blob a desired state names is a "
                                "Manifest (schema_version 1, a split model) or a ServiceManifest (schema_version 2: "
                                "submodels and tasks), both in components.schemas (also docs/*.schema.json)."},
        "defaultContentType": "application/json",
        "channels": channels,
        "components": {"schemas": {"Manifest": Manifest.model_json_schema(),
                                   "ServiceManifest": ServiceManifest.model_json_schema()}},
    }


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")

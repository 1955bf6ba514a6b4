"""The AsyncAPI 2.6 document of the MQTT protocol, generated from the message models
(docs/asyncapi.json; a test keeps it in sync, and tests/test_asyncapi_parser.py checks it with the official
AsyncAPI parser, tools/asyncapi-check).  Prose: docs/protocol.md."""

from __future__ import annotations

import json

from pydantic.json_schema import models_json_schema

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


SERVERS = {
    "local": {
        "url": "127.0.0.1:{port}", "protocol": "mqtt", "protocolVersion": "3.1.1",
        "description": "The default --broker (mqtt://127.0.0.1:1883): a Mosquitto beside the registry or the device. "
                       "Any MQTT 3.1.1/5 broker with retained messages, last wills and $share/ subscriptions "
                       "(workers) serves; point every part at the same one with --broker URL.",
        "variables": {"port": {"default": "1883", "description": "TCP port of the broker"}},
    },
    "tls": {
        "url": "{host}:{port}", "protocol": "secure-mqtt", "protocolVersion": "3.1.1",
        "description": "A broker over TLS (--broker mqtts://HOST[:PORT]; client certificates optional).",
        "variables": {"host": {"default": "127.0.0.1", "description": "broker host name"},
                      "port": {"default": "8883", "description": "TLS port of the broker"}},
    },
}
TAGS = {
    "registry": "Written by the registry (signed desired states, root metadata, blob chunks).",
    "device": "Written by a device daemon (reported state, chunk requests, inference replies, offload requests).",
    "client": "Written by an application asking a device for an inference (edge-maas infer, the SDK).",
    "worker": "Written by an offload worker (offload replies, worker status).",
}
MQTT_BINDING_VERSION = "0.1.0"  # the MQTT bindings' version for AsyncAPI 2.x (qos, retain on an operation)
_REF = "#/components/schemas/{model}"


def _schemas() -> dict[str, dict]:
    """Every model's JSON schema in one flat namespace (components.schemas): pydantic puts nested models in a
    per-schema `$defs` with `#/$defs/X` refs, which resolve nowhere once the schema sits inside the document,
    so all models are generated together with refs into components.schemas (pydantic renames clashing names)."""
    models = [c[2] for c in CHANNELS] + [Manifest, ServiceManifest]
    _, top = models_json_schema([(model, "validation") for model in models], ref_template=_REF)
    return top["$defs"]


def document() -> dict:
    channels, messages = {}, {}
    for name, writer, model, desc, retained, qos in CHANNELS:
        params = {p: {"schema": {"type": "string"}} for p in ("device_id", "client_id", "model", "worker", "version")
                  if f"{{{p}}}" in name}  # fmt: skip
        msg = model.__name__
        messages[msg] = {"messageId": msg, "name": msg, "title": msg,
                         "payload": {"$ref": _REF.format(model=msg)}}
        channels[name] = {
            "description": f"{desc} Written by: {writer}.",
            **({"parameters": params} if params else {}),
            "subscribe": {
                # one operation per channel and one model per channel: both ids are the model's name
                "operationId": f"on{msg}",
                "summary": f"{msg}, written by the {writer}.",
                "tags": [{"name": writer}],
                "message": {"$ref": f"#/components/messages/{msg}"},
                "bindings": {"mqtt": {"qos": qos, "retain": retained, "bindingVersion": MQTT_BINDING_VERSION}},
            },
        }
    return {
        "asyncapi": "2.6.0",
        "id": "urn:edge-maas:mqtt:v1",
        "info": {"title": "edge_maas MQTT protocol", "version": "1",
                 "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
                 "description": "Blobs travel as chunks by sha256; the manifest blob a desired state names is a "
                                "Manifest (schema_version 1, a split model) or a ServiceManifest (schema_version 2: "
                                "submodels and tasks), both in components.schemas (also docs/*.schema.json)."},
        "servers": SERVERS,
        "tags": [{"name": k, "description": v} for k, v in TAGS.items()],
        "defaultContentType": "application/json",
        "channels": channels,
        "components": {"schemas": _schemas(), "messages": messages},
    }


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")

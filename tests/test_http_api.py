"""The device's Open Inference Protocol endpoint (KServe v2 REST, edge_maas.device.http_api) through a real socket:
uvicorn on 127.0.0.1, a real device agent on a real Mosquitto with models installed from a real registry, and real
HTTP clients (the standard library's, and tritonclient's).

Proves: health (ready only once a version is installed), server and model metadata in the protocol's terms, inference
with JSON tensors and with the binary tensor data extension giving the very bytes of the MQTT path and of the whole
model run on the interpreter's built-in kernels, output selection (for a service: only the selected tasks' heads
run), errors with the protocol's error body and status (400, 404, 413, 503), a two-task service as one model and as
a model per task, tritonclient's HTTP client against it, and the daemon's --http flag (serves, stops on SIGTERM, one
clear error when the extra is missing or the port taken); the OpenAPI document FastAPI serves is valid."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
from conftest import zoo_bytes
from test_bad_input import assert_clean_error
from test_compose import MLP, new_head, whole
from test_registry_device import Reports

from edge_maas.device.agent import DeviceAgent
from edge_maas.device.http_api import HttpServer
from edge_maas.partition import plan_balanced, split_model
from edge_maas.partition.compose import Source, compose_service
from edge_maas.partition.costs import graph_macs
from edge_maas.registry import signing
from edge_maas.registry.blobs import BlobStore
from edge_maas.registry.service import Registry
from edge_maas.tflite import load_graph
from edge_maas.transport.client import MqttClient
from edge_maas.transport.infer_client import InferClient

HEADER = "Inference-Header-Content-Length"
MAX_BODY = 256 << 10


class Http:
    """A plain HTTP/1.1 client on the server's port (http.client: nothing in it knows the protocol)."""

    def __init__(self, port: int):
        self.port = port

    def __call__(self, method: str, path: str, body: bytes | dict | None = None, headers: dict | None = None):
        """(status, headers, body bytes)."""
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.headers, r.read()  # headers: case-insensitive, as HTTP's are
        finally:
            conn.close()

    def json(self, method: str, path: str, body=None, headers=None):
        status, _, data = self(method, path, body, headers)
        return status, json.loads(data)


@pytest.fixture
def world(mosquitto, tmp_path):
    pub = signing.new_key(tmp_path / "registry.key")
    reg = Registry(tmp_path / "registry", tmp_path / "registry.key")
    reg_client = MqttClient(mosquitto.url, "registry").start()
    reg.serve(reg_client)
    reports = Reports(mosquitto.url)
    client = MqttClient(mosquitto.url, "http-dev").start()
    agent = DeviceAgent("http-dev", client, BlobStore(tmp_path / "dev"), signing.load_public(pub), backend="native",
                        backend_options={"threads": 1})  # fmt: skip
    server = HttpServer("127.0.0.1", 0, max_body=MAX_BODY).start(agent)
    asker = MqttClient(mosquitto.url, "asker").start()
    yield reg, reg_client, reports, agent, Http(server.port), InferClient(asker), server
    server.stop()
    agent.close()
    for c in (asker, client, reports.client, reg_client):
        c.stop()


def _install(world, directory, model: str, version: str) -> None:
    reg, reg_client, reports, *_ = world
    reg.publish(directory)
    reg.deploy(reg_client, model, version, ["http-dev"])
    reports.wait(lambda s: s.get("http-dev") and s["http-dev"].version == version and s["http-dev"].healthy)


def _split(tmp_path):
    blob = zoo_bytes("mlp_digits")
    g = load_graph(blob)
    split_model(g, plan_balanced(g, 2, graph_macs(g)), tmp_path / "v1", "mlp_digits", version="1", source_bytes=blob)
    return tmp_path / "v1"


def _binary_request(inputs: dict[str, np.ndarray], outputs=None, every=True, **extra) -> tuple[bytes, dict]:
    """A request body with every input as binary data after the JSON, and its headers."""
    doc = {"inputs": [{"name": n, "shape": list(a.shape), "datatype": _dt(a), "parameters":
                       {"binary_data_size": a.nbytes}} for n, a in inputs.items()],
           "parameters": {"binary_data_output": every}, **extra}  # fmt: skip
    if outputs is not None:
        doc["outputs"] = outputs
    head = json.dumps(doc).encode()
    body = head + b"".join(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes() for a in inputs.values())
    return body, {HEADER: str(len(head)), "Content-Type": "application/octet-stream"}


def _dt(a: np.ndarray) -> str:
    return {"int8": "INT8", "uint8": "UINT8", "float32": "FP32", "int32": "INT32"}[a.dtype.name]


def _binary_outputs(headers, body: bytes) -> tuple[dict, dict[str, bytes]]:
    """The response's JSON part and each binary output's bytes, cut as the extension says."""
    n = int(headers[HEADER])
    doc = json.loads(body[:n])
    out, off = {}, n
    for o in doc["outputs"]:
        size = o["parameters"]["binary_data_size"]
        out[o["name"]] = body[off : off + size]
        off += size
    assert off == len(body)
    return doc, out


def _input(agent) -> tuple[str, np.ndarray]:
    (desc,) = agent.active.manifest.inputs
    return desc.name, np.random.default_rng(7).integers(-128, 128, desc.shape, dtype=np.int8)


def test_health_and_metadata_follow_the_install(world, tmp_path):
    *_, agent, api, _, _ = world
    assert api.json("GET", "/v2/health/live") == (200, {"live": True})
    status, body = api.json("GET", "/v2/health/ready")
    assert status == 503 and "no model version installed" in body["error"]  # the protocol's error body
    assert api.json("GET", "/v2/models/mlp_digits")[0] == 503
    assert api.json("GET", "/v2/models/mlp_digits/ready")[0] == 503
    assert api.json("GET", "/v2") == (200, {"name": "edge-maas", "version": __import__("edge_maas").__version__,
                                            "extensions": ["binary_tensor_data"]})  # fmt: skip

    _install(world, _split(tmp_path), "mlp_digits", "1")
    assert api.json("GET", "/v2/health/ready") == (200, {"ready": True})
    assert api.json("GET", "/v2/models/mlp_digits/ready") == (200, {"name": "mlp_digits", "ready": True})
    assert api.json("GET", "/v2/models/mlp_digits/versions/1/ready")[0] == 200
    m = agent.active.manifest
    want = {"name": "mlp_digits", "versions": ["1"], "platform": "tflite",
            "inputs": [{"name": t.name, "datatype": "INT8", "shape": list(t.shape)} for t in m.inputs],
            "outputs": [{"name": t.name, "datatype": "INT8", "shape": list(t.shape)} for t in m.outputs]}  # fmt: skip
    assert [t.dtype for t in (*m.inputs, *m.outputs)] == ["int8", "int8"]
    assert api.json("GET", "/v2/models/mlp_digits") == (200, want)
    assert api.json("GET", "/v2/models/mlp_digits/versions/1") == (200, want)
    status, body = api.json("GET", "/v2/models/mlp_digits/versions/7")
    assert status == 404 and "no version '7'" in body["error"] and "runs version 1" in body["error"]
    status, body = api.json("GET", "/v2/models/nope/ready")
    assert status == 404 and "unknown model 'nope'" in body["error"] and "mlp_digits" in body["error"]


def test_openapi_document_is_valid_and_describes_the_infer_body(world):
    from openapi_spec_validator import validate  # moto[server] (the test extra) brings it

    api = world[4]
    status, doc = api.json("GET", "/openapi.json")
    assert status == 200
    validate(doc)  # every $ref resolves (nested request models hoisted into components)
    infer = doc["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]
    assert set(infer) == {"application/json", "application/octet-stream"}
    assert {"RequestInput", "RequestOutput", "InferenceRequest"} <= set(doc["components"]["schemas"])
    assert {"/v2/health/live", "/v2/health/ready", "/v2", "/v2/models/{name}/versions/{version}/infer"} <= set(doc["paths"])


def test_infer_json_and_binary_give_the_bytes_of_the_mqtt_path(world, tmp_path):
    *_, agent, api, mqtt, _ = world
    _install(world, _split(tmp_path), "mlp_digits", "1")
    name, x = _input(agent)
    (out_name,) = [t.name for t in agent.active.manifest.outputs]
    local = agent.infer({name: x})[out_name]
    version, remote = InferClient.infer(mqtt, "http-dev", {name: x})
    assert version == "1" and remote[out_name].tobytes() == local.tobytes()
    # the whole model on the interpreter's built-in kernels: the same bytes again (the split is exact)
    from edge_maas.backends.litert import LiteRTBackend

    b = LiteRTBackend(zoo_bytes("mlp_digits"), xnnpack=False)
    assert b.run({b.inputs[0].name: x})[b.outputs[0].name].tobytes() == local.tobytes()
    b.close()

    # JSON tensors, flat row-major
    req = {"id": "r-1", "inputs": [{"name": name, "shape": list(x.shape), "datatype": "INT8", "data": x.ravel().tolist()}]}
    served = agent.served
    status, body = api.json("POST", "/v2/models/mlp_digits/infer", req)
    assert status == 200, body
    assert agent.served == served + 1  # the reported counters count HTTP requests too
    assert body["model_name"] == "mlp_digits" and body["model_version"] == "1" and body["id"] == "r-1"
    (o,) = body["outputs"]
    assert (o["name"], o["datatype"], o["shape"]) == (out_name, "INT8", list(local.shape))
    assert np.array_equal(np.array(o["data"], np.int8).reshape(o["shape"]), local)
    # nested data, on the version's own path
    req["inputs"][0]["data"] = x.tolist()
    assert api.json("POST", "/v2/models/mlp_digits/versions/1/infer", req)[1]["outputs"] == body["outputs"]

    # the binary tensor data extension both ways: the reply's bytes are the MQTT path's
    data, headers = _binary_request({name: x})
    status, rh, raw = api("POST", "/v2/models/mlp_digits/infer", data, headers)
    assert status == 200, raw
    doc, outs = _binary_outputs(rh, raw)
    assert doc["outputs"][0]["shape"] == list(local.shape) and "data" not in doc["outputs"][0]
    assert outs[out_name] == local.tobytes() == remote[out_name].tobytes()
    # one output asked as binary by name (no request-wide parameter): binary; JSON input, binary output mixed
    req = {"inputs": [{"name": name, "shape": list(x.shape), "datatype": "INT8", "data": x.ravel().tolist()}],
           "outputs": [{"name": out_name, "parameters": {"binary_data": True}}]}  # fmt: skip
    status, rh, raw = api("POST", "/v2/models/mlp_digits/infer", req)
    assert status == 200 and _binary_outputs(rh, raw)[1][out_name] == local.tobytes()
    # binary everywhere but this output: JSON for it, and no binary part (no header)
    data, headers = _binary_request({name: x}, outputs=[{"name": out_name, "parameters": {"binary_data": False}}])
    status, rh, raw = api("POST", "/v2/models/mlp_digits/infer", data, headers)
    assert status == 200 and HEADER not in rh and json.loads(raw)["outputs"][0]["data"] == local.ravel().tolist()


def test_errors_use_the_protocol_error_body(world, tmp_path):
    *_, agent, api, _, _ = world
    _install(world, _split(tmp_path), "mlp_digits", "1")
    name, x = _input(agent)
    good = {"name": name, "shape": list(x.shape), "datatype": "INT8", "data": x.ravel().tolist()}

    def refused(status, needle, body, path="/v2/models/mlp_digits/infer", headers=None):
        got, _, raw = api("POST", path, body, headers)
        doc = json.loads(raw)
        assert got == status and set(doc) == {"error"} and needle in doc["error"], (got, doc)

    refused(404, "unknown model 'nope'", {"inputs": [good]}, "/v2/models/nope/infer")
    refused(404, "no version '2'", {"inputs": [good]}, "/v2/models/mlp_digits/versions/2/infer")
    refused(400, "has shape [1, 8, 8]", {"inputs": [{**good, "shape": [1, 8, 8]}]})
    refused(400, "has datatype FP32; model mlp_digits takes INT8", {"inputs": [{**good, "datatype": "FP32"}]})
    refused(400, "malformed JSON", b'{"inputs": [')
    refused(400, "invalid inference request: inputs", {"inputs": []})
    refused(400, "no input 'other'", {"inputs": [{**good, "name": "other"}]})
    refused(400, "needs 64 numbers", {"inputs": [{**good, "data": good["data"][:-1]}]})
    refused(400, "-128..127", {"inputs": [{**good, "data": [300] + good["data"][1:]}]})
    refused(400, "must be integers", {"inputs": [{**good, "data": [0.5] + good["data"][1:]}]})
    refused(400, "no output 'nope'", {"inputs": [good], "outputs": [{"name": "nope"}]})
    data, headers = _binary_request({name: x})
    refused(400, "needs 64 bytes of binary data", data[:-1], headers=headers)
    refused(400, "1 bytes of binary data beyond", data + b"\0", headers=headers)
    refused(400, f"{HEADER} is", data, headers={HEADER: str(len(data) + 1)})
    # bodies over the bound: 413 whether announced or not, and the server still answers afterwards
    refused(413, f"the limit is {MAX_BODY}", b"x" * (MAX_BODY + 1))
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
    conn.putrequest("POST", "/v2/models/mlp_digits/infer")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    chunk = b"y" * (64 << 10)
    try:
        for _ in range(MAX_BODY // len(chunk) + 2):
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):  # the server may answer and close before reading it all
        pass
    r = conn.getresponse()
    assert r.status == 413 and "over the limit" in json.loads(r.read())["error"]
    conn.close()
    status, _, raw = api("GET", "/v2/nothing/here")
    assert status == 404 and set(json.loads(raw)) == {"error"}
    assert api.json("POST", "/v2/models/mlp_digits/infer", {"inputs": [good]})[0] == 200


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    d = tmp_path_factory.mktemp("svc") / "v1"
    heads = {"cls_a": MLP, "cls_b": new_head(MLP, 1)}
    compose_service([Source(t, data) for t, data in heads.items()], d, "digits", version="1")
    return d, heads


def test_a_two_task_service_as_one_model_and_a_model_per_task(world, service):
    *_, agent, api, mqtt, _ = world
    d, heads = service
    _install(world, d, "digits", "1")
    name, x = _input(agent)
    want = {t: whole(data, x) for t, data in heads.items()}
    m = api.json("GET", "/v2/models/digits")[1]
    assert [o["name"] for o in m["outputs"]] == ["cls_a/out_0", "cls_b/out_0"]  # TASK/TENSOR, as over MQTT
    assert m["inputs"] == [{"name": name, "datatype": "INT8", "shape": list(x.shape)}]
    one = api.json("GET", "/v2/models/digits.cls_b")[1]
    assert one["name"] == "digits.cls_b" and [o["name"] for o in one["outputs"]] == ["cls_b/out_0"]

    local = agent.infer({name: x}, ("cls_a", "cls_b"))
    _, remote = mqtt.infer("http-dev", {name: x}, tasks=("cls_a", "cls_b"))
    data, headers = _binary_request({name: x})
    status, rh, raw = api("POST", "/v2/models/digits/infer", data, headers)
    assert status == 200, raw
    _, outs = _binary_outputs(rh, raw)
    for t in heads:
        key = f"{t}/out_0"
        assert outs[key] == local[key].tobytes() == remote[key].tobytes() == want[t].tobytes()

    # selecting cls_b's output runs the backbone and cls_b's head only
    runs = dict(agent.active.service.runs)
    data, headers = _binary_request({name: x}, outputs=[{"name": "cls_b/out_0"}])
    status, rh, raw = api("POST", "/v2/models/digits/infer", data, headers)
    assert status == 200 and list(_binary_outputs(rh, raw)[1]) == ["cls_b/out_0"]
    after = agent.active.service.runs
    assert (after["backbone"] - runs["backbone"], after["head_cls_b"] - runs["head_cls_b"],
            after["head_cls_a"] - runs["head_cls_a"]) == (1, 1, 0)  # fmt: skip

    # one task as its own model, JSON both ways
    req = {"inputs": [{"name": name, "shape": list(x.shape), "datatype": "INT8", "data": x.ravel().tolist()}]}
    status, body = api.json("POST", "/v2/models/digits.cls_a/infer", req)
    assert status == 200 and body["model_name"] == "digits.cls_a"
    (o,) = body["outputs"]
    assert o["name"] == "cls_a/out_0" and np.array_equal(np.array(o["data"], np.int8).reshape(o["shape"]), want["cls_a"])
    assert api.json("GET", "/v2/models/digits.nope")[0] == 404


def test_tritonclient_http_talks_to_it(world, tmp_path):
    httpclient = pytest.importorskip("tritonclient.http")  # in the test extra: skipped only where it is not
    *_, agent, _, _, server = world
    tc = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    try:
        assert tc.is_server_live() and not tc.is_server_ready()
        _install(world, _split(tmp_path), "mlp_digits", "1")
        assert tc.is_server_ready() and tc.is_model_ready("mlp_digits") and tc.is_model_ready("mlp_digits", "1")
        meta = tc.get_model_metadata("mlp_digits")
        assert meta["versions"] == ["1"] and meta["inputs"][0]["datatype"] == "INT8"
        assert "binary_tensor_data" in tc.get_server_metadata()["extensions"]
        name, x = _input(agent)
        (out_name,) = [t.name for t in agent.active.manifest.outputs]
        local = agent.infer({name: x})[out_name]
        for binary in (True, False):
            inp = httpclient.InferInput(name, list(x.shape), "INT8")
            inp.set_data_from_numpy(x, binary_data=binary)
            res = tc.infer("mlp_digits", [inp], outputs=[httpclient.InferRequestedOutput(out_name, binary_data=binary)])
            got = res.as_numpy(out_name)
            assert got.dtype == np.int8 and got.tobytes() == local.tobytes(), binary
        inp = httpclient.InferInput(name, [1, 8], "INT8")
        inp.set_data_from_numpy(np.zeros((1, 8), np.int8))
        with pytest.raises(Exception, match="has shape"):  # the server's error message reaches the client
            tc.infer("mlp_digits", [inp])
    finally:
        tc.close()


def test_device_daemon_http_flag(mosquitto, tmp_path):
    key = tmp_path / "registry.key"
    signing.new_key(key)
    profile = tmp_path / "dev.toml"
    profile.write_text(
        f'device_id = "cli-http"\ncache_dir = "{tmp_path / "cache"}"\nregistry_key = "{key.with_suffix(".pub")}"\n'
        f'[runtime]\nbackend = "native"\nbackends_allowed = ["native"]\n[mqtt]\nbroker = "{mosquitto.url}"\n'
    )
    base = [sys.executable, "-m", "edge_maas.cli", "device", "--config", str(profile)]
    p = subprocess.Popen([*base, "--http", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    try:
        assert "following" in p.stdout.readline()
        line = p.stdout.readline()
        assert "serving the Open Inference Protocol on http://127.0.0.1:" in line, line
        port = int(line.rsplit(":", 1)[1].split("/")[0])
        api = Http(port)
        assert api.json("GET", "/v2/health/live") == (200, {"live": True})
        assert api.json("GET", "/v2/health/ready")[0] == 503  # nothing deployed
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0
    finally:
        if p.poll() is None:
            p.kill()
    with pytest.raises(OSError):  # the port is closed with the daemon
        socket.create_connection(("127.0.0.1", port), timeout=2)

    taken = socket.create_server(("127.0.0.1", 0))
    try:
        res = subprocess.run([*base, "--http", str(taken.getsockname()[1])], check=False, capture_output=True,
                             text=True, timeout=60)  # fmt: skip
        assert_clean_error(res, "cannot serve HTTP on 127.0.0.1:")
    finally:
        taken.close()
    res = subprocess.run([*base, "--http", "127.0.0.1:http"], check=False, capture_output=True, text=True, timeout=60)
    assert_clean_error(res, "--http 127.0.0.1:http: expected [HOST:]PORT")
    # the extra missing: one line saying what to install (fastapi made unimportable in that process only)
    code = ("import sys; sys.modules['fastapi'] = None; from edge_maas.cli import main; "
            f"sys.exit(main({['device', '--config', str(profile), '--http', '0']!r}))")  # fmt: skip
    res = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert_clean_error(res, "needs fastapi", "pip install 'edge-maas[http]'")

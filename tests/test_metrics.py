"""Prometheus metrics of the device, the registry and the worker (docs/metrics.md), scraped over real HTTP while a
real Mosquitto carries a deploy and a load of inferences (MQTT and the device's HTTP API, some offloaded to a worker):
the counters move by exactly what happened, the bytes fetched equal the blobs' sizes, the install is counted, the
reported state carries the install's progress, and the device serves on 127.0.0.1 only.  The daemons' CLI flags
(--metrics-port, --log-format json) are checked on real subprocesses, the publish progress bar too."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import publish_split
from prometheus_client.parser import text_string_to_metric_families
from test_cli import EXE
from test_registry_device import Reports, _split_v1, _variant
from test_worker_metrics import wait_for

from edge_maas.config import OffloadSettings
from edge_maas.device.agent import DeviceAgent
from edge_maas.errors import TransportError
from edge_maas.manifest import Manifest
from edge_maas.registry import signing
from edge_maas.registry.blobs import BlobStore
from edge_maas.registry.fleet import FleetWatch
from edge_maas.registry.metrics import RegistryMetrics
from edge_maas.registry.service import Registry
from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient
from edge_maas.transport.infer_client import InferClient
from edge_maas.worker.worker import Worker

Samples = dict[tuple[str, frozenset], float]


def scrape(port: int, host: str = "127.0.0.1") -> Samples:
    """GET /metrics with a real HTTP client: {(sample name, frozenset of its labels): value}."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}  # fmt: skip


def val(m: Samples, name: str, **labels) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 when none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in m.items() if n == name and want <= ls)


DOCS = Path(__file__).parent.parent / "docs"


def _families(port: int) -> set[str]:
    """The metric names a /metrics endpoint exports, as docs/metrics.md writes them (counters with _total)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        fams = text_string_to_metric_families(r.read().decode())
        # (the text format shows each counter's and histogram's _created timestamp as a gauge of its own)
        return {f.name + "_total" if f.type == "counter" else f.name for f in fams if not f.name.endswith("_created")}


def _documented() -> set[str]:
    return set(re.findall(r"^\| `(edge_maas_\w+)`", (DOCS / "metrics.md").read_text(), re.MULTILINE))


def _dashboard_names() -> set[str]:
    text = json.dumps(json.loads((DOCS / "grafana" / "edge_maas.json").read_text()))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in re.findall(r"edge_maas_\w+", text)} - {"edge_maas"}


def _http_infer(port: int, name: str, x: np.ndarray) -> int:
    req = {"inputs": [{"name": name, "shape": list(x.shape), "datatype": "INT8", "data": x.ravel().tolist()}]}
    r = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/branchy/infer", json.dumps(req).encode(),
                               {"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(r, timeout=30) as resp:
        return resp.status


def test_counters_move_as_expected_under_load(mosquitto, tmp_path):
    pytest.importorskip("fastapi")
    from edge_maas.device.http_api import HttpServer

    # registry: branchy_cnn in 3 shards, serving with metrics (and a FleetWatch for devices known/online)
    reg, rec, pub = publish_split(tmp_path)
    manifest = Manifest.load(tmp_path / "split" / "manifest.json")
    rc = MqttClient(mosquitto.url, "registry").start()
    rm = RegistryMetrics(reg, reg.serve(rc), FleetWatch(rc))
    rport = rm.serve(0)
    # a worker with metrics, and a device that offloads to it, with metrics (on 127.0.0.1 by default)
    wc = MqttClient(mosquitto.url, "w-m").start()
    w = Worker("w-m", wc, BlobStore(tmp_path / "w"), signing.load_public(pub), metrics_port=0)
    dc = MqttClient(mosquitto.url, "dev-m").start()
    agent = DeviceAgent("dev-m", dc, BlobStore(tmp_path / "dev"), signing.load_public(pub), backend="native",
                        backend_options={"threads": 1}, chunk_size=2048, metrics_port=0, cache_budget=64 << 20,
                        offload=OffloadSettings(enabled=True, deadline_ms=5000, probe_every_s=3600))  # fmt: skip
    dport = agent.metrics.port
    assert agent.metrics._server._server.server_address[0] == "127.0.0.1"  # localhost only by default
    reports = Reports(mosquitto.url)
    seen_updates = []
    monitor = MqttClient(mosquitto.url, "monitor-m").start()
    monitor.subscribe(topics.reported("dev-m"), lambda t, p: seen_updates.append(json.loads(p)["update"]))
    http = HttpServer("127.0.0.1", 0, max_body=1 << 20).start(agent)
    asker = InferClient(MqttClient(mosquitto.url, "asker").start())
    try:
        m = scrape(dport)  # every series is there from the start, at 0
        assert val(m, "edge_maas_device_requests_total") == 0
        assert val(m, "edge_maas_device_installs_total", result="installed") == 0
        assert val(m, "edge_maas_device_fetched_bytes_total") == 0 and val(m, "edge_maas_device_install_progress") == 1
        assert not any(n == "edge_maas_device_model_info" for n, _ in m)
        assert val(scrape(rport), "edge_maas_registry_bytes_sent_total") == 0

        reg.deploy(rc, "branchy", "1", ["dev-m"])
        reports.wait(lambda s: s.get("dev-m") and s["dev-m"].version == "1")
        m = scrape(dport)
        blobs = rec.manifest_size + sum(s.size for s in manifest.shards)
        assert val(m, "edge_maas_device_fetched_bytes_total") == blobs  # the manifest and the 3 shards, once
        assert val(m, "edge_maas_device_fetched_blobs_total") == 4
        assert val(m, "edge_maas_device_install_attempts_total") == 1
        assert val(m, "edge_maas_device_installs_total", result="installed") == 1
        assert val(m, "edge_maas_device_installs_total") == 1  # no other result
        assert val(m, "edge_maas_device_install_progress") == 1
        assert val(m, "edge_maas_device_model_info", model="branchy", version="1") == 1
        assert val(m, "edge_maas_device_cache_bytes") == agent.cache.total_bytes() == blobs
        r = scrape(rport)
        assert val(r, "edge_maas_registry_bytes_sent_total") == blobs  # nobody else fetched yet
        assert val(r, "edge_maas_registry_chunks_sent_total") >= blobs // 2048
        assert val(r, "edge_maas_registry_releases", model="branchy") == 1
        assert val(r, "edge_maas_registry_desired_states") == 1
        wait_for(lambda: val(scrape(rport), "edge_maas_registry_devices", status="online") == 1, what="dev-m online")
        # the install's fetch progress was reported (bounded rate), rising to 1
        progress = [u["progress"] for u in seen_updates if u and u["state"] == "installing" and u["progress"]]
        assert progress and progress[-1] == 1.0 and progress == sorted(progress), seen_updates

        # load: N over MQTT and N through the HTTP API, scraped all along
        n = 6
        name = agent.active.pipeline.inputs[0].name
        xs = [np.random.default_rng(i).integers(-128, 128, s.shape, dtype=np.int8)
              for i, s in enumerate([agent.active.pipeline.inputs[0]] * 2 * n)]  # fmt: skip
        errors: list = []

        def load():
            try:
                for x in xs[:n]:
                    assert asker.infer("dev-m", {name: x})[0] == "1"
                for x in xs[n:]:
                    assert _http_infer(http.port, name, x) == 200
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        t = threading.Thread(target=load)
        t.start()
        during = []
        while t.is_alive():
            during.append(val(scrape(dport), "edge_maas_device_requests_total"))
            scrape(w.metrics_port), scrape(rport)  # all three answer under load
        t.join()
        assert not errors, errors
        assert during == sorted(during) and during[-1] <= 2 * n  # a counter only rises
        m = scrape(dport)
        assert val(m, "edge_maas_device_requests_total", task="branchy", outcome="ok") == 2 * n
        assert val(m, "edge_maas_device_requests_total", outcome="error") == 0
        assert val(m, "edge_maas_device_request_seconds_count", task="branchy") == 2 * n
        decisions = {d: val(m, "edge_maas_device_offload_decisions_total", decision=d)
                     for d in ("local", "remote", "fallback")}  # fmt: skip
        assert sum(decisions.values()) == 2 * n and decisions["remote"] >= 1, decisions  # the first one probes
        split = agent.active.offloader.state()
        assert val(m, "edge_maas_device_offload_split", stages="3") == split.split
        # each local stage is timed once per request that ran it here (a probe may send all 3 stages); the offloaded
        # suffix is one remote stage (FIRST-2) per remote answer
        local = [val(m, "edge_maas_device_stage_seconds_count", stage=str(k), where="local") for k in range(3)]
        assert 0 < local[0] <= 2 * n and all(c <= 2 * n for c in local), local
        assert 3 * (decisions["local"] + decisions["fallback"]) <= sum(local) <= 3 * 2 * n, (local, decisions)
        assert val(m, "edge_maas_device_stage_seconds_count", where="remote") == decisions["remote"]
        wm = scrape(w.metrics_port)
        assert val(wm, "edge_maas_worker_requests_served_total") == decisions["remote"]
        assert val(wm, "edge_maas_worker_batch_size_sum") == decisions["remote"]
        assert 1 <= val(wm, "edge_maas_worker_batch_size_count") <= decisions["remote"]
        r = scrape(rport)  # what the worker fetched for its first request was sent too
        assert val(r, "edge_maas_registry_bytes_sent_total") == blobs + w.installer.fetcher.fetched_bytes

        # a request for a task the model lacks: an error, under task="unknown" (no label per made-up name)
        with pytest.raises(Exception, match="its only task is"):
            agent.infer({name: xs[0]}, ["no-such-task"])
        m = scrape(dport)
        assert val(m, "edge_maas_device_requests_total", task="unknown", outcome="error") == 1
        assert val(m, "edge_maas_device_errors_total", kind="request") == 1
        assert val(m, "edge_maas_device_requests_total") == 2 * n + 1
        # docs/metrics.md documents exactly what the three export; the Grafana dashboard uses only documented names
        exported = _families(dport) | _families(w.metrics_port) | _families(rport)
        assert exported == _documented()
        assert _dashboard_names() <= _documented()
    finally:
        http.stop()
        agent.close()
        w.close()
        rm.close()
        for c in (dc, wc, rc, asker.client, reports.client, monitor):
            c.stop()
    with pytest.raises(OSError):  # close() stops the device's HTTP server
        scrape(dport)


def test_install_results_count_a_failed_health_check(mosquitto, tmp_path):
    pub = signing.new_key(tmp_path / "k")
    reg = Registry(tmp_path / "reg", tmp_path / "k")
    v1 = _split_v1(tmp_path)
    bad = _variant(v1, tmp_path / "v2", "2", patch_last_shard=False, break_golden=True)
    reg.publish(v1)
    reg.publish(bad)
    rc = MqttClient(mosquitto.url, "registry").start()
    reg.serve(rc)
    dc = MqttClient(mosquitto.url, "dev-h").start()
    agent = DeviceAgent("dev-h", dc, BlobStore(tmp_path / "dev"), signing.load_public(pub), metrics_port=0)
    try:
        reg.deploy(rc, "mlp_digits", "1", ["dev-h"])
        wait_for(lambda: agent.active is not None, what="v1")
        reg.deploy(rc, "mlp_digits", "2", ["dev-h"])
        m = wait_for(lambda: (s := scrape(agent.metrics.port)) and
                     val(s, "edge_maas_device_installs_total", result="health_check_failed") == 1 and s,
                     what="a failed health check counted")  # fmt: skip
        assert val(m, "edge_maas_device_install_attempts_total") == 2
        assert val(m, "edge_maas_device_installs_total", result="installed") == 1
        assert val(m, "edge_maas_device_installs_total", result="failed") == 0
        assert val(m, "edge_maas_device_model_info", version="1") == 1  # kept v1
        assert val(m, "edge_maas_device_model_info", version="2") == 0
        assert val(m, "edge_maas_device_errors_total", kind="update") == 1
    finally:
        agent.close()
        for c in (dc, rc):
            c.stop()


def test_device_metrics_bind_localhost_and_a_taken_port_is_a_clean_error(mosquitto, tmp_path):
    pub = signing.new_key(tmp_path / "k")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    c = MqttClient(mosquitto.url, "dev-p").start()
    with pytest.raises(TransportError, match=f"cannot serve device metrics on 127.0.0.1:{port}"):
        DeviceAgent("dev-p", c, BlobStore(tmp_path / "a"), signing.load_public(pub), metrics_port=port)
    taken.close()
    agent = DeviceAgent("dev-q", c, BlobStore(tmp_path / "b"), signing.load_public(pub), metrics_port=0)
    try:
        scrape(agent.metrics.port)
        others = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)} - {"127.0.0.1"}
        for ip in others - {ip for ip in others if ip.startswith("127.")}:  # not reachable on another address
            with pytest.raises(OSError):
                socket.create_connection((ip, agent.metrics.port), timeout=2).close()
    finally:
        agent.close()
        c.stop()


def _json_lines(text: str) -> list[dict]:
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # each line one JSON object
    for rec in lines:
        assert {"time", "level", "logger", "message"} <= rec.keys(), rec
    return lines


def test_daemons_serve_metrics_and_log_json_from_the_cli(mosquitto, tmp_path):
    key = tmp_path / "k"
    signing.new_key(key)
    v1 = _split_v1(tmp_path)
    # a transfer's progress bar (forced on: stderr is a pipe here)
    pub = subprocess.run([EXE, "registry", "publish", "--root", str(tmp_path / "reg"), "--key", str(key), str(v1)],
                         capture_output=True, text=True, check=False, env={**os.environ, "EDGE_MAAS_PROGRESS": "1"}, timeout=60)  # fmt: skip
    assert pub.returncode == 0, pub.stderr
    assert "storing blobs: 100%" in pub.stderr and "B/" in pub.stderr, pub.stderr
    profile = tmp_path / "dev.toml"
    profile.write_text(
        f'device_id = "dev-cli"\ncache_dir = "{tmp_path / "cache"}"\nregistry_key = "{key.with_suffix(".pub")}"\n'
        f'[runtime]\nbackend = "native"\nbackends_allowed = ["native"]\n[mqtt]\nbroker = "{mosquitto.url}"\n'
    )
    cmds = {
        "registry": [EXE, "-v", "registry", "serve", "--root", str(tmp_path / "reg"), "--key", str(key), "--broker",
                     mosquitto.url, "--metrics-port", "0", "--log-format", "json"],
        "device": [EXE, "-v", "device", "--config", str(profile), "--metrics-port", "0", "--log-format", "json"],
    }  # fmt: skip
    procs = {k: subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k, c in cmds.items()}
    try:
        ports = {}
        for k, p in procs.items():
            line = p.stdout.readline()
            assert "metrics on " in line, (k, line, p.stderr.read() if p.poll() is not None else "")
            ports[k] = int(line.split("metrics on ")[1].split(":")[-1].split("/")[0])
            assert k != "device" or "metrics on 127.0.0.1:" in line, line
        c = MqttClient(mosquitto.url, "deployer").start()
        reg = Registry(tmp_path / "reg", key)
        reg.deploy(c, "mlp_digits", "1", ["dev-cli"])
        c.stop()
        m = wait_for(lambda: (s := scrape(ports["device"])) and
                     val(s, "edge_maas_device_installs_total", result="installed") == 1 and s, what="installed")  # fmt: skip
        assert val(m, "edge_maas_device_model_info", model="mlp_digits", version="1") == 1
        r = scrape(ports["registry"])
        assert val(r, "edge_maas_registry_bytes_sent_total") == val(m, "edge_maas_device_fetched_bytes_total") > 0
    finally:
        for p in procs.values():
            p.terminate()
        outs = {k: p.communicate(timeout=15) for k, p in procs.items()}
    for k, p in procs.items():
        assert p.returncode == 0, (k, outs[k][1][-2000:])
        logs = _json_lines(outs[k][1])
        assert any(rec["level"] == "INFO" for rec in logs), k
    assert any("now running mlp_digits@1" in rec["message"] for rec in _json_lines(outs["device"][1]))

"""Scale-out (docs/scale-out.md): a pool of workers behind one shared subscription on a real Mosquitto answers every
request exactly once, spread over the pool; the Kubernetes manifests in deploy/k8s validate offline against the
Kubernetes JSON schemas (kubernetes-validate, strict: unknown fields refused) and KEDA's ScaledObject against the
subset schema in deploy/k8s/schemas, and agree with the code (profile, CLI flags, metric names, ports)."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections import Counter
from pathlib import Path

import jsonschema
import kubernetes_validate
import numpy as np
import pytest
import yaml
from test_worker_metrics import published, request  # noqa: F401 - a fixture and a helper

from edge_maas.cli import _parser
from edge_maas.config import WorkerProfile, load_worker_profile
from edge_maas.registry import signing
from edge_maas.registry.blobs import BlobStore
from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient
from edge_maas.transport.messages import OffloadReply, decode, unpack_tensors
from edge_maas.worker.metrics import WorkerMetrics
from edge_maas.worker.worker import Worker

K8S = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
KEDA_SCHEMA = json.loads((K8S / "schemas" / "keda-scaledobject-v1alpha1.json").read_text())
K8S_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())  # the oldest supported upstream .. newest known


def test_a_worker_pool_on_one_shared_subscription_answers_each_request_once(mosquitto, published):  # noqa: F811
    reg, rec, local, pub = published
    rc = MqttClient(mosquitto.url, "registry").start()
    reg.serve(rc)
    pool = []
    for name in ("pool-a", "pool-b", "pool-c"):
        c = MqttClient(mosquitto.url, name).start()
        # default batching: a burst batches on each worker, and every reply must still equal the local run
        pool.append(Worker(name, c, BlobStore(reg.root.parent / name), signing.load_public(pub), group="pool"))
    prober = MqttClient(mosquitto.url, "prober").start()
    replies: list[tuple[OffloadReply, bytes]] = []
    lock = threading.Lock()

    def on_reply(topic, payload):
        with lock:
            replies.append(decode(payload, OffloadReply))

    prober.subscribe(topics.offload_reply("prober"), on_reply)
    n = 30
    wants = {}
    for i in range(n):  # a burst, as from many devices at once
        payload, wants[f"r{i}"] = request(rec, local, f"r{i}", topics.offload_reply("prober"), seed=i)
        prober.publish(topics.offload("branchy"), payload)
    deadline = time.monotonic() + 30
    while len(replies) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)  # a second answer to any request would arrive by now
    ids = Counter(r.id for r, _ in replies)
    assert ids == Counter({i: 1 for i in wants}), ids  # every request answered, none twice
    for r, body in replies:
        assert r.error is None, r.error
        got = unpack_tensors(r.outputs, body)
        assert all(np.array_equal(got[k], v) for k, v in wants[r.id].items()), r.id
    by_worker = Counter(r.worker for r, _ in replies)
    assert set(by_worker) == {"pool-a", "pool-b", "pool-c"}, by_worker  # the broker spread them over the pool
    assert sum(w.served for w in pool) == n and [w.served for w in pool] == [by_worker[w.name] for w in pool]
    for w in pool:
        w.close()
        w.client.stop()
    prober.stop()
    rc.stop()


# -- deploy/k8s ------------------------------------------------------------------------------------------------------
def _docs() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        out += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return out


def _validate(doc: dict, version: str) -> None:
    """Raises (jsonschema or kubernetes-validate ValidationError) when ``doc`` does not fit its kind's schema."""
    if doc["apiVersion"].startswith("keda.sh/"):
        jsonschema.Draft202012Validator(KEDA_SCHEMA).validate(doc)
    else:
        kubernetes_validate.validate(doc, version, strict=True)


def _find(kind: str, name: str | None = None) -> dict:
    found = [d for _, d in _docs() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_validates_offline(version):
    docs = _docs()
    kinds = Counter(d["kind"] for _, d in docs)
    assert {"Deployment", "HorizontalPodAutoscaler", "ScaledObject", "StatefulSet", "ConfigMap", "Service"} <= set(
        kinds
    )
    for name, doc in docs:
        try:
            _validate(doc, version)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as exc:
            pytest.fail(
                f"{name}: {doc['kind']}/{doc['metadata']['name']}: {'.'.join(map(str, exc.path))}: {exc.message}"
            )
        except kubernetes_validate.SchemaNotFoundError as exc:  # an unknown kind must not pass unchecked
            pytest.fail(f"{name}: {exc.message}")


@pytest.mark.parametrize("kind, path, value", [
    ("HorizontalPodAutoscaler", ("spec", "metrics", 0, "pods", "target", "averageValu"), "4"),  # typo: unknown field
    ("HorizontalPodAutoscaler", ("spec", "maxReplicas"), "20"),  # a string where an integer goes
    ("Deployment", ("spec", "template", "spec", "containers", 0, "ports", 0, "containerPort"), "metrics"),
    ("StatefulSet", ("spec", "template", "spec", "containers", 0, "volumeMount"), []),
    ("ScaledObject", ("spec", "triggers", 0, "metadata", "threshold"), None),  # a prometheus trigger needs one
    ("ScaledObject", ("spec", "triggers", 0, "metadata", "threshold"), "four"),
    ("ScaledObject", ("spec", "minReplicas"), 2),  # KEDA spells it minReplicaCount
])  # fmt: skip
def test_the_validators_refuse_broken_manifests(kind, path, value):
    """Each check above bites: the same manifests with one mistake fail."""
    doc = copy.deepcopy(_find(kind))
    node = doc
    for p in path[:-1]:
        node = node[p]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    with pytest.raises((jsonschema.ValidationError, kubernetes_validate.ValidationError)):
        _validate(doc, K8S_VERSIONS[-1])


def test_manifests_agree_with_the_code(tmp_path):
    """The worker profile in the ConfigMap is a valid WorkerProfile; the containers' arguments parse with the real CLI;
    the metrics port is the one Prometheus is told to scrape; the autoscalers name a metric the workers export."""
    cm = _find("ConfigMap", "edge-maas-worker")
    (tmp_path / "worker.toml").write_text(cm["data"]["worker.toml"])
    profile = load_worker_profile(tmp_path / "worker.toml", {"name": "edge-maas-worker-5d8f9-x2x7q"})
    assert isinstance(profile, WorkerProfile) and profile.group == "workers" and profile.metrics_port == 9464

    dep = _find("Deployment", "edge-maas-worker")
    pod = dep["spec"]["template"]
    (c,) = pod["spec"]["containers"]
    args = _parser().parse_args([a.replace("$(POD_NAME)", "pod-1") for a in c["args"]])
    assert (args.command, args.name, str(args.config)) == ("worker", "pod-1", "/etc/edge_maas/worker.toml")
    assert any(e["name"] == "POD_NAME" for e in c["env"])  # $(POD_NAME) resolves: one MQTT client id per pod
    assert (
        c["ports"][0]["containerPort"]
        == profile.metrics_port
        == int(pod["metadata"]["annotations"]["prometheus.io/port"])
    )
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {str(profile.cache_dir), str(profile.registry_key.parent), str(profile.mqtt.password_file.parent)} <= mounts

    sts = _find("StatefulSet", "edge-maas-registry")
    (r,) = sts["spec"]["template"]["spec"]["containers"]
    rargs = _parser().parse_args(r["args"])
    assert (rargs.command, rargs.registry_cmd) == ("registry", "serve") and rargs.blob_store.startswith("s3://")
    assert str(rargs.root) in {m["mountPath"] for m in r["volumeMounts"]}

    exported = {m.name for m in WorkerMetrics("w", lambda: 0).registry.collect()}
    hpa = _find("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] in exported
    keda = _find("ScaledObject")
    assert keda["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert "edge_maas_worker_queue_depth{" in keda["spec"]["triggers"][0]["metadata"]["query"]
    assert "edge_maas_worker_queue_depth" in exported
    rules = yaml.safe_load(_find("ConfigMap", "adapter-config")["data"]["config.yaml"])["rules"]
    assert rules[0]["name"]["as"] == hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]

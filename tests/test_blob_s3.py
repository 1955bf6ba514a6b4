"""The registry's blobs in an S3-compatible store (edge_maas/registry/blob_s3.py), against a real S3 server process on
loopback (moto_server): publish writes the content-addressed layout into the bucket and nothing to the registry's
disk, a device fetches every blob over MQTT from the registry serving from the bucket, an object changed in the
bucket is refused (and dropped, so a later publish repairs it), and the CLI records the store and fails cleanly."""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import MODELS
from test_bad_input import assert_clean_error, cli
from test_cli import run

from edge_maas.device.agent import DeviceAgent
from edge_maas.errors import TransportError
from edge_maas.manifest import Manifest
from edge_maas.registry import signing
from edge_maas.registry.blob_s3 import S3BlobStore
from edge_maas.registry.blobs import BlobStore
from edge_maas.registry.catalog import RegistryError
from edge_maas.registry.service import Registry
from edge_maas.transport.chunks import BlobFetcher
from edge_maas.transport.client import MqttClient

boto3 = pytest.importorskip("boto3")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3(monkeypatch):
    """A real moto_server on a free loopback port, a bucket "models"; boto3 finds it through the standard env vars
    (as a registry pod would find MinIO or AWS), so the CLI processes below use it too."""
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    assert exe, "moto_server is missing: pip install 'moto[server]' (the test extra)"
    port = _free_port()
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for k, v in {"AWS_ENDPOINT_URL_S3": url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "moto_server did not start"
            time.sleep(0.05)
    client = boto3.client("s3")
    client.create_bucket(Bucket="models")
    yield client
    proc.terminate()
    proc.wait(timeout=10)


def _objects(client, prefix="") -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket="models", Prefix=prefix).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket="models", Key=o["Key"])["Body"].read() for o in listed}


def test_publish_into_the_bucket_and_a_device_fetches_and_runs_it_over_mqtt(s3, mosquitto, tmp_path):
    pub = signing.new_key(tmp_path / "k")
    run("split", MODELS / "mlp_digits.tflite", "--shards", "2", "--out", tmp_path / "v1")
    reg = Registry(tmp_path / "reg", tmp_path / "k", blob_store="s3://models/edge/blobs")
    rec = reg.publish(tmp_path / "v1")
    stored = _objects(s3, "edge/blobs/")
    shards = Manifest.load(tmp_path / "v1" / "manifest.json").shards
    assert set(stored) == {f"edge/blobs/{s[:2]}/{s}" for s in [rec.manifest_sha256, *(x.sha256 for x in shards)]}
    assert all(hashlib.sha256(v).hexdigest() == k.rsplit("/", 1)[1] for k, v in stored.items())  # content-addressed
    assert not (tmp_path / "reg" / "blobs").exists()  # nothing on the registry's disk but its catalog
    assert reg.blobs.total_bytes() == sum(map(len, stored.values()))

    rc = MqttClient(mosquitto.url, "registry").start()
    reg.serve(rc)
    dc = MqttClient(mosquitto.url, "dev-s3").start()
    agent = DeviceAgent("dev-s3", dc, BlobStore(tmp_path / "dev"), signing.load_public(pub), chunk_size=1024)
    reg.deploy(rc, "mlp_digits", "1", ["dev-s3"])
    deadline = time.monotonic() + 30
    while agent.active is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert agent.active is not None and agent.active.version == "1"  # fetched, verified, health-checked, running
    assert agent.cache.get(rec.manifest_sha256) == stored[f"edge/blobs/{rec.manifest_sha256[:2]}/{rec.manifest_sha256}"]

    # a restarted registry (a new pod: empty memory, the store recorded in its root) serves from the bucket; an
    # object changed there is refused to a fetching device and dropped from the bucket
    rc.stop()
    reg = Registry(tmp_path / "reg", tmp_path / "k")
    assert isinstance(reg.blobs, S3BlobStore) and reg.blobs.url == "s3://models/edge/blobs"
    rc = MqttClient(mosquitto.url, "registry-2").start()
    reg.serve(rc)
    victim = shards[0].sha256
    s3.put_object(Bucket="models", Key=f"edge/blobs/{victim[:2]}/{victim}", Body=b"\x00" * shards[0].size)
    fetcher = BlobFetcher(MqttClient(mosquitto.url, "prober").start(), chunk_size=1024, chunk_timeout=2)
    with pytest.raises(TransportError, match="corrupt"):
        fetcher.fetch(victim, shards[0].size)
    assert not reg.blobs.has(victim)
    reg.publish(tmp_path / "v1")  # the same folder again: the missing blob is stored again (a new release)
    assert fetcher.fetch(victim, shards[0].size) == (tmp_path / "v1" / shards[0].file).read_bytes()
    agent.close()
    for c in (dc, rc, fetcher.client):
        c.stop()


def test_cli_records_the_store_and_reports_problems_in_one_line(s3, tmp_path):
    run("keys", "new", "--out", tmp_path / "k")
    run("split", MODELS / "mlp_digits.tflite", "--shards", "2", "--out", tmp_path / "v1")
    common = ["--root", tmp_path / "reg", "--key", tmp_path / "k"]
    assert "published mlp_digits@1" in run(
        "registry", "publish", tmp_path / "v1", *common, "--blob-store", "s3://models"
    )
    assert "mlp_digits@1" in run("registry", "list", *common)  # the recorded store: no flag needed again
    assert len(_objects(s3)) == 3
    assert_clean_error(cli("registry", "list", *common, "--blob-store", "s3://other"),
                       "keeps its blobs in s3://models, not s3://other")  # fmt: skip
    assert_clean_error(cli("registry", "publish", tmp_path / "v1", *common[2:], "--root", tmp_path / "r2",
                           "--blob-store", "s3://nope"),
                       "blob store s3://nope: cannot reach the bucket: no such bucket")  # fmt: skip
    assert_clean_error(cli("registry", "publish", tmp_path / "v1", *common[2:], "--root", tmp_path / "r3",
                           "--blob-store", "s3:/x"),
                       "expected s3://BUCKET or s3://BUCKET/PREFIX")  # fmt: skip
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()  # a refused store creates nothing
    disk = tmp_path / "disk"  # a registry with blobs on disk is not switched silently to an empty bucket
    run("registry", "publish", tmp_path / "v1", "--root", disk, "--key", tmp_path / "k")
    assert_clean_error(cli("registry", "list", "--root", disk, "--blob-store", "s3://models"),
                       "already keeps blobs in")  # fmt: skip


def test_an_unreachable_store_is_a_registry_error(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    for k, v in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    t0 = time.monotonic()
    with pytest.raises(RegistryError, match="cannot reach the bucket"):
        S3BlobStore("s3://models")
    assert time.monotonic() - t0 < 20  # bounded retries, no hang

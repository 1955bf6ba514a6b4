"""The device daemon killed with SIGKILL in the middle of installing a new version:
restarted, it serves the last good version from an intact cache, then completes the
install."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import time

from conftest import MODELS, ReportedLog
from test_cli import EXE, run

from edge_maas.registry.blobs import BlobStore
from edge_maas.registry.service import Registry
from edge_maas.registry.signing import new_key
from edge_maas.transport.chunks import BlobServer
from edge_maas.transport.client import MqttClient


def test_sigkill_mid_install_restarts_on_last_good_version(mosquitto, tmp_path):
    key = tmp_path / "registry.key"
    new_key(key)
    run("split", MODELS / "mlp_digits.tflite", "--shards", "2", "--out", tmp_path / "small")
    run("split", MODELS / "mobilenetv2_035_96.tflite", "--shards", "1", "--name", "big", "--out", tmp_path / "big")
    reg = Registry(tmp_path / "reg", key)
    reg.publish(tmp_path / "small")
    reg.publish(tmp_path / "big")
    requests = []

    def slow_get(sha):  # ~0.5 s per chunk window, so the kill lands mid-transfer
        requests.append(sha)
        time.sleep(0.5)
        return reg.blobs.get(sha)

    reg_client = MqttClient(mosquitto.url, "registry").start()
    BlobServer(reg_client, slow_get)
    log = ReportedLog(reg_client, "kill-dev")
    states, cv = log.states, log.cv
    cache = tmp_path / "cache"
    profile = tmp_path / "dev.toml"
    profile.write_text(f'device_id = "kill-dev"\ncache_dir = "{cache}"\nregistry_key = "{key.with_suffix(".pub")}"\n'
                       f'[runtime]\nxnnpack = false\n[mqtt]\nbroker = "{mosquitto.url}"\n')  # fmt: skip

    def daemon():
        p = subprocess.Popen([EXE, "device", "--config", str(profile)], stdout=subprocess.PIPE)
        assert p.stdout.readline()
        return p

    def wait_for(pred, timeout=60):
        with cv:
            assert cv.wait_for(lambda: any(pred(s) for s in states), timeout), states

    dev = daemon()
    reg.deploy(reg_client, "mlp_digits", "1", ["kill-dev"])
    wait_for(lambda s: s.version == "1")
    n_before = len(requests)
    reg.deploy(reg_client, "big", "1", ["kill-dev"])
    deadline = time.monotonic() + 30
    while len(requests) < n_before + 2 and time.monotonic() < deadline:  # manifest + first shard window asked
        time.sleep(0.05)
    dev.send_signal(signal.SIGKILL)
    dev.wait(timeout=10)
    assert not any(s.model == "big" for s in states), "the kill came too late"

    with cv:
        states.clear()
    dev = daemon()
    try:
        # back on the last good version at once (from its cache), then the install completes
        wait_for(lambda s: s.status == "online" and s.model == "mlp_digits" and s.version == "1", timeout=30)
        wait_for(lambda s: s.model == "big" and s.healthy, timeout=60)
    finally:
        dev.terminate()
        dev.wait(timeout=10)
        reg_client.stop()
    store = BlobStore(cache)
    for blob in cache.glob("??/*"):
        assert store.get(blob.name) is not None  # every cached blob still matches its name
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name

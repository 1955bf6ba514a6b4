"""Broker limits and client identity, on a real Mosquitto with the limits in its generated config:
a maximum packet size below the chunk size never makes the registry flap and transfers still
complete in smaller chunks; oversized requests fail at once with the limit named; a second
daemon with a device's id is refused while the first keeps serving; tools have unique ids;
reconnect backoff grows on a takeover loop."""

from __future__ import annotations

import hashlib
import re
import subprocess
import threading
import time

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from test_cli import EXE, run

from edge_maas.errors import TransportError
from edge_maas.transport.chunks import BlobFetcher, BlobServer
from edge_maas.transport.client import MqttClient, PacketTooLargeError
from edge_maas.transport.infer_client import InferClient
from edge_maas.transport.local_broker import Mosquitto

LIMIT = 16384
V5, V311 = mqtt.MQTTv5, mqtt.MQTTv311


@pytest.fixture
def limited(tmp_path):
    """Mosquitto with max_packet_size 16384 (a client that sends more is disconnected)."""
    broker = Mosquitto(tmp_path, extra=(f"max_packet_size {LIMIT}",)).start()
    yield broker
    broker.stop()


def _blob(n: int = 200_000) -> tuple[str, bytes]:
    data = np.random.default_rng(7).integers(0, 256, n, dtype=np.uint8).tobytes()
    return hashlib.sha256(data).hexdigest(), data


def _transfer(broker, reg_kw: dict, dev_kw: dict, **fetch_kw):
    """A blob server and a fetcher with the default 64 KiB chunks; (data, fetcher, server, registry client)."""
    sha, data = _blob()
    reg = MqttClient(broker.url, "reg", **reg_kw).start()
    dev = MqttClient(broker.url, "dev", **dev_kw).start()
    try:
        server = BlobServer(reg, {sha: data}.get)
        fetcher = BlobFetcher(dev, **fetch_kw)
        got = fetcher.fetch(sha, len(data))
        time.sleep(0.5)  # a flap would show as reconnects right after the transfer
        return got == data, fetcher, server, reg
    finally:
        dev.stop()
        reg.stop()


@pytest.mark.parametrize("reg_kw, dev_kw", [
    ({"protocol": V5}, {"protocol": V311}),  # the registry learns the limit from CONNACK, the device does not know it
    ({"max_packet_size": LIMIT}, {}),  # MQTT 3.1.1 both, the limit from the registry's settings
], ids=["mqtt5-connack", "mqtt311-configured"])  # fmt: skip
def test_registry_answers_smaller_chunks_and_never_flaps(limited, reg_kw, dev_kw):
    ok, fetcher, server, reg = _transfer(limited, reg_kw, dev_kw)
    assert ok
    assert reg.reconnects == 0 and reg.oversized == 0  # before: disconnected on every chunk, forever
    assert server.too_large >= 1  # the 64 KiB request was answered with the chunk size that fits
    assert fetcher.last_chunk_size <= LIMIT - 512


def test_fetcher_picks_chunks_from_its_own_limit(limited):
    ok, fetcher, server, reg = _transfer(limited, {"protocol": V5}, {"protocol": V5})
    assert ok and reg.reconnects == 0
    assert server.too_large == 0  # the fetcher knew the limit (CONNACK) and asked for chunks that fit
    assert 1024 <= fetcher.last_chunk_size <= LIMIT - 512


def test_unknown_limit_drops_the_oversized_message_instead_of_flapping(limited):
    """MQTT 3.1.1 and no configured limit: the broker just disconnects.  The message it disconnects us
    for is dropped after the second time, the assumed limit halves, and the transfer completes."""
    ok, fetcher, server, reg = _transfer(limited, {}, {}, chunk_timeout=1.0, max_retries=8)
    assert ok
    assert reg.oversized >= 1 and reg.learned_max_packet is not None and reg.learned_max_packet <= LIMIT
    assert reg.reconnects <= 6  # bounded: before, ~5 per second for as long as the registry ran


def test_oversized_chunk_size_setting_is_refused():
    from edge_maas.config import ConfigError, MqttSettings, _validate

    with pytest.raises(ConfigError, match="chunk_size 65536 does not fit max_packet_size 16384"):
        _validate({"max_packet_size": LIMIT, "chunk_size": 65536}, MqttSettings, "mqtt")


@pytest.mark.parametrize("kw", [{"protocol": V5}, {"max_packet_size": LIMIT}], ids=["mqtt5-connack", "configured"])
def test_oversized_infer_request_fails_at_once_naming_the_limit(limited, kw):
    client = MqttClient(limited.url, "caller", **kw).start()
    try:
        x = np.zeros((1, 27_000), np.int8)  # 27 KB: the request that used to time out
        t0 = time.monotonic()
        with pytest.raises(PacketTooLargeError, match=f"maximum packet size of {LIMIT} bytes"):
            InferClient(client).infer("dev-x", {"x": x}, timeout=5.0)
        assert time.monotonic() - t0 < 1.0
        assert client.oversized == 1
        time.sleep(0.3)
        assert client.connected and client.reconnects == 0  # nothing was sent, so nothing got us disconnected
    finally:
        client.stop()


def test_twin_clients_back_off_with_growing_delays(mosquitto):
    """Two clients with one id take the session from each other; each reconnect waits longer than the last
    (paho alone resets its delay on every successful CONNACK: a reconnect every ~0.2 s forever)."""
    a = MqttClient(mosquitto.url, "twin", backoff=(0.1, 1.6)).start()
    b = MqttClient(mosquitto.url, "twin", backoff=(0.1, 1.6)).start()
    time.sleep(5.0)
    a.stop()
    b.stop()
    for c in (a, b):
        times = list(c.connect_times)
        gaps = np.diff(times)
        assert 2 <= len(times) <= 12, f"{len(times)} connects in 5 s"  # before: ~25 each
        assert gaps[-1] > 3 * gaps[0], gaps  # the delay grew (doubling, jittered by 0.5..1.5)


def test_two_tools_at_once_do_not_take_each_other_over(mosquitto):
    procs = [subprocess.Popen([EXE, "registry", "status", "--broker", mosquitto.url, "--wait", "2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]  # fmt: skip
    for p in procs:
        p.wait(timeout=30)
        assert p.returncode == 0, p.stderr.read().decode()
    mosquitto.stop()  # flushes its log
    log = mosquitto.log.read_text()
    ids = re.findall(r"New client connected from \S+ as (\S+)", log)
    assert len(ids) == 2 and len(set(ids)) == 2 and all(i.startswith("registry-status-") for i in ids), ids
    assert "already connected" not in log  # Mosquitto's word for a takeover


def test_second_daemon_with_the_same_id_is_refused(mosquitto, tmp_path):
    key = tmp_path / "registry.key"
    run("keys", "new", "--out", key)
    profile = tmp_path / "dev.toml"
    profile.write_text(
        f'device_id = "twin-dev"\ncache_dir = "{tmp_path / "cache"}"\nregistry_key = "{key.with_suffix(".pub")}"\n'
        f'[runtime]\nbackend = "native"\nbackends_allowed = ["native"]\n[mqtt]\nbroker = "{mosquitto.url}"\n'
    )
    first = subprocess.Popen([EXE, "device", "--config", str(profile)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    caller = None
    try:
        assert first.stdout.readline()  # connected and subscribed
        time.sleep(3.0)  # the first has held its id for longer than TWIN_HELD_S
        t0 = time.monotonic()
        second = subprocess.run([EXE, "device", "--config", str(profile)], capture_output=True, text=True, timeout=60)
        assert second.returncode == 2, second.stderr
        err = second.stderr.strip().splitlines()[-1]
        assert err.startswith("edge-maas: error: another client is connected with the id 'twin-dev'"), err
        assert time.monotonic() - t0 < 15
        assert first.poll() is None  # the first keeps running ...
        caller = MqttClient(mosquitto.url, "caller-twin").start()
        infer = InferClient(caller)
        answers = []
        for _ in range(5):  # the first may still be in its reconnect delay (a QoS 0 request is then lost)
            try:
                infer.infer("twin-dev", {}, timeout=1.0)
            except TransportError:
                continue
            except Exception as exc:  # ... and answers (it has no model yet)
                answers.append(str(exc))
                break
        assert answers and "no model deployed yet" in answers[0], answers
    finally:
        if caller is not None:
            caller.stop()
        first.terminate()
        first.wait(timeout=10)
    assert first.returncode == 0, first.stderr.read().decode()[-2000:]


def test_fatal_client_start_raises(mosquitto):
    """A refuse_twin client that is the newcomer gives up and says why; the holder of the id stays connected."""
    holder = MqttClient(mosquitto.url, "held-id", backoff=(0.1, 1.0)).start()
    try:
        time.sleep(2.2)  # the holder has held its id (TWIN_HELD_S)
        newcomer = MqttClient(mosquitto.url, "held-id", backoff=(0.1, 1.0), refuse_twin=True)
        gave_up = threading.Event()
        newcomer.on_fatal = lambda why: gave_up.set()
        try:
            newcomer.start()
        except TransportError:  # it may give up before start() returns
            pass
        assert gave_up.wait(10), "the newcomer never gave up"
        assert "another client is connected with the id 'held-id'" in newcomer.fatal
        deadline = time.monotonic() + 5
        while not holder.connected and time.monotonic() < deadline:  # it takes the session back
            time.sleep(0.05)
        assert holder.connected and not newcomer.connected
        newcomer.stop()
    finally:
        holder.stop()


def test_publish_checks_size_without_a_limit_known(mosquitto):
    c = MqttClient(mosquitto.url, "nolimit").start()
    try:
        assert c.max_packet is None and c.max_payload("t") is None
        c.publish("t", b"x" * 100_000)  # no limit known: sent as before
        c.max_packet_size = 4096
        assert c.packet_size("t", c.max_payload("t")) == 4096 and c.packet_size("t", c.max_payload("t") + 1) == 4097
        with pytest.raises(TransportError, match="4096 bytes"):
            c.publish("t", b"x" * 5000)
    finally:
        c.stop()




def test_oversized_infer_reply_is_an_error_naming_the_limit(limited, tmp_path):
    """A model whose output (17 KB) does not fit the broker's 16 KiB limit: the caller gets an
    error reply naming the limit at once, not a timeout, and the device keeps serving."""
    from edge_maas.device.agent import DeviceAgent
    from edge_maas.partition import plan_balanced, split_model
    from edge_maas.partition.costs import graph_macs
    from edge_maas.registry import signing
    from edge_maas.registry.blobs import BlobStore
    from edge_maas.registry.service import Registry
    from edge_maas.tflite import load_graph
    from edge_maas.tflite.builder import T, Op, build_model

    q = ((0.05,), (3,))
    pads = np.array([[0, 0], [64, 64], [64, 64], [0, 0]], np.int32)
    model = build_model([T("x", (1, 4, 4, 1), "int8", *q), T("p", (4, 2), "int32", data=pads),
                         T("y", (1, 132, 132, 1), "int8", *q)], [Op("PAD", ["x", "p"], ["y"])], ["x"], ["y"])  # fmt: skip
    g = load_graph(model)
    split_model(g, plan_balanced(g, 1, graph_macs(g)), tmp_path / "pad", "pad", version="1", source_bytes=model)
    signing.new_key(tmp_path / "k")
    reg = Registry(tmp_path / "reg", tmp_path / "k")
    reg.publish(tmp_path / "pad")
    rc = MqttClient(limited.url, "reg", protocol=V5).start()
    dc = MqttClient(limited.url, "pad-dev", protocol=V5).start()  # learns 16384 from CONNACK
    caller = MqttClient(limited.url, "caller", protocol=V5).start()
    agent = DeviceAgent("pad-dev", dc, BlobStore(tmp_path / "cache"), signing.load_public(tmp_path / "k.pub"))
    try:
        reg.serve(rc)
        reg.deploy(rc, "pad", "1", ["pad-dev"])
        deadline = time.monotonic() + 30
        while agent.active is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert agent.active is not None, agent.last_error
        t0 = time.monotonic()
        with pytest.raises(Exception, match=f"reply of 17[0-9]{{3}} bytes exceeds the broker's maximum packet size of {LIMIT}"):
            InferClient(caller).infer("pad-dev", {"x": np.zeros((1, 4, 4, 1), np.int8)}, timeout=5.0)
        assert time.monotonic() - t0 < 2.0
        assert dc.connected and dc.reconnects == 0
    finally:
        agent.close()
        for c in (caller, dc, rc):
            c.stop()

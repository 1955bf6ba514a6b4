"""Devices that heal themselves, on a real Mosquitto with a real registry: a corrupt cached
shard is discarded and fetched again; a fetch that failed (registry down) is retried with
backoff until it succeeds; the reported state is republished after a broker restart and
says "offline" after a clean stop (SIGTERM); a version that fails its first requests is
rolled back by the device itself; an XNNPACK profile installs a conv model whose golden pair
came from the built-in kernels."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import time

import numpy as np
import pytest
from conftest import MODELS, litert_semantics, zoo_bytes, zoo_expected
from test_cli import EXE
from test_registry_device import Reports, _split_v1

from edge_maas.backends.litert import LiteRTBackend
from edge_maas.config import RolloutSettings, load_profile
from edge_maas.device.agent import DeviceAgent
from edge_maas.errors import EdgeMaasError
from edge_maas.manifest import Manifest
from edge_maas.partition import plan_balanced, split_model
from edge_maas.partition.costs import graph_macs
from edge_maas.registry import signing
from edge_maas.registry.blobs import BlobStore
from edge_maas.registry.service import Registry
from edge_maas.tflite import load_graph
from edge_maas.tflite.builder import Op, T, build_model
from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient
from edge_maas.transport.messages import ReportedState

PIXELS = "serving_default_pixels:0"


class World:
    """A registry (serving its blobs or not), its MQTT client, a report monitor, and the agents
    a test starts (closed at the end)."""

    def __init__(self, broker, tmp_path):
        self.broker, self.tmp = broker, tmp_path
        self.pub = signing.new_key(tmp_path / "registry.key")
        self.reg = Registry(tmp_path / "registry", tmp_path / "registry.key")
        self.client = MqttClient(broker.url, "registry").start()
        self.reports = Reports(broker.url)
        self.agents: list[DeviceAgent] = []

    def agent(self, device_id: str, cache, **kw) -> DeviceAgent:
        a = DeviceAgent(device_id, MqttClient(self.broker.url, device_id).start(), BlobStore(cache),
                        signing.load_public(self.pub), chunk_size=2048, **kw)  # fmt: skip
        self.agents.append(a)
        return a

    def stop(self, agent: DeviceAgent) -> None:
        agent.close()
        agent.client.stop()
        self.agents.remove(agent)

    def close(self) -> None:
        for a in list(self.agents):
            self.stop(a)
        self.reports.client.stop()
        self.client.stop()


@pytest.fixture
def world(mosquitto, tmp_path):
    w = World(mosquitto, tmp_path)
    yield w
    w.close()


def _check_digits(agent: DeviceAgent) -> None:
    xs, ys = zoo_expected("mlp_digits")
    out = agent.infer({PIXELS: xs[:1]})
    assert next(iter(out.values()))[0].tobytes() == ys[0].tobytes()


def test_corrupt_cached_shard_is_discarded_and_fetched_again_at_restart(world, tmp_path):
    """Bit rot in a running version's cached shard: the restarted device (same cache, and no
    retained desired state to lean on) discards it, fetches it again and serves."""
    w = world
    w.reg.serve(w.client)
    w.reg.publish(_split_v1(tmp_path))
    agent = w.agent("heal-a", tmp_path / "cache")
    w.reg.deploy(w.client, "mlp_digits", "1", ["heal-a"])
    w.reports.wait(lambda s: s.get("heal-a") and s["heal-a"].version == "1")
    shard = agent.active.manifest.shards[1]
    w.stop(agent)
    path = BlobStore(tmp_path / "cache").path(shard.sha256)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10  # one flipped bit
    path.write_bytes(bytes(data))
    w.client.publish(topics.desired("heal-a"), b"", retain=True)  # only the device's own state file is left

    with w.reports.cv:
        w.reports.latest.clear()
    restarted = w.agent("heal-a", tmp_path / "cache")
    w.reports.wait(lambda s: s.get("heal-a") and s["heal-a"].version == "1" and s["heal-a"].healthy)
    assert restarted.active.version == "1"
    _check_digits(restarted)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == shard.sha256  # the cache holds the intact blob again


def test_failed_fetch_is_retried_with_backoff_until_the_registry_is_back(world, tmp_path):
    """The registry's blob server is down when the desired state arrives: the device reports what
    it retries and why, with growing waits, and installs by itself once the server is up."""
    w = world
    w.reg.publish(_split_v1(tmp_path))  # published and deployed, but nothing serves the blobs yet
    agent = w.agent("heal-b", tmp_path / "cache", rollout=RolloutSettings(retry_initial_s=0.2, retry_max_s=1.0))
    agent.fetcher.chunk_timeout, agent.fetcher.max_retries = 0.3, 0  # fail each attempt fast
    seen: list[ReportedState] = []

    def note(s):
        st = s.get("heal-b")
        if st is not None and st.retrying is not None and (not seen or seen[-1].retrying != st.retrying):
            seen.append(st)
        return st is not None and st.retrying is not None and st.retrying.attempt >= 4

    w.reg.deploy(w.client, "mlp_digits", "1", ["heal-b"])
    w.reports.wait(note, timeout=30)
    r = seen[-1].retrying
    assert (r.model, r.version) == ("mlp_digits", "1") and "blob" in r.reason and seen[-1].version is None
    assert [s.retrying.attempt for s in seen] == sorted({s.retrying.attempt for s in seen})
    assert r.next_in_s > max(s.retrying.next_in_s for s in seen if s.retrying.attempt == 1)  # the wait grew

    w.reg.serve(w.client)  # the registry is back: nobody re-deploys
    w.reports.wait(lambda s: s["heal-b"].version == "1" and s["heal-b"].retrying is None, timeout=30)
    assert w.reports.latest["heal-b"].healthy
    _check_digits(agent)


def test_reported_state_is_republished_after_a_broker_restart(world, tmp_path, mosquitto):
    """Mosquitto without persistence restarts: its retained messages are gone; the device says
    again that it is online and what it runs."""
    w = world
    w.reg.serve(w.client)
    w.reg.publish(_split_v1(tmp_path))
    w.agent("heal-c", tmp_path / "cache")
    w.reg.deploy(w.client, "mlp_digits", "1", ["heal-c"])
    w.reports.wait(lambda s: s.get("heal-c") and s["heal-c"].version == "1")

    mosquitto.stop()
    with w.reports.cv:
        w.reports.latest.clear()
    mosquitto.start()
    w.reports.wait(lambda s: s.get("heal-c") and s["heal-c"].status == "online", timeout=30)
    fresh = Reports(mosquitto.url)  # subscribes now: what it gets is the retained message
    try:
        fresh.wait(lambda s: s.get("heal-c") is not None, timeout=10)
        state = fresh.latest["heal-c"]
        assert (state.status, state.model, state.version, state.healthy) == ("online", "mlp_digits", "1", True)
    finally:
        fresh.client.stop()


def test_sigterm_publishes_offline(world, tmp_path, mosquitto):
    """`edge-maas device` stopped with SIGTERM: the retained state says offline (a clean DISCONNECT
    sends no last will), and the process exits 0."""
    w = world
    cache = tmp_path / "cache"
    profile = tmp_path / "dev.toml"
    profile.write_text(f'device_id = "heal-d"\ncache_dir = "{cache}"\nregistry_key = "{w.pub}"\n'
                       f'[mqtt]\nbroker = "{mosquitto.url}"\n')  # fmt: skip
    p = subprocess.Popen([EXE, "device", "--config", str(profile)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline()
        w.reports.wait(lambda s: s.get("heal-d") and s["heal-d"].status == "online")
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0, p.stderr.read().decode()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    w.reports.wait(lambda s: s["heal-d"].status == "offline", timeout=10)
    fresh = Reports(mosquitto.url)
    try:
        fresh.wait(lambda s: s.get("heal-d") and s["heal-d"].status == "offline", timeout=10)
    finally:
        fresh.client.stop()


def _lookup(tmp_path, version: str, safe: bool):
    """A table lookup by an int8 code: v1 shifts the code by 128 (every code is a valid row); v2
    forgot the shift, so negative codes make the interpreter raise at run time ("gather index
    out of bounds") although its golden pair (a positive code, seed 1) checks out."""
    params = (np.arange(256 * 4) % 127).astype(np.int8).reshape(256, 4)
    ts = [T("code", (1, 1), "int8", scale=[1.0], zero_point=[0]), T("idx", (1, 1), "int32"),
          T("table", (256, 4), "int8", scale=[0.1], zero_point=[0], data=params),
          T("row", (1, 1, 4), "int8", scale=[0.1], zero_point=[0])]  # fmt: skip
    ops = [Op("CAST", ["code"], ["idx"])]
    if safe:
        ts += [T("c128", (1,), "int32", data=np.array([128], np.int32)), T("shifted", (1, 1), "int32")]
        ops += [Op("ADD", ["idx", "c128"], ["shifted"], "AddOptions", {}),
                Op("GATHER", ["table", "shifted"], ["row"], "GatherOptions", {"axis": 0})]  # fmt: skip
    else:
        ops.append(Op("GATHER", ["table", "idx"], ["row"], "GatherOptions", {"axis": 0}))
    model = build_model(ts, ops, ["code"], ["row"])
    g = load_graph(model)
    out = tmp_path / f"lookup{version}"
    split_model(g, plan_balanced(g, 1, graph_macs(g)), out, "lookup", version=version, source_bytes=model,
                golden_seed=1)  # fmt: skip
    return out


def test_version_failing_its_first_requests_is_rolled_back_by_the_device(world, tmp_path):
    w = world
    w.reg.serve(w.client)
    for version, safe in (("1", True), ("2", False)):
        w.reg.publish(_lookup(tmp_path, version, safe))
    rollout = RolloutSettings(probation_requests=10, max_failures=3)
    agent = w.agent("heal-e", tmp_path / "cache", rollout=rollout)
    w.reg.deploy(w.client, "lookup", "1", ["heal-e"])
    w.reports.wait(lambda s: s.get("heal-e") and s["heal-e"].version == "1")
    w.reg.deploy(w.client, "lookup", "2", ["heal-e"])
    w.reports.wait(lambda s: s["heal-e"].version == "2" and s["heal-e"].previous_version == "1")

    codes = [5, -3, 7, -4, -9, 2, -1]
    failures = 0
    for c in codes:
        try:
            agent.infer({"code": np.array([[c]], np.int8)})
        except EdgeMaasError as exc:
            assert "gather index out of bounds" in str(exc)
            failures += 1
        if failures == 3:
            break
    w.reports.wait(lambda s: s["heal-e"].version == "1" and s["heal-e"].auto_rollback is not None)
    state = w.reports.latest["heal-e"]
    rb = state.auto_rollback
    assert (rb.model, rb.version, rb.to_version) == ("lookup", "2", "1")
    assert "3 of its first 5 requests failed" in rb.reason and "gather index out of bounds" in rb.reason
    assert state.healthy and "rolled back from 2" in state.last_error
    assert agent.infer({"code": np.array([[-3]], np.int8)})["row"].shape == (1, 1, 4)  # v1 serves every code

    # the retained desired state (still v2) is not applied again: neither redelivered, nor after a restart
    agent.client.subscribe(topics.desired("heal-e"), agent._on_desired)  # a new SUBSCRIBE redelivers it
    w.stop(agent)
    with w.reports.cv:
        w.reports.latest.clear()
    restarted = w.agent("heal-e", tmp_path / "cache", rollout=rollout)
    assert restarted.active.version == "1"  # the rollback was persisted
    w.reports.wait(lambda s: s.get("heal-e") and s["heal-e"].version == "1")
    time.sleep(1.0)  # time enough to (wrongly) install v2 from the cache
    state = w.reports.latest["heal-e"]
    assert restarted.active.version == "1" and state.version == "1" and state.auto_rollback == rb

    # a desired state for another version (here the operator's signed rollback to v1): v2 is forgiven
    assert w.reg.rollback(w.client, "heal-e") == ("lookup", "1")
    w.reports.wait(lambda s: s["heal-e"].auto_rollback is None and s["heal-e"].version == "1")
    assert not (tmp_path / "cache" / "rejected.json").exists()


@litert_semantics("its XNNPACK gives this backbone's golden bytes, so the premise (XNNPACK 1-2 LSB off) is absent")
def test_xnnpack_profile_installs_a_conv_model_checked_on_the_built_in_kernels(world, tmp_path):
    """The shipped x86 gateway profile serves on XNNPACK, which differs from the built-in kernels
    by 1-2 LSB on a conv feature extractor (MobileNetV2's first blocks): the device checks the
    golden pair on the reference kernels, installs, and serves on XNNPACK."""
    w = world
    blob = zoo_bytes("mobilenetv2_035_96")
    g = load_graph(blob)
    split_model(g, plan_balanced(g, 4, graph_macs(g)), tmp_path / "mnv2", "mnv2", version="1", source_bytes=blob)
    m = Manifest.load(tmp_path / "mnv2" / "manifest.json")
    backbone = (tmp_path / "mnv2" / m.shards[0].file).read_bytes()  # a backbone whose output is a conv's
    bg = load_graph(backbone)
    split_model(bg, plan_balanced(bg, 2, graph_macs(bg)), tmp_path / "bb", "backbone", version="1",
                source_bytes=backbone)  # fmt: skip
    golden = Manifest.load(tmp_path / "bb" / "manifest.json").golden
    feed = {t.name: t.to_array() for t in golden.inputs}
    xnn = LiteRTBackend(backbone, xnnpack=True).run(feed)
    want = {t.name: t.to_array() for t in golden.outputs}
    assert any(not np.array_equal(xnn[k], want[k]) for k in want), "XNNPACK equals the golden bytes here"

    w.reg.serve(w.client)
    w.reg.publish(tmp_path / "bb")
    profile = load_profile(MODELS.parent.parent / "firmware_configs" / "x86_gateway.toml")
    assert profile.runtime.xnnpack
    agent = w.agent("heal-f", tmp_path / "cache", backend=profile.runtime.backend,
                    backend_options=profile.backend_options())  # fmt: skip
    w.reg.deploy(w.client, "backbone", "1", ["heal-f"])
    w.reports.wait(lambda s: s.get("heal-f") and (s["heal-f"].version == "1" or s["heal-f"].last_error))
    state = w.reports.latest["heal-f"]
    assert state.version == "1" and state.healthy and state.last_error is None, state
    served = agent.infer(feed)
    assert all(np.array_equal(served[k], xnn[k]) for k in want)  # it serves on XNNPACK, as configured


def test_reported_state_comes_back_online_after_a_cut_link(world, tmp_path, mosquitto):
    """The link dies (a TCP proxy drops it): the broker publishes the device's last will
    (offline); the device reconnects and its retained state says online again."""
    from chaos import CuttableProxy

    w = world
    w.reg.serve(w.client)
    w.reg.publish(_split_v1(tmp_path))
    proxy = CuttableProxy(mosquitto.port)
    offline = ReportedState(device_id="heal-l", status="offline").model_dump_json().encode()
    client = MqttClient(proxy.url, "heal-l", will=(topics.reported("heal-l"), offline)).start()
    a = DeviceAgent("heal-l", client, BlobStore(tmp_path / "cache"), signing.load_public(w.pub), chunk_size=2048)
    w.agents.append(a)
    try:
        w.reg.deploy(w.client, "mlp_digits", "1", ["heal-l"])
        w.reports.wait(lambda s: s.get("heal-l") and s["heal-l"].version == "1")
        time.sleep(3)  # a quiet link stays up: the proxy cuts only when told (the soak counts on it)
        assert client.connected and client.reconnects == 0, client.last_disconnect
        proxy.cut()
        w.reports.wait(lambda s: s["heal-l"].status == "offline", timeout=30)  # the will, from the broker
        w.reports.wait(lambda s: s["heal-l"].status == "online" and s["heal-l"].version == "1", timeout=30)
        time.sleep(3)
        assert client.connected and client.reconnects == 1, client.last_disconnect
    finally:
        proxy.close()

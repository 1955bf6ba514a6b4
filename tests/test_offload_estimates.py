"""Offload estimates and policies on real parts (Mosquitto, registry, worker, device daemon):
a device whose worker's retained status says offline pays no deadline and offloads again as
soon as one is back; the worker's reply separates its queue, compute and one-off install
time from the wire; policies are validated and reported."""

from __future__ import annotations

import time

import numpy as np
import pytest
from test_offload import _inputs, cloud  # noqa: F401 - the fixture

from edge_maas.backends.remote import RemoteSplit
from edge_maas.config import ConfigError, OffloadSettings, load_profile
from edge_maas.device.agent import DeviceAgent
from edge_maas.errors import DeviceError
from edge_maas.registry import signing
from edge_maas.registry.blobs import BlobStore
from edge_maas.registry.fleet import status_line
from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient
from edge_maas.transport.infer_client import InferClient
from edge_maas.transport.messages import ReportedState
from edge_maas.worker.worker import Worker

DEADLINE_MS = 3000


def _agent(mosquitto, cloud, tmp_path, settings, name="dev-est"):  # noqa: F811
    dc = MqttClient(mosquitto.url, name).start()
    agent = DeviceAgent(name, dc, BlobStore(tmp_path / f"{name}-cache"), signing.load_public(cloud.registry_pub),
                        backend="native", backend_options={"threads": 1}, offload=settings)  # fmt: skip
    cloud.registry.deploy(cloud.registry_client, "branchy", "1", [name])
    deadline = time.monotonic() + 30
    while agent.active is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert agent.active is not None, agent.last_error
    return agent


def _timed(asker, device, x):
    t0 = time.perf_counter()
    _, out = asker.infer(device, x)
    return out, time.perf_counter() - t0


def test_offline_worker_costs_no_deadline_and_a_returning_one_is_used_at_once(mosquitto, cloud, tmp_path):  # noqa: F811
    """The worker's retained status says offline (it closed): every request runs here at local speed
    (none waits for the deadline, none is sent); the worker comes back: the next request probes it
    and offloads, well within the probe period (an hour here)."""
    c = MqttClient(mosquitto.url, "w-gone").start()
    gone = Worker("w1", c, BlobStore(tmp_path / "w-gone"), signing.load_public(cloud.registry_pub))
    gone.close()  # retained: {"worker": "w1", "status": "offline"}
    c.stop()
    agent = _agent(mosquitto, cloud, tmp_path, OffloadSettings(enabled=True, deadline_ms=DEADLINE_MS, probe_every_s=3600))
    asker = InferClient(MqttClient(mosquitto.url, "asker").start())
    monitor = MqttClient(mosquitto.url, "monitor").start()
    reports: list[ReportedState] = []
    monitor.subscribe(topics.reported("dev-est"), lambda t, p: reports.append(ReportedState.model_validate_json(p)))
    try:
        xs = _inputs(cloud.local, 8, seed=2)
        for x in xs[:5]:
            out, took = _timed(asker, "dev-est", x)
            assert took < DEADLINE_MS / 1e3 / 3, took  # no deadline paid
            assert all(np.array_equal(out[k], v) for k, v in cloud.local.run(x).items())
        st = agent.active.offloader.state()
        assert (st.remote, st.fallback, st.local, st.probes) == (0, 0, 5, 0), st
        assert st.offline_skips == 5 and st.workers_online is False and "no worker online" in st.reason

        back = cloud.worker("w1")  # the same name comes back online
        deadline = time.monotonic() + 10
        while not agent.active.offloader.board.any_online() and time.monotonic() < deadline:
            time.sleep(0.02)
        wheres = []
        for x in xs[:5]:
            _timed(asker, "dev-est", x)
            wheres.append(agent.active.offloader.last)
        p = agent.active.offloader.planner
        smallest = min(range(p.n), key=p.boundary_bytes.__getitem__)
        assert wheres[0].probe and wheres[0].split == smallest, wheres[0]  # at once, and the smallest boundary
        st = agent.active.offloader.state()
        assert st.probes >= 1 and st.remote >= 1 and st.fallback == 0, st
        assert back.served >= 1
        assert st.workers_online and st.link_samples >= 1 and st.rtt_ms is not None and st.rtt_ms < 50, st
        deadline = time.monotonic() + 10  # the periodic report carries the counters; registry status shows them
        while time.monotonic() < deadline and not any(r.offload and r.offload.remote for r in reports):
            time.sleep(0.05)
        line = status_line(next(r for r in reversed(reports) if r.offload and r.offload.remote))
        assert "offload latency split" in line and "probes 1" in line and "kept local without a worker 5" in line
    finally:
        agent.close()
        for cl in (agent.client, asker.client, monitor):
            cl.stop()


def test_the_reply_separates_install_queue_and_compute_from_the_wire(mosquitto, cloud):  # noqa: F811
    """The first exchange waits for the worker's install; the reply says so (setup_ms), and says its
    whole time in the worker (worker_ms): the wire time on loopback stays a few ms, and the worker
    time the planner expects next leaves the one-off install out."""
    cloud.worker("w1")
    dev = RemoteSplit(MqttClient(mosquitto.url, "dev-x").start(), cloud.local, "branchy", cloud.rec.manifest_sha256,
                      cloud.rec.manifest_size, deadline_s=10.0)  # fmt: skip
    try:
        xs = _inputs(cloud.local, 4, seed=3)
        assert dev.run(xs[0], 1)[1] == "remote:w1"
        first = dev.last
        assert first.worker_s > first.busy_s + 0.005, first  # the install is in the worker's time, not its busy time
        assert first.elapsed_s - first.worker_s < 0.05, first  # what is left is the wire: loopback
        for x in xs[1:]:
            assert dev.run(x, 1)[1] == "remote:w1"
            x_ = dev.last
            assert 0 < x_.busy_s <= x_.worker_s <= x_.elapsed_s and x_.elapsed_s - x_.worker_s < 0.05, x_
    finally:
        dev.client.stop()


def test_remote_only_fails_fast_without_a_worker(mosquitto, cloud, tmp_path):  # noqa: F811
    """policy remote_only for this task: no worker online, the request fails at once with why."""
    settings = OffloadSettings(enabled=True, deadline_ms=DEADLINE_MS, tasks={"branchy": {"policy": "remote_only"}})
    agent = _agent(mosquitto, cloud, tmp_path, settings, name="dev-ro")
    asker = InferClient(MqttClient(mosquitto.url, "asker-ro").start())
    try:
        t0 = time.perf_counter()
        with pytest.raises(DeviceError, match="no worker online"):
            asker.infer("dev-ro", _inputs(cloud.local, 1)[0])
        assert time.perf_counter() - t0 < DEADLINE_MS / 1e3 / 3
        assert agent.active.offloader.state().policy == "remote_only"
    finally:
        agent.close()
        for cl in (agent.client, asker.client):
            cl.stop()


def test_offload_policy_names_are_validated_with_one_line(tmp_path):
    base = ('device_id = "d"\n[runtime]\nbackends_allowed = ["native", "remote"]\nbackend = "native"\n'
            "[offload]\nenabled = true\n")  # fmt: skip
    for bad, where in (('policy = "fastest"', "offload.policy"),
                       ('[offload.tasks.branchy]\npolicy = "cloud"', "offload.tasks.branchy.policy"),
                       ('[offload.stages]\n0 = "sometimes"', "offload.stages.0"),
                       ('[offload.tasks.branchy]\npolicy = "bytes"', "max_bytes")):  # fmt: skip
        f = tmp_path / "p.toml"
        f.write_text(base + bad + "\n")
        with pytest.raises(ConfigError, match=where.replace(".", r"\.")) as e:
            load_profile(f)
        assert "\n" not in str(e.value)
    f.write_text(base + 'policy = "prefer_remote"\n[offload.stages]\n0 = "local_only"\n'
                 '[offload.tasks.branchy]\npolicy = "bytes"\nmax_bytes = 4096\ndeadline_ms = 200\n')  # fmt: skip
    s = load_profile(f).offload
    t = s.for_task("branchy")
    assert (t.policy, t.max_bytes, t.deadline_ms, t.stages) == ("bytes", 4096, 200, {0: "local_only"})
    assert s.for_task("other").policy == "prefer_remote"

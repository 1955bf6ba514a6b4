"""Staged rollouts to a group (hawkBit / AWS IoT Jobs semantics), on a real Mosquitto with a real registry and 6
real device agents in one group: a version that fails its health check on the first stage halts the rollout there
(the stage-1 device rolled back, the 5 others never touched); a good version reaches all 6, each stage only after
the previous one reported healthy.  Then the CLI: `registry deploy --group --stages`, `registry rollout status
--json`, `registry status --json`, the warning for a device never seen, and list/status without a private key."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from itertools import pairwise

import pytest
from conftest import zoo_expected
from test_registry_device import Reports, _split_v1, _variant

from edge_maas import cli
from edge_maas.device.agent import DeviceAgent
from edge_maas.registry import signing
from edge_maas.registry.blobs import BlobStore
from edge_maas.registry.fleet import FleetWatch
from edge_maas.registry.rollout import (
    RolloutError,
    RolloutRunner,
    RolloutStore,
    allowed_failures,
    parse_stages,
    parse_threshold,
    stage_sizes,
)
from edge_maas.registry.service import Registry
from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient
from edge_maas.transport.infer_client import InferClient
from edge_maas.transport.messages import ReportedState, SignedDesired

GROUP = "plant-3"
DEVICES = [f"cam-{i}" for i in range(6)]  # sorted: the rollout order


class Fleet:
    """A registry serving its blobs, 6 agents in GROUP (2 more devices outside it), a report monitor, and an
    event log: every desired and reported state the broker delivered, in delivery order."""

    def __init__(self, broker, tmp_path):
        self.broker, self.tmp = broker, tmp_path
        self.pub = signing.new_key(tmp_path / "registry.key")
        self.reg = Registry(tmp_path / "registry", tmp_path / "registry.key")
        self.client = MqttClient(broker.url, "registry").start()
        self.reg.serve(self.client)
        self.reports = Reports(broker.url)
        self.events: list[tuple[str, str, str | None, bool | None]] = []  # (kind, device, version, healthy)
        self._lock = threading.Lock()
        self.log = MqttClient(broker.url, "event-log").start()
        self.log.subscribe(f"{topics.PREFIX}/device/+/desired", self._on_desired)
        self.log.subscribe(f"{topics.PREFIX}/device/+/reported", self._on_reported)
        self.agents = {d: self._agent(d, [GROUP]) for d in DEVICES}
        self.agents["other-0"] = self._agent("other-0", ["elsewhere"])

    def _agent(self, device_id, groups) -> DeviceAgent:
        return DeviceAgent(device_id, MqttClient(self.broker.url, device_id).start(),
                           BlobStore(self.tmp / device_id / "cache"), signing.load_public(self.pub), chunk_size=8192,
                           labels={"site": "plant-3", "role": "camera"}, groups=groups, report_every_s=0.5)  # fmt: skip

    def _on_desired(self, topic, payload):
        d = SignedDesired.model_validate_json(payload).signed
        with self._lock:
            self.events.append(("desired", d.device_id, d.version, None))

    def _on_reported(self, topic, payload):
        s = ReportedState.model_validate_json(payload)
        with self._lock:
            self.events.append(("reported", s.device_id, s.version, s.healthy))

    def versions(self) -> dict[str, str | None]:
        return {d: a.active.version if a.active else None for d, a in self.agents.items()}

    def desired_version(self, device: str) -> str:
        """The version the registry's retained desired state for ``device`` names now."""
        signed = {d: js for d, js, _ in self.reg.catalog.desired_states()}[device]
        return SignedDesired.model_validate_json(signed).signed.version

    def close(self):
        for a in self.agents.values():
            a.close()
            a.client.stop()
        for c in (self.reports.client, self.log, self.client):
            c.stop()


@pytest.fixture
def fleet(mosquitto, tmp_path):
    f = Fleet(mosquitto, tmp_path)
    v1 = _split_v1(tmp_path)
    v2 = _variant(v1, tmp_path / "v2", "2")  # a good new version (its last shard changed)
    v3 = _variant(v1, tmp_path / "v3", "3", patch_last_shard=False, break_golden=True)  # signed, wrong golden pair
    for d in (v1, v2, v3):
        f.reg.publish(d)
    f.reg.deploy(f.client, "mlp_digits", "1", [*DEVICES, "other-0"])
    f.reports.wait(lambda s: all(s.get(d) and s[d].version == "1" for d in [*DEVICES, "other-0"]))
    yield f
    f.close()


def _runner(f: Fleet, lines: list[str]) -> RolloutRunner:
    watch = FleetWatch(f.client)
    watch.settle(0.5)
    return RolloutRunner(f.reg, f.client, watch, say=lines.append)


def test_a_version_failing_its_health_check_halts_at_stage_1_and_a_good_one_reaches_all_stage_by_stage(fleet):
    f = fleet
    lines: list[str] = []
    runner = _runner(f, lines)
    assert runner.watch.members(GROUP) == DEVICES  # the registry knows the group from the reported states
    assert runner.watch.latest["cam-0"].labels == {"site": "plant-3", "role": "camera"}

    # (a) v3 fails its health check on the first device: halted after stage 1, the others never see it
    r = runner.plan("mlp_digits", "3", GROUP, "10%,50%,100%", "0", stage_timeout_s=30)
    assert r.sizes == (1, 3, 6) and [d.stage for d in r.devices] == [1, 2, 2, 3, 3, 3]
    r = runner.run(r)
    assert (r.status, r.stage) == ("halted", 1), lines
    assert "1 failure(s) among 1 device(s) exceed the allowance 0" in r.reason
    first = r.devices[0]
    assert (first.device_id, first.state, first.rollback) == ("cam-0", "failed", "done"), first
    assert "health check failed" in first.reason
    assert all(d.state == "untouched" and d.rollback is None for d in r.devices[1:])
    assert f.versions() == {**{d: "1" for d in DEVICES}, "other-0": "1"}
    assert f.desired_version("cam-0") == "1"  # the signed rollback replaced the retained v3
    assert all(f.desired_version(d) == "1" for d in DEVICES[1:])  # later stages: never sent v3
    with f._lock:
        assert [(k, d) for k, d, v, _ in f.events if v == "3"] == [("desired", "cam-0")]
    rec = RolloutStore(f.reg.root).all()[-1]  # persisted as the command ended
    assert rec == r

    # (b) v2 reaches all 6, stage by stage: a stage's desired states go out only after the previous stage's
    # devices reported v2 healthy
    with f._lock:
        f.events.clear()
    r = runner.run(runner.plan("mlp_digits", "2", GROUP, "10%,50%,100%", "0", stage_timeout_s=30))
    assert r.status == "complete" and r.stage == 3, lines
    assert all(d.state == "succeeded" for d in r.devices)
    f.reports.wait(lambda s: all(s[d].version == "2" and s[d].healthy for d in DEVICES))
    assert f.versions() == {**{d: "2" for d in DEVICES}, "other-0": "1"}  # outside the group: untouched
    with f._lock:
        events = list(f.events)

    def first_desired(device):
        return next(i for i, e in enumerate(events) if e[:3] == ("desired", device, "2"))

    def healthy_at(device):
        return next(i for i, e in enumerate(events) if e == ("reported", device, "2", True))

    stages = [[d.device_id for d in r.devices if d.stage == k] for k in (1, 2, 3)]
    assert stages == [DEVICES[:1], DEVICES[1:3], DEVICES[3:]]
    for earlier, later in pairwise(stages):
        assert max(map(healthy_at, earlier)) < min(map(first_desired, later)), events
    assert [x.id for x in RolloutStore(f.reg.root).all()] == ["0001", "0002"]


def test_failures_within_the_allowance_go_on_and_a_device_silent_past_the_timeout_fails(fleet):
    """--max-failures 1: stage 1's failure is within the allowance, so stage 2 starts; its failures pass it: halted
    there, the 3 devices targeted rolled back, stage 3's never touched.  A device that never answers fails at the
    stage timeout."""
    f = fleet
    runner = _runner(f, [])
    r = runner.run(runner.plan("mlp_digits", "3", GROUP, "10%,50%,100%", "1", stage_timeout_s=30))
    assert (r.status, r.stage) == ("halted", 2), r
    assert [d.state for d in r.devices[:1]] == ["failed"] and r.devices[0].finished_at < r.devices[1].deployed_at
    targeted = [d for d in r.devices if d.state != "untouched"]
    assert [d.device_id for d in targeted] == DEVICES[:3]
    assert all(d.rollback == "done" for d in targeted), targeted
    assert all(d.state == "untouched" and d.seq is None for d in r.devices[3:])
    assert all(f.desired_version(d) == "1" for d in DEVICES)
    assert f.versions() == {**{d: "1" for d in DEVICES}, "other-0": "1"}

    # a device that never answers fails when the stage times out (stop cam-0's agent: its desired state waits)
    a = f.agents.pop("cam-0")
    a.close()
    a.client.stop()
    t0 = time.monotonic()
    r = runner.run(runner.plan("mlp_digits", "2", GROUP, "10%,100%", "0", stage_timeout_s=2))
    assert (r.status, r.stage) == ("halted", 1) and time.monotonic() - t0 < 10
    assert "no healthy report within 2 s" in r.devices[0].reason
    assert r.devices[0].rollback == "failed"  # it could not confirm the rollback either
    assert all(d.state == "untouched" for d in r.devices[1:])


def test_stage_and_threshold_parsing():
    assert stage_sizes(parse_stages("10%,50%,100%")[1], 6) == (1, 3, 6)
    assert stage_sizes(parse_stages("10%,100%")[1], 30) == (3, 30)  # exact: 10% of 30 is 3, not 4
    assert stage_sizes(parse_stages("12.5%,100%")[1], 8) == (1, 8)
    for bad in ("10,100%", "50%,10%,100%", "10%,50%", "0%,100%", "150%", ""):
        with pytest.raises(RolloutError):
            parse_stages(bad)
    assert allowed_failures(parse_threshold("5%"), 40) == 2 and allowed_failures("5%", 19) == 0
    assert allowed_failures(parse_threshold("2"), 1) == 2
    for bad in ("-1", "5 %", "x", "101%"):
        with pytest.raises(RolloutError):
            parse_threshold(bad)


def test_cli_group_rollout_rollout_status_registry_status_and_the_never_seen_warning(fleet, capsys):
    f = fleet
    root, key, broker = str(f.reg.root), str(f.tmp / "registry.key"), f.broker.url
    net = ["--root", root, "--key", key, "--broker", broker, "--wait", "0.5"]

    # a rollout through the CLI: halted (exit 2, one error line), then complete (exit 0)
    code = cli.main(["registry", "deploy", "mlp_digits@3", "--group", GROUP, "--stages", "10%,50%,100%",
                     "--stage-timeout", "30", *net])  # fmt: skip
    out, err = capsys.readouterr()
    want = ("edge-maas: error: rollout 0001 halted at stage 1: 1 failure(s) among 1 device(s) exceed the "
            "allowance 0 (--max-failures 0)")  # fmt: skip
    assert code == 2 and err.strip().splitlines() == [want], err
    assert "stage 1/3 (10%): mlp_digits@3 -> cam-0" in out and "stage 2/3" not in out
    code = cli.main(["registry", "deploy", "mlp_digits@2", "--group", GROUP, "--stages", "10%,50%,100%",
                     "--max-failures", "5%", *net])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0 and err == "", err
    assert "stage 3/3 (100%): mlp_digits@2 -> cam-3, cam-4, cam-5" in out and "complete at stage 3/3" in out
    assert f.versions() == {**{d: "2" for d in DEVICES}, "other-0": "1"}

    # rollout status needs only --root (no key: it signs nothing)
    assert cli.main(["registry", "rollout", "status", "--root", root, "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["version"], r["status"], r["stage"]) for r in records] == [
        ("0001", "3", "halted", 1), ("0002", "2", "complete", 3)]  # fmt: skip
    assert [d["state"] for d in records[0]["devices"]] == ["failed"] + ["untouched"] * 5
    assert "health check failed" in records[0]["devices"][0]["reason"]
    assert records[0]["devices"][0]["rollback"] == "done"
    assert [d["state"] for d in records[1]["devices"]] == ["succeeded"] * 6
    assert cli.main(["registry", "rollout", "status", "--root", root]) == 0
    text = capsys.readouterr().out
    assert "rollout 0001: mlp_digits@3 to group plant-3 (6 devices)" in text and "halted at stage 1/3" in text
    assert "stage 1 cam-0" in text and "rollback done" in text

    # registry status --json: typed reported states, no key, no root; the request counters are republished while
    # they change (they used to be stale until the next install)
    xs, _ = zoo_expected("mlp_digits")
    asker = MqttClient(broker, "asker").start()
    try:
        for i in range(3):
            InferClient(asker).infer("cam-1", {"serving_default_pixels:0": xs[i : i + 1]}, 10.0)
    finally:
        asker.stop()
    f.reports.wait(lambda s: s["cam-1"].served == 3, timeout=10)
    assert cli.main(["registry", "status", "--broker", broker, "--wait", "0.5", "--json"]) == 0
    states = {s["device_id"]: ReportedState.model_validate(s) for s in json.loads(capsys.readouterr().out)}
    assert set(states) == {*DEVICES, "other-0"}
    assert (states["cam-1"].served, states["cam-1"].failed) == (3, 0)
    s = states["cam-5"]
    assert (s.version, s.healthy, s.groups, s.labels["site"]) == ("2", True, (GROUP,), "plant-3")
    assert (s.update.version, s.update.state) == ("2", "installed")
    assert cli.main(["registry", "status", "--broker", broker, "--wait", "0.5"]) == 0
    text = capsys.readouterr().out
    assert "cam-0" in text and "mlp_digits@2" in text and "served 0 failed 0" in text and "groups plant-3" in text

    # a device never seen: deployed (its state waits, retained), with a warning on stderr
    assert cli.main(["registry", "deploy", "mlp_digits@2", "--device", "ghost-7", *net]) == 0
    out, err = capsys.readouterr()
    assert "edge-maas: warning: device ghost-7 has never reported" in err and "set to mlp_digits@2" in out
    assert cli.main(["registry", "deploy", "mlp_digits@2", "--device", "cam-0", *net]) == 0
    assert capsys.readouterr().err == ""  # a known device: no warning

    # list needs no key; a group nobody joined is a clean error
    assert cli.main(["registry", "list", "--root", root]) == 0
    assert "mlp_digits@3  release 3" in capsys.readouterr().out
    assert cli.main(["registry", "deploy", "mlp_digits@2", "--group", "nobody", *net]) == 2
    assert "no device has reported group 'nobody'" in capsys.readouterr().err


def test_device_daemon_reports_its_profile_labels_and_groups_even_in_its_last_will(mosquitto, tmp_path):
    """`edge-maas device` with labels and groups in its profile reports them; killed (no clean stop), the broker's
    last will says offline and keeps them: the device stays a member of its group for the registry."""
    from test_cli import EXE

    signing.new_key(tmp_path / "k")
    profile = tmp_path / "dev.toml"
    profile.write_text(f'device_id = "lab-1"\ncache_dir = "{tmp_path / "cache"}"\n'
                       f'registry_key = "{tmp_path / "k.pub"}"\ngroups = ["{GROUP}", "cams"]\n'
                       f'[labels]\nsite = "plant-3"\n[mqtt]\nbroker = "{mosquitto.url}"\n')  # fmt: skip
    reports = Reports(mosquitto.url)
    p = subprocess.Popen([EXE, "device", "--config", str(profile)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline()
        reports.wait(lambda s: s.get("lab-1") and s["lab-1"].status == "online")
        s = reports.latest["lab-1"]
        assert (s.groups, s.labels) == ((GROUP, "cams"), {"site": "plant-3"})
        p.kill()
        p.wait()
        reports.wait(lambda s: s["lab-1"].status == "offline", timeout=10)
        assert reports.latest["lab-1"].groups == (GROUP, "cams")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        reports.client.stop()

"""Chaos soak: a registry, 3 device daemons (real processes, behind a TCP proxy whose links we
cut) and an offload worker under random broker restarts (no persistence), link cuts, SIGKILLs
of devices and worker, and corrupted cache files, while inference requests flow and versions are
deployed and rolled back.  At the end every device runs its desired version, healthy, reported
correctly; no reply came from a mixed version; every request was answered or failed with a
clear error.  Loopback only, bounded in time (EDGE_MAAS_SOAK_S, default 120 s of chaos)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from chaos import CuttableProxy
from conftest import zoo_expected
from test_cli import EXE
from test_registry_device import _split_v1, _variant

from edge_maas.errors import EdgeMaasError
from edge_maas.manifest import Manifest
from edge_maas.pipeline import Pipeline
from edge_maas.registry.service import Registry
from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient
from edge_maas.transport.infer_client import InferClient
from edge_maas.transport.messages import ReportedState
from edge_maas.trust import keys
from edge_maas.trust.root import new_root, sign_root

SOAK_S = float(os.environ.get("EDGE_MAAS_SOAK_S", "120"))
DEVICES = ("soak-a", "soak-b", "soak-c")
INPUT = "serving_default_pixels:0"


class Daemons:
    """Device and worker processes, restartable; their output goes to files for post-mortems."""

    def __init__(self, tmp: Path, broker_url: str, proxy_url: str, root: Path):
        self.tmp, self.broker_url, self.proxy_url, self.root = tmp, broker_url, proxy_url, root
        self.procs: dict[str, subprocess.Popen] = {}
        self.kills = Counter()

    def profile(self, d: str) -> Path:
        p = self.tmp / f"{d}.toml"
        p.write_text(f'device_id = "{d}"\ncache_dir = "{self.tmp / d}"\nregistry_key = "{self.root}"\n'
                     f'[runtime]\nxnnpack = false\nbackends_allowed = ["litert", "remote"]\n'
                     f'[mqtt]\nbroker = "{self.proxy_url}"\n'
                     f'[offload]\nenabled = true\ndeadline_ms = 300\nprobe_every_s = 2\n'
                     f'[rollout]\nretry_initial_s = 0.3\nretry_max_s = 3.0\n')  # fmt: skip
        return p

    def start(self, name: str):
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 (the child process holds it)
        if name == "worker":
            cmd = [EXE, "worker", "--name", "soak-worker", "--broker", self.broker_url, "--registry-key",
                   str(self.root), "--cache", str(self.tmp / "worker-cache")]  # fmt: skip
        else:
            cmd = [EXE, "-v", "device", "--config", str(self.profile(name))]
        self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=log)

    def kill(self, name: str):
        p = self.procs[name]
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
        self.kills[name] += 1

    def stop_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.mark.slow
def test_chaos_soak(mosquitto, tmp_path):
    rng = random.Random(20261129)
    # a root of trust with a release key, as an operator sets one up
    rk, rel = tmp_path / "root.key", tmp_path / "release.key"
    keys.new_key(rk)
    keys.new_key(rel)
    root = tmp_path / "root.json"
    root.write_bytes(sign_root(new_root([keys.load_private(rk).public_key()], [keys.load_public(rel.with_suffix(".pub"))]),
                               [keys.load_signer(rk)]))  # fmt: skip
    reg = Registry(tmp_path / "registry", rel)
    reg.add_root(root.read_bytes())
    v1 = _split_v1(tmp_path)
    dirs = {"1": v1, "2": _variant(v1, tmp_path / "v2", "2", winner=3), "3": _variant(v1, tmp_path / "v3", "3", winner=7)}
    for d in dirs.values():
        reg.publish(d)
    xs, _ = zoo_expected("mlp_digits")
    xs = xs[:16]
    want = {v: [Pipeline.from_loaded(Manifest.load(d / "manifest.json"), d, "litert", xnnpack=False)
                .run({INPUT: x[None]}) for x in xs] for v, d in dirs.items()}  # fmt: skip
    assert not np.array_equal(want["2"][0]["StatefulPartitionedCall:0"] if "StatefulPartitionedCall:0" in want["2"][0]
                              else next(iter(want["2"][0].values())), next(iter(want["3"][0].values())))  # fmt: skip

    reg_client = MqttClient(mosquitto.url, "soak-registry").start()
    reg.serve(reg_client)
    reg.republish(reg_client)
    proxy = CuttableProxy(mosquitto.port)
    daemons = Daemons(tmp_path, mosquitto.url, proxy.url, root)
    reports: dict[str, ReportedState] = {}
    cv = threading.Condition()

    def on_report(t, p):
        s = ReportedState.model_validate_json(p)
        with cv:
            reports[s.device_id] = s
            cv.notify_all()

    monitor = MqttClient(mosquitto.url, "soak-monitor").start()
    monitor.subscribe(f"{topics.PREFIX}/device/+/reported", on_report)
    caller = InferClient(MqttClient(mosquitto.url, "soak-caller").start())
    for name in (*DEVICES, "worker"):
        daemons.start(name)
    desired = {}
    top = dict.fromkeys(DEVICES, 1)
    for d in DEVICES:
        reg.deploy(reg_client, "mlp_digits", "1", [d])
        desired[d] = "1"

    counts = Counter()
    errors = Counter()
    mixed = []
    stop = threading.Event()

    def requester(dev: str):
        i = 0
        while not stop.is_set():
            k = i % len(xs)
            try:
                version, out = caller.infer(dev, {INPUT: xs[k][None]}, timeout=5.0)
            except EdgeMaasError as exc:
                msg = str(exc)
                assert msg.strip(), "an error without a message"
                errors["no reply within the timeout" if "no reply" in msg else msg[:120]] += 1
                counts["failed"] += 1
                time.sleep(0.05)
            else:
                ref = want[version][k]
                if not all(np.array_equal(out[n], ref[n]) for n in ref):
                    mixed.append((dev, version, k))
                counts["ok"] += 1
                counts[f"ok v{version}"] += 1
            i += 1

    threads = [threading.Thread(target=requester, args=(d,), daemon=True) for d in DEVICES]
    for t in threads:
        t.start()

    events = Counter()
    t_end = time.monotonic() + SOAK_S
    next_deploy = time.monotonic() + 3
    while time.monotonic() < t_end:
        time.sleep(rng.uniform(1.0, 3.0))
        if time.monotonic() >= next_deploy:
            d = rng.choice(DEVICES)
            if rng.random() < 0.3 and len(reg.catalog.deployments(d)) > 1:
                try:
                    desired[d] = reg.rollback(reg_client, d)[1]
                    events["rollback"] += 1
                except EdgeMaasError:
                    pass
            else:
                desired[d] = rng.choice(sorted(dirs))
                # going back to an older release is an operator's signed rollback: a plain deploy is
                # refused as a downgrade (the device may not have applied the newest one yet: compare
                # with the newest ever sent)
                back = int(desired[d]) < top[d]
                top[d] = max(top[d], int(desired[d]))
                reg.deploy(reg_client, "mlp_digits", desired[d], [d], rollback=back)
                events["rollback (deploy)" if back else "deploy"] += 1
            next_deploy = time.monotonic() + rng.uniform(3, 6)
        what = rng.choice(["broker", "cut", "kill-device", "kill-worker", "corrupt", "none"])
        events[what] += 1
        if what == "broker":
            mosquitto.restart(down_for=rng.uniform(0.2, 1.5))
        elif what == "cut":
            proxy.cut()
        elif what == "kill-device":
            d = rng.choice(DEVICES)
            daemons.kill(d)
            time.sleep(rng.uniform(0.1, 1.0))
            daemons.start(d)
        elif what == "kill-worker":
            daemons.kill("worker")
            time.sleep(rng.uniform(0.1, 1.0))
            daemons.start("worker")
        elif what == "corrupt":
            d = rng.choice(DEVICES)
            blobs = [p for p in (tmp_path / d).glob("*/*") if p.is_file() and len(p.name) == 64]
            if blobs:
                p = rng.choice(blobs)
                data = bytearray(p.read_bytes())
                data[rng.randrange(len(data))] ^= 0x40
                p.write_bytes(bytes(data))
                daemons.kill(d)  # the restart reads the damaged cache
                daemons.start(d)

    # calm: every device must converge on its desired version, healthy, online, and say so
    def converged():
        return all((s := reports.get(d)) and s.status == "online" and s.version == desired[d] and s.healthy
                   for d in DEVICES)  # fmt: skip

    with cv:
        ok = cv.wait_for(converged, timeout=90)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    summary = {"soak_s": SOAK_S, "events": dict(events), "kills": dict(daemons.kills), "proxy_cuts": proxy.cuts,
               "requests": dict(counts), "errors": dict(errors), "mixed": len(mixed),
               "final": {d: (reports[d].version, reports[d].healthy, reports[d].status) if d in reports else None
                         for d in DEVICES}, "desired": desired}  # fmt: skip
    out = Path(os.environ.get("EDGE_MAAS_OUT", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    (out / "chaos_soak.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    tails = {n: (tmp_path / f"{n}.log").read_text(errors="replace")[-3000:] for n in (*DEVICES, "worker")}
    try:
        assert ok, f"did not converge: {summary}\n" + "\n".join(f"--- {n}.log\n{t}" for n, t in tails.items())
        # the caller is a client too: after a late broker restart it may still be waiting to reconnect, and a
        # QoS 0 request sent meanwhile is lost by design (requests.py)
        deadline = time.monotonic() + 30
        while not caller.client.connected and time.monotonic() < deadline:
            time.sleep(0.1)
        for d in DEVICES:  # the reported version is the one that answers
            try:
                version, out_ = caller.infer(d, {INPUT: xs[0][None]}, timeout=10)
            except EdgeMaasError as exc:
                tail = (tmp_path / f"{d}.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"{exc} (caller: {caller.client.reconnects} reconnects, last disconnect "
                            f"{caller.client.last_disconnect}); {summary}\n--- {d}.log\n{tail}")  # fmt: skip
            assert version == desired[d] and all(np.array_equal(out_[n], want[version][0][n]) for n in out_)
        assert not mixed, mixed[:5]
        assert counts["ok"] > 0
    finally:
        daemons.stop_all()
        for c in (monitor, caller.client, reg_client):
            c.stop()
        proxy.close()

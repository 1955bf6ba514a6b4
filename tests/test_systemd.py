"""The systemd units in deploy/systemd/ and the daemons' notify protocol: `systemd-analyze verify` on the real
unit files, and the real `edge-maas device` / `edge-maas worker` processes talking to a notify socket the test
binds (as systemd would), against a real Mosquitto."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import MODELS
from test_cli import EXE, run

from edge_maas import systemd_notify
from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient
from edge_maas.transport.infer_client import InferClient
from edge_maas.transport.messages import ReportedState

UNITS = Path(__file__).resolve().parents[1] / "deploy" / "systemd"
INSTALLED = "/usr/local/bin/edge-maas"  # where the units expect `pip install edge_maas` to put the command


def _verify(unit_text: str, name: str, tmp_path: Path) -> list[str]:
    """Problems `systemd-analyze verify` finds in a unit: a nonzero exit, or any line about the unit (it exits 0
    on settings it ignores, e.g. a misspelled key or a bad value, so those lines count too).  ExecStart's
    binary is pointed at this venv's real `edge-maas` (verify checks that it exists and is executable)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if not sys.platform.startswith("linux"):
            pytest.skip("systemd units are checked on Linux only")
        pytest.fail("systemd-analyze is not installed (Debian: apt-get install systemd)")
    folder = tmp_path / uuid.uuid4().hex[:8]
    folder.mkdir()
    unit = folder / name
    unit.write_text(unit_text.replace(INSTALLED, str(Path(EXE).resolve())))
    res = subprocess.run([analyze, "verify", str(unit)], check=False, capture_output=True, text=True,
                         timeout=60, env={**os.environ, "SYSTEMD_LOG_COLOR": "0"})  # fmt: skip
    lines = [x for x in (res.stdout + res.stderr).splitlines() if name in x]
    if res.returncode != 0:
        lines.insert(0, f"exit {res.returncode}: {res.stderr.strip()}")
    return lines


def _settings(text: str) -> dict[str, str]:
    return dict(m.groups() for m in re.finditer(r"^(\w+)=(.*)$", text, re.MULTILINE))


@pytest.mark.parametrize("name", ["edge-maas-device.service", "edge-maas-worker.service"])
def test_unit_verifies_and_is_hardened(name, tmp_path):
    text = (UNITS / name).read_text()
    assert INSTALLED in text
    assert _verify(text, name, tmp_path) == []
    s = _settings(text)
    want = {
        "Type": "notify",
        "Restart": "on-failure",
        "WatchdogSec": "30s",
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
    }
    assert {k: s.get(k) for k in want} == want
    if "device" in name:  # the default cache_dir (/var/lib/edge_maas/cache) lies under StateDirectory
        assert s["StateDirectory"] == "edge_maas"
        assert s["ExecStart"].endswith(" device --config /etc/edge_maas/device.toml")
    else:  # the worker's blobs go to CacheDirectory through --cache
        assert s["CacheDirectory"] == "edge_maas-worker" and s["ExecStart"].endswith(" --cache %C/edge_maas-worker")


def test_verify_catches_broken_units(tmp_path):
    """The check above is not a rubber stamp: a misspelled value (verify exits 0 but warns), a misspelled key,
    and a unit without ExecStart (verify exits 1) are all reported."""
    name = "edge-maas-device.service"
    good = (UNITS / name).read_text()
    broken = [good.replace("Type=notify", "Type=notifyy"), good.replace("ProtectSystem=", "ProtectSytem="),
              good.replace("WatchdogSec=30s", "WatchdogSec=soon"), good.replace(INSTALLED, "/nonexistent/edge-maas"),
              re.sub(r"^ExecStart=.*$", "", good, flags=re.MULTILINE)]  # fmt: skip
    for text in broken:
        assert text != good
        assert _verify(text, name, tmp_path), text


def test_watchdog_interval_from_environment(monkeypatch):
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    assert systemd_notify.watchdog_interval() == pytest.approx(0.2)
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd_notify.watchdog_interval() == pytest.approx(0.2)
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # systemd watches another process
    assert systemd_notify.watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_PID")
    for bad in ("0", "soon", ""):
        monkeypatch.setenv("WATCHDOG_USEC", bad)
        assert systemd_notify.watchdog_interval() is None
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd_notify.notify(systemd_notify.READY) is False  # outside systemd: nothing, no error


class NotifySocket:
    """What systemd listens on: a datagram socket; ``abstract`` binds a name in Linux's abstract namespace
    (NOTIFY_SOCKET="@name"), else a path.  Collects (monotonic time, message) pairs on a thread."""

    def __init__(self, tmp_path: Path, abstract: bool):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"edge-maas-test-{uuid.uuid4().hex}"
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            path = tmp_path / f"notify-{uuid.uuid4().hex[:8]}"
            self.sock.bind(str(path))
            self.env = str(path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._done = False
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        while not self._done:
            try:
                self.messages.append((time.monotonic(), self.sock.recv(4096).decode()))
            except TimeoutError:
                pass

    def wait_for(self, message: str, timeout: float, count: int = 1) -> list[float]:
        """Times of the first ``count`` ``message`` datagrams, waiting up to ``timeout`` s for them."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            times = [t for t, m in list(self.messages) if m == message]
            if len(times) >= count:
                return times[:count]
            time.sleep(0.02)
        got = self.kinds()
        raise AssertionError(f"{count}x {message!r} not received within {timeout} s; got {len(got)}: {got[:8]}")

    def kinds(self) -> list[str]:
        return [m for _, m in self.messages]

    def close(self):
        self._done = True
        self._t.join(timeout=2)
        self.sock.close()


def _start(args: list[str], notify: NotifySocket) -> subprocess.Popen:
    env = {**os.environ, "NOTIFY_SOCKET": notify.env, "WATCHDOG_USEC": "400000"}
    env.pop("WATCHDOG_PID", None)
    return subprocess.Popen([EXE, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _watchdog_then_stop(proc: subprocess.Popen, notify: NotifySocket, ready_at: float) -> None:
    """WATCHDOG=1 follows READY=1 every WATCHDOG_USEC/2 (0.2 s, not the 0.5 s tick used outside systemd);
    SIGTERM then brings STOPPING=1 and a clean exit."""
    pings = notify.wait_for(systemd_notify.WATCHDOG, timeout=10, count=5)
    assert pings[0] > ready_at
    gaps = np.diff(pings)
    assert float(np.median(gaps)) < 0.35, gaps  # half of 400 ms, with room for a loaded machine
    proc.send_signal(signal.SIGTERM)
    stopping = notify.wait_for(systemd_notify.STOPPING, timeout=10)[0]
    assert proc.wait(timeout=20) == 0, proc.stderr.read()
    assert stopping > pings[-1]
    assert notify.kinds()[-1] == systemd_notify.STOPPING  # nothing after it


def test_worker_and_device_notify_systemd(mosquitto, tmp_path):
    """Real daemons under a fake systemd: the worker (notify socket at a path) says READY=1 once subscribed;
    the device (abstract socket) says READY=1 only after it restored its running version: a request sent the
    moment READY arrives is answered by version 1, deployed in an earlier run with the registry now gone."""
    key = tmp_path / "registry.key"
    run("keys", "new", "--out", key)
    run("split", MODELS / "mlp_digits.tflite", "--shards", "2", "--out", tmp_path / "v1")
    common = ["--root", tmp_path / "reg", "--key", key]
    run("registry", "publish", tmp_path / "v1", *common)
    profile = tmp_path / "dev.toml"
    profile.write_text(
        f'device_id = "sd-dev"\ncache_dir = "{tmp_path / "cache"}"\nregistry_key = "{key.with_suffix(".pub")}"\n'
        f'[runtime]\nbackend = "native"\nbackends_allowed = ["native"]\n[mqtt]\nbroker = "{mosquitto.url}"\n'
    )

    # an earlier life of the device: version 1 deployed and running, then the device and registry stop
    first = [subprocess.Popen([EXE, "registry", "serve", *map(str, common), "--broker", mosquitto.url],
                              stdout=subprocess.PIPE),
             subprocess.Popen([EXE, "device", "--config", str(profile)], stdout=subprocess.PIPE)]  # fmt: skip
    monitor = MqttClient(mosquitto.url, "sd-monitor").start()
    try:
        for p in first:
            assert p.stdout.readline()
        seen = threading.Event()
        monitor.subscribe(
            topics.reported("sd-dev"),
            lambda t, p: seen.set() if ReportedState.model_validate_json(p).version == "1" else None,
        )
        run("registry", "deploy", "mlp_digits@1", "--device", "sd-dev", *common, "--broker", mosquitto.url)
        assert seen.wait(30), "the device never reported mlp_digits@1"
    finally:
        for p in first:
            p.terminate()
            p.wait(timeout=20)

    x_name = json.loads((tmp_path / "v1" / "manifest.json").read_text())["inputs"][0]["name"]
    wsock, dsock = NotifySocket(tmp_path, abstract=False), NotifySocket(tmp_path, abstract=True)
    worker = _start(["worker", "--name", "w-sd", "--broker", mosquitto.url, "--registry-key",
                     str(key.with_suffix(".pub")), "--cache", str(tmp_path / "wcache")], wsock)  # fmt: skip
    device = _start(["device", "--config", str(profile)], dsock)
    try:
        w_ready = wsock.wait_for(systemd_notify.READY, timeout=30)[0]
        d_ready = dsock.wait_for(systemd_notify.READY, timeout=30)[0]
        assert wsock.kinds()[0] == dsock.kinds()[0] == systemd_notify.READY  # no watchdog ping before READY
        version, _ = InferClient(monitor).infer("sd-dev", {x_name: np.zeros((1, 64), np.int8)}, timeout=10)
        assert version == "1"
        _watchdog_then_stop(worker, wsock, w_ready)
        _watchdog_then_stop(device, dsock, d_ready)
    finally:
        monitor.stop()
        for p in (worker, device):
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        wsock.close()
        dsock.close()

"""The MaaS commands as an operator runs them: keys, registry publish/list/serve/deploy,
and the device daemon from a profile, against a real Mosquitto."""

from __future__ import annotations

import json
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path

from conftest import MODELS
from test_bad_input import assert_clean_error, cli
from test_cli import EXE, run

from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient
from edge_maas.transport.messages import ReportedState


def test_operator_flow(mosquitto, tmp_path):
    key = tmp_path / "registry.key"
    assert "public key" in run("keys", "new", "--out", key)
    run("split", MODELS / "mlp_digits.tflite", "--shards", "2", "--out", tmp_path / "v1")
    common = ["--root", tmp_path / "reg", "--key", key]
    assert "published mlp_digits@1" in run("registry", "publish", tmp_path / "v1", *common)
    assert "mlp_digits@1" in run("registry", "list", *common)

    with daemons(mosquitto.url, tmp_path, key, common, "cli-dev") as procs:
        seen = threading.Event()
        monitor = MqttClient(mosquitto.url, "monitor").start()
        monitor.subscribe(topics.reported("cli-dev"),
                          lambda t, p: seen.set() if ReportedState.model_validate_json(p).version == "1" else None)
        assert "set to mlp_digits@1" in run("registry", "deploy", "mlp_digits@1", "--device", "cli-dev", *common,
                                            "--broker", mosquitto.url)  # fmt: skip
        assert seen.wait(30), "the device never reported mlp_digits@1"
        monitor.stop()
        status = run("registry", "status", "--broker", mosquitto.url)
        assert "cli-dev" in status and "online" in status and "mlp_digits@1" in status and "healthy" in status
    assert procs[1].returncode == 0 and procs[2].returncode == 0


@contextmanager
def daemons(broker: str, tmp_path: Path, key: Path, common: list, device: str, worker: str = "w-cli"):
    """`edge-maas registry serve`, `edge-maas device` (profile DEVICE on the native backend) and `edge-maas worker`
    as subprocesses, each past its first line (connected and subscribed); terminated on exit.  Yields the three
    Popen objects (their return codes are set after the block)."""
    profile = tmp_path / f"{device}.toml"
    profile.write_text(
        f'device_id = "{device}"\ncache_dir = "{tmp_path / f"cache-{device}"}"\n'
        f'registry_key = "{key.with_suffix(".pub")}"\n'
        f'[runtime]\nbackend = "native"\nbackends_allowed = ["native"]\n[mqtt]\nbroker = "{broker}"\n'
    )
    procs = [
        subprocess.Popen([EXE, "registry", "serve", *map(str, common), "--broker", broker], stdout=subprocess.PIPE),
        subprocess.Popen([EXE, "device", "--config", str(profile)], stdout=subprocess.PIPE),
        subprocess.Popen([EXE, "worker", "--name", worker, "--broker", broker, "--registry-key",
                          str(key.with_suffix(".pub")), "--cache", str(tmp_path / f"wcache-{worker}")],
                         stdout=subprocess.PIPE),
    ]  # fmt: skip
    try:
        for p in procs:  # each prints one line once connected and subscribed
            assert p.stdout.readline()
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
            p.wait(timeout=10)


def test_bench_offload_writes_json_and_png(tmp_path):
    out = run("bench", "offload", "--settings", "100Mbit_2ms,1Mbit_50ms", "--requests", "2", "--pairs", "5",
              "--shards", "2", "--model", "ds_cnn_kws", "--out", tmp_path)  # fmt: skip
    assert "offload.png" in out
    report = json.loads((tmp_path / "offload.json").read_text())
    assert set(report["settings"]) == {"100Mbit_2ms", "1Mbit_50ms"}
    for r in report["settings"].values():  # every split measured; the oracle is the best of them
        splits = r["every_split_ms"]
        assert len(splits) == 3 and str(r["oracle_split"]) == min(splits, key=splits.get)
        assert len(r["planner_splits"]) == 5 and 0 <= r["planner_picked_oracle_split"] <= 1  # --pairs
    assert (tmp_path / "offload.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_clean_error(cli("bench", "offload", "--settings", "5G", "--out", tmp_path), "unknown link setting 5G")
    assert_clean_error(cli("bench", "offload", "--pairs", "0", "--out", tmp_path), "--pairs must be at least 1")

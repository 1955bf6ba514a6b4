"""The CLI contract, run as a user runs it: the installed `edge-maas` script."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import MODELS, zoo_expected

from edge_maas.config import ConfigError, load_profile

FIRMWARE = Path(__file__).parent.parent / "firmware_configs"
EXE = shutil.which("edge-maas") or str(Path(sys.executable).parent / "edge-maas")


def run(*args):
    res = subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_split_run_inspect_round_trip(tmp_path):
    model = MODELS / "branchy_cnn.tflite"
    out = run("split", model, "--shards", "3", "--out", tmp_path / "s")
    assert "3 shards" in out
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert [s["file"] for s in manifest["shards"]] == ["shard_00.tflite", "shard_01.tflite", "shard_02.tflite"]
    xs, expected = zoo_expected("branchy_cnn")
    np.save(tmp_path / "x.npy", xs[0][None])
    run("run", tmp_path / "s" / "manifest.json", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy",
        "--no-xnnpack")
    assert np.load(tmp_path / "y.npy")[0].tobytes() == expected[0].tobytes()
    run("run", tmp_path / "s" / "manifest.json", "--input", tmp_path / "x.npy", "--output", tmp_path / "n.npy",
        "--backend", "native")
    assert np.load(tmp_path / "n.npy")[0].tobytes() == expected[0].tobytes()
    # the whole model through the same command, and an .npz keyed by tensor name
    name = manifest["inputs"][0]["name"]
    np.savez(tmp_path / "x.npz", **{name: xs[1]})
    run("run", model, "--input", tmp_path / "x.npz", "--output", tmp_path / "y.npz", "--no-xnnpack")
    y = np.load(tmp_path / "y.npz")
    assert y[manifest["outputs"][0]["name"]][0].tobytes() == expected[1].tobytes()
    text = run("inspect", tmp_path / "s" / "manifest.json")
    assert "shard 2 shard_02.tflite" in text and "MACs" in text
    assert "CONV_2D" in run("inspect", model)


def test_split_at_tensors_and_every_op(tmp_path):
    model = MODELS / "mlp_digits.tflite"
    first = "mlp_digits_1/dense_1/MatMul;mlp_digits_1/dense_1/Relu;mlp_digits_1/dense_1/BiasAdd"
    assert "2 shards" in run("split", model, "--at", first, "--out", tmp_path / "a")
    assert "4 shards" in run("split", model, "--every-op", "--out", tmp_path / "b")
    assert "2 shards" in run("split", model, "--shards", "2", "--balance", "latency", "--out", tmp_path / "c")


def test_demo_reports_bit_exact_and_accuracy(tmp_path):
    out = run("demo", "--out", tmp_path / "d", "--config", FIRMWARE / "rpi4.toml")
    assert "byte for byte on 450/450" in out
    assert "held-out digits, int8 pipeline: 0.98" in out
    assert "built-in kernels: ok" in out
    # the MaaS part: embedded broker, signed publish, device fetch + health check, infer over MQTT
    assert "embedded amqtt broker" in out and "golden health check ok" in out
    assert "450 infer requests over MQTT: reply == local whole model on 450/450" in out
    # the services story (issue 10): two tasks, a third by transfer learning shipping only its head, one request
    # for three tasks, a head hot-swapped under load, rollback, a device that offloads the submodel it cannot hold
    assert re.search(r"task parity trained on \d+ held-out digits .*float (0\.\d+), int8 (0\.\d+)", out)
    assert "1 of 4 submodels new" in out and "backbone kept loaded, not refetched" in out
    assert "backbone ran once" in out and "450 requests for 3 tasks: 450/450 byte-equal" in out
    assert re.search(r"under load: \d+ requests .* 0 failed, 0 wrong bytes", out)
    assert "back on digits@3" in out and "50/50" in out
    assert "on cam-2: 450/450 byte-equal" in out and "cannot run: it is not held here and no worker answered" in out


def test_profiles_validate(tmp_path):
    for p in FIRMWARE.glob("*.toml"):
        assert load_profile(p).runtime.threads >= 1
    bad = tmp_path / "bad.toml"
    bad.write_text('device_id = "x"\n[runtime]\nthreads = 0\n')
    with pytest.raises(ConfigError, match="runtime.threads"):
        load_profile(bad)
    bad.write_text("device_id = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_profile(bad)

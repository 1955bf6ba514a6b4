"""Operator mistakes on the real CLI: each gives one `edge-maas: error:` line and exit 2, never a traceback,
and creates nothing it should not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import MODELS
from test_bad_input import assert_clean_error, cli, float_model  # noqa: F401 - float_model is a fixture

REPO = Path(__file__).resolve().parent.parent
MLP = MODELS / "mlp_digits.tflite"
SHIPPED_WORKER = REPO / "firmware_configs" / "workers" / "cloud_cpu.toml"


@pytest.fixture
def pub_key(tmp_path) -> Path:
    res = cli("keys", "new", "--out", tmp_path / "reg.key")
    assert res.returncode == 0, res.stderr
    return tmp_path / "reg.pub"


def test_unwritable_split_out(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert_clean_error(cli("split", MLP, "--shards", "2", "--out", blocker / "out"), "cannot write the split")
    assert_clean_error(cli("split", MLP, "--shards", "2", "--out", blocker), "cannot write the split")
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        assert_clean_error(cli("split", MLP, "--shards", "2", "--out", ro / "out"), "Permission denied")
    assert sorted(p.name for p in tmp_path.iterdir()) in (["a_file"], ["a_file", "ro"])


def test_unwritable_run_output_is_one_line(tmp_path):
    """An OSError from a user path (here --output under a file) is one line from cli.main."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 64), np.int8))
    assert_clean_error(cli("run", MLP, "--input", x, "--output", blocker / "y.npy"), str(blocker))


def test_device_profile_with_missing_registry_key(tmp_path):
    profile = tmp_path / "dev.toml"
    profile.write_text(f'device_id = "d1"\ncache_dir = "{tmp_path / "cache"}"\n'
                       f'registry_key = "{tmp_path / "missing.pub"}"\n'
                       '[mqtt]\nbroker = "mqtt://127.0.0.1:9"\n')  # fmt: skip
    assert_clean_error(cli("device", "--config", profile), "missing.pub")
    assert not (tmp_path / "cache").exists()  # refused before creating anything


def test_worker_with_missing_registry_key(tmp_path):
    res = cli("worker", "--name", "w1", "--registry-key", tmp_path / "missing.pub", "--cache", tmp_path / "c",
              "--broker", "mqtt://127.0.0.1:9")  # fmt: skip
    assert_clean_error(res, "missing.pub")
    assert not (tmp_path / "c").exists()


def test_shipped_worker_profile_without_its_files(tmp_path):
    """firmware_configs/workers/cloud_cpu.toml names /etc/edge_maas/{registry.pub,worker.password}: on a machine
    without them the worker says which file is missing, in one line."""
    if Path("/etc/edge_maas").exists():
        pytest.skip("this machine has /etc/edge_maas")
    assert_clean_error(cli("worker", "--config", SHIPPED_WORKER), "/etc/edge_maas/registry.pub")


def test_shipped_worker_profile_password_file(tmp_path, pub_key):
    if Path("/etc/edge_maas/worker.password").exists():
        pytest.skip("this machine has the password file")
    res = cli("worker", "--config", SHIPPED_WORKER, "--registry-key", pub_key, "--cache", tmp_path / "c")
    assert_clean_error(res, "password file /etc/edge_maas/worker.password")
    assert not (tmp_path / "c").exists()


def test_worker_profile_missing_tls_file(tmp_path, pub_key):
    profile = tmp_path / "w.toml"
    profile.write_text(f'name = "w2"\ncache_dir = "{tmp_path / "c"}"\nregistry_key = "{pub_key}"\n'
                       f'[mqtt]\nbroker = "mqtts://127.0.0.1:9"\nca_file = "{tmp_path / "ca.pem"}"\n')  # fmt: skip
    assert_clean_error(cli("worker", "--config", profile), "mqtt.ca_file")


NET = ["--broker", "mqtt://127.0.0.1:9"]


@pytest.mark.parametrize("command", [["list"], ["deploy", "m@1", "--device", "d", *NET],
                                     ["rollback", "--device", "d", *NET], ["serve", *NET]])  # fmt: skip
def test_registry_root_typo_is_refused(tmp_path, pub_key, command):
    """Only publish creates a registry: elsewhere a mistyped --root used to become a new, empty one."""
    typo = tmp_path / "TYPO"
    res = cli("registry", *command, "--root", typo, "--key", pub_key.with_suffix(".key"))
    assert_clean_error(res, f"no registry at {typo}")
    assert not typo.exists()


def test_registry_list_on_a_published_registry(tmp_path, pub_key):
    """publish still creates the registry; list then works without creating anything else."""
    assert cli("split", MLP, "--shards", "2", "--out", tmp_path / "s").returncode == 0
    key = pub_key.with_suffix(".key")
    res = cli("registry", "publish", tmp_path / "s", "--root", tmp_path / "reg", "--key", key)
    assert res.returncode == 0, res.stderr
    res = cli("registry", "list", "--root", tmp_path / "reg", "--key", key)
    assert res.returncode == 0 and "mlp_digits@1" in res.stdout, res.stderr


def test_split_float_model_by_shards(float_model, tmp_path):  # noqa: F811 - pytest fixture
    """--shards used to plan first and say 'cannot cut 1 ops into 2 non-empty shards'."""
    for how in (["--shards", "2"], ["--every-op"], ["--shards", "1"]):
        res = cli("split", float_model, *how, "--out", tmp_path / "o")
        assert_clean_error(res, "not a full-integer int8 model")
        assert "non-empty shards" not in res.stderr
    assert not (tmp_path / "o").exists()


def test_inspect_into_a_closed_pipe():
    """`edge-maas inspect MODEL | head`: the reader is gone before we write; no BrokenPipeError traceback."""
    r, w = os.pipe()
    os.close(r)
    try:
        res = subprocess.run([sys.executable, "-m", "edge_maas.cli", "inspect", str(MODELS / "branchy_cnn.tflite")],
                             stdout=w, stderr=subprocess.PIPE, text=True, timeout=120)  # fmt: skip
    finally:
        os.close(w)
    assert "Traceback" not in res.stderr and "BrokenPipe" not in res.stderr, res.stderr
    assert res.returncode == 1  # as the Python docs' recipe: quiet, exit status 1


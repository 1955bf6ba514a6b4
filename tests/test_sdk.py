"""The Python SDK (edge_maas.Client, edge_maas.AsyncClient) driving the operator flow against a real Mosquitto and the
registry, device and worker daemons as subprocesses, next to the CLI: keys, split and publish through the CLI;
deploy, watch, infer, status, rollback through the SDK; typed errors within their timeouts."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest
from conftest import MODELS, zoo_expected
from test_bad_input import assert_clean_error, cli
from test_cli import run
from test_cli_maas import daemons

import edge_maas
from edge_maas.backends.litert import interpreter_module
from edge_maas.errors import (
    DeviceOfflineError,
    DeviceUnknownError,
    EdgeMaasError,
    PayloadTooLargeError,
    TensorMismatchError,
    UnknownTaskError,
)
from edge_maas.registry.catalog import RegistryError
from edge_maas.transport.local_broker import Mosquitto, free_port


def _local_run(x: np.ndarray) -> np.ndarray:
    """The whole model on the interpreter's built-in kernels, here in the test process."""
    mod, _ = interpreter_module()
    it = mod.Interpreter(model_path=str(MODELS / "mlp_digits.tflite"),
                         experimental_op_resolver_type=mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)  # fmt: skip
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def _only(outputs) -> np.ndarray:
    (arr,) = outputs.values()
    return arr


async def _async_flow(url: str, name: str, x: np.ndarray):
    """AsyncClient: a watch's first item is the device's current report; two concurrent infers share one
    connection and both answer."""
    async with edge_maas.AsyncClient(url, name="sdk-async") as ac:
        async with ac.watch("sdk-dev", timeout=10) as w:
            first = await anext(w)
        a, b = await asyncio.gather(ac.infer("sdk-dev", {name: x}), ac.infer("sdk-dev", {name: x}, timeout=10))
        st = await ac.status()
        return first, a, b, st


@pytest.mark.slow
def test_operator_flow_through_cli_and_sdk(mosquitto, tmp_path):
    key = tmp_path / "registry.key"
    run("keys", "new", "--out", key)
    run("split", MODELS / "mlp_digits.tflite", "--shards", "2", "--out", tmp_path / "v1")
    run("split", MODELS / "mlp_digits.tflite", "--shards", "3", "--model-version", "2", "--out", tmp_path / "v2")
    common = ["--root", tmp_path / "reg", "--key", key]
    assert "published mlp_digits@1" in run("registry", "publish", tmp_path / "v1", *common)
    assert "published mlp_digits@2" in run("registry", "publish", tmp_path / "v2", *common)
    name = json.loads((tmp_path / "v1" / "manifest.json").read_text())["inputs"][0]["name"]
    xs, ys = zoo_expected("mlp_digits")
    x = xs[:1]
    local = _local_run(x)
    assert local.tobytes() == ys[:1].tobytes()  # the local run is the reference the zoo recorded

    with (
        daemons(mosquitto.url, tmp_path, key, common, "sdk-dev", worker="w-sdk") as procs,
        edge_maas.Client(mosquitto.url, registry_root=tmp_path / "reg", signing_key=key) as c,
    ):
        # deploy through the SDK; the watch is registered first, so no report after this line is missed
        with c.watch("sdk-dev", timeout=30) as w:
            sent = c.deploy("mlp_digits", "1", ["sdk-dev"])
            assert [(s.device_id, s.version) for s in sent] == [("sdk-dev", "1")]
            for s in w:
                if s.version == "1" and s.healthy:
                    break
            else:
                pytest.fail("the watch ended before sdk-dev reported mlp_digits@1 healthy")
        assert s.status == "online" and s.model == "mlp_digits"

        # infer: the bytes of the local run, and of `edge-maas infer`
        out = c.infer("sdk-dev", {name: x}, timeout=10)
        assert out.version == "1" and out.device == "sdk-dev"
        assert _only(out).dtype == np.int8 and _only(out).tobytes() == local.tobytes()
        np.save(tmp_path / "x.npy", x)
        said = run("infer", "sdk-dev", "--input", tmp_path / "x.npy", "--input-name", name,
                   "--output", tmp_path / "y.npz", "--broker", mosquitto.url)  # fmt: skip
        assert "running version 1" in said
        with np.load(tmp_path / "y.npz") as y:
            assert {k: y[k].tobytes() for k in y.files} == {k: v.tobytes() for k, v in out.items()}

        # status: the device's typed report and the worker's
        st = c.status()
        dev = st.devices["sdk-dev"]
        assert (dev.status, dev.model, dev.version, dev.healthy) == ("online", "mlp_digits", "1", True)
        assert st.workers["w-sdk"].status == "online"

        # a second version, then a signed rollback through the SDK, watched until it lands
        c.deploy("mlp_digits", "2", "sdk-dev")
        assert c.wait_for("sdk-dev", "2", timeout=30).healthy
        out2 = c.infer("sdk-dev", {name: x})
        assert out2.version == "2" and _only(out2).tobytes() == local.tobytes()  # 3 shards: same bytes
        assert c.rollback(["sdk-dev"]) == {"sdk-dev": ("mlp_digits", "1")}
        back = c.wait_for("sdk-dev", "1", timeout=30)
        assert back.healthy and back.status == "online"
        assert c.infer("sdk-dev", {name: x}).version == "1"

        # asyncio: watch and infer
        first, a, b, ast = asyncio.run(_async_flow(mosquitto.url, name, x))
        assert first.device_id == "sdk-dev" and first.version == "1"
        assert a.version == b.version == "1" and _only(a).tobytes() == _only(b).tobytes() == local.tobytes()
        assert ast.devices["sdk-dev"].version == "1"

        # typed errors, each within its timeout
        with pytest.raises(UnknownTaskError, match="nope"):
            c.infer("sdk-dev", {name: x}, tasks="nope")
        t0 = time.monotonic()
        with pytest.raises(DeviceUnknownError, match="no-such-dev"):
            c.infer("no-such-dev", {name: x}, timeout=1.5)
        assert time.monotonic() - t0 < 1.5 + 2.0 + 1.0  # the timeout, at most the first status sync, slack
        assert_clean_error(cli("infer", "no-such-dev", "--input", tmp_path / "x.npy", "--timeout", "1",
                               "--broker", mosquitto.url), "no-such-dev", "has ever reported")  # fmt: skip

        # the device stops cleanly: the watch sees it offline, and infer refuses at once
        procs[1].terminate()
        assert procs[1].wait(timeout=10) == 0
        assert c.wait_for("sdk-dev", version=None, healthy=None, status="offline", timeout=10)
        t0 = time.monotonic()
        with pytest.raises(DeviceOfflineError, match="sdk-dev is offline"):
            c.infer("sdk-dev", {name: x}, timeout=10)
        assert time.monotonic() - t0 < 1.0
    assert procs[2].returncode == 0


def test_client_ids_errors_and_limits(tmp_path):
    """Unique ids by default; the errors raised before anything is sent; a request over the broker's packet limit
    (stated in its MQTT 5 CONNACK) is refused as PayloadTooLargeError, not left to time out."""
    broker = Mosquitto(tmp_path, extra=("max_packet_size 4096",)).start()
    try:
        with edge_maas.Client(broker.url) as a, edge_maas.Client(broker.url) as b:
            assert a.client_id != b.client_id and a.client_id.startswith("sdk-")
            t0 = time.monotonic()
            with pytest.raises(PayloadTooLargeError, match="maximum packet size of 4096"):
                a.infer("cam-1", {"x": np.zeros((1, 8192), np.int8)}, timeout=10)
            assert time.monotonic() - t0 < 2.0
            with pytest.raises(TensorMismatchError, match="float64"):
                a.infer("cam-1", {"x": np.zeros((1, 4))})
            with pytest.raises(RegistryError, match="signing_key"):
                a.deploy("m", "1", ["cam-1"])
            assert a.status().devices == {}
            with a.watch(timeout=0.2) as w:
                assert list(w) == []
        with pytest.raises(EdgeMaasError, match="no connection to the broker"):
            edge_maas.Client(f"mqtt://127.0.0.1:{free_port()}", connect_timeout=0.5).close()  # nothing listens there
    finally:
        broker.stop()

"""The accelerator backend (torch accumulators on a GPU when present, here torch on the CPU,
requantized by the native output stage) gives the interpreter's bytes on every zoo model,
whole and split; the per-op tests (oneop.native_matches_interpreter) check it op by op."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ZOO_NAMES, zoo_bytes, zoo_expected

pytest.importorskip("torch")

from edge_maas.backends import make_backend  # noqa: E402
from edge_maas.backends.accel import AccelBackend, accel_device  # noqa: E402
from edge_maas.errors import BackendUnavailableError  # noqa: E402
from edge_maas.manifest import Manifest  # noqa: E402
from edge_maas.partition import plan_balanced, split_model  # noqa: E402
from edge_maas.partition.costs import graph_macs  # noqa: E402
from edge_maas.pipeline import Pipeline  # noqa: E402
from edge_maas.tflite import load_graph  # noqa: E402
from test_offload import _device, _inputs, cloud  # noqa: E402, F401 - the fixture


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_whole_zoo_model_matches_the_interpreter(name):
    b = make_backend("accel", zoo_bytes(name))
    xs, expected = zoo_expected(name)
    (i,), (o,) = [s.name for s in b.inputs], [s.name for s in b.outputs]
    for k in range(len(xs)):
        assert np.array_equal(b.run({i: xs[k : k + 1]})[o], expected[k : k + 1]), (name, k)


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_split_pipeline_on_accel_matches(name, tmp_path):
    blob = zoo_bytes(name)
    g = load_graph(blob)
    split_model(g, plan_balanced(g, 3, graph_macs(g)), tmp_path, name, source_bytes=blob)
    pipe = Pipeline.from_loaded(Manifest.load(tmp_path / "manifest.json"), tmp_path, "accel")
    xs, expected = zoo_expected(name)
    (o,) = [s.name for s in pipe.outputs]
    for k in range(4):
        assert np.array_equal(pipe.run({pipe.inputs[0].name: xs[k : k + 1]})[o], expected[k : k + 1])


def test_device_choice():
    import torch

    assert accel_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    assert accel_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailableError, match="no CUDA GPU"):
            AccelBackend(zoo_bytes("mlp_digits"), device="cuda")


def test_offload_worker_on_the_accel_backend(mosquitto, cloud):
    """`edge-maas worker --backend accel`: installs through the verified path (golden health
    check on accel), serves every split of branchy_cnn byte-identical to all-local."""
    w = cloud.worker("wa", backend="accel", options={"threads": 1})
    dev = _device(mosquitto, cloud.local, cloud.rec)
    for x in _inputs(cloud.local, 3, seed=5):
        want = cloud.local.run(x)
        for split in range(3):
            out, where = dev.run(x, split)
            assert where == "remote:wa" and all(np.array_equal(out[k], v) for k, v in want.items())
    assert w.status().backend == "accel"
    dev.client.stop()

"""Shared fixtures: the model zoo and the interpreter run the way tests need it."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

from edge_maas import zoo
from edge_maas.backends.litert import interpreter_module
from edge_maas.zoo import MODELS  # noqa: F401 - re-exported for tests

#: the interpreter the suite compares with: "ai-edge-litert", or "tflite-runtime" in scripts/test_legacy.sh
INTERPRETER = interpreter_module()[1]


def litert_semantics(why: str) -> pytest.MarkDecorator:
    """Skip on tflite-runtime (the legacy run): the test compares with ai-edge-litert's kernels, the semantics
    edge_maas implements, and tflite-runtime 2.14's differ as ``why`` says (observed in scripts/test_legacy.sh)."""
    return pytest.mark.skipif(INTERPRETER != "ai-edge-litert", reason=f"tflite-runtime 2.14 differs: {why}")


def skip_unless_litert_semantics(why: str) -> None:
    """The same, from inside a test (for one parameter of it)."""
    if INTERPRETER != "ai-edge-litert":
        pytest.skip(f"tflite-runtime 2.14 differs: {why}")


ZOO = zoo.index()
ZOO_NAMES = zoo.names()
zoo_bytes = zoo.model_bytes
zoo_expected = zoo.expected


def publish_split(tmp_path, name: str = "branchy_cnn", model: str = "branchy", shards: int = 3):
    """A registry at tmp_path/reg with release key tmp_path/k, holding zoo model ``name`` split into ``shards``
    (tmp_path/split) and published as ``model``: (registry, its version record, the public key's path)."""
    from edge_maas.partition import plan_balanced, split_model
    from edge_maas.partition.costs import graph_macs
    from edge_maas.registry import signing
    from edge_maas.registry.service import Registry
    from edge_maas.tflite import load_graph

    pub = signing.new_key(tmp_path / "k")
    reg = Registry(tmp_path / "reg", tmp_path / "k")
    blob = zoo_bytes(name)
    g = load_graph(blob)
    split_model(g, plan_balanced(g, shards, graph_macs(g)), tmp_path / "split", model, source_bytes=blob)
    return reg, reg.publish(tmp_path / "split"), pub


class ReportedLog:
    """Every reported state a device publishes (``states``, in order), with ``cv`` notified on each: wait on it with
    ``with log.cv: log.cv.wait_for(...)`` (callbacks arrive on paho's network thread)."""

    def __init__(self, client, device_id: str):
        from edge_maas.transport import topics

        self.states: list = []
        self.cv = threading.Condition()
        client.subscribe(topics.reported(device_id), self._on_report)

    def _on_report(self, topic: str, payload: bytes) -> None:
        from edge_maas.transport.messages import ReportedState

        with self.cv:
            self.states.append(ReportedState.model_validate_json(payload))
            self.cv.notify_all()


def all_tensors(model_bytes: bytes, feed: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
    """Every tensor of the whole model after one run on built-in kernels, by index."""
    mod, _ = interpreter_module()
    it = mod.Interpreter(
        model_content=model_bytes,
        experimental_op_resolver_type=mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        experimental_preserve_all_tensors=True,
    )
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], feed[d["name"]])
    it.invoke()
    out = {}
    for d in it.get_tensor_details():
        try:
            out[d["index"]] = it.get_tensor(d["index"])
        except ValueError:  # tensors without data (e.g. unused optional inputs)
            pass
    return out


@pytest.fixture(params=ZOO_NAMES)
def zoo_name(request) -> str:
    return request.param


@pytest.fixture
def mosquitto(tmp_path):
    """A real Mosquitto 2 on a free port with a generated config; stopped after the test."""
    from edge_maas.transport.local_broker import MOSQUITTO, Mosquitto

    if not shutil.which(MOSQUITTO):
        pytest.fail("mosquitto is not installed: run scripts/setup.sh (installs it from Debian's packages)")
    broker = Mosquitto(tmp_path).start()
    yield broker
    broker.stop()

"""Shared fixtures: the model zoo and the interpreter run the way tests need it."""

from __future__ import annotations

import shutil

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

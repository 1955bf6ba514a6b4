"""The committed zoo is what zoo.json says, and the digits model is accurate
through a split pipeline."""

from __future__ import annotations

import hashlib

import numpy as np
from conftest import MODELS, ZOO, zoo_bytes

from edge_maas.datasets import digits_test_int8
from edge_maas.partition import plan_every_op, split_model
from edge_maas.pipeline import Pipeline
from edge_maas.tflite import load_graph


def test_zoo_files_match_index():
    assert set(ZOO) == {"mlp_digits", "ds_cnn_kws", "mobilenetv2_035_96", "branchy_cnn", "mobilenetv1_025_96",
                        "resnet8_32", "speech_dm8"}  # fmt: skip
    for name, entry in ZOO.items():
        blob = zoo_bytes(name)
        assert len(blob) < 1 << 20
        assert hashlib.sha256(blob).hexdigest() == entry["sha256"]
        assert (MODELS / f"{name}.expected.npz").exists()
        assert entry["distinct_output_values"] > 1, "expected outputs should not be one constant"


def test_digits_accuracy_after_split(tmp_path):
    blob = zoo_bytes("mlp_digits")
    g = load_graph(blob)
    split_model(g, plan_every_op(g), tmp_path, "mlp_digits", source_bytes=blob)
    pipe = Pipeline.from_manifest(tmp_path / "manifest.json", xnnpack=False)
    quant = g.tensors[g.inputs[0]].quant
    q, y = digits_test_int8(quant.scale[0], quant.zero_point[0])
    preds = [int(np.argmax(pipe.run({pipe.inputs[0].name: row})[pipe.outputs[0].name])) for row in q]
    acc = float(np.mean(np.array(preds) == y))
    assert acc == ZOO["mlp_digits"]["int8_accuracy"]
    assert acc >= 0.95

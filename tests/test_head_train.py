"""Transfer learning of a new task (issue 10, item 3): features from a real backbone cut at a boundary tensor, a
head trained on few real samples (scikit-learn's digits), quantized to full-integer int8 by TFLite's rules.

Proves: the int8 head is within 1 point of its float classifier on held-out digits; the head's bytes are the same on
the interpreter and on the native kernels; its input is exactly the boundary tensor; features from a .tflite cut and
from a split manifest are the whole model's tensor; bad training data gives one clear error each."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import all_tensors
from edge_maas.kernels import quantize as qk

from edge_maas import zoo
from edge_maas.backends.litert import LiteRTBackend
from edge_maas.backends.native import NativeBackend
from edge_maas.datasets import digits_split
from edge_maas.heads.features import FeatureError, Features, extract_features
from edge_maas.heads.train import (
    SOFTMAX_SCALE,
    SOFTMAX_ZERO_POINT,
    TrainingDataError,
    subset,
    train_from_backbone,
    train_head,
)
from edge_maas.partition.plan import plan_at_tensors
from edge_maas.partition.split import split_model
from edge_maas.tflite.graph import load_graph

BACKBONE = zoo.model_path("mlp_digits")
GRAPH = load_graph(BACKBONE)
AT = GRAPH.tensors[GRAPH.ops[0].outputs[0]].name  # the first hidden layer's output, int8[1, 48]
N_FEW = 100  # training samples for the new task: a few per class
TASKS = {"ge5": lambda y: y >= 5, "parity": lambda y: y % 2}


def _quantize(x: np.ndarray) -> np.ndarray:
    """Digits pixels quantized as the backbone's input (by the compiled kernel, as the interpreter would)."""
    q = GRAPH.tensors[GRAPH.inputs[0]].quant
    out = np.empty(x.size, np.int8)
    qk.quantize(np.ascontiguousarray(x).ravel(), q.scale[0], q.zero_point[0], out)
    return out.reshape(len(x), 64)


@pytest.fixture(scope="module")
def digits():
    x_train, x_test, y_train, y_test = digits_split()  # the backbone was trained for class10 on x_train
    f_train = extract_features(BACKBONE, AT, _quantize(x_train))
    f_test = extract_features(BACKBONE, AT, _quantize(x_test))
    return f_train, y_train, f_test, y_test


@pytest.mark.parametrize("hidden", [None, 16])
@pytest.mark.parametrize("task", sorted(TASKS))
def test_new_task_int8_within_one_point_and_native_identical(digits, task, hidden):
    f_train, y_train, f_test, y_test = digits
    label = TASKS[task]
    head = train_head(subset(f_train, np.arange(N_FEW)), label(y_train[:N_FEW]), task, hidden=hidden)
    acc = head.evaluate(f_test, label(y_test))
    print(f"\n{task} hidden={hidden}: {N_FEW} training samples, {acc.n} held out: float {acc.float:.4f}, "
          f"int8 {acc.int8:.4f}, head {len(head.model)} bytes")  # fmt: skip
    assert acc.int8 >= acc.float - 0.01
    assert acc.float > 0.8  # the backbone's features carry the new task (chance is ~0.5)
    # the bytes a device gets are the same whichever exact backend runs the head
    lit, nat = head.run(f_test), head.run(f_test, backend="native")
    assert lit.dtype == nat.dtype == np.int8 and lit.tobytes() == nat.tobytes()
    # the golden pair replays on both backends
    g_in = {t.name: t.to_array() for t in head.golden.inputs}
    g_out = {t.name: t.to_array() for t in head.golden.outputs}
    for b in (LiteRTBackend(head.model, xnnpack=False), NativeBackend(head.model)):
        assert {k: v.tobytes() for k, v in b.run(g_in).items()} == {k: v.tobytes() for k, v in g_out.items()}
    assert any((g_in[AT].reshape(1, -1) == row).all() for row in f_train.values[:N_FEW])  # a training sample


def test_head_io_is_the_boundary_tensor(digits):
    f_train, y_train, _, _ = digits
    head = train_head(subset(f_train, np.arange(N_FEW)), y_train[:N_FEW] >= 5, "ge5", hidden=8)
    g = load_graph(head.model)
    (x,), (y,) = [g.tensors[i] for i in g.inputs], [g.tensors[i] for i in g.outputs]
    b = GRAPH.by_name[AT]
    assert (x.name, x.shape, x.dtype, x.quant.scale, x.quant.zero_point) == \
        (b.name, b.shape, b.dtype, b.quant.scale, b.quant.zero_point)  # fmt: skip
    assert (y.shape, y.quant.scale, y.quant.zero_point) == ((1, 2), (SOFTMAX_SCALE,), (SOFTMAX_ZERO_POINT,))
    assert [op.op for op in g.ops] == ["FULLY_CONNECTED", "FULLY_CONNECTED", "SOFTMAX"]
    w = g.tensors[g.ops[0].inputs[1]]
    assert w.dtype == "int8" and len(w.quant.scale) == 8 and set(w.quant.zero_point) == {0}  # per channel
    assert np.abs(g.constant(w)).max(axis=1).tolist() == [127] * 8  # symmetric: max|w| maps to 127
    assert g.tensors[g.ops[0].inputs[2]].dtype == "int32"
    assert head.classes == (False, True)


def test_features_equal_whole_model_tensor_tflite_and_manifest(digits, tmp_path):
    f_train, _, _, _ = digits
    x = _quantize(digits_split()[0][:5])
    blob = BACKBONE.read_bytes()
    whole = np.concatenate([all_tensors(blob, {GRAPH.tensors[GRAPH.inputs[0]].name: r[None]})[GRAPH.by_name[AT].index]
                            for r in x])  # fmt: skip
    assert np.array_equal(f_train.values[:5], whole)
    split_model(GRAPH, plan_at_tensors(GRAPH, [AT]), tmp_path, "mlp_digits", source_bytes=blob)
    for backend in ("litert", "native"):
        got = extract_features(tmp_path / "manifest.json", AT, x, backend=backend)
        assert np.array_equal(got.values, whole) and got.boundary.scale == (GRAPH.by_name[AT].quant.scale[0],)
    with pytest.raises(FeatureError, match="no boundary tensor named 'nope'"):
        extract_features(tmp_path / "manifest.json", "nope", x)


def test_4d_boundary_is_flattened_by_reshape():
    """A conv backbone's (1, 8, 8, 56) boundary: the head reads it as is and flattens it itself."""
    g = load_graph(zoo.model_path("branchy_cnn"))
    at = g.tensors[g.ops[17].outputs[0]].name
    rng = np.random.default_rng(0)
    feats = extract_features(zoo.model_path("branchy_cnn"), at, rng.integers(-128, 128, (40, 32, 32, 3), dtype=np.int8))
    assert feats.values.shape == (40, 8, 8, 56)
    y = feats.dequantize()[:, ::7].mean(axis=1) > np.median(feats.dequantize()[:, ::7].mean(axis=1))
    head = train_head(feats, y, "bright", hidden=4)
    hg = load_graph(head.model)
    assert [op.op for op in hg.ops] == ["RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED", "SOFTMAX"]
    assert hg.tensors[hg.inputs[0]].shape == (1, 8, 8, 56)
    assert head.run(feats).tobytes() == head.run(feats, backend="native").tobytes()


def test_train_from_npz_reports_holdout(tmp_path):
    x_train, _, y_train, _ = digits_split()
    np.savez(tmp_path / "train.npz", x=_quantize(x_train[:200]), y=y_train[:200] % 2)
    head, acc = train_from_backbone(BACKBONE, AT, tmp_path / "train.npz", "parity", holdout=0.25)
    assert head.n_train == 150 and acc.n == 50 and acc.int8 >= acc.float - 0.01
    out = head.write(tmp_path / "parity.tflite")
    assert LiteRTBackend(out.read_bytes(), xnnpack=False).outputs[0].name == "parity/probs"


def test_bad_training_data_gives_clear_errors(digits, tmp_path):
    f_train, y_train, _, _ = digits
    few = subset(f_train, np.arange(20))
    y = y_train[:20] >= 5
    b = few.boundary
    cases = [
        (lambda: train_head(Features(b, few.values.astype(np.float32)), y, "t"), "are float32; the boundary .* int8"),
        (lambda: train_head(Features(b, few.values[:, :40]), y, "t"), r"have shape \[20, 40\]; expected \(n, 48\)"),
        (lambda: train_head(Features(b, few.values[:0]), y[:0], "t"), "no training samples"),
        (lambda: train_head(few, y[:19], "t"), "19 labels for 20 samples"),
        (lambda: train_head(few, y[:, None], "t"), "one per sample"),
        (lambda: train_head(few, np.ones(20, bool), "t"), "at least 2"),
        (lambda: train_head(few, y, "t", hidden=0), "positive number of units"),
        (lambda: train_head(few, y, "a b"), "task name"),
    ]
    for call, msg in cases:
        with pytest.raises(TrainingDataError, match=msg):
            call()
    x = _quantize(digits_split()[0][:4])
    with pytest.raises(FeatureError, match="no tensor named 'nope'"):
        extract_features(BACKBONE, "nope", x)
    with pytest.raises(FeatureError, match="is float32; expected int8"):
        extract_features(BACKBONE, AT, x.astype(np.float32))
    with pytest.raises(FeatureError, match=r"got shape \[4, 63\]"):
        extract_features(BACKBONE, AT, x[:, :63])
    with pytest.raises(FeatureError, match="holds no samples"):
        extract_features(BACKBONE, AT, x[:0])
    np.savez(tmp_path / "bad.npz", x=x)
    with pytest.raises(TrainingDataError, match="lacks array"):
        train_from_backbone(BACKBONE, AT, tmp_path / "bad.npz", "t")

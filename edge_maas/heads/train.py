"""Train a small classifier head on a backbone's features and quantize it to a full-integer int8 .tflite.

Quantization follows TFLite's rules (what the converter does with full int8 quantization):
- weights: symmetric, per output channel: zero point 0, scale = max|w| / 127 (channels with all-zero weights
  get scale 1);
- bias: int32 at scale input_scale x weight_scale, per channel, zero point 0;
- activations (the hidden layer, the logits): asymmetric int8, scale and zero point from the float model's min/max
  on the training features, the range widened to include 0; a fused RELU's range starts at 0;
- SOFTMAX output: scale 1/256, zero point -128.
The head's input is the boundary tensor itself (same name, shape, dtype, scale, zero point), flattened with a
RESHAPE when it is not (1, D), so the head reads the backbone's bytes as they are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_maas.backends import TensorSpec
from edge_maas.errors import EdgeMaasError
from edge_maas.heads.features import FeatureError, Features, check_batch, extract_features
from edge_maas.manifest import Golden, TensorData, TensorDesc
from edge_maas.tflite.builder import Op, T, build_model

SOFTMAX_SCALE = 1.0 / 256.0
SOFTMAX_ZERO_POINT = -128
_TASK = re.compile(r"^[A-Za-z0-9_.-]+$")


class TrainingDataError(FeatureError):
    """Training features or labels that cannot train a head (wrong shape or dtype, empty, labels not matching)."""


@dataclass(frozen=True)
class Accuracy:
    """Fraction of correct predictions on n held-out samples: the float classifier's and the int8 head's."""

    float: float
    int8: float
    n: int


@dataclass
class Head:
    """A trained, quantized head: ``model`` is the .tflite bytes; output index i is class ``classes[i]``."""

    task: str
    model: bytes
    boundary: TensorDesc  # the head's input: the backbone's boundary tensor
    output: TensorDesc  # (1, n_classes) int8 probabilities at 1/256, zero point -128
    classes: tuple[Any, ...]
    golden: Golden
    hidden: int | None
    n_train: int
    classifier: Any  # the float scikit-learn classifier the head was quantized from

    def run(self, features: Features, backend: str = "litert", **options) -> np.ndarray:
        """int8 outputs (n, n_classes) of the head on each sample (interpreter without XNNPACK by default)."""
        from edge_maas.backends import make_backend

        _check_features(features, self.boundary)
        if backend == "litert":
            options.setdefault("xnnpack", False)
        b = make_backend(backend, self.model, **options)
        shape = self.boundary.shape
        return np.concatenate(
            [b.run({self.boundary.name: v.reshape(shape)})[self.output.name] for v in features.values]
        ).reshape(len(features.values), -1)

    def predict(self, features: Features, backend: str = "litert", **options) -> np.ndarray:
        """Class labels from the int8 head (ties go to the first class, as argmax)."""
        out = self.run(features, backend, **options)
        return np.asarray(self.classes, dtype=object)[np.argmax(out, axis=1)]

    def evaluate(self, features: Features, labels, backend: str = "litert") -> Accuracy:
        """Accuracy of the float classifier (on the dequantized features) and of the int8 head on labelled data."""
        y = _check_labels(labels, len(_check_features(features, self.boundary).values))
        f = float(np.mean(self.classifier.predict(features.dequantize()) == y))
        q = float(np.mean(self.predict(features, backend) == y))
        return Accuracy(f, q, len(y))

    def write(self, path: str | Path) -> Path:
        p = Path(path)
        try:
            p.write_bytes(self.model)
        except OSError as exc:
            raise EdgeMaasError(f"cannot write the head to {p}: {exc.strerror or exc}") from None
        return p


def train_head(
    features: Features,
    labels: Sequence | np.ndarray,
    task: str,
    hidden: int | None = None,
    seed: int = 0,
    golden_seed: int = 0,
    output_name: str | None = None,
) -> Head:
    """Fit a classifier on ``features`` (LogisticRegression, or an MLP with one ReLU layer of ``hidden`` units),
    quantize it and build the head; its output tensor is ``output_name`` (default ``TASK/probs``; a service names
    it ``TASK/out_0``).  Errors: TrainingDataError (features of the wrong shape or dtype, no samples, labels not
    one per sample, fewer than two classes, a bad task name or hidden size)."""
    if not isinstance(task, str) or not _TASK.match(task):
        raise TrainingDataError(f"task name {task!r} must be letters, digits, '_', '.' or '-'")
    if hidden is not None and (isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1):
        raise TrainingDataError(f"--hidden must be a positive number of units, got {hidden!r}")
    _check_features(features, features.boundary)
    y = _check_labels(labels, len(features.values))
    classes = np.unique(y)
    if len(classes) < 2:
        raise TrainingDataError(f"the labels hold {len(classes)} class ({classes.tolist()}); a head needs at least 2")
    x = features.dequantize()
    clf = _fit(x, y, hidden, seed)
    layers = _float_layers(clf)
    out_name = output_name or f"{task}/probs"
    model = _quantized_model(layers, x, features.boundary, task, out_name)
    output = TensorDesc(name=out_name, shape=(1, len(classes)), dtype="int8", scale=(SOFTMAX_SCALE,),
                        zero_point=(SOFTMAX_ZERO_POINT,))  # fmt: skip
    golden = _golden(model, features, golden_seed)
    return Head(task, model, features.boundary, output, tuple(clf.classes_.tolist()), golden, hidden, len(y), clf)


def train_from_backbone(
    backbone: str | Path,
    at: str,
    data: str | Path,
    task: str,
    hidden: int | None = None,
    holdout: float = 0.25,
    seed: int = 0,
    backend: str = "litert",
) -> tuple[Head, Accuracy | None]:
    """What ``edge-maas head train`` does: ``data`` is an .npz with ``x`` (backbone inputs, (n, *shape[1:]), the
    input's dtype) and ``y`` (one label per sample).  A stratified ``holdout`` part is kept out of training and
    scores the float and int8 heads (None when ``holdout`` is 0).  Errors: TrainingDataError, FeatureError."""
    _check_holdout(holdout)
    x, y = read_training_data(data)
    feats = extract_features(backbone, at, x, backend=backend)
    head, acc, _ = train_with_holdout(feats, y, task, hidden, holdout, seed, backend)
    return head, acc


def read_training_data(data: str | Path, specs: Sequence[TensorSpec] | None = None):
    """(x, y) from an .npz: ``y`` one label per sample; ``x`` the backbone inputs, (n, *shape[1:]) of the input's
    dtype: the array ``x`` (one-input backbones; ``specs`` None reads just that), or one array per input name.
    With ``specs`` (the inputs the features need) x is a dict by name, checked for shape, dtype and count here,
    before any model runs.  Errors: TrainingDataError (unreadable file, missing arrays, wrong shape or dtype)."""
    try:
        with np.load(data, allow_pickle=False) as npz:
            files = set(npz.files)
            names = ["x"] if specs is None else [s.name for s in specs]
            if specs is not None and len(specs) == 1 and names[0] not in files:
                names = ["x"]  # a one-input backbone's samples may be stored as x
            missing = [n for n in [*names, "y"] if n not in files]
            if missing:
                want = "x (backbone inputs)" if names == ["x"] else f"one array per input ({', '.join(names)})"
                raise TrainingDataError(f"{data} lacks array(s) {', '.join(missing)}; it needs {want} and y "
                                        "(labels)")  # fmt: skip
            arrays = {n: npz[n] for n in names}
            y = npz["y"]
    except (OSError, ValueError, EOFError) as exc:
        raise TrainingDataError(f"cannot read training data {data}: {exc}") from None
    first = next(iter(arrays.values()))
    try:
        y = _check_labels(y, len(first) if first.ndim else 0)
    except TrainingDataError as exc:
        raise TrainingDataError(f"{data}: {exc}") from None
    if specs is None:
        return arrays["x"], y
    x = arrays.get("x", arrays)
    try:
        feed, _ = check_batch(tuple(specs), x)
    except FeatureError as exc:
        raise TrainingDataError(f"{data}: {exc}") from None
    return feed, y


def train_with_holdout(
    features: Features,
    labels,
    task: str,
    hidden: int | None = None,
    holdout: float = 0.25,
    seed: int = 0,
    backend: str = "litert",
    output_name: str | None = None,
) -> tuple[Head, Accuracy | None, Features]:
    """Train on all but a stratified ``holdout`` part of the samples and score the float and int8 heads on that
    part.  Returns the head, its accuracy (None when ``holdout`` is 0) and the held-out features (all of them when
    ``holdout`` is 0).  Errors: TrainingDataError (too few samples per class to hold some out, and train_head's)."""
    _check_holdout(holdout)
    y = _check_labels(labels, len(_check_features(features, features.boundary).values))
    if holdout == 0:
        return train_head(features, y, task, hidden, seed, output_name=output_name), None, features
    from sklearn.model_selection import train_test_split

    try:
        i_train, i_test = train_test_split(np.arange(len(y)), test_size=holdout, random_state=seed, stratify=y)
    except ValueError as exc:
        raise TrainingDataError(f"cannot hold out {holdout:.0%} of {len(y)} samples per class: {exc}") from None
    head = train_head(subset(features, i_train), y[i_train], task, hidden, seed, output_name=output_name)
    test = subset(features, i_test)
    return head, head.evaluate(test, y[i_test], backend), test


def _check_holdout(holdout: float) -> None:
    if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) or not 0 <= holdout < 1:
        raise TrainingDataError(f"holdout must be a fraction in [0, 1), got {holdout!r}")


def subset(features: Features, index) -> Features:
    return Features(features.boundary, features.values[index])


# -- checks ---------------------------------------------------------------------------------------------------------


def _check_features(features: Features, boundary: TensorDesc) -> Features:
    if not isinstance(features, Features):
        raise TrainingDataError(f"training features must be a Features (see extract_features), not "
                                f"{type(features).__name__}")  # fmt: skip
    v = features.values
    if not isinstance(v, np.ndarray) or v.dtype != np.dtype(boundary.dtype):
        raise TrainingDataError(f"features at {boundary.name!r} are {getattr(v, 'dtype', type(v).__name__)}; "
                                f"the boundary tensor is {boundary.dtype}")  # fmt: skip
    if v.shape[1:] != tuple(boundary.shape[1:]):
        raise TrainingDataError(f"features at {boundary.name!r} have shape {list(v.shape)}; expected (n, "
                                f"{', '.join(map(str, boundary.shape[1:]))}) for a boundary of shape "
                                f"{list(boundary.shape)}")  # fmt: skip
    if len(v) == 0:
        raise TrainingDataError(f"no training samples: the features at {boundary.name!r} are empty")
    return features


def _check_labels(labels, n: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise TrainingDataError(f"labels must be one per sample (a 1-D array), got shape {list(y.shape)}")
    if len(y) != n:
        raise TrainingDataError(f"{len(y)} labels for {n} samples; give exactly one label per sample")
    if n == 0:
        raise TrainingDataError("no training samples: the labels are empty")
    if y.dtype.kind not in "iuUSb":
        raise TrainingDataError(f"labels must be integers, strings or booleans, not {y.dtype}")
    return y


# -- float model ----------------------------------------------------------------------------------------------------


def _fit(x: np.ndarray, y: np.ndarray, hidden: int | None, seed: int):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    if hidden is None:
        clf = LogisticRegression(max_iter=2000)
    else:
        clf = MLPClassifier(hidden_layer_sizes=(hidden,), activation="relu", max_iter=2000, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # few samples: a head that stops early is still usable
        clf.fit(x, y)
    return clf


def _float_layers(clf) -> list[tuple[np.ndarray, np.ndarray, bool]]:
    """(weights (out, in), bias (out,), relu) per FULLY_CONNECTED, last layer giving one logit per class.

    Two classes: scikit-learn keeps one logit z (P = sigmoid(z)); softmax([-z/2, z/2]) = [1 - sigmoid(z),
    sigmoid(z)], so the head keeps the two-way softmax and its classes' order."""
    if hasattr(clf, "coefs_"):
        ws = [w.T for w in clf.coefs_]
        bs = list(clf.intercepts_)
    else:
        ws, bs = [clf.coef_], [clf.intercept_]
    if ws[-1].shape[0] == 1:
        ws[-1] = np.concatenate([-ws[-1] / 2, ws[-1] / 2])
        bs[-1] = np.concatenate([-bs[-1] / 2, bs[-1] / 2])
    return [(np.asarray(w, np.float64), np.asarray(b, np.float64), i < len(ws) - 1) for i, (w, b) in
            enumerate(zip(ws, bs))]  # fmt: skip


def _forward(layers, x: np.ndarray) -> list[np.ndarray]:
    """Float outputs of each layer (after its RELU where fused)."""
    outs, h = [], x.astype(np.float64)
    for w, b, relu in layers:
        h = h @ w.T + b
        if relu:
            h = np.maximum(h, 0)
        outs.append(h)
    return outs


# -- quantization -------------------------------------------------------------------------------------------------


def _f32(v) -> float:
    """A scale as the flatbuffer holds it (float32), so the bias is quantized at the scale the kernels use."""
    return float(np.float32(v))


def activation_qparams(values: np.ndarray) -> tuple[float, int]:
    """int8 scale and zero point for values' min/max, the range widened to include 0 (TFLite's calibration)."""
    lo, hi = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    if hi - lo < 1e-9:  # a constant zero: any scale represents it
        hi = lo + 1e-3
    scale = _f32((hi - lo) / 255.0)
    zp = int(np.clip(round(-128 - lo / scale), -128, 127))
    return scale, zp


def quantize_weights(w: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Symmetric per-output-channel int8 (rows are channels): scale = max|w| / 127, zero point 0."""
    amax = np.abs(w).max(axis=1)
    scales = [_f32(a / 127.0) if a > 0 else 1.0 for a in amax]
    q = np.clip(np.round(w / np.asarray(scales)[:, None]), -127, 127).astype(np.int8)
    return q, scales


def quantize_bias(b: np.ndarray, input_scale: float, weight_scales: Sequence[float]) -> tuple[np.ndarray, list[float]]:
    """int32 bias at scale input_scale x weight_scale per channel, zero point 0."""
    scales = [float(np.float32(input_scale)) * s for s in weight_scales]
    info = np.iinfo(np.int32)
    q = np.clip(np.round(b / np.asarray(scales)), info.min, info.max).astype(np.int32)
    return q, [_f32(s) for s in scales]


def _quantized_model(layers, x: np.ndarray, boundary: TensorDesc, task: str, out_name: str) -> bytes:
    in_s, in_zp = float(boundary.scale[0]), int(boundary.zero_point[0])
    d = int(np.prod(boundary.shape[1:]))
    tensors = [T(boundary.name, tuple(boundary.shape), "int8", [in_s], [in_zp])]
    ops: list[Op] = []
    cur, cur_s = boundary.name, in_s
    if tuple(boundary.shape) != (1, d):  # FULLY_CONNECTED reads (rows, D): flatten, same bytes and quantization
        tensors += [T(f"{task}/flat_shape", (2,), "int32", data=np.array([1, d], np.int32)),
                    T(f"{task}/flat", (1, d), "int8", [in_s], [in_zp])]  # fmt: skip
        ops.append(Op("RESHAPE", [cur, f"{task}/flat_shape"], [f"{task}/flat"], "ReshapeOptions", {"newShape": [1, d]}))
        cur = f"{task}/flat"
    floats = _forward(layers, x)
    for i, ((w, b, relu), out) in enumerate(zip(layers, floats)):
        last = i == len(layers) - 1
        name = f"{task}/logits" if last else f"{task}/hidden{i}"
        qw, w_s = quantize_weights(w)
        qb, b_s = quantize_bias(b, cur_s, w_s)
        o_s, o_zp = activation_qparams(out)
        n = w.shape[0]
        tensors += [
            T(f"{name}/weights", qw.shape, "int8", w_s, [0] * n, 0, qw),
            T(f"{name}/bias", (n,), "int32", b_s, [0] * n, 0, qb),
            T(name, (1, n), "int8", [o_s], [o_zp]),
        ]
        ops.append(Op("FULLY_CONNECTED", [cur, f"{name}/weights", f"{name}/bias"], [name], "FullyConnectedOptions",
                      {"fusedActivationFunction": 1 if relu else 0}))  # fmt: skip
        cur, cur_s = name, o_s
    n_classes = layers[-1][0].shape[0]
    tensors.append(T(out_name, (1, n_classes), "int8", [SOFTMAX_SCALE], [SOFTMAX_ZERO_POINT]))
    ops.append(Op("SOFTMAX", [cur], [out_name], "SoftmaxOptions", {"beta": 1.0}))
    return build_model(tensors, ops, [boundary.name], [out_name])


def _golden(model: bytes, features: Features, seed: int) -> Golden:
    """A seeded training sample and the head's output on the interpreter's built-in kernels (as make_golden)."""
    from edge_maas.backends.litert import LiteRTBackend

    rng = np.random.default_rng(seed)
    b = features.boundary
    x = features.values[int(rng.integers(len(features.values)))].reshape(b.shape)
    backend = LiteRTBackend(model, xnnpack=False)
    outs = backend.run({b.name: x})
    return Golden(inputs=(TensorData.from_array(b.name, x),),
                  outputs=tuple(TensorData.from_array(k, v) for k, v in outs.items()))  # fmt: skip

"""Build the int8 model zoo in tests/models (dev only: needs TensorFlow).

    pip install -e .[zoo] && python tools/make_models.py
    python tools/make_models.py --float        # the float zoo (tests/models/float/)

Writes, per model, ``NAME.tflite`` (full int8, int8 input and output) and
``NAME.expected.npz`` (seeded random inputs and the outputs the interpreter's
built-in kernels give), plus ``zoo.json`` describing them.  Tests and CI read
only these committed files, so they never need TensorFlow.

``--float`` writes float32 ``.tflite`` files of the same kinds (retrained, so not
the int8 zoo's weights) for ``edge-maas quantize``, plus two digit classifiers
that share one frozen float backbone (``digits_backbone_{classes,ge5}``), and
``float/zoo.json`` (float accuracy where there is a real data set).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from tensorflow import keras
from tensorflow.keras import layers

from edge_maas.datasets import digits_split

OUT = Path(__file__).resolve().parent.parent / "tests" / "models"
N_EXPECTED = 8


def mlp_digits():
    x_tr, x_te, y_tr, y_te = digits_split()
    m = keras.Sequential(
        [
            keras.Input((64,), name="pixels"),
            layers.Dense(48, activation="relu"),
            layers.Dense(32, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ],
        name="mlp_digits",
    )
    m.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(x_tr, y_tr, epochs=60, batch_size=64, verbose=0)
    float_acc = float(m.evaluate(x_te, y_te, verbose=0)[1])
    return m, lambda: (x_tr[i : i + 1] for i in range(400)), {"float_accuracy": float_acc}


def ds_cnn_kws():
    inp = keras.Input((49, 10, 1), name="mfcc")
    x = layers.Conv2D(64, (10, 4), strides=2, padding="same", use_bias=False)(inp)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    for _ in range(4):
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.Conv2D(64, 1, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    x = layers.AveragePooling2D(pool_size=(25, 5))(x)
    x = layers.Flatten()(x)
    out = layers.Dense(12, activation="softmax")(x)
    return _fit_synthetic(keras.Model(inp, out, name="ds_cnn_kws"), (49, 10, 1), 12), _random_rep((49, 10, 1)), {}


def mobilenetv2_035_96():
    m = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10)
    return _fit_synthetic(m, (96, 96, 3), 10, n=256), _random_rep((96, 96, 3)), {}


def branchy_cnn():
    """Skip connections and concatenations that cross most cut points, plus the
    ops the native executor must cover (PAD, STRIDED_SLICE, MUL, LOGISTIC,
    HARD_SWISH, pools, RESHAPE, MEAN)."""
    inp = keras.Input((32, 32, 3), name="image")
    stem = layers.Conv2D(16, 3, padding="same", activation="relu")(inp)
    a = layers.Conv2D(16, 3, padding="same", activation="relu")(stem)
    b = layers.DepthwiseConv2D(3, padding="same")(stem)
    b = layers.Conv2D(16, 1, activation="relu6")(b)
    s = layers.Add()([a, b])
    c = layers.Concatenate()([stem, s])
    c = layers.MaxPooling2D(2)(c)  # 16x16x32
    long_skip = layers.AveragePooling2D(4)(stem)  # 8x8x16, consumed at the very end
    h = layers.ZeroPadding2D(1)(c)
    h = layers.Conv2D(32, 3, strides=2, activation="hard_swish")(h)  # 8x8x32
    gate = layers.GlobalAveragePooling2D()(h)
    gate = layers.Dense(32, activation="sigmoid")(gate)
    gate = layers.Reshape((1, 1, 32))(gate)
    h = layers.Multiply()([h, gate])
    head = layers.Lambda(lambda t: t[:, :, :, :8], name="slice")(h)
    h = layers.Concatenate()([h, head, long_skip])  # 8x8x56
    h = layers.Conv2D(24, 1, activation="relu")(h)
    h = layers.GlobalAveragePooling2D()(h)
    out = layers.Dense(10, activation="softmax")(h)
    return _fit_synthetic(keras.Model(inp, out, name="branchy_cnn"), (32, 32, 3), 10), _random_rep((32, 32, 3)), {}


def mobilenetv1_025_96():
    """MobileNetV1 alpha 0.25 at 96x96x3 with 2 classes: the person-detection kind (Visual Wake Words)."""
    m = keras.applications.MobileNet(input_shape=(96, 96, 3), alpha=0.25, weights=None, classes=2, dropout=0.0)
    return _fit_synthetic(m, (96, 96, 3), 2, n=256), _random_rep((96, 96, 3)), {}


def resnet8_32():
    """The MLPerf Tiny image-classification ResNet-8 (CIFAR-10 class): 3 residual stacks of 16/32/64 3x3 convs,
    1x1 strided projections, 8x8 average pool, 10-way dense."""
    inp = keras.Input((32, 32, 3), name="image")
    x = layers.Conv2D(16, 3, padding="same", use_bias=False)(inp)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    for filters, stride in ((16, 1), (32, 2), (64, 2)):
        y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        y = layers.BatchNormalization()(y)
        y = layers.ReLU()(y)
        y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
        y = layers.BatchNormalization()(y)
        if stride != 1:
            x = layers.Conv2D(filters, 1, strides=stride, padding="same")(x)
        x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.AveragePooling2D(pool_size=8)(x)
    x = layers.Flatten()(x)
    out = layers.Dense(10, activation="softmax")(x)
    return _fit_synthetic(keras.Model(inp, out, name="resnet8_32"), (32, 32, 3), 10), _random_rep((32, 32, 3)), {}


def speech_dm8():
    """A tiny keyword-spotting CNN on 49x40x1 log-mel frames whose first layer is a DEPTHWISE_CONV_2D with one
    input channel and depth multiplier 8 (the shape that stresses depth multipliers > 1)."""
    inp = keras.Input((49, 40, 1), name="mel")
    x = layers.DepthwiseConv2D(3, depth_multiplier=8, padding="same")(inp)  # 49x40x8
    x = layers.ReLU()(x)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)  # 25x20x16
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu")(x)  # 25x20x32
    x = layers.Conv2D(32, 1, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)  # 12x10x32
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(12, activation="softmax")(x)
    return _fit_synthetic(keras.Model(inp, out, name="speech_dm8"), (49, 40, 1), 12), _random_rep((49, 40, 1)), {}


def _fit_synthetic(model, shape, classes, n=512, seed=2):
    """A few epochs on a synthetic task (label = argmax of a fixed random
    projection of the input), so that logits differ between inputs and the
    committed expected outputs are not one constant value."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, *shape)).astype(np.float32)
    w = rng.normal(size=(int(np.prod(shape)), classes)).astype(np.float32)
    y = np.argmax(x.reshape(n, -1) @ w, axis=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, verbose=0)
    return model


def _random_rep(shape, n=64, seed=1):
    rng = np.random.default_rng(seed)
    data = rng.uniform(-1.0, 1.0, size=(n, 1, *shape)).astype(np.float32)
    return lambda: iter(data)


BUILDERS = {
    f.__name__: f
    for f in (mlp_digits, ds_cnn_kws, mobilenetv2_035_96, branchy_cnn, mobilenetv1_025_96, resnet8_32, speech_dm8)
}


def digits_backbone_pair():
    """Two digit classifiers on 8x8x1 images that share one float backbone, frozen after the first is trained:
    ``digits_backbone_classes`` (10 classes) and ``digits_backbone_ge5`` (is the digit 5 or more?).  Quantized
    with the same calibration data, their backbones must come out byte-identical (a service's shared submodel)."""
    x_tr, x_te, y_tr, y_te = (a.reshape(-1, 8, 8, 1) if a.ndim == 2 else a for a in digits_split())
    inp = keras.Input((8, 8, 1), name="image")
    h = layers.Conv2D(16, 3, padding="same", activation="relu")(inp)
    h = layers.DepthwiseConv2D(3, padding="same", activation="relu")(h)
    h = layers.Conv2D(24, 1, activation="relu")(h)
    feats = layers.MaxPooling2D(2)(h)  # 4x4x24: the boundary both heads read
    backbone = keras.Model(inp, feats, name="backbone")
    a = layers.Conv2D(16, 1, activation="relu")(backbone.output)
    a = layers.Flatten()(a)
    classes = keras.Model(inp, layers.Dense(10, activation="softmax")(a), name="digits_backbone_classes")
    classes.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    classes.fit(x_tr, y_tr, epochs=40, batch_size=64, verbose=0)
    backbone.trainable = False
    b = layers.Flatten()(backbone.output)
    b = layers.Dense(16, activation="relu")(b)
    ge5 = keras.Model(inp, layers.Dense(2, activation="softmax")(b), name="digits_backbone_ge5")
    ge5.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ge5.fit(x_tr, (y_tr >= 5).astype(np.int64), epochs=40, batch_size=64, verbose=0)
    return {
        "digits_backbone_classes": (classes, {"float_accuracy": float(classes.evaluate(x_te, y_te, verbose=0)[1])}),
        "digits_backbone_ge5": (ge5, {"float_accuracy": float(ge5.evaluate(x_te, (y_te >= 5).astype(np.int64), verbose=0)[1])}),
    }


def make_float_zoo(names) -> None:
    out = OUT / "float"
    out.mkdir(exist_ok=True)
    index_path = out / "zoo.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    models = {}
    for name in names:
        if name in BUILDERS:
            model, _, extra = BUILDERS[name]()
            models[name] = (model, extra)
    if "digits_backbone_pair" in names:
        models.update(digits_backbone_pair())
    for name, (model, extra) in models.items():
        blob = to_float_tflite(model)
        if len(blob) >= 4 << 20:
            sys.exit(f"{name}: {len(blob)} bytes, over the 4 MiB float zoo limit")
        (out / f"{name}.tflite").write_bytes(blob)
        index[name] = {"file": f"{name}.tflite", "sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob),
                       "input_shape": list(model.inputs[0].shape[1:]), **extra}  # fmt: skip
        print(name, json.dumps(index[name]))
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def _batch1_converter(model):
    # A concrete function with batch 1 gives static shapes (plain RESHAPE, no
    # SHAPE/PACK ops computing the batch size at run time).
    keras.config.enable_unsafe_deserialization()  # our own slicing Lambda in branchy_cnn
    fixed = keras.models.clone_model(
        model, input_tensors=keras.Input(batch_shape=(1, *model.inputs[0].shape[1:]), name=model.inputs[0].name)
    )
    fixed.set_weights(model.get_weights())
    return tf.lite.TFLiteConverter.from_keras_model(fixed)


def to_float_tflite(model) -> bytes:
    return _batch1_converter(model).convert()


def to_int8_tflite(model, rep) -> bytes:
    conv = _batch1_converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x] for x in rep())
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def run_builtin(model_bytes: bytes, xs: np.ndarray) -> np.ndarray:
    interp = tf.lite.Interpreter(
        model_content=model_bytes,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interp.allocate_tensors()
    (i,), (o,) = interp.get_input_details(), interp.get_output_details()
    outs = []
    for x in xs:
        interp.set_tensor(i["index"], x[None])
        interp.invoke()
        outs.append(interp.get_tensor(o["index"])[0].copy())
    return np.stack(outs)


def int8_digits_accuracy(model_bytes: bytes) -> float:
    _, x_te, _, y_te = digits_split()
    interp = tf.lite.Interpreter(model_content=model_bytes)
    interp.allocate_tensors()
    (i,), (o,) = interp.get_input_details(), interp.get_output_details()
    from edge_maas.kernels import quantize_ref

    scale, zp = i["quantization"]
    q = quantize_ref.quantize(x_te, scale, zp).reshape(x_te.shape)  # the interpreter's rounding
    hits = 0
    for x, y in zip(q, y_te):
        interp.set_tensor(i["index"], x[None])
        interp.invoke()
        hits += int(np.argmax(interp.get_tensor(o["index"])[0]) == y)
    return hits / len(y_te)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=None)
    ap.add_argument("--float", action="store_true", help="write the float zoo (tests/models/float/) instead")
    args = ap.parse_args(argv)
    keras.utils.set_random_seed(42)
    if args.float:
        make_float_zoo(args.names or [*BUILDERS, "digits_backbone_pair"])
        return 0
    args.names = args.names or list(BUILDERS)
    index_path = OUT / "zoo.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    for name in args.names:
        model, rep, extra = BUILDERS[name]()
        blob = to_int8_tflite(model, rep)
        if len(blob) >= 1 << 20:
            sys.exit(f"{name}: {len(blob)} bytes, over the 1 MiB zoo limit")
        (OUT / f"{name}.tflite").write_bytes(blob)
        in_shape = tuple(model.inputs[0].shape[1:])
        rng = np.random.default_rng(1234)
        xs = rng.integers(-128, 128, size=(N_EXPECTED, *in_shape), dtype=np.int8)
        ys = run_builtin(blob, xs)
        np.savez(OUT / f"{name}.expected.npz", inputs=xs, outputs=ys)
        entry = {
            "file": f"{name}.tflite",
            "sha256": hashlib.sha256(blob).hexdigest(),
            "bytes": len(blob),
            "distinct_output_values": len(np.unique(ys)),
            **extra,
        }
        if name == "mlp_digits":
            entry["int8_accuracy"] = int8_digits_accuracy(blob)
        index[name] = entry
        print(name, json.dumps(entry))
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

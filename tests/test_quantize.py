"""`edge-maas quantize`: float zoo models to int8 through litert-quantizer, then split and run natively and on the
interpreter (byte-exact); the accuracy report against an independent computation; models sharing a frozen float
backbone compose into one service; bad input gives one clear error each."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("litert_quantizer", reason="edge-maas quantize needs the [quantize] extra (ai-edge-litert)")

from edge_maas import cli
from edge_maas.backends import make_backend
from edge_maas.datasets import digits_split
from edge_maas.partition import plan_at_tensors, plan_balanced, split_model
from edge_maas.partition.compose import Source, compose_service
from edge_maas.partition.costs import graph_macs
from edge_maas.pipeline import Pipeline
from edge_maas.quantize.float_model import FloatModel, read_signature
from edge_maas.quantize.quantizer import quantize_model
from edge_maas.quantize.recipes import Recipe
from edge_maas.quantize.samples import read_samples
from edge_maas.service_pipeline import ServicePipeline
from edge_maas.tflite import load_graph
from edge_maas.tflite.builder import Op, T, build_model

FLOAT = Path(__file__).parent / "models" / "float"
FLOAT_ZOO = json.loads((FLOAT / "zoo.json").read_text())
KINDS = ["mlp_digits", "ds_cnn_kws", "mobilenetv2_035_96", "branchy_cnn"]


def _uniform(shape, n, seed):
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, *shape)).astype(np.float32)


def _digits_images():
    x_tr, x_te, y_tr, y_te = digits_split()
    return x_tr.reshape(-1, 8, 8, 1), x_te.reshape(-1, 8, 8, 1), y_tr, y_te


def _quantize(args, capsys) -> tuple[int, str, str]:
    code = cli.main(["quantize", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    """Calibration .npz per float zoo model: the digits training part for the digits models, uniform [-1, 1] (the
    synthetic tasks they were trained on) otherwise; the single array under a key other than the input's name."""
    d = tmp_path_factory.mktemp("cal")
    x_tr, _, _, _ = digits_split()
    paths = {"mlp_digits": d / "mlp_digits.npz"}
    np.savez(paths["mlp_digits"], samples=x_tr[:300])
    for name in ("ds_cnn_kws", "mobilenetv2_035_96", "branchy_cnn"):
        paths[name] = d / f"{name}.npz"
        np.savez(paths[name], x=_uniform(FLOAT_ZOO[name]["input_shape"], 24 if "mobilenet" in name else 48, 3))
    img_tr, _, _, _ = _digits_images()
    paths["digits_backbone"] = d / "digits_backbone.npz"
    np.savez(paths["digits_backbone"], image=img_tr[:200])
    return paths


@pytest.mark.parametrize("name", KINDS)
def test_quantized_zoo_splits_and_runs_bit_exact(name, calibration, tmp_path, capsys):
    out = tmp_path / f"{name}.int8.tflite"
    code, text, err = _quantize([FLOAT / f"{name}.tflite", "--calibration", calibration[name], "--out", out,
                                 "--layer-samples", "4", "--no-latency", "--min-samples", "20"], capsys)  # fmt: skip
    assert code == 0, err
    assert "native vs interpreter: identical bytes on 16 samples" in text
    blob = out.read_bytes()
    g = load_graph(blob)
    assert {g.tensors[i].dtype for i in (*g.inputs, *g.outputs)} == {"int8"}
    assert all(g.tensors[op.inputs[1]].dtype == "int8" for op in g.ops if op.op in ("CONV_2D", "FULLY_CONNECTED"))
    for suffix in (".recipe.json", ".report.json", ".layers.png"):
        assert (tmp_path / f"{name}.int8{suffix}").stat().st_size > 100
    assert (tmp_path / f"{name}.int8.layers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    manifest = split_model(g, plan_balanced(g, 3 if len(g.ops) > 3 else 2, graph_macs(g)), tmp_path / "split", name,
                           source_bytes=blob)  # fmt: skip
    assert len(manifest.shards) >= 2
    in_t = g.tensors[g.inputs[0]]
    xs = np.random.default_rng(7).integers(-128, 128, size=(4, *in_t.shape), dtype=np.int8)
    whole = make_backend("litert", blob, xnnpack=False)
    for backend in ("native", "litert"):
        pipe = Pipeline.from_manifest(tmp_path / "split" / "manifest.json", backend, **(
            {"xnnpack": False} if backend == "litert" else {}))  # fmt: skip
        for x in xs:
            want = whole.run({in_t.name: x})
            got = pipe.run({in_t.name: x})
            for k, v in want.items():
                assert got[k].tobytes() == v.tobytes(), f"{name} split on {backend}"


def test_digits_int8_accuracy_within_a_point_of_float(tmp_path, capsys):
    x_tr, x_te, _, y_te = digits_split()
    np.savez(tmp_path / "cal.npz", pixels=x_tr[:300])
    np.savez(tmp_path / "test.npz", pixels=x_te, y=y_te)
    code, text, err = _quantize([FLOAT / "mlp_digits.tflite", "--calibration", tmp_path / "cal.npz",
                                 "--eval", tmp_path / "test.npz", "--out", tmp_path / "q.tflite"], capsys)  # fmt: skip
    assert code == 0, err
    rep = json.loads((tmp_path / "q.report.json").read_text())
    (acc,) = rep["accuracy"]
    assert acc["float_accuracy"] == pytest.approx(FLOAT_ZOO["mlp_digits"]["float_accuracy"], abs=1e-6)
    assert acc["int8_accuracy"] >= acc["float_accuracy"] - 0.01, acc
    assert f"float {acc['float_accuracy']:.4f}, quantized {acc['int8_accuracy']:.4f}" in text
    names = [c["model"] for c in rep["costs"]]
    assert names == ["float", "a8w8"] and rep["costs"][1]["native_ms"] > 0
    assert rep["costs"][1]["bytes"] < rep["costs"][0]["bytes"] / 2  # int8 weights: well under half the float size


def _float_dense_layers(graph):
    """The float MLP's FULLY_CONNECTED layers as numpy (weights, bias, relu?), read from the file's constants."""
    layers = []
    for op in graph.ops:
        if op.op == "FULLY_CONNECTED":
            w, b = (graph.constant(graph.tensors[i]) for i in op.inputs[1:3])
            layers.append((op, w, b, graph.tensors[op.outputs[0]].name))
    return layers


def test_report_matches_an_independent_computation(tmp_path, capsys):
    """The report's agreement, accuracy, output SNR and per-layer SNR, recomputed without the interpreter: the float
    MLP in numpy from its weights, the int8 model on the native kernels (prefixes cut at each layer by split)."""
    x_tr, x_te, _, y_te = digits_split()
    x_ev, y_ev = x_te[:120], y_te[:120]
    np.savez(tmp_path / "cal.npz", pixels=x_tr[:300])
    np.savez(tmp_path / "ev.npz", pixels=x_ev, y=y_ev)
    out = tmp_path / "q.tflite"
    code, _, err = _quantize([FLOAT / "mlp_digits.tflite", "--calibration", tmp_path / "cal.npz", "--eval",
                              tmp_path / "ev.npz", "--out", out, "--layer-samples", "50", "--no-latency"], capsys)  # fmt: skip
    assert code == 0, err
    rep = json.loads((tmp_path / "q.report.json").read_text())
    fg, blob = load_graph((FLOAT / "mlp_digits.tflite").read_bytes()), out.read_bytes()
    qg = load_graph(blob)

    # float, in numpy: relu after the hidden layers, softmax at the end (the float model's ops)
    assert [op.op for op in fg.ops] == ["FULLY_CONNECTED"] * 3 + ["SOFTMAX"]
    acts, h = {}, x_ev.astype(np.float64)
    for k, (op, w, b, name) in enumerate(_float_dense_layers(fg)):
        h = h @ w.T.astype(np.float64) + b
        h = np.maximum(h, 0) if k < 2 else h
        acts[name] = h
    logits = h - h.max(axis=1, keepdims=True)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    acts[fg.tensors[fg.outputs[0]].name] = probs

    # int8, native: each layer's output through a prefix cut right after it
    in_t = qg.tensors[qg.inputs[0]]
    s_in, z_in = float(in_t.quant.scale[0]), int(in_t.quant.zero_point[0])
    # the interpreter's QUANTIZE: x * float32(1 / scale) rounded half to even (64 values: whole blocks of 8)
    inv = np.float32(1) / np.float32(s_in)
    q_in = np.clip(np.round((x_ev.astype(np.float32) * inv).astype(np.float64)) + z_in, -128, 127).astype(np.int8)

    def dq(t, v):
        return float(t.quant.scale[0]) * (v.astype(np.float64) - int(t.quant.zero_point[0]))

    layer_rows = {r["tensor"]: r for r in rep["layers"]}
    int8_out = {}
    for name, f in acts.items():
        t = qg.by_name[name]
        if t.index in qg.outputs:
            nb = make_backend("native", blob)
        else:
            split_model(qg, plan_at_tensors(qg, [name]), tmp_path / name.replace("/", "_")[:40], "p", source_bytes=blob)
            nb = make_backend("native", (tmp_path / name.replace("/", "_")[:40] / "shard_00.tflite").read_bytes())
        q = int8_out[name] = np.stack([nb.run({nb.inputs[0].name: x[None]})[name][0] for x in q_in])
        err = dq(t, q) - f
        n = rep["layer_samples"]
        snr = 10 * math.log10((f[:n] ** 2).sum() / (err[:n] ** 2).sum())
        row = layer_rows[name]
        assert row["snr_db"] == pytest.approx(snr, abs=0.05), name
        assert row["max_abs_error"] == pytest.approx(np.abs(err[:n]).max(), abs=1e-5), name
        assert row["rms_error_lsb"] == pytest.approx(np.sqrt((err[:n] ** 2).mean()) / t.quant.scale[0], rel=1e-3)
        lo, hi = (float(t.quant.scale[0]) * (v - int(t.quant.zero_point[0])) for v in (-128, 127))
        assert row["clipped"] == pytest.approx(((f[:n] < lo) | (f[:n] > hi)).mean(), abs=1e-9), name
    (o,) = rep["outputs"]
    f_top = probs.argmax(axis=1)
    q_probs = dq(qg.tensors[qg.outputs[0]], int8_out[qg.tensors[qg.outputs[0]].name])
    top_sets = [np.flatnonzero(r == r.max()) for r in q_probs]
    assert o["top1_agreement"] == pytest.approx(np.mean([a in s for a, s in zip(f_top, top_sets)]))
    assert o["top1_ties"] == sum(len(s) > 1 for s in top_sets)
    err = q_probs - probs
    assert o["snr_db"] == pytest.approx(10 * math.log10((probs**2).sum() / (err**2).sum()), abs=0.05)
    (acc,) = rep["accuracy"]
    assert acc["float_accuracy"] == pytest.approx((f_top == y_ev).mean())
    assert acc["int8_accuracy"] == pytest.approx((q_probs.argmax(axis=1) == y_ev).mean())


def test_heads_on_one_frozen_backbone_compose_into_one_shared_submodel(calibration, tmp_path):
    """Two classifiers trained on one frozen float backbone, quantized with the same calibration data: compose
    finds the whole backbone shared (its four ops byte-identical, quantization included); with different
    calibration data the backbones differ and nothing is shared."""
    quantized = {}
    for task in ("classes", "ge5"):
        m = FloatModel.load(FLOAT / f"digits_backbone_{task}.tflite")
        quantized[task] = quantize_model(m, read_samples(calibration["digits_backbone"], m.inputs), Recipe()).model
    svc = compose_service([Source(t, b) for t, b in quantized.items()], tmp_path / "svc", "digits")
    backbone = next(s for s in svc.submodels if s.name == "backbone")
    assert backbone.ops == ("CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "MAX_POOL_2D")
    assert svc.tasks_using("backbone") == ["classes", "ge5"]
    _, x_te, _, _ = _digits_images()
    in_t = load_graph(quantized["classes"]).tensors[load_graph(quantized["classes"]).inputs[0]]
    s, z = float(in_t.quant.scale[0]), int(in_t.quant.zero_point[0])
    xs = np.clip(np.round(x_te[:40] / s) + z, -128, 127).astype(np.int8)
    for backend in ("native", "litert"):
        pipe = ServicePipeline.from_manifest(tmp_path / "svc" / "manifest.json", backend)
        try:
            for x in xs[:6]:
                got = pipe.run({"input_0": x[None]}, ["classes", "ge5"])
                for task, blob in quantized.items():
                    whole = make_backend("litert", blob, xnnpack=False)
                    (want,) = whole.run({whole.inputs[0].name: x[None]}).values()
                    (y,) = got[task].values()
                    assert y.tobytes() == want.tobytes(), (task, backend)
        finally:
            pipe.close()

    # the control: the second head calibrated on other samples gets other backbone ranges -> nothing to share
    m = FloatModel.load(FLOAT / "digits_backbone_ge5.tflite")
    img_tr, _, _, _ = _digits_images()
    np.savez(tmp_path / "other.npz", image=img_tr[200:400] * 0.9)
    other = quantize_model(m, read_samples(tmp_path / "other.npz", m.inputs), Recipe()).model
    with pytest.raises(Exception, match="nothing in common"):
        compose_service([Source("classes", quantized["classes"]), Source("ge5", other)], tmp_path / "svc2", "d")


def test_mixed_precision_layer_costs_and_gains(calibration, tmp_path, capsys):
    """--a16w8 keeps one layer at int16 activations: int8 inputs and outputs still (it splits), that layer int16
    and closer to float than in the all-int8 model, native refuses it with its reason, and the cost table has the
    all-int8 model beside it."""
    base, mixed = tmp_path / "base.tflite", tmp_path / "mixed.tflite"
    common = [FLOAT / "branchy_cnn.tflite", "--calibration", calibration["branchy_cnn"], "--layer-samples", "16",
              "--no-plot"]  # fmt: skip
    assert _quantize([*common, "--out", base, "--no-latency"], capsys)[0] == 0
    code, text, err = _quantize([*common, "--out", mixed, "--a16w8", "conv2d_8"], capsys)
    assert code == 0, err
    g = load_graph(mixed.read_bytes())
    assert {g.tensors[i].dtype for i in (*g.inputs, *g.outputs)} == {"int8"}
    assert "native backend cannot run it" in text and "int16" in text
    r_base = json.loads((tmp_path / "base.report.json").read_text())
    r_mixed = json.loads((tmp_path / "mixed.report.json").read_text())
    layer = lambda rep: next(r for r in rep["layers"] if "conv2d_8" in r["tensor"] and r["op"] == "CONV_2D")
    assert layer(r_base)["dtype"] == "int8" and layer(r_mixed)["dtype"] == "int16"
    assert layer(r_mixed)["snr_db"] > layer(r_base)["snr_db"] + 3
    assert [c["model"] for c in r_mixed["costs"]] == ["float", "a8w8", "a8w8 +a16w8[conv2d_8]"]
    assert r_mixed["costs"][1]["native_ms"] > 0 and r_mixed["costs"][2]["native_ms"] is None
    assert r_mixed["costs"][2]["bytes"] > r_mixed["costs"][1]["bytes"]  # int32 -> int64 bias, 16-bit params
    split_model(g, plan_balanced(g, 2, graph_macs(g)), tmp_path / "split", "mixed", source_bytes=mixed.read_bytes())


@pytest.fixture
def exp_model(tmp_path):
    """A float model with an op litert-quantizer has no integer kernel for (EXP), with a signature."""
    w = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    blob = build_model([T("x", (1, 8), "float32"), T("w", (4, 8), "float32", data=w), T("h", (1, 4), "float32"),
                        T("y", (1, 4), "float32")],
                       [Op("FULLY_CONNECTED", ["x", "w", ""], ["h"], "FullyConnectedOptions"), Op("EXP", ["h"], ["y"])],
                       ["x"], ["y"], signature="serving_default")  # fmt: skip
    (tmp_path / "exp.tflite").write_bytes(blob)
    np.savez(tmp_path / "exp_cal.npz", x=_uniform((8,), 32, 1))
    return tmp_path / "exp.tflite", tmp_path / "exp_cal.npz"


def _bad(tmp_path, capsys, args, *needles):
    code, out, err = _quantize(args, capsys)
    assert code == 2, (out, err)
    last = err.strip().splitlines()[-1]
    assert last.startswith("edge-maas: error: ") and "Traceback" not in err, err
    for n in needles:
        assert n in last, last
    assert not (tmp_path / "o.tflite").exists()


def test_bad_input_one_clear_error_each(tmp_path, capsys, calibration, exp_model):
    mlp, out = FLOAT / "mlp_digits.tflite", tmp_path / "o.tflite"
    x_tr, _, _, _ = digits_split()
    cases = {
        "wrong_shape.npz": {"pixels": x_tr[:40, :32]},
        "int_dtype.npz": {"pixels": (x_tr[:40] * 16).astype(np.uint8)},
        "few.npz": {"pixels": x_tr[:5]},
        "nan.npz": {"pixels": np.where(np.arange(64) == 3, np.nan, x_tr[:40])},
        "wrong_key.npz": {"a": x_tr[:40], "b": x_tr[:40]},
        "bad_labels.npz": {"pixels": x_tr[:40], "y": np.zeros(7, np.int64)},
    }
    for name, arrays in cases.items():
        np.savez(tmp_path / name, **arrays)
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    (tmp_path / "corrupt.tflite").write_bytes(mlp.read_bytes()[:1000])
    good = ["--calibration", calibration["mlp_digits"], "--out", out]
    _bad(tmp_path, capsys, [Path(__file__).parent / "models" / "mlp_digits.tflite", *good], "already quantized")
    _bad(tmp_path, capsys, [tmp_path / "corrupt.tflite", *good], "TFLite")
    _bad(tmp_path, capsys, [tmp_path / "missing.tflite", *good], "missing.tflite")
    _bad(tmp_path, capsys, [mlp, "--calibration", tmp_path / "wrong_shape.npz", "--out", out], "shape [40, 32]",
         "expected (n, 64)")  # fmt: skip
    _bad(tmp_path, capsys, [mlp, "--calibration", tmp_path / "int_dtype.npz", "--out", out], "uint8", "float32")
    _bad(tmp_path, capsys, [mlp, "--calibration", tmp_path / "few.npz", "--out", out], "holds 5 samples",
         "at least 20")  # fmt: skip
    _bad(tmp_path, capsys, [mlp, "--calibration", tmp_path / "nan.npz", "--out", out], "NaN")
    _bad(tmp_path, capsys, [mlp, "--calibration", tmp_path / "wrong_key.npz", "--out", out], "no array for input",
         "'pixels'")  # fmt: skip
    _bad(tmp_path, capsys, [mlp, "--calibration", tmp_path / "junk.npz", "--out", out], "cannot read calibration")
    _bad(tmp_path, capsys, [mlp, *good, "--eval", tmp_path / "bad_labels.npz"], "labels y must be 40 integers")
    _bad(tmp_path, capsys, [mlp, *good, "--recipe", "a4w4"], "unknown recipe 'a4w4'", "a8w8", "a16w8")
    _bad(tmp_path, capsys, [mlp, *good, "--a16w8", "no_such_layer"], "matches no layer")
    _bad(tmp_path, capsys, [mlp, *good, "--a16w8", "(unclosed"], "not a regular expression")
    model, cal = exp_model
    _bad(tmp_path, capsys, [model, "--calibration", cal, "--out", out], "no integer kernel", "EXP")


def test_cli_process_help_and_error(tmp_path):
    """The installed command in a real process: --help teaches the data layout; a float model's split points to
    quantize."""
    exe = Path(sys.executable).parent / "edge-maas"
    res = subprocess.run([exe, "quantize", "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0 and "--calibration" in res.stdout and "keyed by input name" in res.stdout
    res = subprocess.run([exe, "split", FLOAT / "mlp_digits.tflite", "--shards", "2", "--out", tmp_path / "s"],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert res.returncode == 2 and "edge-maas quantize" in res.stderr.strip().splitlines()[-1]


def test_inputs_and_outputs_paired_by_name_not_position(tmp_path, capsys):
    """A model whose graph lists its inputs and outputs in another order than their names: the report and the
    native check pair float and int8 tensors by signature name (paired by position, the report compared y with z
    and fed b's samples to a: its SNRs disagreed with this independent computation)."""
    rng = np.random.default_rng(0)
    w, wb = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((3, 6)).astype(np.float32)
    blob = build_model([T("a", (1, 4), "float32"), T("b", (1, 6), "float32"), T("w", (3, 4), "float32", data=w),
                        T("wb", (3, 6), "float32", data=wb),
                        T("h", (1, 3), "float32"), T("g", (1, 3), "float32"), T("y", (1, 3), "float32"),
                        T("z", (1, 3), "float32")],
                       [Op("FULLY_CONNECTED", ["a", "w", ""], ["h"], "FullyConnectedOptions"),
                        Op("FULLY_CONNECTED", ["b", "wb", ""], ["g"], "FullyConnectedOptions"),
                        Op("ADD", ["h", "g"], ["y"], "AddOptions"), Op("MUL", ["h", "g"], ["z"], "MulOptions")],
                       ["b", "a"], ["z", "y"], signature="serving_default")  # fmt: skip
    (tmp_path / "two.tflite").write_bytes(blob)
    a, b = _uniform((4,), 64, 1), _uniform((6,), 64, 2)
    np.savez(tmp_path / "cal.npz", a=a, b=b)
    code, text, err = _quantize([tmp_path / "two.tflite", "--calibration", tmp_path / "cal.npz", "--out",
                                 tmp_path / "q.tflite", "--no-plot"], capsys)  # fmt: skip
    assert code == 0, err
    assert "native vs interpreter: identical bytes on 16 samples" in text
    rep = json.loads((tmp_path / "q.report.json").read_text())
    h, g = a.astype(np.float64) @ w.T, b.astype(np.float64) @ wb.T
    floats = {"y": h + g, "z": h * g}
    qb = (tmp_path / "q.tflite").read_bytes()
    qg, sig = load_graph(qb), read_signature(qb, "q")
    ins = {s.name: qg.tensors[s.index] for s in sig.inputs}
    outs = {s.name: qg.tensors[s.index] for s in sig.outputs}
    assert set(ins) == {"a", "b"} and set(outs) == {"y", "z"}
    nb = make_backend("native", qb)
    got = {k: [] for k in floats}
    for i in range(64):
        feed = {}
        for name, x in (("a", a[i]), ("b", b[i])):
            t = ins[name]
            inv = np.float32(1) / np.float32(t.quant.scale[0])
            feed[t.name] = np.clip(np.round(x * inv) + int(t.quant.zero_point[0]), -128, 127).astype(np.int8)[None]
        out = nb.run(feed)
        for k, t in outs.items():
            got[k].append(float(t.quant.scale[0]) * (out[t.name][0].astype(np.float64) - int(t.quant.zero_point[0])))
    by_name = {o["name"]: o for o in rep["outputs"]}
    for k, f in floats.items():
        e = np.array(got[k]) - f
        assert by_name[k]["snr_db"] == pytest.approx(10 * math.log10((f**2).sum() / (e**2).sum()), abs=0.1), k


def test_outputs_and_data_files_refused_before_any_work(tmp_path, capsys, calibration):
    mlp = FLOAT / "mlp_digits.tflite"
    mine = tmp_path / "mine.tflite"
    mine.write_bytes(mlp.read_bytes())
    _bad_out = lambda args, *needles: _bad(tmp_path, capsys, args, *needles)
    _bad_out([mine, "--calibration", calibration["mlp_digits"], "--out", mine], "would overwrite an input")
    assert mine.read_bytes() == mlp.read_bytes()
    (tmp_path / "adir").mkdir()
    _bad_out([mlp, "--calibration", calibration["mlp_digits"], "--out", tmp_path / "adir"], "it is a folder")
    _bad_out([mlp, "--calibration", calibration["mlp_digits"], "--out", mine / "x.tflite"], "is not a folder")
    # an .npz whose member claims 2^31 samples: refused from its header, nothing allocated
    import zipfile

    with zipfile.ZipFile(tmp_path / "bomb.npz", "w") as z, z.open("pixels.npy", "w") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (1 << 31, 64)})
    _bad_out([mlp, "--calibration", tmp_path / "bomb.npz", "--out", tmp_path / "o.tflite"], "reads at most")
    x_tr, x_te, _, y_te = digits_split()
    np.savez(tmp_path / "ev.npz", pixels=x_te, y=y_te + 10)
    _bad_out([mlp, "--calibration", calibration["mlp_digits"], "--eval", tmp_path / "ev.npz", "--out",
              tmp_path / "o.tflite", "--no-latency"], "labels y go up to 19", "10 classes")  # fmt: skip
    _bad_out([mlp, "--calibration", calibration["mlp_digits"], "--out", tmp_path / "o.tflite", "--a16w8", ""],
             "inputs or outputs int16")  # fmt: skip
    np.save(tmp_path / "cal.npy", x_tr[:40])  # an .npy: the one input's samples
    code, _, err = _quantize([mlp, "--calibration", tmp_path / "cal.npy", "--out", tmp_path / "o.tflite",
                                 "--no-latency", "--no-plot"], capsys)  # fmt: skip
    assert code == 0, err
    assert oct((tmp_path / "o.tflite").stat().st_mode & 0o777) == "0o644"


def test_snr_of_minus_infinity_is_not_written_as_exact():
    from edge_maas.quantize.report import LayerError

    row = LayerError(index=0, op="ADD", tensor="t", dtype="int8", scale=1.0, snr_db=-math.inf, max_abs_error=1.0,
                     rms_error_lsb=1.0, clipped=0.0)  # fmt: skip
    assert json.loads(row.model_dump_json())["snr_db"] == "-Infinity"

"""Bad input gets one clear line on stderr and exit status 2: no traceback, no crash."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import MODELS, zoo_bytes

from edge_maas.errors import ManifestError, ModelFormatError, PartitionError, TensorMismatchError
from edge_maas.manifest import Manifest
from edge_maas.partition import plan_at_tensors, plan_balanced, split_model
from edge_maas.pipeline import Pipeline
from edge_maas.tflite import load_graph
from edge_maas.tflite.builder import Op, T, build_model

MLP = MODELS / "mlp_digits.tflite"
FIRST_ACT = "mlp_digits_1/dense_1/MatMul;mlp_digits_1/dense_1/Relu;mlp_digits_1/dense_1/BiasAdd"


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edge_maas.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def assert_clean_error(res, *needles):
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    # the interpreter may log its own INFO lines first; ours is the last line
    assert res.stderr.strip().splitlines()[-1].startswith("edge-maas: error: "), res.stderr
    for n in needles:
        assert n in res.stderr, res.stderr


@pytest.fixture
def float_model(tmp_path):
    w = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    blob = build_model(
        [T("x", (1, 8), "float32"), T("w", (4, 8), "float32", data=w), T("y", (1, 4), "float32")],
        [Op("FULLY_CONNECTED", ["x", "w", ""], ["y"], "FullyConnectedOptions")],
        ["x"], ["y"],
    )
    p = tmp_path / "float.tflite"
    p.write_bytes(blob)
    return p


def test_truncated_model(tmp_path):
    p = tmp_path / "trunc.tflite"
    p.write_bytes(MLP.read_bytes()[:3000])
    with pytest.raises(ModelFormatError, match="corrupt or truncated"):
        load_graph(p)
    assert_clean_error(cli("split", p, "--shards", "2", "--out", tmp_path / "o"), "truncated")


def test_not_a_tflite_file(tmp_path):
    p = tmp_path / "x.tflite"
    p.write_bytes(b"PK\x03\x04 definitely a zip file")
    assert_clean_error(cli("split", p, "--shards", "2", "--out", tmp_path / "o"), "not a TFLite model")
    assert_clean_error(cli("inspect", tmp_path / "missing.tflite"), "cannot read")


def test_unknown_cut_tensor(tmp_path):
    assert_clean_error(cli("split", MLP, "--at", "no_such_tensor", "--out", tmp_path / "o"), "no tensor named")
    assert not (tmp_path / "o").exists()


def test_cuts_that_leave_a_shard_empty(tmp_path):
    g = load_graph(MLP)
    out = g.tensors[g.outputs[0]].name
    inp = g.tensors[g.inputs[0]].name
    for names, msg in [([out], "last shard empty"), ([inp], "first shard empty"),
                       ([FIRST_ACT, FIRST_ACT], "same point")]:
        with pytest.raises(PartitionError, match=msg):
            plan_at_tensors(g, names)
    with pytest.raises(PartitionError, match="non-empty shards"):
        plan_balanced(g, 9, [1] * len(g.ops))
    assert_clean_error(cli("split", MLP, "--at", out, "--out", tmp_path / "o"), "empty")


def test_float_model_refused(float_model, tmp_path):
    g = load_graph(float_model)
    with pytest.raises(ModelFormatError, match="not a full-integer int8 model"):
        split_model(g, plan_balanced(g, 1, [1]), tmp_path / "o", "f")
    assert_clean_error(cli("split", float_model, "--shards", "1", "--out", tmp_path / "o"), "int8")


@pytest.fixture
def split_dir(tmp_path):
    blob = zoo_bytes("mlp_digits")
    g = load_graph(blob)
    split_model(g, plan_balanced(g, 2, [1] * len(g.ops)), tmp_path / "split", "mlp_digits", source_bytes=blob)
    return tmp_path / "split"


def test_wrong_input_shape_and_dtype(split_dir, tmp_path):
    pipe = Pipeline.from_manifest(split_dir / "manifest.json")
    name = pipe.inputs[0].name
    with pytest.raises(TensorMismatchError, match=r"expected int8\[1, 64\]"):
        pipe.run({name: np.zeros((1, 63), np.int8)})
    with pytest.raises(TensorMismatchError, match="is float32"):
        pipe.run({name: np.zeros((1, 64), np.float32)})
    with pytest.raises(TensorMismatchError, match="missing input"):
        pipe.run({})
    np.save(tmp_path / "bad.npy", np.zeros((1, 63), np.int8))
    assert_clean_error(cli("run", split_dir / "manifest.json", "--input", tmp_path / "bad.npy",
                           "--output", tmp_path / "y.npy"), "expected int8[1, 64]")
    np.save(tmp_path / "badf.npy", np.zeros((1, 64), np.float32))
    assert_clean_error(cli("run", split_dir / "manifest.json", "--input", tmp_path / "badf.npy",
                           "--output", tmp_path / "y.npy"), "float32")
    (tmp_path / "junk.npy").write_bytes(b"junk")
    assert_clean_error(cli("run", split_dir / "manifest.json", "--input", tmp_path / "junk.npy",
                           "--output", tmp_path / "y.npy"), "cannot read input")


def test_tampered_shard_never_reaches_the_interpreter(split_dir, tmp_path):
    shard = split_dir / "shard_01.tflite"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="sha256"):
        Pipeline.from_manifest(split_dir / "manifest.json")
    shard.write_bytes(bytes(data[:-10]))
    with pytest.raises(ManifestError, match="bytes; the manifest says"):
        Pipeline.from_manifest(split_dir / "manifest.json")
    np.save(tmp_path / "x.npy", np.zeros((1, 64), np.int8))
    assert_clean_error(cli("run", split_dir / "manifest.json", "--input", tmp_path / "x.npy",
                           "--output", tmp_path / "y.npy"), "manifest says")


@pytest.mark.parametrize("edit, msg", [
    (lambda t: t.replace('"schema_version": 1', '"schema_version": 7'), "schema_version"),
    (lambda t: t.replace('"size": ', '"size": "big", "x": ', 1), "invalid manifest"),
    (lambda t: t.replace('"file": "shard_00.tflite"', '"file": "../../etc/passwd"'), "file"),
    (lambda t: t[: len(t) // 2], "invalid manifest"),
    (lambda t: "[]", "invalid manifest"),
])
def test_malformed_manifest(split_dir, edit, msg):
    p = split_dir / "manifest.json"
    p.write_text(edit(p.read_text()))
    with pytest.raises(ManifestError, match=msg):
        Manifest.load(p)
    assert_clean_error(cli("inspect", p), "manifest")


def test_schema_doc_in_sync():
    import json

    from edge_maas.manifest import json_schema

    doc = json.loads((MODELS.parent.parent / "docs" / "manifest.schema.json").read_text())
    assert doc == json.loads(json.dumps(json_schema())), "regenerate docs/manifest.schema.json"

"""Services (issue 10): compose real models sharing a backbone into one shared submodel plus heads; run tasks
through the service bit for bit as the original models on the interpreter's built-in kernels; canonical bytes;
dedupe; v1 manifests as one-task services; one clear error for each bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from conftest import MODELS
from test_bad_input import assert_clean_error

from edge_maas.backends.litert import LiteRTBackend
from edge_maas.errors import ManifestError, PartitionError
from edge_maas.partition import plan_balanced, split_model
from edge_maas.partition.compose import Source, compose_service
from edge_maas.partition.costs import graph_macs
from edge_maas.service import ServiceManifest, UnknownTaskError, load_any
from edge_maas.service_pipeline import ServicePipeline
from edge_maas.tflite import load_graph

MNV2 = (MODELS / "mobilenetv2_035_96.tflite").read_bytes()
MLP = (MODELS / "mlp_digits.tflite").read_bytes()


def cli(*args):
    return subprocess.run([sys.executable, "-m", "edge_maas.cli", *map(str, args)],
                          check=False, capture_output=True, text=True, timeout=120)  # fmt: skip




def new_head(data: bytes, seed: int) -> bytes:
    """The same model with its last FULLY_CONNECTED's weights and bias shuffled (a head trained on the same frozen
    backbone): every other byte is unchanged."""
    g = load_graph(data)
    fc = [op for op in g.ops if op.op == "FULLY_CONNECTED"][-1]
    rng = np.random.default_rng(seed)
    for t in fc.inputs[1:3]:
        arr = g.constant(g.tensors[t])
        old = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        assert data.count(old) == 1
        new = rng.permutation(arr.ravel()).astype(arr.dtype.newbyteorder("<")).tobytes()
        data = data.replace(old, new)
    return data


def renamed(data: bytes) -> bytes:
    """The same model with every tensor renamed (and re-serialized): only names differ."""
    g = load_graph(data)
    for i, t in enumerate(g.model.subgraphs[0].tensors):
        t.name = f"renamed/tensor_{len(g.tensors) - i}".encode()
    b = flatbuffers.Builder(len(data) + 4096)
    b.Finish(g.model.Pack(b), file_identifier=b"TFL3")
    out = bytes(b.Output())
    assert out != data and load_graph(out).ops[-1].op == g.ops[-1].op
    return out


def whole(data: bytes, x: np.ndarray) -> np.ndarray:
    """The original model run whole on the interpreter's built-in kernels: its only output."""
    b = LiteRTBackend(data, xnnpack=False)
    try:
        (out,) = b.run({b.inputs[0].name: x}).values()
    finally:
        b.close()
    return out


@pytest.fixture(scope="module")
def mnv2_service(tmp_path_factory):
    """MobileNetV2 with three heads, one of the models with every tensor renamed, composed by the CLI."""
    d = tmp_path_factory.mktemp("mnv2")
    models = {"cls_a": MNV2, "cls_b": renamed(new_head(MNV2, 1)), "cls_c": new_head(MNV2, 2)}
    for task, data in models.items():
        (d / f"{task}.tflite").write_bytes(data)
    res = cli("compose", *(d / f"{t}.tflite" for t in models), "--out", d / "svc")
    assert res.returncode == 0, res.stderr
    return d / "svc" / "manifest.json", models


def _inputs(shape, n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 127, size=shape, endpoint=True, dtype=np.int8) for _ in range(n)]


@pytest.mark.parametrize("backend", ["litert", "native"])
def test_mobilenet_three_heads_bit_exact(mnv2_service, backend):
    path, models = mnv2_service
    m = ServiceManifest.load(path)
    assert [s.name for s in m.submodels] == ["backbone", "head_cls_a", "head_cls_b", "head_cls_c"]
    assert [t.name for t in m.tasks] == list(models)
    assert m.tasks_using("backbone") == list(models)
    pipe = ServicePipeline.from_manifest(path, backend)
    try:
        xs = _inputs(m.inputs[0].shape, 3) + [m.tasks[0].golden.inputs[0].to_array()]
        for n, x in enumerate(xs, 1):
            got = pipe.run({"input_0": x}, list(models))
            for task, data in models.items():
                (y,) = got[task].values()
                np.testing.assert_array_equal(y, whole(data, x), err_msg=f"{task} on {backend}")
            # every submodel ran once per request: the backbone once for three tasks
            assert set(pipe.runs.values()) == {n} and len(pipe.runs) == 4
        assert not np.array_equal(*(whole(models[t], xs[0]) for t in ("cls_a", "cls_c")))  # the heads differ
    finally:
        pipe.close()


def test_cli_run_tasks_and_inspect(mnv2_service, tmp_path):
    path, models = mnv2_service
    x = _inputs((1, 96, 96, 3), 1, seed=5)[0]
    np.save(tmp_path / "x.npy", x)
    res = cli("run", path, "--task", "cls_a,cls_c", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npz")
    assert res.returncode == 0, res.stderr
    y = np.load(tmp_path / "y.npz")
    assert sorted(y.files) == ["cls_a/out_0", "cls_c/out_0"]
    np.testing.assert_array_equal(y["cls_a/out_0"], whole(models["cls_a"], x))
    np.testing.assert_array_equal(y["cls_c/out_0"], whole(models["cls_c"], x))
    res = cli("run", path, "--task", "cls_b", "--input", tmp_path / "x.npy", "--output", tmp_path / "b.npy",
              "--backend", "native")  # fmt: skip
    assert res.returncode == 0, res.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), whole(models["cls_b"], x))
    res = cli("inspect", path)
    assert res.returncode == 0, res.stderr
    m = ServiceManifest.load(path)
    assert f"sha256 {m.submodels[0].sha256[:12]}" in res.stdout and "tasks: cls_a, cls_b, cls_c" in res.stdout
    assert "task cls_b: backbone -> head_cls_b" in res.stdout


def test_identical_submodels_identical_bytes_whatever_the_names(tmp_path):
    """The same backbone and heads from differently named (and re-serialized) source files: same sha256."""
    b = new_head(MNV2, 1)
    plain = compose_service([Source("a", MNV2), Source("b", b)], tmp_path / "plain", "s")
    other = compose_service([Source("a", renamed(MNV2)), Source("b", renamed(b))], tmp_path / "named", "s")
    assert [s.sha256 for s in plain.submodels] == [s.sha256 for s in other.submodels]
    backbone = [(tmp_path / d / "backbone.tflite").read_bytes() for d in ("plain", "named")]
    assert backbone[0] == backbone[1]
    # and the backbone is the same bytes whichever heads it was composed with
    third = compose_service([Source("a", MNV2), Source("c", new_head(MNV2, 7))], tmp_path / "third", "s")
    assert third.submodels[0].sha256 == plain.submodels[0].sha256


def test_dedupe_shared_stored_once(mnv2_service):
    path, models = mnv2_service
    m = ServiceManifest.load(path)
    stored = {p.name: p.stat().st_size for p in path.parent.glob("*.tflite")}
    assert stored == {s.file: s.size for s in m.submodels}  # nothing else: the backbone once, one head per task
    backbone, heads = m.submodels[0], m.submodels[1:]
    assert sum(stored.values()) == backbone.size + sum(h.size for h in heads)
    for h in heads:  # a shared backbone plus one head costs the whole model, + <= 1 KiB per submodel
        assert backbone.size + h.size <= len(models["cls_a"]) + 2 * 1024
        assert h.size < 0.03 * len(models["cls_a"])
    assert sum(stored.values()) < 1.1 * len(MNV2)  # three models stored in little more than one


@pytest.mark.parametrize("backend", ["litert", "native"])
def test_mlp_digits_heads(tmp_path, backend):
    models = {"digits": MLP, "digits_b": new_head(MLP, 3), "digits_c": new_head(MLP, 4)}
    m = compose_service([Source(t, d) for t, d in models.items()], tmp_path / "svc", "digits")
    assert [len(s.ops) for s in m.submodels] == [2, 2, 2, 2]  # two shared dense layers, dense + softmax heads
    pipe = ServicePipeline.from_manifest(tmp_path / "svc" / "manifest.json", backend)
    try:
        assert pipe.check_golden() == []
        for x in _inputs((1, 64), 20):
            got = pipe.run({"input_0": x}, list(models))
            for t, d in models.items():
                np.testing.assert_array_equal(next(iter(got[t].values())), whole(d, x))
    finally:
        pipe.close()


def test_v1_manifest_is_a_one_task_service(tmp_path):
    g = load_graph(MLP)
    split_model(g, plan_balanced(g, 3, graph_macs(g)), tmp_path / "split", "mlp_digits", source_bytes=MLP)
    m = load_any(tmp_path / "split" / "manifest.json")
    assert [t.name for t in m.tasks] == ["mlp_digits"] and len(m.task_plan(["mlp_digits"])) == 3
    x = _inputs((1, 64), 1)[0]
    np.save(tmp_path / "x.npy", x)
    res = cli("run", tmp_path / "split" / "manifest.json", "--task", "mlp_digits", "--input", tmp_path / "x.npy",
              "--output", tmp_path / "y.npy")  # fmt: skip
    assert res.returncode == 0, res.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), whole(MLP, x))


def test_task_plan_each_submodel_once_in_order(mnv2_service):
    m = ServiceManifest.load(mnv2_service[0])
    plan = m.task_plan(["cls_c", "cls_a", "cls_c"])
    assert [s.name for s in plan] == ["backbone", "head_cls_a", "head_cls_c"]
    with pytest.raises(UnknownTaskError, match="no task 'nope'"):
        m.task_plan(["cls_a", "nope"])


# -- bad input ------------------------------------------------------------------------------------------------


def test_unrelated_models_refused(tmp_path):
    (tmp_path / "a.tflite").write_bytes(MLP)
    (tmp_path / "b.tflite").write_bytes(MNV2)
    res = cli("compose", tmp_path / "a.tflite", tmp_path / "b.tflite", "--out", tmp_path / "svc")
    assert_clean_error(res, "nothing in common")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tflite", "b.tflite"]  # nothing written half-way


def test_task_name_clash_refused(tmp_path):
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "m.tflite").write_bytes(MLP)
    res = cli("compose", tmp_path / "x" / "m.tflite", tmp_path / "y" / "m.tflite", "--out", tmp_path / "svc")
    assert_clean_error(res, "task name clash", "m")
    res = cli("compose", "--task", f"a={tmp_path / 'x' / 'm.tflite'}", "--task", f"a={tmp_path / 'y' / 'm.tflite'}",
              "--out", tmp_path / "svc")  # fmt: skip
    assert_clean_error(res, "task name clash")
    assert not (tmp_path / "svc").exists()
    with pytest.raises(PartitionError, match="letters"):
        compose_service([Source("a/b", MLP)], tmp_path / "svc", "s")


def _mangled(tmp_path, src: Path, edit) -> Path:
    d = tmp_path / "bad"
    d.mkdir()
    for f in src.parent.glob("*.tflite"):
        (d / f.name).symlink_to(f)
    doc = json.loads(src.read_text())
    edit(doc)
    (d / "manifest.json").write_text(json.dumps(doc))
    return d / "manifest.json"


def _cycle(doc):  # the backbone reads what head_cls_a writes, which reads the backbone
    doc["submodels"][0]["inputs"].append({**doc["submodels"][1]["outputs"][0]})


def _unproduced(doc):
    doc["tasks"][1]["outputs"] = ["cls_z/out_0"]


@pytest.mark.parametrize("edit,needle", [(_cycle, "cycle"), (_unproduced, "which no submodel produces")])
def test_bad_service_manifest_refused(mnv2_service, tmp_path, edit, needle):
    bad = _mangled(tmp_path, mnv2_service[0], edit)
    with pytest.raises(ManifestError, match=needle):
        ServiceManifest.load(bad)
    np.save(tmp_path / "x.npy", np.zeros((1, 96, 96, 3), np.int8))
    res = cli("run", bad, "--task", "cls_a", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert_clean_error(res, needle)
    assert not (tmp_path / "y.npy").exists()
    assert_clean_error(cli("inspect", bad), needle)


def test_unknown_task_refused(mnv2_service, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 96, 96, 3), np.int8))
    res = cli("run", mnv2_service[0], "--task", "cls_a,nope", "--input", tmp_path / "x.npy",
              "--output", tmp_path / "y.npz")  # fmt: skip
    assert_clean_error(res, "no task 'nope'", "cls_a, cls_b, cls_c")
    assert not (tmp_path / "y.npz").exists()
    res = cli("run", mnv2_service[0], "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npz")
    assert_clean_error(res, "3 tasks", "--task")


def test_service_schema_doc_in_sync():
    from edge_maas.service import json_schema

    doc = json.loads((MODELS.parent.parent / "docs" / "service.schema.json").read_text())
    assert doc == json.loads(json.dumps(json_schema())), "regenerate docs/service.schema.json"

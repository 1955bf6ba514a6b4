"""`edge-maas head train` (issue 10, item 3): a new task learned by transfer learning on a real composed service and
added to it.

The service: the zoo's digits MLP (trained for class10 on digits_split's training part) composed with two head
variants (test_compose.new_head: the same frozen backbone, other last-layer weights), so the backbone is the two
shared dense layers and `backbone/out_0` its int8[1, 32] features.  The new tasks are learned from few samples of
the held-out digits, which the backbone never saw; most of those samples score the head.

Proves: the new task runs through `edge-maas run --task` (litert and native) and equals the head run on the
backbone's features; int8 accuracy within 1 point of float on held-out digits; interpreter and native heads give
the same bytes; the manifest validates, its golden pairs replay, the other submodels are untouched and only the head
is added; the version is bumped, release and signatures dropped; a v1 split folder becomes a v2 service; each bad
input gives one clear error and leaves the folder byte for byte as it was."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_bad_input import assert_clean_error
from test_compose import MLP, cli, new_head
from test_head_train import _quantize

from edge_maas.backends.litert import LiteRTBackend
from edge_maas.datasets import digits_split
from edge_maas.heads.features import extract_features
from edge_maas.heads.service_head import train_service_task
from edge_maas.partition import plan_balanced, split_model
from edge_maas.partition.compose import Source, compose_service
from edge_maas.partition.costs import graph_macs
from edge_maas.service import ServiceManifest, load_any
from edge_maas.service_edit import ServiceEditError, next_version
from edge_maas.service_pipeline import ServicePipeline
from edge_maas.tflite import load_graph

AT = "backbone/out_0"
HOLDOUT = 0.75  # of digits_split's held-out 450: ~112 samples train the new task, ~338 score it


@pytest.fixture(scope="module")
def composed(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("digits_svc")
    models = {"class10": MLP, "digits_b": new_head(MLP, 3), "digits_c": new_head(MLP, 4)}
    compose_service([Source(t, m) for t, m in models.items()], d / "svc", "digits")
    return d / "svc"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """train.npz for 'ge5' (digit >= 5) from the digits the backbone was not trained on, and those inputs."""
    _, x_test, _, y_test = digits_split()
    x = _quantize(x_test)
    d = tmp_path_factory.mktemp("digits_data")
    np.savez(d / "train.npz", x=x, y=(y_test >= 5).astype(np.int64))
    return d / "train.npz", x, y_test


@pytest.fixture
def svc(composed, tmp_path) -> Path:
    """A fresh copy of the composed service folder for each test that edits it."""
    shutil.copytree(composed, tmp_path / "svc")
    return tmp_path / "svc"


def hashes(folder: Path) -> dict[str, str]:
    """Every file in the folder (hidden leftovers too) by name -> sha256."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def accuracies(stdout: str) -> tuple[float, float]:
    m = re.search(r"float accuracy ([\d.]+), int8 accuracy ([\d.]+)", stdout)
    assert m, stdout
    return float(m.group(1)), float(m.group(2))


def test_head_train_adds_a_task_that_runs_through_the_service(svc, data, tmp_path):
    npz, x, _ = data
    before = ServiceManifest.load(svc / "manifest.json")
    files_before = hashes(svc)
    res = cli("head", "train", svc / "manifest.json", "--at", AT, "--data", npz, "--task", "ge5", "--hidden", "16",
              "--holdout", HOLDOUT)  # fmt: skip
    assert res.returncode == 0, res.stderr
    print(res.stdout)
    f, q = accuracies(res.stdout)
    assert q >= f - 0.01 and f > 0.8, res.stdout
    assert re.search(r"interpreter vs native head: identical bytes on \d{3} samples", res.stdout), res.stdout

    # the folder: the other files untouched, one head added, the manifest rewritten
    files_after = hashes(svc)
    assert set(files_after) == set(files_before) | {"head_ge5.tflite"}
    assert {k: v for k, v in files_after.items() if k != "manifest.json" and k in files_before} == \
        {k: v for k, v in files_before.items() if k != "manifest.json"}  # fmt: skip
    m = ServiceManifest.load(svc / "manifest.json")  # validates
    assert m.service.version == "2" and m.service.release is None and m.signatures == ()
    assert m.submodels[:-1] == before.submodels and m.tasks[:-1] == before.tasks  # same sha256, same golden pairs
    head = m.submodel("head_ge5")
    assert head.file == "head_ge5.tflite" and head.inputs == (m.tensor(AT),)
    assert [t.name for t in head.outputs] == ["ge5/out_0"] and m.task("ge5").outputs == ("ge5/out_0",)
    assert [s.name for s in m.task_plan(["ge5"])] == ["backbone", "head_ge5"]
    # the golden pair holds the service's input (the request class10 is pinned to) and replays on both backends
    assert m.task("ge5").golden.inputs == m.task("class10").golden.inputs
    for backend in ("litert", "native"):
        pipe = ServicePipeline.from_manifest(svc / "manifest.json", backend)
        try:
            assert pipe.check_golden() == []
        finally:
            pipe.close()

    # `edge-maas run --task ge5` equals the head run on the backbone's features (interpreter, built-in kernels)
    blob = (svc / "head_ge5.tflite").read_bytes()
    feats = extract_features(svc / "manifest.json", AT, x[:8])
    ref = LiteRTBackend(blob, xnnpack=False)
    for i in (0, 7):
        np.save(tmp_path / "x.npy", x[i : i + 1])
        expected = ref.run({AT: feats.values[i : i + 1]})["ge5/out_0"]
        for backend in ("litert", "native"):
            out = tmp_path / f"y_{backend}.npy"
            res = cli("run", svc / "manifest.json", "--task", "ge5", "--input", tmp_path / "x.npy", "--output", out,
                      "--backend", backend)  # fmt: skip
            assert res.returncode == 0, res.stderr
            np.testing.assert_array_equal(np.load(out), expected)
    # one request for an old task and the new one: the backbone once
    pipe = ServicePipeline.from_manifest(svc / "manifest.json", "native")
    try:
        got = pipe.run({"input_0": x[:1]}, ["class10", "ge5"])
        np.testing.assert_array_equal(got["ge5"]["ge5/out_0"], ref.run({AT: feats.values[:1]})["ge5/out_0"])
        assert pipe.runs == {"backbone": 1, "head_class10": 1, "head_ge5": 1}
    finally:
        pipe.close()


@pytest.mark.parametrize("hidden", [None, 8])
def test_int8_within_one_point_of_float_on_held_out_digits(svc, data, hidden):
    npz, _, y = data
    r = train_service_task(svc / "manifest.json", AT, npz, "parity", hidden=hidden, holdout=HOLDOUT, backend="native")
    a = r.accuracy
    print(f"\nparity hidden={hidden}: {r.head.n_train} training samples, {a.n} held out: float {a.float:.4f}, "
          f"int8 {a.int8:.4f}")  # fmt: skip
    assert a.n == round(HOLDOUT * len(y)) and r.checked == a.n
    assert a.int8 >= a.float - 0.01 and a.float > 0.8
    # a second new task on the same backbone: versions go on, the first new head is kept
    r2 = train_service_task(svc / "manifest.json", AT, npz, "ge5", hidden=hidden, holdout=HOLDOUT, version="3.0")
    assert r2.manifest.service.version == "3.0" and r2.previous_version == "2"
    assert [t.name for t in load_any(svc / "manifest.json").tasks] == ["class10", "digits_b", "digits_c", "parity",
                                                                       "ge5"]  # fmt: skip


def test_v1_split_folder_becomes_a_service(tmp_path, data):
    npz, _, _ = data
    g = load_graph(MLP)
    split_model(g, plan_balanced(g, 2, graph_macs(g)), tmp_path / "split", "mlp_digits", source_bytes=MLP)
    v1 = load_any(tmp_path / "split" / "manifest.json")
    at = v1.submodels[0].outputs[0].name
    res = cli("head", "train", tmp_path / "split" / "manifest.json", "--at", at, "--data", npz, "--task", "ge5",
              "--holdout", HOLDOUT)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "now a version-2 service" in res.stdout
    m = ServiceManifest.load(tmp_path / "split" / "manifest.json")
    assert [t.name for t in m.tasks] == ["mlp_digits", "ge5"] and m.submodels[:-1] == v1.submodels
    assert m.service.version == "2"
    pipe = ServicePipeline.from_manifest(tmp_path / "split" / "manifest.json", "litert", xnnpack=False)
    try:
        assert pipe.check_golden() == []
        assert [s.name for s in m.task_plan(["ge5"])] == ["shard_00", "head_ge5"]
    finally:
        pipe.close()


def test_next_version():
    assert [next_version(v) for v in ("1", "1.0", "1.9", "v9", "2.09", "beta", "1.0-rc")] == \
        ["2", "1.1", "1.10", "v10", "2.10", "beta.1", "1.0-rc.1"]  # fmt: skip


# -- bad input: one clear error, the folder byte for byte as it was -------------------------------------------------


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


BAD = {
    "unknown_tensor": (lambda d, x, y: ["--at", "nope"], ["no boundary tensor named 'nope'", "'backbone/out_0'"]),
    "service_input": (lambda d, x, y: ["--at", "input_0"], ["'input_0' is an input", "'backbone/out_0'"]),
    "wrong_shape": (lambda d, x, y: ["--data", _npz(d / "b.npz", x=x[:, :63], y=y)], ["got shape [450, 63]"]),
    "wrong_dtype": (
        lambda d, x, y: ["--data", _npz(d / "b.npz", x=x.astype(np.float32), y=y)],
        ["is float32; expected int8"],
    ),
    "y_missing": (lambda d, x, y: ["--data", _npz(d / "b.npz", x=x)], ["lacks array(s) y"]),
    "y_float": (lambda d, x, y: ["--data", _npz(d / "b.npz", x=x, y=y.astype(np.float32))], ["labels must be"]),
    "y_count": (lambda d, x, y: ["--data", _npz(d / "b.npz", x=x, y=y[:-1])], ["449 labels for 450 samples"]),
    "task_clash": (lambda d, x, y: ["--task", "class10"], ["task name clash", "class10"]),
    "same_version": (lambda d, x, y: ["--version", "1"], ["current version"]),
    "bad_task_name": (lambda d, x, y: ["--task", "a/b"], ["task name 'a/b'"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_one_clear_error_nothing_written(svc, data, tmp_path, case):
    npz, x, y = data
    extra, needles = BAD[case]
    args = {"--at": AT, "--data": npz, "--task": "ge5"}
    over = extra(tmp_path, x, (y >= 5).astype(np.int64))
    args.update(zip(over[::2], over[1::2]))
    before = hashes(svc)
    res = cli("head", "train", svc / "manifest.json", *(str(v) for kv in args.items() for v in kv))
    assert_clean_error(res, *needles)
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert hashes(svc) == before


def test_clash_with_an_added_head_and_library_errors(svc, data):
    npz, _, _ = data
    train_service_task(svc / "manifest.json", AT, npz, "ge5", holdout=HOLDOUT)
    before = hashes(svc)
    with pytest.raises(ServiceEditError, match="task name clash"):
        train_service_task(svc / "manifest.json", AT, npz, "ge5", holdout=HOLDOUT)
    assert hashes(svc) == before


def test_replace_retrains_one_task_and_remove_drops_one(svc, data):
    """--replace swaps one task's head (the other submodels' bytes and tasks unchanged); `head remove` drops a task
    and the submodels only it needs; each at a new version."""
    npz, x, _ = data
    before = ServiceManifest.load(svc / "manifest.json")
    res = cli("head", "train", svc / "manifest.json", "--at", AT, "--data", npz, "--task", "digits_b", "--replace",
              "--holdout", HOLDOUT)  # fmt: skip
    assert res.returncode == 0, res.stderr
    m = ServiceManifest.load(svc / "manifest.json")
    assert m.service.version == "2" and [t.name for t in m.tasks] == ["class10", "digits_c", "digits_b"]
    assert m.submodel("head_digits_b").sha256 != before.submodel("head_digits_b").sha256  # retrained
    for name in ("backbone", "head_class10", "head_digits_c"):
        assert m.submodel(name) == before.submodel(name)
    assert m.task("class10") == before.task("class10")
    pipe = ServicePipeline.from_manifest(svc / "manifest.json", "native")
    try:
        assert pipe.check_golden() == []
    finally:
        pipe.close()
    res = cli("head", "train", svc / "manifest.json", "--at", AT, "--data", npz, "--task", "nope", "--replace")
    assert_clean_error(res, "no task 'nope'")

    res = cli("head", "remove", svc / "manifest.json", "--task", "digits_c")
    assert res.returncode == 0, res.stderr
    m3 = ServiceManifest.load(svc / "manifest.json")
    assert m3.service.version == "3" and [t.name for t in m3.tasks] == ["class10", "digits_b"]
    assert "head_digits_c" not in {s.name for s in m3.submodels} and m3.submodel("backbone") == m.submodel("backbone")
    res = cli("head", "remove", svc / "manifest.json", "--task", "class10")
    assert res.returncode == 0
    assert_clean_error(cli("head", "remove", svc / "manifest.json", "--task", "digits_b"), "only task")

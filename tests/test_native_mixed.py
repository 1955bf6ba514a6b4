"""Ops native lacks: one UnsupportedOpError names all of them (index, name, why), and backend "native"
runs a split model's other stages natively and those stages on the interpreter, saying which, with the
interpreter's bytes; "native-only" keeps the failure."""

from __future__ import annotations

import hashlib
import logging
import subprocess

import numpy as np
import pytest
from arm import AARCH64
from oneop import Op, T, build_model, qscale
from test_cli import EXE

from edge_maas.backends.litert import LiteRTBackend
from edge_maas.backends.native import NativeBackend
from edge_maas.errors import UnsupportedOpError
from edge_maas.partition import plan_every_op, split_model
from edge_maas.pipeline import Pipeline
from edge_maas.tflite import load_graph

SX, SY = qscale(0.05), qscale(0.08)
# sha256 of the x86-64 interpreter's outputs of _conv_abs_conv on test_mixed_stages_bit_exact_and_logged's feeds
WHOLE_X86_SHA256 = "3ff8a03984c7d117475f32f206f72558470ec032db32edc3817b4928a4a805bb"


def _conv(name, x, y, c_in, c_out, in_scale, rng):
    w = rng.integers(-127, 128, (c_out, 3, 3, c_in), dtype=np.int8)
    ws = qscale(0.01)
    return (
        [T(f"{name}_w", w.shape, "int8", [ws], [0], 0, w),
         T(f"{name}_b", (c_out,), "int32", [in_scale * ws], [0], 0, rng.integers(-500, 500, c_out).astype(np.int32))],
        Op("CONV_2D", [x, f"{name}_w", f"{name}_b"], [y], "Conv2DOptions", {"padding": 0, "strideH": 1, "strideW": 1}),
    )  # fmt: skip


def _conv_abs_conv() -> bytes:
    """CONV_2D -> ABS (no native kernel; the interpreter has an int8 one) -> CONV_2D, 8x8x4."""
    rng = np.random.default_rng(3)
    t1, c1 = _conv("c1", "x", "a", 4, 4, SX, rng)
    t2, c2 = _conv("c2", "t", "y", 4, 4, 1 / 128, rng)
    return build_model(
        [T("x", (1, 8, 8, 4), "int8", [SX], [2]), T("a", (1, 8, 8, 4), "int8", [SX], [-3]),
         T("t", (1, 8, 8, 4), "int8", [1 / 128], [0]), T("y", (1, 8, 8, 4), "int8", [SY], [1]), *t1, *t2],
        [c1, Op("ABS", ["a"], ["t"]), c2], ["x"], ["y"],
    )  # fmt: skip


def test_every_missing_op_named_at_once():
    """ABS (op 0) and LOG (op 2) have no kernel; MUL (op 3) has one but not for float32: all three in one
    error, each with its index and why; the supported ADD (op 1) is not listed."""
    q = ([0.05], [0])
    model = build_model(
        [T("x", (1, 8), "int8", [1 / 128], [0]), T("a", (1, 8), "int8", [1 / 128], [0]),
         T("b", (1, 8), "int8", [1 / 64], [0]), T("g", (1, 8), "int8", *q),
         T("f", (1, 8), "float32"), T("h", (1, 8), "float32")],
        [Op("ABS", ["x"], ["a"]), Op("ADD", ["a", "x"], ["b"], "AddOptions", {}), Op("LOG", ["b"], ["g"]),
         Op("MUL", ["f", "f"], ["h"], "MulOptions", {})],
        ["x", "f"], ["g", "h"],
    )  # fmt: skip
    with pytest.raises(UnsupportedOpError) as info:
        NativeBackend(model)
    exc = info.value
    assert [(p.index, p.op) for p in exc.problems] == [(0, "ABS"), (2, "LOG"), (3, "MUL")]
    text = str(exc)
    assert "cannot run 3 ops" in text and "op 0 (ABS): no kernel for ABS" in text
    assert "op 2 (LOG): no kernel for LOG" in text and "op 3 (MUL):" in text and "float32" in text
    assert "op 1 (ADD)" not in text and "'litert' backend" in text
    assert exc.summary.startswith("native lacks ABS (op 0), LOG (op 2); native cannot run MUL (op 3: ")


@pytest.fixture
def split_dir(tmp_path):
    blob = _conv_abs_conv()
    graph = load_graph(blob)
    split_model(graph, plan_every_op(graph), tmp_path, "conv_abs_conv", source_bytes=blob)
    return tmp_path, blob


def test_mixed_stages_bit_exact_and_logged(split_dir, caplog):
    folder, blob = split_dir
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.integers(-128, 128, (1, 8, 8, 4), dtype=np.int8)} for _ in range(4)]
    whole = LiteRTBackend(blob, xnnpack=False)
    with caplog.at_level(logging.INFO, logger="edge_maas.backends"):
        pipe = Pipeline.from_manifest(folder / "manifest.json", "native")
    files = [f"shard_0{i}.tflite" for i in range(3)]
    lines = [r.getMessage() for r in caplog.records if r.name == "edge_maas.backends"]
    assert lines == [f"stage 0 ({files[0]}): native", f"stage 1 ({files[1]}): interpreter: native lacks ABS (op 0)",
                     f"stage 2 ({files[2]}): native"]  # fmt: skip
    assert [st.kind for st in pipe.stages] == ["native", "litert", "native"]
    assert isinstance(pipe.stages[0].backend, NativeBackend) and isinstance(pipe.stages[1].backend, LiteRTBackend)
    outs = [pipe.run(feed)["y"].tobytes() for feed in feeds]
    # the x86 interpreter's bytes on every CPU; on aarch64 its CONV_2D rounds once (tests/arm.py), so the whole
    # model there is not the reference: the x86 digest is
    assert hashlib.sha256(b"".join(outs)).hexdigest() == WHOLE_X86_SHA256
    if not AARCH64:
        assert outs == [whole.run(feed)["y"].tobytes() for feed in feeds]
    # strict: the same model fails on the shard native cannot run, naming the op
    with pytest.raises(UnsupportedOpError, match=r"op 0 \(ABS\): no kernel for ABS"):
        Pipeline.from_manifest(folder / "manifest.json", "native-only")


def test_cli_mixed_and_strict(split_dir):
    """The installed CLI: --backend native runs and says (with -v) where each stage ran, with the interpreter's
    bytes; --backend native-only exits 2 with one error line naming ABS."""
    folder, blob = split_dir
    x = np.random.default_rng(1).integers(-128, 128, (1, 8, 8, 4), dtype=np.int8)
    np.save(folder / "x.npy", x)
    res = subprocess.run([EXE, "-v", "run", folder / "manifest.json", "--input", folder / "x.npy", "--output",
                          folder / "y.npy", "--backend", "native"], capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "stage 1 (shard_01.tflite): interpreter: native lacks ABS (op 0)" in res.stderr
    assert "stage 0 (shard_00.tflite): native" in res.stderr
    assert np.load(folder / "y.npy").tobytes() == LiteRTBackend(blob, xnnpack=False).run({"x": x})["y"].tobytes()
    res = subprocess.run([EXE, "run", folder / "manifest.json", "--input", folder / "x.npy", "--output",
                          folder / "z.npy", "--backend", "native-only"], capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert res.returncode == 2
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edge-maas: error: ") and "no kernel for ABS" in err[0]


def test_device_installer_mixed_stages(split_dir, monkeypatch):
    """A device with backend "native" installs the split: the ABS shard on the built-in kernels, the others
    native, and the golden pair passes (x86-64: the built-in kernels are the reference).  Where they are not the
    reference (``_X86`` off, as on aarch64) the mixed pipeline is not trusted and, native being unable to load
    the ABS shard, the install is refused with the health-check error instead of serving unchecked bytes."""
    from edge_maas.device import install
    from edge_maas.errors import EdgeMaasError
    from edge_maas.manifest import Manifest
    from edge_maas.registry.blobs import BlobStore

    folder, _ = split_dir
    manifest = Manifest.load(folder / "manifest.json")
    store = BlobStore(folder / "cache")
    for s in manifest.shards:
        store.put((folder / s.file).read_bytes())
    installer = install.Installer(store, None, None, "native", {"threads": 1})
    pipe = installer.pipeline(manifest)
    assert [st.kind for st in pipe.stages] == ["native", "litert", "native"]
    pipe.close()
    monkeypatch.setattr(install, "_X86", False)
    with pytest.raises(EdgeMaasError, match="health check impossible here: native cannot run it .*ABS"):
        installer.pipeline(manifest)


def test_service_pipeline_mixed(split_dir, caplog):
    """The same split loaded as a service (v1 -> one-task service): each submodel on what can run it, logged
    with its name, and the task's golden pair passes."""
    from edge_maas.service_pipeline import ServicePipeline

    folder, _ = split_dir
    with caplog.at_level(logging.INFO, logger="edge_maas.backends"):
        pipe = ServicePipeline.from_manifest(folder / "manifest.json", "native")
    assert sorted(pipe.kinds.values()) == ["litert", "native", "native"]
    lines = [r.getMessage() for r in caplog.records if r.name == "edge_maas.backends"]
    assert sum("interpreter: native lacks ABS (op 0)" in m for m in lines) == 1 and len(lines) == 3
    assert all(m.startswith("submodel ") for m in lines)
    assert pipe.check_golden(pipe.local_tasks()) == []
    pipe.close()


def test_mixed_without_an_interpreter(split_dir, monkeypatch):
    """An install without any interpreter (the worker image): the stage native cannot run has nowhere to go,
    and the error names the stage, the op and the missing interpreter (imports of both packages blocked)."""
    import sys

    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    folder, _ = split_dir
    with pytest.raises(UnsupportedOpError, match=r"stage 1 \(shard_01.tflite\): .*ABS.*no TFLite interpreter found"):
        Pipeline.from_manifest(folder / "manifest.json", "native")

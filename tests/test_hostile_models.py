"""Hostile and malformed .tflite files: however wrong their shapes, buffers, indices, quantization or
flatbuffer structure, `inspect`, `split` and `run` (litert and native) print one `edge-maas: error:` line,
exit 2, and allocate nothing the model's sizes ask for before checking them."""

from __future__ import annotations

import math
import re
import resource
import subprocess
import sys
from collections.abc import Callable

import flatbuffers
import numpy as np
import pytest
from conftest import MODELS

from edge_maas import cli
from edge_maas.errors import ModelFormatError
from edge_maas.tflite import load_graph
from edge_maas.tflite.builder import Op, T, build_model
from edge_maas.tflite.schema import schema

_QI = dict(scale=[0.05], zero_point=[0])


def _chain(shape=(1, 4, 2), n_ops: int = 2, dtype: str = "int8") -> bytes:
    """x -> QUANTIZE -> ... -> QUANTIZE (int8 requantize, n_ops), every tensor of `shape`: a model whose only
    fault is what a test gives."""
    names = [f"t{i}" for i in range(n_ops + 1)]
    return build_model([T(n, shape, dtype, **_QI) for n in names],
                       [Op("QUANTIZE", [a], [b]) for a, b in zip(names, names[1:])], names[:1], names[-1:])  # fmt: skip


def _fc(w_scale=(0.02,), w_zp=(0,), w_axis=0, w_data=None, x_zp=(0,)) -> bytes:
    """x[1,8] -> FULLY_CONNECTED(w[4,8], b[4]) -> y[1,4] -> QUANTIZE -> z: a valid int8 model unless told otherwise."""
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 127, (4, 8), dtype=np.int8) if w_data is None else w_data
    return build_model(
        [T("x", (1, 8), "int8", scale=[0.05], zero_point=list(x_zp)),
         T("w", (4, 8), "int8", scale=list(w_scale), zero_point=list(w_zp), axis=w_axis, data=w),
         T("b", (4,), "int32", scale=[0.001], zero_point=[0], data=np.zeros(4, np.int32)),
         T("y", (1, 4), "int8", **_QI), T("z", (1, 4), "int8", **_QI)],
        [Op("FULLY_CONNECTED", ["x", "w", "b"], ["y"], "FullyConnectedOptions"), Op("QUANTIZE", ["y"], ["z"])],
        ["x"], ["z"],
    )  # fmt: skip


def inflating_conv() -> bytes:
    """Stored shapes all within limits, but the input [1, 4000, 4000, 4] makes the interpreter compute the 1x1
    conv's output as [1, 4000, 4000, 64] (1 G elements) at prepare, whatever the stored [1, 8, 8, 64] says."""
    return build_model(
        [T("x", (1, 4000, 4000, 4), "int8", **_QI),
         T("w", (64, 1, 1, 4), "int8", scale=[0.02], zero_point=[0], data=np.ones((64, 1, 1, 4), np.int8)),
         T("b", (64,), "int32", scale=[0.001], zero_point=[0], data=np.zeros(64, np.int32)),
         T("y", (1, 8, 8, 64), "int8", **_QI)],
        [Op("CONV_2D", ["x", "w", "b"], ["y"], "Conv2DOptions", {"padding": 0, "strideH": 1, "strideW": 1,
                                                                 "dilationHFactor": 1, "dilationWFactor": 1})],
        ["x"], ["y"],
    )  # fmt: skip


def _mutate(blob: bytes, fn: Callable) -> bytes:
    """Decode with the object API, let fn break the model, encode again: faults the builder cannot make."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(blob), 0)
    fn(model)
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _sg(m):
    return m.subgraphs[0]


def _set(obj, **kv):
    for k, v in kv.items():
        setattr(obj, k, v)


def _two_subgraphs(m):
    m.subgraphs = [m.subgraphs[0], m.subgraphs[0]]


def _external_buffer(m):
    m.buffers[_sg(m).tensors[1].buffer].offset = 4096
    m.buffers[_sg(m).tensors[1].buffer].size = 32
    m.buffers[_sg(m).tensors[1].buffer].data = None


def _swap_ops(m):
    ops = _sg(m).operators
    ops[0], ops[1] = ops[1], ops[0]


def shared_name_bomb(copies: int = 20_000, name_bytes: int = 65_536) -> bytes:
    """One tensor table with a 64 KiB name, referenced `copies` times from the tensor vector: a ~150 KB file
    whose object-API decoding copies the name for every reference (1.3 GB)."""
    b = flatbuffers.Builder(1 << 20)
    name = b.CreateString(b"n" * name_bytes)
    schema.TensorStartShapeVector(b, 2)
    b.PrependInt32(4)
    b.PrependInt32(1)
    shape = b.EndVector()
    schema.TensorStart(b)
    schema.TensorAddShape(b, shape)
    schema.TensorAddType(b, schema.TensorType.INT8)
    schema.TensorAddName(b, name)
    tensor = schema.TensorEnd(b)
    schema.SubGraphStartTensorsVector(b, copies)
    for _ in range(copies):
        b.PrependUOffsetTRelative(tensor)
    tensors = b.EndVector()
    schema.SubGraphStartInputsVector(b, 1)
    b.PrependInt32(0)
    inputs = b.EndVector()
    schema.SubGraphStart(b)
    schema.SubGraphAddTensors(b, tensors)
    schema.SubGraphAddInputs(b, inputs)
    schema.SubGraphAddOutputs(b, inputs)
    sg = schema.SubGraphEnd(b)
    schema.ModelStartSubgraphsVector(b, 1)
    b.PrependUOffsetTRelative(sg)
    subgraphs = b.EndVector()
    schema.ModelStart(b)
    schema.ModelAddVersion(b, 3)
    schema.ModelAddSubgraphs(b, subgraphs)
    b.Finish(schema.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


# name -> (model bytes, a phrase of the error)
HOSTILE: dict[str, tuple[Callable[[], bytes], str]] = {
    "huge_dim": (lambda: _chain((1, 2147483647, 2)), "elements per tensor"),
    "negative_dim": (lambda: _chain((1, -5, 2)), "every dimension must be at least 1"),
    "zero_dim": (lambda: _chain((1, 0, 2)), "every dimension must be at least 1"),
    "rank_9": (lambda: _chain((1,) * 9), "rank 9"),
    "total_too_big": (lambda: _chain((1, 1 << 26), n_ops=16), "tensors need"),
    "const_buffer_short": (lambda: _fc(w_data=np.zeros(10, np.int8)), "holds 10 bytes"),
    "buffer_index": (lambda: _mutate(_fc(), lambda m: _set(_sg(m).tensors[1], buffer=99)), "buffer 99"),
    "op_input_index": (lambda: _mutate(_fc(), lambda m: _set(_sg(m).operators[0], inputs=[50, 1, 2])),
                       "refers to tensor 50"),  # fmt: skip
    "op_input_negative": (lambda: _mutate(_fc(), lambda m: _set(_sg(m).operators[0], inputs=[-7, 1, 2])),
                          "refers to tensor -7"),  # fmt: skip
    "op_output_omitted": (lambda: _mutate(_fc(), lambda m: _set(_sg(m).operators[1], outputs=[-1])),
                          "missing output"),  # fmt: skip
    "opcode_index": (lambda: _mutate(_fc(), lambda m: _set(_sg(m).operators[1], opcodeIndex=7)), "operator code 7"),
    "model_input_index": (lambda: _mutate(_fc(), lambda m: _set(_sg(m), inputs=[99])), "model input"),
    "no_subgraph": (lambda: _mutate(_fc(), lambda m: _set(m, subgraphs=[])), "0 subgraphs"),
    "two_subgraphs": (lambda: _mutate(_fc(), _two_subgraphs), "2 subgraphs"),
    "per_channel_count": (lambda: _fc(w_scale=(0.1, 0.2, 0.3), w_zp=(0, 0, 0)), "per-channel scales"),
    "per_channel_axis": (lambda: _fc(w_scale=(0.1,) * 4, w_zp=(0,) * 4, w_axis=5), "per-channel scales"),
    "zero_point_count": (lambda: _fc(w_scale=(0.1,), w_zp=(0, 0)), "zero points"),
    "scale_nan": (lambda: _fc(w_scale=(math.nan,)), "finite and positive"),
    "scale_zero": (lambda: _fc(w_scale=(0.0,)), "finite and positive"),
    "zero_point_range": (lambda: _fc(x_zp=(300,)), "outside the int8 range"),
    "external_buffer": (lambda: _mutate(_fc(), _external_buffer), "outside the flatbuffer"),
    "read_before_write": (lambda: _mutate(_fc(), _swap_ops), "before any operator writes it"),
    "written_twice": (lambda: _mutate(_fc(), lambda m: _set(_sg(m).operators[1], outputs=[3])),
                      "written by an earlier operator"),  # fmt: skip
    "add_one_input": (lambda: build_model([T("x", (1, 4), "int8", **_QI), T("y", (1, 4), "int8", **_QI)],
                                          [Op("ADD", ["x"], ["y"])], ["x"], ["y"]), "it takes 2"),  # fmt: skip
    "shared_name_bomb": (shared_name_bomb, "string bytes"),
    "inflating_conv": (inflating_conv, "its inputs make an output of shape [1, 4000, 4000, 64]"),
}


def test_the_base_models_are_valid(tmp_path):
    """The faults below are the only thing wrong with their models: the unbroken ones split and run."""
    for blob in (_fc(), _chain()):
        p = tmp_path / "ok.tflite"
        p.write_bytes(blob)
        assert cli.main(["split", str(p), "--shards", "2", "--out", str(tmp_path / "s")]) == 0
        x = tmp_path / "x.npy"
        np.save(x, np.zeros(load_graph(blob).tensors[0].shape, np.int8))
        for backend in ("litert", "native"):
            assert cli.main(["run", str(p), "--input", str(x), "--output", str(tmp_path / "y.npy"),
                             "--backend", backend]) == 0  # fmt: skip


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_load_graph_refuses(case):
    make, phrase = HOSTILE[case]
    with pytest.raises(ModelFormatError, match=re.escape(phrase)):
        load_graph(make())


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_every_command_gives_one_error_line(case, tmp_path, capsys):
    make, phrase = HOSTILE[case]
    p = tmp_path / f"{case}.tflite"
    p.write_bytes(make())
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 8), np.int8))
    commands = [["inspect", p], ["split", p, "--shards", "2", "--out", tmp_path / "out"],
                ["run", p, "--input", x, "--output", tmp_path / "y.npy", "--backend", "litert"],
                ["run", p, "--input", x, "--output", tmp_path / "y.npy", "--backend", "native"]]  # fmt: skip
    for args in commands:
        assert cli.main([str(a) for a in args]) == 2, args
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("edge-maas: error: ") and phrase in lines[0], (args, err)
        assert "MACs" not in out  # inspect printed nothing (no negative MACs)
    assert not (tmp_path / "out").exists()


def _limited(args, limit_gib: float = 1.0, timeout: float = 60):
    """The real CLI in a subprocess that may use at most limit_gib of address space."""
    def cap():
        n = int(limit_gib * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (n, n))

    return subprocess.run([sys.executable, "-m", "edge_maas.cli", *map(str, args)], capture_output=True, text=True,
                          preexec_fn=cap, timeout=timeout)  # fmt: skip


@pytest.mark.parametrize("case", ["huge_dim", "total_too_big", "shared_name_bomb", "inflating_conv"])
def test_refused_within_a_memory_bound(case, tmp_path):
    """The issue's reproduction: a 700-byte model with a [1, 2147483647, 2] tensor made split grow to 24 GB.
    Under a 1 GiB cap every command is refused by our checks, with their message, before allocating."""
    make, phrase = HOSTILE[case]
    p = tmp_path / "m.tflite"
    p.write_bytes(make())
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 4, 2), np.int8))
    for args in (["inspect", p], ["split", p, "--shards", "2", "--out", tmp_path / "o"],
                 ["run", p, "--input", x, "--output", tmp_path / "y.npy", "--backend", "native"],
                 ["run", p, "--input", x, "--output", tmp_path / "y.npy"]):  # fmt: skip
        res = _limited(args)
        assert res.returncode == 2, (args, res.stderr[-2000:])
        assert "Traceback" not in res.stderr
        assert res.stderr.strip().splitlines()[-1].startswith("edge-maas: error: "), res.stderr
        assert phrase in res.stderr, res.stderr


def test_inspect_macs_never_negative_on_zoo(capsys):
    for p in sorted(MODELS.glob("*.tflite")):
        assert cli.main(["inspect", str(p)]) == 0
        out = capsys.readouterr().out
        assert " -" not in out.split("MACs", 1)[1].split("\n", 1)[0]


def test_interpreter_refusal_is_one_line(tmp_path, capsys):
    """A model our checks accept but the interpreter cannot load (an op code it does not know): its
    exception becomes one error line, from split (golden run) and run."""
    blob = _mutate(_chain(), lambda m: _set(m.operatorCodes[0], builtinCode=250, deprecatedBuiltinCode=127))
    p = tmp_path / "m.tflite"
    p.write_bytes(blob)
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 4, 2), np.int8))
    for args in (["split", p, "--shards", "2", "--out", tmp_path / "o"], ["run", p, "--input", x, "--output",
                                                                           tmp_path / "y.npy"]):  # fmt: skip
        assert cli.main([str(a) for a in args]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines[-1].startswith("edge-maas: error: the interpreter refused the model"), lines


def test_failed_split_leaves_nothing(tmp_path, capsys):
    """Shards used to be written one by one before the golden run; when that failed, --out held shards and
    no manifest.  Now the folder appears whole or not at all, and an earlier split in it stays intact."""
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(_mutate(_chain(), lambda m: _set(m.operatorCodes[0], builtinCode=250, deprecatedBuiltinCode=127)))
    out = tmp_path / "out"
    assert cli.main(["split", str(bad), "--shards", "2", "--out", str(out)]) == 2
    assert not out.exists()
    assert [q.name for q in tmp_path.iterdir()] == ["bad.tflite"]  # no temporary folder left either

    good = tmp_path / "good.tflite"
    good.write_bytes(_chain(n_ops=3))
    assert cli.main(["split", str(good), "--shards", "3", "--out", str(out)]) == 0
    before = {q.name: q.read_bytes() for q in out.iterdir()}
    assert cli.main(["split", str(bad), "--shards", "2", "--out", str(out)]) == 2
    assert {q.name: q.read_bytes() for q in out.iterdir()} == before
    # a successful split into the existing folder replaces manifest and shards
    assert cli.main(["split", str(good), "--shards", "2", "--out", str(out)]) == 0
    assert '"shard_01.tflite"' in (out / "manifest.json").read_text()
    assert '"shard_02.tflite"' not in (out / "manifest.json").read_text()
    assert sorted(q.name for q in tmp_path.iterdir()) == ["bad.tflite", "good.tflite", "out"]
    capsys.readouterr()

"""Fuzzing: zoo flatbuffers with mutated bytes go through inspect, split and run (litert and native).  They never
crash, never print a traceback, and stay within a memory cap: each model runs in a subprocess under
RLIMIT_AS, and every command exits 0 or 2.

Hypothesis (derandomized: the same examples in every run) mutates bytes at random; a fixed list of targeted
mutations hits what random flips rarely reach: truncation, the header, huge and negative dimensions, vector
lengths, buffer offsets, tensor indices."""

from __future__ import annotations

import resource
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import MODELS
from test_hostile_models import _mutate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_maas.tflite.schema import schema

# The CLI's baseline (interpreter + numpy + kernels) runs the zoo in well under 1 GiB of address space.
MEMORY_CAP = 2 << 30
SMALL = ("mlp_digits", "ds_cnn_kws", "branchy_cnn")
_BLOBS = {n: (MODELS / f"{n}.tflite").read_bytes() for n in SMALL}

# inspect, split, run on both backends, in one process (one interpreter start-up per model), via cli.main:
# an exception cli.main lets through ends this script with a traceback, which the test looks for.
DRIVER = r"""
import contextlib, io, sys
from pathlib import Path
import numpy as np
from edge_maas import cli
model, work = Path(sys.argv[1]), Path(sys.argv[2])
feed = work / "in.npz"
try:  # an input the model accepts, when it loads at all, so that run reaches the backends
    from edge_maas.tflite import load_graph
    g = load_graph(model)
    np.savez(feed, **{g.tensors[i].name: np.zeros(g.tensors[i].shape, g.tensors[i].dtype) for i in g.inputs})
except Exception:
    np.savez(feed, x=np.zeros((1, 4), np.int8))
codes = []
for args in (["inspect", model], ["split", model, "--shards", "2", "--out", work / "split"],
             ["run", model, "--input", feed, "--output", work / "out.npz", "--no-xnnpack"],
             ["run", model, "--input", feed, "--output", work / "out.npz", "--backend", "native"]):
    with contextlib.redirect_stdout(io.StringIO()):
        codes.append(cli.main([str(a) for a in args]))
print(*codes)
"""


def check_model(blob: bytes, work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    model = work / "m.tflite"
    model.write_bytes(blob)

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    res = subprocess.run([sys.executable, "-c", DRIVER, str(model), str(work)], capture_output=True, text=True,
                         preexec_fn=cap, timeout=120)  # fmt: skip
    assert res.returncode == 0, (res.returncode, res.stderr[-3000:])  # not killed, no uncaught exception
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    codes = res.stdout.split()
    assert len(codes) == 4 and set(codes) <= {"0", "2"}, (codes, res.stderr[-3000:])
    for line in res.stderr.splitlines():  # our errors are one line each; the interpreter logs INFO/ERROR lines
        assert line.startswith(("edge-maas: error: ", "INFO: ", "ERROR: ", "WARNING: ")) or not line.strip(), line


# -- targeted mutations -------------------------------------------------------------------------------------------
def _lazy(blob: bytes):
    m = schema.Model.GetRootAs(blob, 0)
    return m, m.Subgraphs(0)


def _vector_pos(table, slot: int) -> int:
    """Byte position of the length word of the vector in field `slot` (4 + 2 * field id) of a lazy table."""
    tab = table._tab
    return tab.Vector(tab.Offset(slot)) - 4


def _patch(blob: bytes, pos: int, value: int) -> bytes:
    out = bytearray(blob)
    out[pos:pos + 4] = struct.pack("<i" if value < 0 else "<I", value)
    return bytes(out)




def _first_dim(blob: bytes, value: int) -> bytes:
    """Set the first dimension of tensor 0's shape (Tensor.shape is field 0: slot 4) in place."""
    _, sg = _lazy(blob)
    return _patch(blob, _vector_pos(sg.Tensors(0), 4) + 4, value)


def _buffer_offset(model) -> None:
    sizes = [0 if b.data is None else len(b.data) for b in model.buffers]
    big = sizes.index(max(sizes))
    model.buffers[big].offset, model.buffers[big].size = 1 << 40, 1 << 40


TARGETED: dict[str, Callable[[bytes], bytes]] = {
    "truncate_header": lambda b: b[:12],
    "truncate_half": lambda b: b[: len(b) // 2],
    "truncate_last_byte": lambda b: b[:-1],
    "root_offset_past_end": lambda b: _patch(b, 0, len(b) + 1000),
    "header_flips": lambda b: bytes(x ^ 0xFF if 8 <= i < 32 else x for i, x in enumerate(b)),
    "huge_dim": lambda b: _first_dim(b, 2147483647),
    "negative_dim": lambda b: _first_dim(b, -1),
    "tensors_vector_huge": lambda b: _patch(b, _vector_pos(_lazy(b)[1], 4), 0x3FFFFFFF),  # SubGraph.tensors
    "operators_vector_huge": lambda b: _patch(b, _vector_pos(_lazy(b)[1], 10), 0x7FFFFFFF),  # SubGraph.operators
    "buffers_vector_huge": lambda b: _patch(b, _vector_pos(_lazy(b)[0], 12), 0xFFFFFFFF),  # Model.buffers
    "op_input_index_huge": lambda b: _patch(b, _vector_pos(_lazy(b)[1].Operators(0), 6) + 4, 0x7FFFFFFF),
    "buffer_offset_outside": lambda b: _mutate(b, _buffer_offset),
    "shape_rank_huge": lambda b: _patch(b, _vector_pos(_lazy(b)[1].Tensors(0), 4), 1 << 20),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TARGETED))
def test_targeted_mutation(name, tmp_path):
    for model in ("mlp_digits", "branchy_cnn"):
        check_model(TARGETED[name](_BLOBS[model]), tmp_path / model)


# -- random mutations ---------------------------------------------------------------------------------------------
_WORDS = [b"\xff\xff\xff\x7f", b"\xff\xff\xff\xff", b"\x00\x00\x00\x80", b"\x00\x00\x00\x00", b"\x00\x00\x01\x00"]


@st.composite
def mutated(draw) -> bytes:
    blob = bytearray(_BLOBS[draw(st.sampled_from(SMALL))])
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(blob) - 4))
        kind = draw(st.sampled_from(["byte", "bit", "word"]))
        if kind == "byte":
            blob[pos] = draw(st.integers(0, 255))
        elif kind == "bit":
            blob[pos] ^= 1 << draw(st.integers(0, 7))
        else:  # an interesting 32-bit word at an aligned position: a length, offset, index or dimension
            pos -= pos % 4
            blob[pos:pos + 4] = draw(st.sampled_from(_WORDS))
    return bytes(blob)


@pytest.mark.slow
@settings(max_examples=30, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # fmt: skip
@given(blob=mutated())
def test_random_mutations(blob, tmp_path_factory):
    check_model(blob, tmp_path_factory.mktemp("fuzz"))

"""TRANSPOSE (int8 and uint8, up to 5-D, any permutation; 6-D when the permutation merges to 5 axes):
native (every ISA) == interpreter == numpy, and the numpy reference's axis merging == np.transpose."""

from __future__ import annotations

import numpy as np
import pytest
from edge_maas.kernels.ref.transpose import merged_gather, transpose
from hypothesis import given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, native_matches_interpreter

from edge_maas.backends.native import NativeBackend
from edge_maas.errors import UnsupportedOpError

Q = ([0.05], [3])


def _model(shape, perm, dtype="int8", perm_dtype="int32", out_q=Q):
    out = tuple(shape[a] for a in perm)
    return build_model(
        [T("x", shape, dtype, *Q), T("p", (len(perm),), perm_dtype, data=np.array(perm, perm_dtype)),
         T("y", out, dtype, *out_q)],
        [Op("TRANSPOSE", ["x", "p"], ["y"], "TransposeOptions", {})], ["x"], ["y"],
    )  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(data=st.data(), rank=st.integers(1, 5), uint8=st.booleans(), seed=st.integers(0, 2**31))
def test_transpose(data, rank, uint8, seed):
    rng = np.random.default_rng(seed)
    shape = tuple(data.draw(st.lists(st.integers(1, 7), min_size=rank, max_size=rank)))
    perm = data.draw(st.permutations(range(rank)))
    dtype = "uint8" if uint8 else "int8"
    x = rng.integers(0, 256, size=shape).astype(np.uint8).view(dtype)
    feeds = [{"x": x}, {"x": rng.integers(0, 256, size=shape).astype(np.uint8).view(dtype)}]
    got = native_matches_interpreter(_model(shape, perm, dtype), feeds)[0]["y"]
    np.testing.assert_array_equal(got, np.transpose(x, perm))
    np.testing.assert_array_equal(transpose(x, perm), np.transpose(x, perm))


@pytest.mark.parametrize("shape, perm", [
    ((1, 3, 32, 32), (0, 2, 3, 1)),  # PyTorch NCHW input -> NHWC
    ((1, 16, 16, 24), (0, 3, 1, 2)),  # NHWC -> NCHW output: 8 x 8 register blocks
    ((1, 13, 11, 21), (0, 3, 1, 2)),  # 8 x 8 blocks with ragged rows and columns at every tile edge
    ((1, 96, 96, 32), (0, 3, 1, 2)),  # many 32 x 32 tiles
    ((3, 40, 9), (2, 1, 0)),  # the input not contiguous along output rows: tiles, byte by byte
    ((2, 3, 4, 5, 6), (4, 2, 0, 3, 1)),  # no two axes merge: the full 5-D gather
    ((2, 3, 2, 3, 2, 3), (0, 1, 4, 5, 2, 3)),  # 6-D that merges to 3 axes
])  # fmt: skip
def test_transpose_model_edges(shape, perm):
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, size=shape, dtype=np.int8)
    got = native_matches_interpreter(_model(shape, perm, perm_dtype="int32"), [{"x": x}])[0]["y"]
    np.testing.assert_array_equal(got, np.transpose(x, perm))


def test_merged_gather():
    assert merged_gather((1, 3, 32, 32), (0, 2, 3, 1)) == ([1024, 3], [1, 1024])
    assert merged_gather((2, 3, 4), (0, 1, 2)) == ([24], [1])  # identity: one contiguous copy
    assert merged_gather((1, 1), (1, 0)) == ([1], [1])


def test_transpose_refusals():
    with pytest.raises(UnsupportedOpError, match="and output differ in type or quantization"):
        NativeBackend(_model((2, 3), (1, 0), out_q=([0.1], [3])))
    # 6-D with no mergeable axes: more than the kernel's 5 (the interpreter takes it; the stage falls back)
    with pytest.raises(UnsupportedOpError, match="leaves 6 axes"):
        NativeBackend(_model((2, 3, 2, 3, 2, 3), (5, 4, 3, 2, 1, 0)))


@settings(max_examples=60, deadline=None)
@given(a=st.integers(1, 80), b=st.integers(1, 80), lead=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_transpose_kernel_tiles(a, b, lead, seed):
    """The kernel alone on [lead, a, b] -> [lead, b, a] (and back): every split of 32 x 32 tiles into
    8 x 8 register blocks and ragged edges, against numpy."""
    from edge_maas.kernels import executor as ex

    x = np.random.default_rng(seed).integers(-128, 128, (lead, a, b), dtype=np.int8)
    for perm in ((0, 2, 1), (2, 1, 0), (1, 0, 2)):
        dims, strides = merged_gather(x.shape, perm)
        out = np.empty([x.shape[p] for p in perm], np.int8)
        ex.Transpose(x.reshape(-1), out.reshape(-1), [1] * (5 - len(dims)) + dims,
                     [0] * (5 - len(strides)) + strides).run()  # fmt: skip
        np.testing.assert_array_equal(out, np.transpose(x, perm))

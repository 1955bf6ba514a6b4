"""Byte-moving ops (RESHAPE, PAD, PADV2, CONCATENATION, STRIDED_SLICE) and the float
boundary ops (QUANTIZE, DEQUANTIZE): native == interpreter == numpy."""

from __future__ import annotations

import numpy as np
from arm import dequantize_aarch64
from conftest import litert_semantics
from edge_maas.kernels import quantize_ref
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, int8_input, native_matches_interpreter

Q = ([0.05], [3])


def _shape(draw, rank):
    return tuple(draw(st.lists(st.integers(1, 6), min_size=rank, max_size=rank)))


@settings(max_examples=30, deadline=None)
@given(data=st.data(), rank=st.integers(1, 4), v2=st.booleans(), seed=st.integers(0, 2**31))
def test_pad(data, rank, v2, seed):
    rng = np.random.default_rng(seed)
    shape = _shape(data.draw, rank)
    pads = np.array(data.draw(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=rank,
                                       max_size=rank)), np.int32)  # fmt: skip
    out = tuple(d + int(p.sum()) for d, p in zip(shape, pads))
    fill = np.array([-7], np.int8)
    tensors = [T("x", shape, "int8", *Q), T("p", pads.shape, "int32", data=pads), T("y", out, "int8", *Q)]
    ins = ["x", "p"]
    if v2:
        tensors.append(T("v", (1,), "int8", *Q, data=fill))
        ins.append("v")
    model = build_model(tensors, [Op("PADV2" if v2 else "PAD", ins, ["y"])], ["x"], ["y"])
    x = int8_input(rng, shape)
    got = native_matches_interpreter(model, [{"x": x}])[0]["y"]
    np.testing.assert_array_equal(got, np.pad(x, pads, constant_values=-7 if v2 else 3))


@settings(max_examples=30, deadline=None)
@given(data=st.data(), rank=st.integers(1, 4), n=st.integers(1, 4), seed=st.integers(0, 2**31))
def test_concatenation(data, rank, n, seed):
    rng = np.random.default_rng(seed)
    base = _shape(data.draw, rank)
    axis = data.draw(st.integers(-rank, rank - 1))
    shapes = [tuple(data.draw(st.integers(1, 5)) if i == axis % rank else d for i, d in enumerate(base)) for _ in range(n)]
    xs = [int8_input(rng, s) for s in shapes]
    want = np.concatenate(xs, axis=axis)
    names = [f"x{i}" for i in range(n)]
    model = build_model(
        [T(nm, s, "int8", *Q) for nm, s in zip(names, shapes)] + [T("y", want.shape, "int8", *Q)],
        [Op("CONCATENATION", names, ["y"], "ConcatenationOptions", dict(axis=axis))], names, ["y"],
    )  # fmt: skip
    got = native_matches_interpreter(model, [dict(zip(names, xs))])[0]["y"]
    np.testing.assert_array_equal(got, want)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), rank=st.integers(1, 4), seed=st.integers(0, 2**31))
def test_strided_slice(data, rank, seed):
    rng = np.random.default_rng(seed)
    shape = tuple(data.draw(st.lists(st.integers(1, 8), min_size=rank, max_size=rank)))
    begin, end, steps = [], [], []
    for d in shape:
        begin.append(data.draw(st.integers(-d, d - 1)))
        end.append(data.draw(st.integers(-d - 1, d + 1)))
        steps.append(data.draw(st.sampled_from([1, 1, 2, 3, -1, -2])))
    bmask, emask = data.draw(st.integers(0, 2**rank - 1)), data.draw(st.integers(0, 2**rank - 1))
    shrink = data.draw(st.integers(0, 2**rank - 1)) if data.draw(st.booleans()) else 0
    # Shrunk axes as the converter writes them: stride 1, no masks.  (With other
    # combinations the interpreter reads outside the input; numpy and we do not.)
    for ax in range(rank):
        if shrink >> ax & 1:
            steps[ax] = 1
            bmask &= ~(1 << ax)
            emask &= ~(1 << ax)
    idx = []
    for ax in range(rank):
        if shrink >> ax & 1:
            idx.append(begin[ax])
        else:
            idx.append(slice(None if bmask >> ax & 1 else begin[ax], None if emask >> ax & 1 else end[ax], steps[ax]))
    x = int8_input(rng, shape)
    want = x[tuple(idx)]
    assume(want.size > 0)
    consts = [np.array(v, np.int32) for v in (begin, end, steps)]
    model = build_model(
        [T("x", shape, "int8", *Q), *(T(nm, (rank,), "int32", data=c) for nm, c in zip("bes", consts)),
         T("y", want.shape, "int8", *Q)],
        [Op("STRIDED_SLICE", ["x", "b", "e", "s"], ["y"], "StridedSliceOptions",
            dict(beginMask=bmask, endMask=emask, shrinkAxisMask=shrink))],
        ["x"], ["y"],
    )  # fmt: skip
    got = native_matches_interpreter(model, [{"x": x}])[0]["y"]
    np.testing.assert_array_equal(got, want)


@litert_semantics("its QUANTIZE rounds ties away from zero and its DEQUANTIZE is 1 ulp off ai-edge-litert's")
def test_reshape_quantize_dequantize_chain():
    """float -> QUANTIZE -> RESHAPE -> DEQUANTIZE: the float boundary of a whole model."""
    rng = np.random.default_rng(0)
    model = build_model(
        [T("f", (1, 6, 7), "float32"), T("q", (1, 6, 7), "int8", [0.03], [-5]), T("r", (1, 42), "int8", [0.03], [-5]),
         T("s", (2,), "int32", data=np.array([1, 42], np.int32)), T("d", (1, 42), "float32")],
        [Op("QUANTIZE", ["f"], ["q"]), Op("RESHAPE", ["q", "s"], ["r"]), Op("DEQUANTIZE", ["r"], ["d"])],
        ["f"], ["d"],
    )  # fmt: skip
    feeds = [{"f": (rng.standard_normal((1, 6, 7)) * 2).astype(np.float32)} for _ in range(5)]

    def chain_aarch64(feed):  # the x86 QUANTIZE, then the aarch64 interpreter's DEQUANTIZE (tests/arm.py)
        q = quantize_ref.quantize(feed["f"], np.float32(0.03), -5)
        return {"d": dequantize_aarch64(q, np.float32(0.03), -5).reshape(1, 42)}

    native_matches_interpreter(model, feeds, arm=chain_aarch64)  # aarch64: tests/arm.py

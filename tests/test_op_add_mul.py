"""ADD and MUL: native == interpreter == numpy reference, with broadcasting, scales and
zero points on each operand, fused activations; one operand may be a constant."""

from __future__ import annotations

import numpy as np
from conftest import litert_semantics
from edge_maas.kernels.quantize_ref import quantize_multiplier
from edge_maas.kernels.ref.add import add
from edge_maas.kernels.ref.mul import mul
from hypothesis import given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, int8_input, native_matches_interpreter, qscale

from edge_maas.native.ops.binary import collapse
from edge_maas.native.quant import activation_range
from edge_maas.native.shapes import broadcast_strides, pad5

SHAPES = st.sampled_from([
    ((1, 5, 7, 9), (1, 5, 7, 9)), ((1, 4, 4, 32), (1, 32)), ((1, 4, 4, 32), (1, 1, 1, 32)),
    ((1, 6, 2, 45), (1, 6, 2, 1)), ((2, 3, 5, 8), (1, 3, 1, 8)), ((37,), (37,)), ((1, 3, 11), (1, 1, 1)),
    ((300,), (300,)), ((1, 8, 8, 16), (1, 8, 8, 16)),
])  # fmt: skip


@litert_semantics("its int8 ADD is off ai-edge-litert's (seen: up to 255 on equal shapes (1,5,7,9), zero points 0)")
@settings(max_examples=150, deadline=None)
@given(shapes=SHAPES, op=st.sampled_from(["ADD", "MUL"]), act=st.sampled_from([0, 1, 3]), swap=st.booleans(),
       const=st.booleans(), zps=st.tuples(*[st.integers(-128, 127)] * 3), seed=st.integers(0, 2**31))  # fmt: skip
def test_add_mul(shapes, op, act, swap, const, zps, seed):
    rng = np.random.default_rng(seed)
    sa, sb = shapes[::-1] if swap else shapes
    s1, s2, so = (qscale(v) for v in rng.uniform(0.002, 0.2, 3))
    if rng.random() < 0.3:  # outputs far outside int8: the interpreter's int16 saturation shows
        so = qscale(rng.uniform(0.0002, 0.002))
    z1, z2, zo = zps
    a, b = int8_input(rng, sa), int8_input(rng, sb)
    out_shape = np.broadcast_shapes(sa, sb)
    opts = ("AddOptions" if op == "ADD" else "MulOptions", dict(fusedActivationFunction=act))
    model = build_model(
        [T("a", sa, "int8", [s1], [z1]), T("b", sb, "int8", [s2], [z2], 0, b if const else None),
         T("y", out_shape, "int8", [so], [zo])],
        [Op(op, ["a", "b"], ["y"], *opts)], ["a"] if const else ["a", "b"], ["y"],
    )  # fmt: skip
    feed = {"a": a} if const else {"a": a, "b": b}
    got = native_matches_interpreter(model, [feed])[0]["y"]
    lo, hi = activation_range(act, so, zo, "test")
    # the kernel's rows: axes merged as the interpreter does before its vector loop
    dims = pad5(out_shape)
    dims, st1, st2 = collapse(dims, broadcast_strides(pad5(sa), dims), broadcast_strides(pad5(sb), dims))
    ba, bb = np.broadcast_arrays(a, b)
    a, b = ba.reshape(-1, dims[4]), bb.reshape(-1, dims[4])
    if op == "ADD":
        tw = 2 * max(s1, s2)
        (m1, h1), (m2, h2), (mo, ho) = (quantize_multiplier(r) for r in (s1 / tw, s2 / tw, tw / ((1 << 20) * so)))
        want = add(a, b, block=8 if 0 in (st1[4], st2[4]) else 16, in1_offset=-z1, in2_offset=-z2, out_offset=zo, in1_mult=m1, in1_shift=h1, in2_mult=m2,
                   in2_shift=h2, out_mult=mo, out_shift=ho, left_shift=20, act_min=lo, act_max=hi)  # fmt: skip
    else:
        f = np.float32
        m, h = quantize_multiplier(float(f(f(s1) * f(s2)) / f(so)))
        want = mul(a, b, in1_offset=-z1, in2_offset=-z2, out_offset=zo, out_mult=m, out_shift=h, act_min=lo, act_max=hi)
    np.testing.assert_array_equal(got, want.reshape(out_shape))

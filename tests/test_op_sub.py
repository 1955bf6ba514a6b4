"""SUB (int8): native (every ISA) == interpreter == numpy (ADD's reference with input 2's multiplier
negated), with broadcasting, a constant operand, zero points, fused activations and outputs far outside
int8, which SUB clamps at every position (ADD wraps to int16 in its vector blocks; SUB does not)."""

from __future__ import annotations

import numpy as np
from conftest import litert_semantics
from edge_maas.kernels.quantize_ref import quantize_multiplier
from edge_maas.kernels.ref.add import add
from hypothesis import given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, int8_input, native_matches_interpreter, qscale
from test_op_add_mul import SHAPES

from edge_maas.native.quant import activation_range


@litert_semantics("its int8 ADD is off ai-edge-litert's; its SUB is not checked")
@settings(max_examples=100, deadline=None)
@given(shapes=SHAPES, act=st.sampled_from([0, 1, 3]), swap=st.booleans(), const=st.booleans(),
       zps=st.tuples(*[st.integers(-128, 127)] * 3), seed=st.integers(0, 2**31))  # fmt: skip
def test_sub(shapes, act, swap, const, zps, seed):
    rng = np.random.default_rng(seed)
    sa, sb = shapes[::-1] if swap else shapes
    s1, s2, so = (qscale(v) for v in rng.uniform(0.002, 0.2, 3))
    if rng.random() < 0.3:
        so = qscale(rng.uniform(0.0002, 0.002))
    z1, z2, zo = zps
    a, b = int8_input(rng, sa), int8_input(rng, sb)
    out_shape = np.broadcast_shapes(sa, sb)
    model = build_model(
        [T("a", sa, "int8", [s1], [z1]), T("b", sb, "int8", [s2], [z2], 0, b if const else None),
         T("y", out_shape, "int8", [so], [zo])],
        [Op("SUB", ["a", "b"], ["y"], "SubOptions", {"fusedActivationFunction": act})],
        ["a"] if const else ["a", "b"], ["y"],
    )  # fmt: skip
    feed = {"a": a} if const else {"a": a, "b": b}
    got = native_matches_interpreter(model, [feed])[0]["y"]
    lo, hi = activation_range(act, so, zo, "test")
    ba, bb = np.broadcast_arrays(a, b)
    tw = 2 * max(s1, s2)
    (m1, h1), (m2, h2), (mo, ho) = (quantize_multiplier(r) for r in (s1 / tw, s2 / tw, tw / ((1 << 20) * so)))
    want = add(ba.reshape(1, -1), bb.reshape(1, -1), block=1 << 30,  # no wrap-around anywhere
               in1_offset=-z1, in2_offset=-z2, out_offset=zo, in1_mult=m1, in1_shift=h1, in2_mult=-m2, in2_shift=h2,
               out_mult=mo, out_shift=ho, left_shift=20, act_min=lo, act_max=hi)  # fmt: skip
    np.testing.assert_array_equal(got, want.reshape(out_shape))

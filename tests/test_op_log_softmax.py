"""LOG_SOFTMAX on int8: native (every ISA) == interpreter == numpy (kernels/ref/log_softmax.py) over random shapes,
input quantizations (wide and narrow scales: large log-sums, rint ties) and rows with many equal values; the
output quantization the interpreter requires (16/256, 127), anything else refused."""

from __future__ import annotations

import numpy as np
import pytest
from arm import AARCH64, log_softmax_aarch64
from edge_maas.kernels import executor as ex
from edge_maas.kernels.ref.log_softmax import log_softmax
from hypothesis import example, given, settings
from hypothesis import strategies as st
from oneop import ISAS, Op, T, build_model, isa, native_matches_interpreter, qscale

from edge_maas.backends.native import NativeBackend
from edge_maas.errors import UnsupportedOpError


def _model(shape, si, zi, so=16 / 256, zo=127):
    return build_model([T("x", shape, "int8", [si], [zi]), T("y", shape, "int8", [so], [zo])],
                       [Op("LOG_SOFTMAX", ["x"], ["y"])], ["x"], ["y"])  # fmt: skip


# On aarch64 the interpreter's two float expressions are fused multiply-adds (tests/arm.py log_softmax_aarch64): it
# departs from the x86 bytes at about 1 of 500,000 random values, asserted there to be that formula's value; the
# last examples are rows where it departs (found by comparing the two formulas on the host).
@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 40), min_size=1, max_size=3).map(tuple), si=st.floats(0.001, 2.0),
       zi=st.integers(-128, 127), narrow=st.booleans(), seed=st.integers(0, 2**31))  # fmt: skip
@example(shape=(1, 1000), si=0.1, zi=-20, narrow=False, seed=0)  # an ImageNet head
@example(shape=(4, 10), si=0.0625, zi=0, narrow=True, seed=1)  # in_scale = out_scale: values on half steps
@example(shape=(8, 24), si=1.7277160391111155, zi=0, narrow=False, seed=1876957852)  # aarch64: the fused log_prob
@example(shape=(8, 39), si=1.032589254403566, zi=0, narrow=False, seed=82099234)  # aarch64: the fused precomputed
@example(shape=(8, 50), si=1.7163979764205295, zi=3, narrow=False, seed=1372278507)  # aarch64: only both fused
def test_log_softmax(shape, si, zi, narrow, seed):
    rng = np.random.default_rng(seed)
    si = qscale(si)
    lo, hi = (-3, 3) if narrow else (-128, 128)
    x = rng.integers(lo, hi, shape).astype(np.int8)
    x2, table = x.reshape(-1, shape[-1]), ex.softmax_table(si, 1.0)

    def aarch64(feed):  # the aarch64 interpreter: the same kernel with its float expressions fused
        return {"y": log_softmax_aarch64(feed["x"].reshape(x2.shape), table, si, 16 / 256, 127).reshape(shape)}

    got = native_matches_interpreter(_model(shape, si, zi), [{"x": x}], arm=aarch64)[0]["y"]
    want = log_softmax(x2, table, si, 16 / 256, 127).reshape(shape)
    np.testing.assert_array_equal(got, want)


def test_log_softmax_output_quantization_refused():
    with pytest.raises(UnsupportedOpError, match=r"must be \(16/256, 127\)"):
        NativeBackend(_model((1, 10), 0.1, 0, so=0.1, zo=127))


# The kernel's paths by shape: rows in groups of 8 (interleaved sum chains), 4, then 1; outputs 16 lanes at a time
# (AVX2, AVX-512, NEON) with a scalar tail, or, on the portable path, a 256-entry table per row of 512+ elements.
# Each row gets its own range, so the rows' maxima, sums and constants differ (a row mixed up with another's is
# caught); si 0.0625 puts log_probs on half steps (rint ties); 30000 takes the rint fallback (|log_prob| >= 2^22).
# On aarch64 every native path is held to the numpy reference (the x86 bytes) without the interpreter.
@pytest.mark.parametrize(("shape", "si"), [((8, 1000), 0.1), ((13, 600), 0.0625), ((5, 37), 0.03125),
                                           ((16, 531), 0.5), ((1, 2000), 0.0625), ((12, 40), 30000.0)])  # fmt: skip
def test_log_softmax_row_groups(shape, si):
    rng = np.random.default_rng(shape[0] * 7 + shape[1])
    si = qscale(si)
    lo = rng.integers(-128, 100, (shape[0], 1))
    x = (lo + rng.integers(0, 128, shape) % (128 - lo + rng.integers(0, 100, (shape[0], 1)))).clip(-128, 127)
    x = x.astype(np.int8)
    want = log_softmax(x, ex.softmax_table(si, 1.0), si, 16 / 256, 127)
    if AARCH64:
        native = NativeBackend(_model(shape, si, -5))
        for name in ISAS:
            with isa(name):
                np.testing.assert_array_equal(native.run({"x": x})["y"], want, err_msg=name)
    else:
        got = native_matches_interpreter(_model(shape, si, -5), [{"x": x}])[0]["y"]
        np.testing.assert_array_equal(got, want)

"""The compiled quantize kernels against their numpy reference and against the
interpreter's own QUANTIZE/DEQUANTIZE ops on one-op models."""

from __future__ import annotations

import numpy as np
import pytest
from arm import AARCH64, check, dequantize_aarch64
from conftest import litert_semantics
from edge_maas.kernels import quantize as qk
from edge_maas.kernels import quantize_ref as ref
from edge_maas.kernels.ref.requantize import requantize_int8
from hypothesis import given, settings
from hypothesis import strategies as st
from oneop import native_matches_interpreter

from edge_maas.backends.litert import LiteRTBackend
from edge_maas.tflite.builder import Op, T, build_model

scales = st.floats(min_value=1e-4, max_value=10.0, allow_nan=False)
zps = st.integers(-128, 127)


def _one_op(op: str, n: int, in_t: T, out_t: T) -> LiteRTBackend:
    return LiteRTBackend(build_model([in_t, out_t], [Op(op, ["x"], ["y"])], ["x"], ["y"]), xnnpack=False)


@litert_semantics("its float QUANTIZE rounds ties away from zero (0.5 -> 1), ai-edge-litert's to even (0.5 -> 0)")
@settings(max_examples=60, deadline=None)
@given(scale=scales, zp=zps, seed=st.integers(0, 2**32 - 1), n=st.integers(10, 300))
def test_quantize_matches_reference_and_interpreter(scale, zp, seed, n):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * scale * 100).astype(np.float32)
    ties = np.float32(scale) * np.array([0.5, -0.5, 1.5, -2.5, 0.0], np.float32)
    x[:5] = ties  # ties in the 8-lane blocks and in the scalar tail
    x[-5:] = ties
    out = np.empty(x.size, np.int8)
    qk.quantize(x, scale, zp, out)
    np.testing.assert_array_equal(out, ref.quantize(x, scale, zp))
    interp = _one_op("QUANTIZE", x.size, T("x", (1, x.size), "float32"), T("y", (1, x.size), "int8", [scale], [zp]))
    np.testing.assert_array_equal(out, interp.run({"x": x[None]})["y"][0])


@litert_semantics("its DEQUANTIZE is 1 float32 ulp off ai-edge-litert's at some values")
@settings(max_examples=60, deadline=None)
@given(scale=scales, zp=zps, seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300))
def test_dequantize_matches_reference_and_interpreter(scale, zp, seed, n):
    q = np.random.default_rng(seed).integers(-128, 128, size=n, dtype=np.int8)
    out = np.empty(q.size, np.float32)
    qk.dequantize(q, scale, zp, out)
    np.testing.assert_array_equal(out, ref.dequantize(q, scale, zp))
    interp = _one_op("DEQUANTIZE", q.size, T("x", (1, q.size), "int8", [scale], [zp]), T("y", (1, q.size), "float32"))
    if AARCH64:  # its blocks fuse q*s - zp*s into one rounding: where it departs, it is that (tests/arm.py)
        check("y", out, interp.run({"x": q[None]})["y"][0], dequantize_aarch64, dequantize_aarch64(q, scale, zp))
    else:
        np.testing.assert_array_equal(out, interp.run({"x": q[None]})["y"][0])


@litert_semantics("its int8->int8 QUANTIZE rounds differently from ai-edge-litert's (1 LSB at ties)")
@settings(max_examples=80, deadline=None)
@given(in_scale=scales, out_scale=scales, zp_in=zps, zp_out=zps, seed=st.integers(0, 2**32 - 1),
       n=st.integers(1, 300))  # fmt: skip
def test_requantize_matches_interpreter_int8_to_int8(in_scale, out_scale, zp_in, zp_out, seed, n):
    """The interpreter's int8->int8 QUANTIZE: blocks of 16 round the final shift's ties
    up, the n % 16 tail away from zero (kernels/ref/requantize.py).  The native
    executor's table kernel and the reference agree with it byte for byte."""
    q = np.random.default_rng(seed).integers(-128, 128, size=n, dtype=np.int8)
    q[: min(n, 3)] = [-128, 127, zp_in][: min(n, 3)]
    mult, shift = ref.quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)))
    model = build_model(
        [T("x", (1, n), "int8", [in_scale], [zp_in]), T("y", (1, n), "int8", [out_scale], [zp_out])],
        [Op("QUANTIZE", ["x"], ["y"])], ["x"], ["y"],
    )  # fmt: skip
    got = native_matches_interpreter(model, [{"x": q[None]}])[0]["y"][0]
    np.testing.assert_array_equal(got, requantize_int8(q, mult, shift, zp_in, zp_out))


@settings(max_examples=200, deadline=None)
@given(real=st.floats(min_value=1e-9, max_value=1e3), zp=zps, lo=st.integers(-128, 0), seed=st.integers(0, 2**32 - 1))
def test_requantize_full_int32_range(real, zp, lo, seed):
    acc = np.random.default_rng(seed).integers(-(2**31), 2**31, size=512, dtype=np.int64).astype(np.int32)
    acc[:4] = [-(2**31), 2**31 - 1, 0, -1]
    mult, shift = ref.quantize_multiplier(real)
    shift = max(min(shift, 30), -31)
    out = np.empty(acc.size, np.int8)
    qk.requantize(acc, mult, shift, zp, out, lo, 127)
    np.testing.assert_array_equal(out, ref.requantize(acc, mult, shift, zp, lo, 127))


def test_kernel_argument_errors():
    with pytest.raises(ValueError, match="elements"):
        qk.quantize(np.zeros(4, np.float32), 1.0, 0, np.zeros(3, np.int8))
    with pytest.raises(ValueError, match="scale must be positive"):
        qk.quantize(np.zeros(4, np.float32), 0.0, 0, np.zeros(4, np.int8))
    with pytest.raises(ValueError, match="shift"):
        qk.requantize(np.zeros(4, np.int32), 1 << 30, 40, 0, np.zeros(4, np.int8))
    with pytest.raises(ValueError):  # wrong dtype never reaches C
        qk.requantize(np.zeros(4, np.int64), 1 << 30, 0, 0, np.zeros(4, np.int8))


def test_executor_quantize_picks_the_kernel_by_dtype():
    """One Quantize class: the float side gives the direction, the quantized side's dtype (int8 / uint8) the
    kernel; anything else is refused before C runs."""
    from edge_maas.kernels import executor as ex

    x = np.array([-1.0, 0.26, 3.0] * 3, np.float32)  # 9 values: a block of 8 and a scalar tail
    for dtype, zp in ((np.int8, -3), (np.uint8, 120)):
        q = np.empty(x.size, dtype)
        ex.Quantize(x, q, 0.02, zp).run()
        want = np.clip(np.round(x.astype(np.float64) / np.float64(np.float32(0.02))) + zp, *((-128, 127) if dtype ==
                       np.int8 else (0, 255))).astype(dtype)  # fmt: skip
        np.testing.assert_array_equal(q, want)
        back = np.empty(x.size, np.float32)
        ex.Quantize(q, back, 0.02, zp).run()
        np.testing.assert_allclose(back, (q.astype(np.float64) - zp) * 0.02, rtol=1e-6)
    with pytest.raises(TypeError, match="int8 or uint8"):
        ex.Quantize(x, np.empty(x.size, np.int16), 0.02, 0)

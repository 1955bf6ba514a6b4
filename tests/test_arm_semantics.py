"""One semantics on every CPU (issue 12): the native executor's platform-independent parts give the x86 bytes, and
the interpreter's aarch64 departures are what docs/native.md says, asserted on the interpreter itself.

Runs everywhere; on x86-64 the interpreter tests assert the x86 (double-rounding) side, on aarch64 (scripts/
test_arm.sh, under qemu) the documented departure, exactly, and that it does occur."""

from __future__ import annotations

import hashlib
import math
from fractions import Fraction

import numpy as np
import pytest
from arm import AARCH64, dequantize_aarch64, ruy_single_rounding
from conftest import litert_semantics
from edge_maas.kernels import executor as ex
from edge_maas.kernels import quantize_ref
from edge_maas.kernels.ref.fully_connected import fully_connected
from edge_maas.kernels.ref.hard_swish import hard_swish, params
from oneop import Op, T, build_model, qscale

from edge_maas.backends.litert import LiteRTBackend
from edge_maas.backends.native import NativeBackend
from edge_maas.native.quant import conv_output_multipliers

ALL = np.arange(-128, 128, dtype=np.int8)

# sha256 of every float table and int8 table below, computed on x86-64 (glibc 2.36, the interpreter's golden
# machine).  The tables come from libm's expf and roundf (kernels/c/lut.c, softmax.c) and from numpy integer code
# (hard_swish): the same digest on aarch64 shows the libm / compiler of that platform give the same bytes.
TABLES_SHA256 = "1a049654c6e70df6d0dcc7fa8ab0a1047cc6f388f6ba018cc09979aa03c7ee86"


def _tables() -> bytes:
    """Softmax exp tables, LOGISTIC and HARD_SWISH int8 tables over a grid of scales, zero points and betas."""
    out = []
    for s in np.geomspace(0.0005, 0.6, 101).astype(np.float32):
        for beta in (1.0, 0.5, 2.0, 0.3):
            out.append(ex.softmax_table(float(s), beta).tobytes())
        for zi in (-128, -37, 0, 127):
            out.append(np.asarray(ex.logistic_table(float(s), zi, 1 / 256, -128)).tobytes())
            so = qscale(float(s) * 1.7 + 0.001)
            out.append(hard_swish(ALL, zi, -3, params(float(s), so)).tobytes())
    return b"".join(out)


def test_tables_are_the_x86_bytes():
    """expf / roundf and float order in the table builders: no platform dependence (the libm check of issue 12)."""
    assert hashlib.sha256(_tables()).hexdigest() == TABLES_SHA256


def test_the_dissected_conv_position():
    """Issue 12's conv case: accumulator 369, multiplier 1489315878, shift -9 (exact value 0.49982): the x86
    formula (double rounding) gives 1, ruy's single rounding 0."""
    acc = np.array([[369]], np.int64)
    assert quantize_ref.multiply_by_quantized_multiplier(acc, 1489315878, -9)[0, 0] == 1
    assert ruy_single_rounding(acc, [1489315878], [-9], 0)[0, 0] == 0


@pytest.mark.parametrize("seed", range(3))
def test_single_rounding_is_one_exact_rounding(seed):
    """ruy_single_rounding == the exact rational acc * mult / 2^(31 - shift) rounded once, ties up; never more
    than 1 away from the x86 double rounding."""
    rng = np.random.default_rng(seed)
    acc = rng.integers(-3000, 3000, (2000, 1))
    mult, shift = int(rng.integers(2**30, 2**31)), int(rng.integers(-14, 1))
    exact = [math.floor(Fraction(a * mult, 2 ** (31 - shift)) + Fraction(1, 2)) for a in acc[:, 0].tolist()]
    got = ruy_single_rounding(acc, [mult], [shift], 0)
    np.testing.assert_array_equal(got[:, 0], np.clip(exact, -128, 127))
    double = quantize_ref.multiply_by_quantized_multiplier(acc.astype(np.int32), mult, shift)[:, 0]
    assert np.abs(np.asarray(exact) - double).max() <= 1


def _fc_model(n: int, in_s: float, w_s: float, out_s: float, weights, bias):
    return build_model(
        [T("x", (256, 1), "int8", [in_s], [0]), T("w", (n, 1), "int8", [w_s], [0], 0, weights),
         T("b", (n,), "int32", [in_s * w_s], [0], 0, bias), T("y", (256, n), "int8", [out_s], [0])],
        [Op("FULLY_CONNECTED", ["x", "w", "b"], ["y"], "FullyConnectedOptions", {})], ["x"], ["y"],
    )  # fmt: skip


def test_fully_connected_output_stage_per_cpu():
    """The interpreter's FULLY_CONNECTED on every int8 input times 40 weights: on x86 exactly the double-rounding
    reference (native's bytes), on aarch64 exactly ruy's single rounding, which departs at the ties of the first
    rounding (asserted to occur).  Native gives the x86 bytes on both."""
    rng = np.random.default_rng(7)
    n = 40
    in_s, w_s, out_s = qscale(0.05), qscale(0.01), qscale(0.05)  # multiplier 0.01: shift -6
    weights = rng.integers(-127, 128, (n, 1), dtype=np.int8)
    bias = rng.integers(-3000, 3000, n).astype(np.int32)
    model = _fc_model(n, in_s, w_s, out_s, weights, bias)
    x = ALL[:, None]
    mult, shift = conv_output_multipliers("test", in_s, [w_s], out_s, n, float_product=True)
    acc = x.astype(np.int64) @ weights.astype(np.int64).T + bias
    double = fully_connected(x, weights, bias, mult, shift, in_zp=0, out_zp=0)
    single = ruy_single_rounding(acc, mult, shift, 0)
    assert (double != single).sum() > 0, "no position where the two roundings differ: the test shows nothing"
    interp = LiteRTBackend(model, xnnpack=False).run({"x": x})["y"]
    np.testing.assert_array_equal(NativeBackend(model).run({"x": x})["y"], double)
    np.testing.assert_array_equal(interp, single if AARCH64 else double)


@litert_semantics("its DEQUANTIZE is 1 float32 ulp off ai-edge-litert's at some values (test_kernels_quantize)")
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_dequantize_per_cpu(dtype):
    """The interpreter's DEQUANTIZE on every int8 (uint8) value (32 blocks of 8, a tail of 3): on x86 q*s - zp*s
    in the blocks (kernels/quantize_ref.py), on aarch64 the same fused (one rounding), departing at some values
    (asserted); uint8 takes the same blocks."""
    q = np.concatenate([ALL, ALL[:3]]).view(np.uint8) if dtype == "uint8" else np.concatenate([ALL, ALL[:3]])
    departs = 0
    shift = 128 if dtype == "uint8" else 0
    for scale, zp in ((0.0370, 17 + shift), (0.1234567, -101 + shift), (0.00731, 64 + shift), (1.5e-3, -7 + shift)):
        model = build_model([T("x", (1, q.size), dtype, [scale], [zp]), T("y", (1, q.size), "float32")],
                            [Op("DEQUANTIZE", ["x"], ["y"])], ["x"], ["y"])  # fmt: skip
        interp = LiteRTBackend(model, xnnpack=False).run({"x": q[None]})["y"][0]
        x86, arm = quantize_ref.dequantize(q, scale, zp), dequantize_aarch64(q, scale, zp)
        np.testing.assert_array_equal(NativeBackend(model).run({"x": q[None]})["y"][0], x86)
        np.testing.assert_array_equal(interp, arm if AARCH64 else x86)
        departs += int((x86 != arm).sum())
    assert departs > 0, "the two formulas agree on every value: the test shows nothing"

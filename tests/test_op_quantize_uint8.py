"""QUANTIZE between uint8 and int8 (both ways, and uint8 -> uint8): native (every ISA) == interpreter ==
numpy (kernels/ref/requantize_mixed.py), with scale changes, not only the +-128 zero-point shift, and
sizes whose n % 16 tail is rounded differently from the 16-element blocks.  QUANTIZE float32 -> uint8
and DEQUANTIZE uint8 -> float32: native == interpreter (blocks of 8 in float, the tail in double)."""

from __future__ import annotations

import numpy as np
import pytest
from arm import dequantize_aarch64
from conftest import litert_semantics
from edge_maas.kernels.quantize_ref import quantize_multiplier
from edge_maas.kernels.ref.requantize_mixed import requantize
from hypothesis import given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, native_matches_interpreter, qscale

PAIRS = [("uint8", "int8"), ("int8", "uint8"), ("uint8", "uint8")]
ZP = {"int8": (-128, 127), "uint8": (0, 255)}


def _model(n, src, dst, si, zi, so, zo):
    return build_model(
        [T("x", (1, n), src, [si], [zi]), T("y", (1, n), dst, [so], [zo])],
        [Op("QUANTIZE", ["x"], ["y"])], ["x"], ["y"],
    )  # fmt: skip


def _check(n, src, dst, si, zi, so, zo, seed):
    rng = np.random.default_rng(seed)
    model = _model(n, src, dst, si, zi, so, zo)
    feeds = [{"x": rng.integers(0, 256, (1, n)).astype(np.uint8).view(src)} for _ in range(2)]
    got = native_matches_interpreter(model, feeds)
    mult, shift = quantize_multiplier(float(np.float32(si)) / float(np.float32(so)))
    for feed, out in zip(feeds, got):
        np.testing.assert_array_equal(out["y"], requantize(feed["x"], mult, shift, zi, zo, dst))


LEGACY = "not checked on tflite-runtime 2.14, whose int8->int8 QUANTIZE rounds ties differently (shared code)"


@litert_semantics(LEGACY)
@settings(max_examples=60, deadline=None)
@given(pair=st.sampled_from(PAIRS), n=st.integers(1, 80), ratio=st.floats(0.05, 4.0), data=st.data(),
       seed=st.integers(0, 2**31))  # fmt: skip
def test_requantize_uint8_int8(pair, n, ratio, data, seed):
    src, dst = pair
    si = qscale(data.draw(st.floats(0.005, 0.2)))
    so = qscale(si / ratio)
    zi = data.draw(st.integers(*ZP[src]))
    zo = data.draw(st.integers(*ZP[dst]))
    _check(n, src, dst, si, zi, so, zo, seed)


@litert_semantics(LEGACY)
@pytest.mark.parametrize("src, dst", PAIRS)
def test_requantize_every_byte(src, dst):
    """n = 271: each of the 256 byte values lands in the blocks and (some) in the 15-element tail; ratios
    whose products hit exact halves (ties are where up and away from zero differ)."""
    for si, so, zi, zo in ((0.02, 0.04, 10, -3), (0.03, 0.01, 128, 0), (0.05, 0.05, 128, 0), (0.1, 0.4, 7, 9)):
        zi = min(max(zi, ZP[src][0]), ZP[src][1])
        zo = min(max(zo if dst == "int8" else zo + 128, ZP[dst][0]), ZP[dst][1])
        n = 271
        model = _model(n, src, dst, qscale(si), zi, qscale(so), zo)
        x = np.concatenate([np.arange(256), np.arange(241, 256)]).astype(np.uint8).view(src)[None]
        out = native_matches_interpreter(model, [{"x": x}])[0]["y"]
        mult, shift = quantize_multiplier(float(np.float32(si)) / float(np.float32(so)))
        np.testing.assert_array_equal(out, requantize(x, mult, shift, zi, zo, dst))


@litert_semantics("its QUANTIZE rounds ties away from zero and its DEQUANTIZE is 1 ulp off ai-edge-litert's")
@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 300), scale=st.floats(0.001, 0.5), zp=st.integers(0, 255), seed=st.integers(0, 2**31))
def test_float_boundary_uint8(n, scale, zp, seed):
    """float32 -> QUANTIZE -> uint8 and uint8 -> DEQUANTIZE -> float32 (the model's uint8 edges)."""
    rng = np.random.default_rng(seed)
    s = qscale(scale)
    q = build_model([T("f", (1, n), "float32"), T("u", (1, n), "uint8", [s], [zp])],
                    [Op("QUANTIZE", ["f"], ["u"])], ["f"], ["u"])  # fmt: skip
    d = build_model([T("u", (1, n), "uint8", [s], [zp]), T("f", (1, n), "float32")],
                    [Op("DEQUANTIZE", ["u"], ["f"])], ["u"], ["f"])  # fmt: skip
    f = (rng.standard_normal((1, n)) * 128 * s).astype(np.float32)
    halves = ((rng.integers(-300, 300, (1, n)) + 0.5) * s).astype(np.float32)  # ties, where rounding rules differ
    native_matches_interpreter(q, [{"f": f}, {"f": halves}])
    every = np.resize(np.arange(256, dtype=np.uint8), (1, n))
    # aarch64: the interpreter's DEQUANTIZE blocks fuse q*s - zp*s, uint8 as int8 (tests/arm.py)
    fused = lambda feed: {"f": dequantize_aarch64(feed["u"], s, zp).reshape(1, n)}
    native_matches_interpreter(d, [{"u": every}, {"u": rng.integers(0, 256, (1, n)).astype(np.uint8)}], arm=fused)

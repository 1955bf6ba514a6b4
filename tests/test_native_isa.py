"""Instruction-set selection: EDGE_MAAS_ISA forces any path the CPU has for a process; a
wrong value is refused with a message; paths never exceed what the CPU has; and the GEMM's
VNNI paths (u8 x s8 vpdpbusd with the +128 correction) give the interpreter's bytes on the
shapes their tiles and tails take."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from arm import ONE_LSB
from edge_maas.kernels import executor as ex
from oneop import ISAS, Op, T, build_model, int8_input, isa, native_matches_interpreter, qscale

PROBE = "from edge_maas.kernels import executor as ex; print(ex.isa())"
NAMES = list(ex.ISA_NAMES.values())  # in order of preference


def _isa_in_subprocess(value: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "EDGE_MAAS_ISA"}
    if value is not None:
        env["EDGE_MAAS_ISA"] = value
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=False)


ARM = ("neon", "dotprod")  # the aarch64 family; the others are portable and x86's


def _expected(name: str) -> str:
    """The highest path the CPU has at or below `name` in its family (x86 or aarch64), else portable."""
    below = NAMES[: NAMES.index(name) + 1]
    family = ["portable"] + [n for n in below if (n in ARM) == (name in ARM) and n != "portable"]
    return [n for n in family if n in ex.available_isas()][-1]


def test_every_path_is_listed_and_the_best_is_the_default():
    assert ISAS == ex.available_isas()
    assert ISAS[0] == "portable" and ex.best_isa() == ISAS[-1]
    assert _isa_in_subprocess(None).stdout.strip() == ex.best_isa()
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text().split() if cpuinfo.exists() else []
    if "avx512_vnni" in flags and {"avx512f", "avx512bw", "avx512vl"} <= set(flags):
        assert "avx512vnni" in ISAS
    if "avx_vnni" in flags:
        assert "avxvnni" in ISAS


def test_paths_follow_the_machine_family_and_hwcaps():
    """aarch64 always has neon, and dotprod exactly when the kernel's AT_HWCAP says ASIMDDP; x86 has neither,
    and aarch64 no x86 path."""
    import ctypes
    import platform

    if platform.machine() in ("aarch64", "arm64"):
        hwcap = ctypes.CDLL(None).getauxval
        hwcap.restype, hwcap.argtypes = ctypes.c_ulong, [ctypes.c_ulong]
        dotprod = bool(hwcap(16) & (1 << 20))  # AT_HWCAP, HWCAP_ASIMDDP
        assert ISAS == ["portable", "neon"] + (["dotprod"] if dotprod else [])
    else:
        assert not set(ARM) & set(ISAS)
        assert ex.set_isa("neon") == ex.set_isa("dotprod") == "portable"
        ex.set_isa("auto")


@pytest.mark.parametrize("name", NAMES)
def test_environment_variable_forces_each_path(name):
    res = _isa_in_subprocess(name)
    assert res.returncode == 0 and res.stdout.strip() == _expected(name)


def test_bad_environment_value_is_refused():
    res = _isa_in_subprocess("sse9")
    assert res.returncode != 0 and "unknown instruction set 'sse9'" in res.stderr


def test_set_isa_never_exceeds_the_cpu():
    before = ex.isa()
    try:
        for name in NAMES:
            assert ex.set_isa(name) == _expected(name) == ex.isa()
        assert ex.set_isa("auto") == ex.best_isa()
        with pytest.raises(ValueError, match="unknown instruction set"):
            ex.set_isa("sse9")
    finally:
        ex.set_isa(before)


def _conv_model(b, h, w, c, o, k, stride, in_zp, out_zp, rng):
    oh, ow = (h + stride - 1) // stride, (w + stride - 1) // stride
    in_s, out_s = qscale(0.05), qscale(0.4)
    w_s = [qscale(v) for v in rng.uniform(0.001, 0.05, o)]
    return build_model(
        [
            T("x", (b, h, w, c), "int8", [in_s], [in_zp]),
            T("w", (o, k, k, c), "int8", w_s, [0] * o, 0, rng.integers(-127, 128, (o, k, k, c), dtype=np.int8)),
            T("b", (o,), "int32", [in_s * s for s in w_s], [0] * o, 0, rng.integers(-20000, 20000, o).astype(np.int32)),
            T("y", (b, oh, ow, o), "int8", [out_s], [out_zp]),
        ],
        [Op("CONV_2D", ["x", "w", "b"], ["y"], "Conv2DOptions",
            {"padding": 0, "strideH": stride, "strideW": stride, "dilationHFactor": 1, "dilationWFactor": 1,
             "fusedActivationFunction": 0})],
        ["x"], ["y"],
    )  # fmt: skip


# (h, w, c, o, k, stride): out_c 72 = 4 + 1 panels (the 4-panel tiles and a 1-panel tail), 48 = 3 panels,
# 24 = 2 panels with an 8-channel tail (the AVX-VNNI half panel); 1x1 convs with in_c % 4 == 0 (flip in one
# run) and != 0 (k tail); SAME padding with the zero point at both ends of the int8 range (pad byte 0 and 255);
# more rows than a 64-row chunk, so every row-tile size and the single-row tail run.
CONV_CASES = [
    (9, 11, 16, 72, 1, 1, -128, 5),
    (9, 11, 6, 48, 1, 1, 127, -3),
    (13, 7, 5, 24, 3, 1, -128, 0),
    (13, 7, 5, 24, 3, 1, 127, 0),
    (10, 10, 3, 8, 3, 2, 17, -20),
    (5, 5, 40, 72, 3, 1, -1, 9),
]


@pytest.mark.parametrize("h, w, c, o, k, stride, in_zp, out_zp", CONV_CASES)
def test_vnni_conv_tiles_match_the_interpreter(h, w, c, o, k, stride, in_zp, out_zp):
    rng = np.random.default_rng(h * 1000 + c * 10 + o + in_zp)
    model = _conv_model(2, h, w, c, o, k, stride, in_zp, out_zp, rng)
    feeds = [{"x": int8_input(rng, (2, h, w, c))} for _ in range(2)]
    feeds.append({"x": np.full((2, h, w, c), -128 if in_zp > 0 else 127, np.int8)})  # largest |x - zp|
    # on aarch64 the interpreter's conv rounds once (ruy, tests/arm.py): 1 LSB departures; every path there must
    # still give the same bytes (the neon / dotprod tiles and tails against portable)
    native_matches_interpreter(model, feeds, arm=ONE_LSB)
    native_matches_interpreter(model, feeds[:1], threads=2, arm=ONE_LSB)  # per-thread scratch slices


@pytest.mark.parametrize("rows, k, n, in_zp, threads", [(1, 1280, 100, -128, 1), (13, 37, 72, 127, 2), (3, 4, 9, 0, 1)])
def test_vnni_fully_connected_matches_the_interpreter(rows, k, n, in_zp, threads):
    rng = np.random.default_rng(rows + k + n)
    in_s, out_s = qscale(0.05), qscale(0.5)
    w_s = [qscale(v) for v in rng.uniform(0.001, 0.02, n)]
    model = build_model(
        [
            T("x", (rows, k), "int8", [in_s], [in_zp]),
            T("w", (n, k), "int8", w_s, [0] * n, 0, rng.integers(-127, 128, (n, k), dtype=np.int8)),
            T("b", (n,), "int32", [in_s * s for s in w_s], [0] * n, 0, rng.integers(-9000, 9000, n).astype(np.int32)),
            T("y", (rows, n), "int8", [out_s], [-7]),
        ],
        [Op("FULLY_CONNECTED", ["x", "w", "b"], ["y"], "FullyConnectedOptions", {"fusedActivationFunction": 0})],
        ["x"], ["y"],
    )  # fmt: skip
    feeds = [{"x": int8_input(rng, (rows, k))} for _ in range(2)]
    native_matches_interpreter(model, feeds, threads=threads, arm=ONE_LSB)  # aarch64: as the conv cases above


@pytest.mark.parametrize("round_up_below", [0, 5, 16, 21, ex.ROUND_ALL_UP])
def test_output_stage_rounding_split_on_every_path(round_up_below):
    """The kernel called directly (round_up_below is not what the interpreter's FC uses, so no model gives it):
    every path, including the AVX-512 output stage's mixed lanes, == the numpy reference, with left shifts,
    ties (multiplier 2^30: acc / 2 exactly halfway) and a narrow activation range."""
    from edge_maas.kernels.quantize_ref import requantize_channels

    from edge_maas.native.quant import pad16

    rng = np.random.default_rng(round_up_below % 1000)
    rows, k, n, in_off, zp, lo, hi = 40, 23, 37, 77, -5, -100, 90
    x = int8_input(rng, (rows, k))
    w = rng.integers(-127, 128, (n, k), dtype=np.int8)
    bias = rng.integers(-30000, 30000, n).astype(np.int32)
    mult = rng.integers(2**30, 2**31 - 1, n).astype(np.int32)
    shift = rng.integers(-12, 3, n).astype(np.int32)
    mult[1::2], shift[1::2] = 2**30, -1  # floor((acc + 1) / 2) then / 2: odd halves are ties
    mult[::4], shift[::4] = 2**30, -2
    w[1::2] = rng.integers(-1, 2, w[1::2].shape)  # small sums there, so the ties are not clamped away
    bias[1::2] //= 100
    acc = (x.astype(np.int64) + in_off) @ w.T.astype(np.int64) + bias
    want = requantize_channels(acc, mult, shift, zp, lo, hi, min(round_up_below, n))
    for name in ISAS:
        out = np.zeros((rows, n), np.int8)
        scratch = np.zeros(rows * (k + 1), np.int16)
        kern = ex.FullyConnected(x.reshape(-1), out.reshape(-1), ex.pack_weights(w), pad16(bias), pad16(mult),
                                 pad16(shift), rows=rows, in_features=k, units=n, in_offset=in_off, out_zp=zp,
                                 act_min=lo, act_max=hi, scratch=scratch, round_up_below=round_up_below)  # fmt: skip
        with isa(name):
            kern.run()
        assert np.array_equal(out, want), f"{name}: {int((out != want).sum())} of {out.size} differ"

"""ADD, SUB and MUL kernels called directly on every instruction-set path against their numpy references, over
parameters the one-op models rarely reach: each requantization shift from 0 to 30, left shifts 1-3 (where each
input term's rounding shows in the output), multipliers at both ends of
[2^30, 2^31) (and the exact 1/2 of the larger-scale input), SUB's negated multiplier, broadcast scalars along the
row (the 8-element wrap blocks), rows of every length 1..70 (SIMD runs and scalar tails) and outputs far outside
int8 (ADD's int16 wrap, MUL's int16 saturation).  Each path must give the reference's bytes."""

from __future__ import annotations

import numpy as np
import pytest
from edge_maas.kernels import executor as ex
from edge_maas.kernels.ref.add import add
from edge_maas.kernels.ref.mul import mul
from oneop import ISAS, run_on, trials

# (rows, n, inner stride 1, inner stride 2, outer stride 1, outer stride 2): same shapes, a scalar broadcast
# along the row on either side (also past AVX-512 ADD/SUB's 64-output blocks), a row broadcast against rows
LAYOUTS = [(1, n, 1, 1, 0, 0) for n in (1, 7, 15, 16, 17, 31, 33, 70, 4099)] + [
    (3, 21, 1, 0, 21, 1), (2, 40, 0, 1, 1, 40), (4, 16, 1, 1, 0, 16), (5, 35, 1, 1, 35, 0), (1, 24, 0, 0, 0, 0),
    (2, 150, 1, 0, 150, 1), (2, 131, 0, 1, 1, 131)]  # fmt: skip


def _mult(rng):
    return int(rng.choice([1 << 30, (1 << 31) - 1, int(rng.integers(1 << 30, 1 << 31))]))


def _case(rng, layout):
    rows, n, t1, t2, o1, o2 = layout
    x1 = rng.integers(-128, 128, (rows - 1) * o1 + (n - 1) * t1 + 1, dtype=np.int8)
    x2 = rng.integers(-128, 128, (rows - 1) * o2 + (n - 1) * t2 + 1, dtype=np.int8)
    idx = np.arange(rows)[:, None], np.arange(n)[None, :]
    b1, b2 = x1[idx[0] * o1 + idx[1] * t1], x2[idx[0] * o2 + idx[1] * t2]
    return x1, x2, b1, b2, [1, 1, 1, rows, n], [0, 0, 0, o1, t1], [0, 0, 0, o2, t2]


def _offsets(rng):
    return {"in1_offset": int(rng.integers(-127, 129)), "in2_offset": int(rng.integers(-127, 129)),
            "out_offset": int(rng.integers(-128, 128))}  # fmt: skip


def _act(rng):
    return (-128, 127) if rng.random() < 0.6 else tuple(sorted(rng.integers(-128, 128, 2)))


@pytest.mark.parametrize("name", ISAS)
@pytest.mark.parametrize("kind", ["add", "sub"])
def test_add_sub_every_path(name, kind):
    for trial, rng in trials(240, 12, name, kind):
        layout = LAYOUTS[trial % len(LAYOUTS)]
        x1, x2, b1, b2, dims, s1, s2 = _case(rng, layout)
        half = rng.integers(3)  # which input (if any) has the larger scale: multiplier exactly 2^30, shift 0
        m1, h1 = ((1 << 30), 0) if half == 1 else (_mult(rng), -int(rng.integers(0, 31)))
        m2, h2 = ((1 << 30), 0) if half == 2 else (_mult(rng), -int(rng.integers(0, 31)))
        if rng.random() < 0.3:
            h1, h2 = -int(rng.integers(0, 3)), -int(rng.integers(0, 3))
        mo, ho = _mult(rng), -int(rng.integers(0, 31)) if rng.random() < 0.3 else -int(rng.integers(8, 22))
        # a small left shift and output shift make each input term's rounding show in the output bytes
        ls, ho = (int(rng.integers(1, 4)), -int(rng.integers(0, 3))) if trial % 4 == 1 else (20, ho)
        p = _offsets(rng) | {"in1_mult": m1, "in1_shift": h1, "in2_mult": -m2 if kind == "sub" else m2,
                             "in2_shift": h2, "out_mult": mo, "out_shift": ho, "left_shift": ls}  # fmt: skip
        lo, hi = _act(rng)
        out = np.empty(int(np.prod(dims)), np.int8)
        k = ex.Binary(kind, x1, x2, out, dims, s1, s2, act_min=int(lo), act_max=int(hi), **p)
        block = 1 << 30 if kind == "sub" else (8 if 0 in (s1[4], s2[4]) else 16)
        want = add(b1, b2, block=block, act_min=lo, act_max=hi, **p).reshape(-1)
        run_on(name, k)
        np.testing.assert_array_equal(out, want, err_msg=f"{kind} {name} {layout} {p}")


@pytest.mark.parametrize("name", ISAS)
def test_mul_every_path(name):
    for trial, rng in trials(240, 7, name):
        layout = LAYOUTS[trial % len(LAYOUTS)]
        x1, x2, b1, b2, dims, s1, s2 = _case(rng, layout)
        p = _offsets(rng) | {"out_mult": _mult(rng), "out_shift": int(rng.integers(-31, 5))}
        lo, hi = _act(rng)
        out = np.empty(int(np.prod(dims)), np.int8)
        k = ex.Binary("mul", x1, x2, out, dims, s1, s2, act_min=int(lo), act_max=int(hi), **p)
        want = mul(b1, b2, act_min=lo, act_max=hi, **p).reshape(-1)
        run_on(name, k)
        np.testing.assert_array_equal(out, want, err_msg=f"mul {name} {layout} {p}")

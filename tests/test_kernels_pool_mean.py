"""MAX/AVERAGE_POOL_2D, MEAN and the standalone output stage (RequantizeRows) called directly on every
instruction-set path against their numpy references, over what the one-op models rarely reach: channel counts
around the SIMD widths (16, 32) and the pooling chunk (64), large and clipped windows (the average's float
division), long reductions, per-channel rounding splits.  Each path must give the reference's bytes."""

from __future__ import annotations

import numpy as np
import pytest
from edge_maas.kernels import executor as ex
from edge_maas.kernels.quantize_ref import requantize_channels
from edge_maas.kernels.ref.mean import mean, mean_params
from edge_maas.kernels.ref.pooling import pool2d
from oneop import ISAS, run_on, trials

CHANNELS = [1, 15, 16, 17, 31, 33, 64, 65, 80, 130]


@pytest.mark.parametrize("name", ISAS)
@pytest.mark.parametrize("kind", ["average", "max"])
def test_pool_every_path(name, kind):
    for trial, rng in trials(60, 3, name, kind):
        c = CHANNELS[trial % len(CHANNELS)]
        h, w = (int(v) for v in rng.integers(1, 10, 2))
        kh, kw = (int(v) for v in rng.integers(1, 6, 2))
        if trial % 10 == 9:  # one window over a whole 24 x 24 image: 576 taps
            h = w = kh = kw = 24
        sh, sw = (int(v) for v in rng.integers(1, 3, 2))
        pt, pl = int(rng.integers(0, kh)), int(rng.integers(0, kw))
        oh, ow = max(1, (h + 2 * pt - kh) // sh + 1), max(1, (w + 2 * pl - kw) // sw + 1)
        # extremes: sums near +-128 x taps, and ties (values whose windows average to k + 1/2)
        x = (
            rng.choice(np.array([-128, 127, -1, 0, 1], np.int8), (1, h, w, c))
            if trial % 3 == 0
            else rng.integers(-128, 128, (1, h, w, c), dtype=np.int8)
        )
        lo, hi = (-128, 127) if trial % 2 else tuple(int(v) for v in sorted(rng.integers(-128, 128, 2)))
        out = np.empty((1, oh, ow, c), np.int8)
        k = ex.Pool(kind, x.reshape(-1), out.reshape(-1), batch=1, in_h=h, in_w=w, channels=c, out_h=oh, out_w=ow,
                    k_h=kh, k_w=kw, stride_h=sh, stride_w=sw, pad_top=pt, pad_left=pl,
                    act_min=lo, act_max=hi)  # fmt: skip
        run_on(name, k)
        want = pool2d(x, kind, k=(kh, kw), stride=(sh, sw), pad=(pt, pl), out_hw=(oh, ow), act_min=lo, act_max=hi)
        np.testing.assert_array_equal(out, want, err_msg=f"{kind} {name} trial {trial}")


@pytest.mark.parametrize("name", ISAS)
def test_mean_every_path(name):
    for trial, rng in trials(60, 5, name):
        inner = [1, 15, 16, 17, 31, 32, 33, 48, 70, 1280][trial % 10]
        outer, count = int(rng.integers(1, 3)), int(rng.integers(1, 60))
        si, so = (float(np.float32(v)) for v in rng.uniform(0.002, 0.1, 2))
        p = mean_params(
            si, int(rng.integers(-128, 128)), so, int(rng.integers(-128, 128)), count, inner, bool(trial % 2)
        )
        x = rng.integers(-128, 128, (outer, count, inner), dtype=np.int8)
        out = np.empty((outer, inner), np.int8)
        k = ex.Mean(x.reshape(-1), out.reshape(-1), outer, count, inner, p["pre_offset"], p["mult"], p["shift"],
                    p["out_zp"], p["round_up_below"], np.empty(inner, np.int32))  # fmt: skip
        run_on(name, k)
        np.testing.assert_array_equal(out, mean(x, p), err_msg=f"{name} trial {trial} {p}")


@pytest.mark.parametrize("name", ISAS)
def test_requantize_rows_every_path(name):
    for trial, rng in trials(60, 9, name):
        channels = [1, 7, 15, 16, 17, 40, 64][trial % 7]
        rows = int(rng.integers(1, 9))
        padded = (channels + 15) // 16 * 16
        mult = rng.integers(1 << 30, 1 << 31, padded).astype(np.int32)
        shift = rng.integers(-20, 3, padded).astype(np.int32)
        acc = rng.integers(-(1 << 22), 1 << 22, (rows, channels)).astype(np.int32)
        acc[:, ::3] = rng.integers(-40, 40, acc[:, ::3].shape)  # small values: ties and rounding near zero
        zp = int(rng.integers(-128, 128))
        lo, hi = (-128, 127) if trial % 2 else tuple(int(v) for v in sorted(rng.integers(-128, 128, 2)))
        up = int(rng.choice([0, channels // 2, channels - channels % 16, ex.ROUND_ALL_UP]))
        out = np.empty((rows, channels), np.int8)
        k = ex.RequantizeRows(acc.reshape(-1), out.reshape(-1), mult, shift, rows=rows, channels=channels, out_zp=zp,
                              act_min=lo, act_max=hi, round_up_below=up)  # fmt: skip
        run_on(name, k)
        want = requantize_channels(acc, mult[:channels], shift[:channels], zp, lo, hi, round_up_below=up)
        np.testing.assert_array_equal(out, want, err_msg=f"{name} trial {trial}")

"""LOG_SOFTMAX int8 reference: the interpreter's optimized kernel (optimized_ops::LogSoftmax) in numpy float32:
the SOFTMAX table exps relative to the row maximum summed in order, logf (glibc, through ctypes), then
rint(in_scale / out_scale * x - (in_scale * max + log_sum) / out_scale) + zero point, ties to even."""

import ctypes
import ctypes.util

import numpy as np

_libm = ctypes.CDLL(ctypes.util.find_library("m") or None)
_libm.logf.restype = ctypes.c_float
_libm.logf.argtypes = [ctypes.c_float]


def log_softmax(x2, table, in_scale: float, out_scale: float, out_zp: int) -> np.ndarray:
    """x2 [outer, depth] int8; table as edge_maas.kernels.executor.softmax_table(in_scale, 1.0)."""
    f = np.float32
    si, so = f(in_scale), f(out_scale)
    out = np.empty(x2.shape, np.int8)
    for i, row in enumerate(x2.astype(np.int64)):
        m = int(row.max())
        s = f(0)
        for v in table[255 - m + row]:  # in order, as the C loop
            s = f(s + v)
        log_sum = f(_libm.logf(float(s)))
        scale = f(si / so)
        pre = f(f(f(si * f(m)) + log_sum) / so)
        prob = (scale * row.astype(np.float32) - pre).astype(np.float32)
        q = np.rint(prob).astype(np.float32) + f(out_zp)
        out[i] = np.clip(q.astype(np.int64), -128, 127)
    return out

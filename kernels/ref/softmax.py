"""SOFTMAX int8 reference: the interpreter's float table kernel in numpy float32
(sequential float sum, 1 / (sum * out_scale), round half away from zero)."""

import numpy as np


def softmax(x2, table, out_scale: float, out_zp: int) -> np.ndarray:
    """x2 [outer, depth] int8; table as edge_maas.kernels.executor.softmax_table."""
    f = np.float32
    out = np.empty(x2.shape, np.int8)
    for i, row in enumerate(x2.astype(np.int64)):
        e = table[255 - row.max() + row]
        s = f(0)
        for v in e:  # in order, as the C loop
            s = f(s + v)
        inv = f(1) / f(s * f(out_scale))
        r = (e * inv).astype(np.float64)
        out[i] = np.clip(np.sign(r) * np.floor(np.abs(r) + 0.5) + out_zp, -128, 127)
    return out

"""LOGISTIC int8 reference: the interpreter's float lookup-table recipe, one value at a time.

exp comes from the C library's expf through ctypes: numpy's float32 exp is a different
implementation and differs from glibc's in the last bit on a good share of inputs, which
moves rounding ties."""

import ctypes
import ctypes.util

import numpy as np

_libm = ctypes.CDLL(ctypes.util.find_library("m") or None)
_libm.expf.restype = ctypes.c_float
_libm.expf.argtypes = [ctypes.c_float]


def logistic_table(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    f = np.float32
    inv = f(1) / f(out_scale)
    table = np.empty(256, np.int8)
    for v in range(-128, 128):
        deq = f(in_scale) * f(v - in_zp)
        y = f(1) / (f(1) + f(_libm.expf(float(-deq))))
        r = float(y * inv)
        q = int(np.floor(abs(r) + 0.5)) * (1 if r >= 0 else -1) + out_zp
        table[v & 0xFF] = min(127, max(-128, q))
    return table

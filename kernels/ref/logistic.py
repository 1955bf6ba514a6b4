"""LOGISTIC int8 reference: the interpreter's float lookup-table recipe, in numpy float32.

(The executor builds its table in C with libm's expf; numpy's float32 exp may
differ in the last bit, which the tests would catch as a table mismatch.)"""

import numpy as np


def logistic_table(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    f = np.float32
    vals = np.arange(-128, 128)
    deq = f(in_scale) * (vals - in_zp).astype(f)
    y = f(1) / (f(1) + np.exp(-deq))
    r = (y * (f(1) / f(out_scale))).astype(np.float64)
    q = np.sign(r) * np.floor(np.abs(r) + 0.5) + out_zp
    table = np.empty(256, np.int8)
    table[vals.astype(np.int8).view(np.uint8)] = np.clip(q, -128, 127)
    return table

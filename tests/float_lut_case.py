"""Shared by the per-op tests of the float lookup-table ops (TANH, GELU, ELU, EXP): a one-op model over every int8
value at several positions, native (every ISA) == interpreter == the numpy table (kernels/ref/float_lut.py), and the
C table == the numpy table."""

from __future__ import annotations

import numpy as np
from conftest import litert_semantics
from edge_maas.kernels import executor as ex
from edge_maas.kernels.ref.float_lut import float_lut_table
from oneop import Op, T, build_model, native_matches_interpreter, qscale

ALL = np.arange(-128, 128, dtype=np.int8)
X = np.concatenate([ALL, ALL[::-1], ALL[7:50]])  # 555 values: the table at many positions

#: cases where a value leaves int32: ai-edge-litert's build saturates (measured), tflite-runtime 2.14's (the legacy
#: run) gives INT32_MIN as x86's cvttss2si does, so large values become -128 there
overflow_semantics = litert_semantics("a float outside int32 converts to INT32_MIN (-128), ai-edge-litert saturates")

#: output scales so small that the rescaled value leaves int32 (1e-12) or 1 / scale overflows float (1e-40)
TINY_SCALES = [1e-12, 1e-38, 1e-40, 1e-45]


def model(op, si, zi, so, zo, options=None, shape=(1, X.size), dtype="int8") -> bytes:
    opts = options or ()
    return build_model([T("x", shape, dtype, [si], [zi]), T("y", shape, dtype, [so], [zo])],
                       [Op(op, ["x"], ["y"], *opts)], ["x"], ["y"])  # fmt: skip


def check(op: str, kind: str, si, zi, so, zo, options=None) -> np.ndarray:
    """options: (options type, dict) for the op, or None.  Returns the native output."""
    si, so = qscale(si), qscale(so)
    got = native_matches_interpreter(model(op, si, zi, so, zo, options), [{"x": X[None]}])[0]["y"][0]
    want = float_lut_table(kind, si, zi, so, zo)
    np.testing.assert_array_equal(got, want[X.view(np.uint8)])
    np.testing.assert_array_equal(ex.float_lut_table(kind, si, zi, so, zo), want)
    return got

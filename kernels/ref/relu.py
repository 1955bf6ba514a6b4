"""Standalone int8 RELU / RELU6 / RELU_N1_TO_1 / RELU_0_TO_1 and LEAKY_RELU, as the interpreter's
activations.cc: functions of one byte, given here as 256-entry tables indexed by the (uint8) input byte.

Both kernels are scalar loops of MultiplyByQuantizedMultiplier (ties away from zero) in the interpreter,
so one table covers every position.  Multipliers are formed in float32, then widened (ReluPrepare:
``input->params.scale / output->params.scale``; LeakyReluPrepare: ``in_scale * alpha / out_scale``)."""

import numpy as np
from edge_maas.kernels.quantize_ref import multiply_by_quantized_multiplier as mbqm
from edge_maas.kernels.quantize_ref import quantize_multiplier

# op -> (act_min, act_max) in real units, as activations.cc passes them to QuantizedReluX
RELU_RANGE = {"RELU": (0.0, np.inf), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0), "RELU_0_TO_1": (0.0, 1.0)}

_VALUES = np.arange(256, dtype=np.uint8).view(np.int8).astype(np.int64)


def _roundf(x: np.float32) -> int:
    """C roundf: half away from zero."""
    return int(np.sign(x) * np.floor(np.abs(np.float64(x)) + 0.5))


def relu_table(op: str, si: float, zi: int, so: float, zo: int) -> np.ndarray:
    lo_real, hi_real = RELU_RANGE[op]
    so32 = np.float32(so)
    qmin = max(-128, zo + _roundf(np.float32(lo_real) / so32))
    qmax = 127 if hi_real == np.inf else min(127, zo + _roundf(np.float32(hi_real) / so32))
    mult, shift = quantize_multiplier(float(np.float32(si) / so32))
    out = zo + mbqm(_VALUES - zi, mult, shift)
    return np.minimum(qmax, np.maximum(qmin, out)).astype(np.int8)  # int8 cast wraps, as static_cast<int8_t>


def leaky_relu_table(alpha: float, si: float, zi: int, so: float, zo: int) -> np.ndarray:
    si32, so32 = np.float32(si), np.float32(so)
    m_alpha, s_alpha = quantize_multiplier(float(si32 * np.float32(alpha) / so32))
    m_id, s_id = quantize_multiplier(float(si32 / so32))
    v = _VALUES - zi
    out = zo + np.where(v >= 0, mbqm(v, m_id, s_id), mbqm(v, m_alpha, s_alpha))
    return np.clip(out, -128, 127).astype(np.int8)

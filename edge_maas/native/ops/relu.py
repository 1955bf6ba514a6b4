"""Standalone RELU, RELU6, RELU_N1_TO_1, RELU_0_TO_1 and LEAKY_RELU on int8: 256-entry tables
(kernels/ref/relu.py) run by the table kernel.  Converters fuse most ReLUs into the op before; standalone
ones remain after ADD/CONCATENATION in some graphs, and LEAKY_RELU in YOLO-style detectors."""

from __future__ import annotations

import math

from edge_maas.kernels.ref.relu import leaky_relu_table, relu_table
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.ops.activations import _table_op


def lower_relu(ctx: OpContext) -> Lowered:
    (si, zi), (so, zo) = ctx.qparams(ctx.input(0)), ctx.qparams(ctx.output())
    return _table_op(ctx, relu_table(ctx.op.op, si, zi, so, zo))


def lower_leaky_relu(ctx: OpContext) -> Lowered:
    (si, zi), (so, zo) = ctx.qparams(ctx.input(0)), ctx.qparams(ctx.output())
    alpha = float(ctx.options("LeakyReluOptions").alpha)
    if not math.isfinite(alpha):
        raise ctx.fail(f"alpha {alpha} is not finite")
    return _table_op(ctx, leaky_relu_table(alpha, si, zi, so, zo))

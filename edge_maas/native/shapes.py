"""Shape helpers shared by the lowerings: 5-D padding, broadcast strides, contiguous strides."""

from __future__ import annotations

import numpy as np

RANK = 5


def pad5(shape) -> list[int]:
    shape = [int(d) for d in shape]
    if len(shape) > RANK:
        raise ValueError(f"rank {len(shape)} > {RANK}")
    return [1] * (RANK - len(shape)) + shape


def contiguous_strides(shape) -> list[int]:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return strides[::-1]


def broadcast_strides(in_shape, out_shape) -> list[int]:
    """Element strides of in_shape read along out_shape (both 5-D): 0 on broadcast axes."""
    st = contiguous_strides(in_shape)
    return [0 if i == 1 and o != 1 else s for i, o, s in zip(in_shape, out_shape, st, strict=True)]


def broadcast_shape(a, b) -> list[int]:
    return list(np.broadcast_shapes(tuple(a), tuple(b)))

"""TRANSPOSE reference: the axis merging the native lowering does, and the gather it feeds the kernel."""

import numpy as np


def merged_gather(shape, perm):
    """(out dims, input strides in elements) after dropping size-1 axes and merging each output axis
    into the one before when together they read one contiguous run of input; at least one axis."""
    st = [int(np.prod(shape[a + 1 :], dtype=np.int64)) for a in range(len(shape))]
    axes = [a for a in perm if shape[a] != 1]
    dims, strides = [], []
    for a in axes:
        if dims and strides[-1] == st[a] * shape[a]:
            dims[-1] *= int(shape[a])
            strides[-1] = st[a]
        else:
            dims.append(int(shape[a]))
            strides.append(st[a])
    return (dims, strides) if dims else ([1], [1])


def transpose(x: np.ndarray, perm) -> np.ndarray:
    """Output bytes as the kernel gathers them (out contiguous, in read at the merged strides)."""
    dims, strides = merged_gather(x.shape, perm)
    flat = x.reshape(-1)
    idx = np.zeros(1, dtype=np.int64)
    for d, s in zip(dims, strides):
        idx = (idx[:, None] + np.arange(d, dtype=np.int64)[None, :] * s).reshape(-1)
    return flat[idx].reshape([x.shape[a] for a in perm])

"""Small real data sets that ship inside packages (no downloads)."""

from __future__ import annotations

import numpy as np

DIGITS_SPLIT_SEED = 0


def digits_split():
    """scikit-learn's 8x8 digits scaled to [0, 1], split 75/25 (stratified, fixed seed).

    The zoo's digits MLP was trained on the first part; accuracy is reported on the second."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:
        raise ImportError("the digits data set needs scikit-learn: pip install scikit-learn") from exc
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    return train_test_split(x, d.target, test_size=0.25, random_state=DIGITS_SPLIT_SEED, stratify=d.target)


def digits_test_int8(scale: float, zero_point: int):
    """The held-out digits quantized by the compiled kernel (as the interpreter
    would quantize them), shaped (n, 1, 64), and their labels."""
    from edge_maas.kernels import quantize as qk

    _, x, _, y = digits_split()
    q = np.empty(x.size, np.int8)
    qk.quantize(np.ascontiguousarray(x).ravel(), scale, zero_point, q)
    return q.reshape(len(x), 1, 64), y

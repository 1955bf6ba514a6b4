"""Calibration and evaluation samples for `edge-maas quantize`, read from an .npz and checked against the float
model's inputs before anything runs.

Layout: one float array per model input, keyed by the input's signature name (``pixels``) or tensor name
(``serving_default_pixels:0``), each (n, *shape[1:]) or (n, *shape); a model with one input may store its samples
under any single key.  An optional integer array ``y`` (n,) holds labels (used by ``--eval`` for accuracy)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_maas.errors import EdgeMaasError
from edge_maas.quantize.float_model import FloatTensor

LABELS = "y"
MIN_CALIBRATION_SAMPLES = 20  # below this, min/max ranges are guesses (TFLite's guide asks for ~100-500)


class SampleDataError(EdgeMaasError):
    """Calibration or evaluation data that does not fit the model (missing input, wrong shape or dtype, too few
    samples, non-finite values, unreadable file)."""


@dataclass(frozen=True)
class Samples:
    """n samples: ``arrays`` by signature input name, each float32 (n, *shape[1:]); ``labels`` int64 (n,) or None."""

    arrays: dict[str, np.ndarray]
    labels: np.ndarray | None
    n: int

    def feeds(self, inputs: Sequence[FloatTensor], limit: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        """One dict per sample, by signature name, each array shaped as the model's input (batch 1)."""
        for i in range(self.n if limit is None else min(limit, self.n)):
            yield {t.name: self.arrays[t.name][i].reshape(t.shape) for t in inputs}


def read_samples(path: str | Path, inputs: Sequence[FloatTensor], what: str = "calibration",
                 min_samples: int = 1) -> Samples:  # fmt: skip
    """Read and check ``path`` (layout in the module docstring).  Errors: SampleDataError."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            stored = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError) as exc:  # missing file, not an npz, pickled objects, truncated
        raise SampleDataError(f"cannot read {what} data {path}: {exc}") from None
    labels = stored.pop(LABELS, None)
    arrays: dict[str, np.ndarray] = {}
    for t in inputs:
        key = next((k for k in (t.name, t.tensor) if k in stored), None)
        if key is None and len(inputs) == 1 and len(stored) == 1:
            key = next(iter(stored))
        if key is None:
            names = ", ".join(t.name for t in inputs)
            raise SampleDataError(f"{what} data {path} has no array for input {t.name!r} (it holds "
                                  f"{', '.join(sorted(stored)) or 'nothing'}; the model's inputs: {names})")  # fmt: skip
        arrays[t.name] = _check_array(stored[key], t, f"{what} data {path}, input {t.name!r}")
    sizes = {len(a) for a in arrays.values()}
    if len(sizes) != 1:
        raise SampleDataError(f"{what} data {path}: inputs hold different numbers of samples {sorted(sizes)}")
    n = sizes.pop()
    if n < min_samples:
        raise SampleDataError(f"{what} data {path} holds {n} samples; at least {min_samples} are needed "
                              "(ranges from fewer are guesses; 100-500 representative samples are typical)")  # fmt: skip
    if labels is not None:
        labels = _check_labels(labels, n, f"{what} data {path}")
    return Samples(arrays, labels, n)


def _check_array(a: np.ndarray, t: FloatTensor, where: str) -> np.ndarray:
    per = t.shape[1:]
    if a.ndim == len(t.shape) + 1 and a.shape[1:] == t.shape:  # (n, 1, ...): each sample with its batch of 1
        a = a.reshape(len(a), *per)
    if a.ndim != len(per) + 1 or a.shape[1:] != per:
        raise SampleDataError(f"{where}: shape {list(a.shape)}, expected (n, {', '.join(map(str, per))}) for an "
                              f"input of shape {list(t.shape)}")  # fmt: skip
    if not np.issubdtype(a.dtype, np.floating):
        raise SampleDataError(f"{where} is {a.dtype}; the float model takes float32 values as it would see them "
                              "(scale integer data, e.g. pixels / 255, as in training)")  # fmt: skip
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise SampleDataError(f"{where} holds NaN or infinite values")
    return a


def _check_labels(y: np.ndarray, n: int, where: str) -> np.ndarray:
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise SampleDataError(f"{where}: labels y must be {n} integers (n,), got {y.dtype} {list(y.shape)}")
    return y.astype(np.int64)

"""Calibration and evaluation samples for `edge-maas quantize`, read from an .npz (or an .npy) and checked against
the float model's inputs before anything runs.

Layout: one float array per model input, keyed by the input's signature name (``pixels``) or tensor name
(``serving_default_pixels:0``), each (n, *shape[1:]) or (n, *shape); a model with one input may store its samples
under any single key, or in an .npy.  An optional integer array ``y`` (n,) holds labels (accuracy in the report).
Only the arrays used are read, each after its header says its shape, dtype and size fit (a small compressed file
cannot make this allocate more than MAX_ARRAY_BYTES)."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_maas.errors import EdgeMaasError
from edge_maas.quantize.float_model import SignatureTensor

LABELS = "y"
MIN_CALIBRATION_SAMPLES = 20  # below this, min/max ranges are guesses (TFLite's guide asks for ~100-500)
MAX_ARRAY_BYTES = 4 << 30  # one array, as stored: far above any calibration set, far below this machine kind's RAM


class SampleDataError(EdgeMaasError):
    """Calibration or evaluation data that does not fit the model (missing input, wrong shape or dtype, too few
    samples, non-finite values, labels that are not classes, an unreadable or oversized file)."""


@dataclass(frozen=True)
class Samples:
    """n samples: ``arrays`` by signature input name, each float32 (n, *shape[1:]); ``labels`` int64 (n,) or None."""

    arrays: dict[str, np.ndarray]
    labels: np.ndarray | None
    n: int

    def feeds(self, inputs: Sequence[SignatureTensor], limit: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        """One dict per sample, by signature name, each array shaped as the model's input (batch 1)."""
        for i in range(self.n if limit is None else min(limit, self.n)):
            yield {t.name: self.arrays[t.name][i].reshape(t.shape) for t in inputs}


def read_samples(path: str | Path, inputs: Sequence[SignatureTensor], what: str = "calibration",
                 min_samples: int = 1) -> Samples:  # fmt: skip
    """Read and check ``path`` (layout in the module docstring).  Errors: SampleDataError."""
    where = f"{what} data {path}"
    npz = None
    try:
        with open(path, "rb") as f:
            is_zip = zipfile.is_zipfile(f)
        if not is_zip:  # an .npy: one array, memory-mapped until checked
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            if not isinstance(arr, np.ndarray) or len(inputs) != 1:
                raise SampleDataError(f"{where} is not an .npz; a model with {len(inputs)} inputs needs one array per "
                                      "input name in an .npz")  # fmt: skip
            stored, read = ["x"], lambda k: arr
        else:
            npz = np.load(path, allow_pickle=False)
            stored, read = npz.files, lambda k: _read_member(npz, k, where)
        arrays: dict[str, np.ndarray] = {}
        keys = [k for k in stored if k != LABELS]
        for t in inputs:
            key = next((k for k in (t.name, t.tensor) if k in keys), None)
            if key is None and len(inputs) == 1 and len(keys) == 1:
                key = keys[0]
            if key is None:
                names = ", ".join(t.name for t in inputs)
                raise SampleDataError(f"{where} has no array for input {t.name!r} (it holds "
                                      f"{', '.join(sorted(keys)) or 'nothing'}; the model's inputs: {names})")  # fmt: skip
            arrays[t.name] = _check_array(read(key), t, f"{where}, input {t.name!r}")
        labels = read(LABELS) if LABELS in stored else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # missing, not numpy, pickled, truncated
        raise SampleDataError(f"cannot read {where}: {exc}") from None
    finally:
        if npz is not None:
            npz.close()
    sizes = {len(a) for a in arrays.values()}
    if len(sizes) != 1:
        raise SampleDataError(f"{where}: inputs hold different numbers of samples {sorted(sizes)}")
    n = sizes.pop()
    if n < min_samples:
        raise SampleDataError(f"{where} holds {n} samples; at least {min_samples} are needed "
                              "(ranges from fewer are guesses; 100-500 representative samples are typical)")  # fmt: skip
    if labels is not None:
        labels = _check_labels(labels, n, where)
    return Samples(arrays, labels, n)


def _read_member(npz, key: str, where: str) -> np.ndarray:
    """One array of an .npz, read only once its header's size fits MAX_ARRAY_BYTES."""
    with npz.zip.open(f"{key}.npy") as f:
        version = np.lib.format.read_magic(f)
        header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = header(f)
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if nbytes > MAX_ARRAY_BYTES:
        raise SampleDataError(f"{where}: array {key!r} {list(shape)} {dtype} holds {nbytes} bytes; edge-maas quantize "
                              f"reads at most {MAX_ARRAY_BYTES} per array (use fewer samples)")  # fmt: skip
    return npz[key]


def _check_array(a: np.ndarray, t: SignatureTensor, where: str) -> np.ndarray:
    per = t.shape[1:]
    if a.ndim == len(t.shape) + 1 and a.shape[1:] == t.shape:  # (n, 1, ...): each sample with its batch of 1
        a = a.reshape(len(a), *per)
    if a.ndim != len(per) + 1 or a.shape[1:] != per:
        raise SampleDataError(f"{where}: shape {list(a.shape)}, expected (n, {', '.join(map(str, per))}) for an "
                              f"input of shape {list(t.shape)}")  # fmt: skip
    if not np.issubdtype(a.dtype, np.floating):
        raise SampleDataError(f"{where} is {a.dtype}; the float model takes float32 values as it would see them "
                              "(scale integer data, e.g. pixels / 255, as in training)")  # fmt: skip
    if a.nbytes // a.dtype.itemsize * 4 > MAX_ARRAY_BYTES:
        raise SampleDataError(f"{where}: {list(a.shape)} is more than edge-maas quantize reads (use fewer samples)")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise SampleDataError(f"{where} holds NaN or infinite values")
    return a


def _check_labels(y: np.ndarray, n: int, where: str) -> np.ndarray:
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise SampleDataError(f"{where}: labels y must be {n} integers (n,), got {y.dtype} {list(y.shape)}")
    if len(y) and y.min() < 0:
        raise SampleDataError(f"{where}: labels y must be class indices 0..C-1; found {int(y.min())}")
    return y.astype(np.int64)

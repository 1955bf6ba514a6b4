"""The model zoo committed in tests/models (built by tools/make_models.py).

In a source checkout (and an editable install) the zoo is read from tests/models.  A wheel ships the part the
main job needs (the digits MLP the demo runs, see ``ZOO_PACKAGED`` in setup.py) as package data in
``edge_maas/zoo_models``; there :func:`index` and :func:`names` list only the models that were shipped."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

_PACKAGED = Path(__file__).resolve().parent / "zoo_models"  # only in a built wheel / non-editable install
_SOURCE = Path(__file__).resolve().parent.parent / "tests" / "models"
MODELS = _PACKAGED if (_PACKAGED / "zoo.json").is_file() else _SOURCE


@lru_cache(maxsize=1)
def index() -> dict:
    """zoo.json's entries for the models present in :data:`MODELS` (a wheel holds a subset)."""
    entries = json.loads((MODELS / "zoo.json").read_text())
    return {name: e for name, e in entries.items() if (MODELS / e["file"]).is_file()}


def names() -> list[str]:
    return sorted(index())


def model_path(name: str) -> Path:
    """The .tflite file of zoo model ``name``; KeyError when the zoo (or this install's part of it) lacks it."""
    return MODELS / index()[name]["file"]


def model_bytes(name: str) -> bytes:
    return model_path(name).read_bytes()


def expected(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Seeded inputs and the outputs the interpreter's built-in kernels gave at build time."""
    e = np.load(MODELS / f"{name}.expected.npz")
    return e["inputs"], e["outputs"]

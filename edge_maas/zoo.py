"""The model zoo committed in tests/models (built by tools/make_models.py)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

MODELS = Path(__file__).resolve().parent.parent / "tests" / "models"


@lru_cache(maxsize=1)
def index() -> dict:
    return json.loads((MODELS / "zoo.json").read_text())


def names() -> list[str]:
    return sorted(index())


def model_path(name: str) -> Path:
    return MODELS / index()[name]["file"]


def model_bytes(name: str) -> bytes:
    return model_path(name).read_bytes()


def expected(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Seeded inputs and the outputs the interpreter's built-in kernels gave at build time."""
    e = np.load(MODELS / f"{name}.expected.npz")
    return e["inputs"], e["outputs"]

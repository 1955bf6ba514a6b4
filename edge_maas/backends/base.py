"""The Backend interface and the input checks every backend shares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edge_maas.errors import TensorMismatchError


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str

    def describe(self) -> str:
        return f"{self.name} {self.dtype}{list(self.shape)}"


def check_inputs(specs: tuple[TensorSpec, ...], inputs: Mapping[str, np.ndarray]) -> None:
    """Raise TensorMismatchError unless every spec has an array of exactly its shape and dtype."""
    for spec in specs:
        if spec.name not in inputs:
            raise TensorMismatchError(
                f"missing input tensor {spec.name!r}; expected {', '.join(s.describe() for s in specs)}"
            )
        arr = inputs[spec.name]
        if not isinstance(arr, np.ndarray):
            raise TensorMismatchError(f"input {spec.name!r} is a {type(arr).__name__}, not a numpy array")
        if arr.dtype != np.dtype(spec.dtype) or tuple(arr.shape) != spec.shape:
            raise TensorMismatchError(
                f"input {spec.name!r} is {arr.dtype}{list(arr.shape)}; expected {spec.dtype}{list(spec.shape)}"
            )


class Backend(ABC):
    """Runs one model.  Tensors are addressed by name, never by index."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @abstractmethod
    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; return fresh arrays (the caller may keep them) keyed by output name."""

    def batched(self, n: int) -> Backend | None:
        """This model taking n samples stacked on axis 0, or None if this backend cannot."""
        return None

    def close(self) -> None:
        """Release resources; the default has none to release."""

"""The accelerator backend: the native executor with CONV_2D, DEPTHWISE_CONV_2D and
FULLY_CONNECTED accumulated by torch on a GPU when one is present (else torch on the CPU),
requantized by the native output stage; byte-identical to the interpreter's built-in
kernels.  Optional: needs torch (`pip install 'edge_maas[accel]'`)."""

from __future__ import annotations

import functools
import logging
import os

from edge_maas.backends.native import NativeBackend
from edge_maas.errors import BackendUnavailableError

log = logging.getLogger(__name__)


def accel_device(requested: str | None = None) -> str:
    """'cuda' when torch sees a GPU, else 'cpu'; EDGE_MAAS_ACCEL_DEVICE or `requested` overrides."""
    try:
        import torch
    except ImportError:
        raise BackendUnavailableError("the accel backend needs torch: pip install 'torch==2.13.0'") from None
    want = requested or os.environ.get("EDGE_MAAS_ACCEL_DEVICE")
    if want:
        if want.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailableError(f"accel device {want!r} requested but torch sees no CUDA GPU")
        return want
    return "cuda" if torch.cuda.is_available() else "cpu"


class AccelBackend(NativeBackend):
    def __init__(self, model_bytes: bytes, threads: int = 1, device: str | None = None):
        from edge_maas.accel.torch_ops import LOWERINGS

        self.device = accel_device(device)
        overrides = {op: functools.partial(lower, device=self.device) for op, lower in LOWERINGS.items()}
        super().__init__(model_bytes, threads, overrides=overrides)
        log.info("accel backend on %s", self.device)

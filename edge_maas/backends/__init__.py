"""Backends run one model (a whole model or one shard) behind one interface."""

import logging

from edge_maas.backends.base import Backend, TensorSpec, check_inputs

__all__ = ["Backend", "TensorSpec", "check_inputs", "make_backend", "make_stage_backend"]

log = logging.getLogger(__name__)

# "native" runs each stage natively when it can and on the interpreter when native lacks one of its ops;
# "native-only" runs every stage natively or fails (the UnsupportedOpError names every op native lacks).
NATIVE_ONLY = "native-only"


def make_backend(kind: str, model_bytes: bytes, **options) -> Backend:
    """Build a backend by name: 'litert' (the interpreter), 'native' (edge_maas kernels) or
    'accel' (native with GEMM-type ops accumulated by torch, on a GPU when present)."""
    if kind == "litert":
        from edge_maas.backends.litert import LiteRTBackend

        return LiteRTBackend(model_bytes, **options)
    from edge_maas.errors import BackendUnavailableError

    if kind in ("native", NATIVE_ONLY):  # one model: nothing to mix (make_stage_backend mixes stages)
        from edge_maas.backends.native import NativeBackend

        # The interpreter's options (xnnpack) mean nothing here; a pipeline passes one set to all stages.
        return NativeBackend(model_bytes, threads=options.get("threads", 1))
    if kind == "accel":
        from edge_maas.backends.accel import AccelBackend

        return AccelBackend(model_bytes, threads=options.get("threads", 1), device=options.get("device"))
    raise BackendUnavailableError(f"unknown backend {kind!r}; choose 'litert', 'native', '{NATIVE_ONLY}' or 'accel'")


def make_stage_backend(kind: str, model_bytes: bytes, label: str, **options) -> tuple[Backend, str]:
    """One stage (a shard, a submodel or a whole model) of a pipeline: (backend, the backend name it runs on).

    ``kind`` "native": natively when every op has a kernel, else on the interpreter's built-in kernels
    (no XNNPACK: on x86-64 they give the same bytes as native, so a mixed pipeline stays bit-exact), with one
    log line saying which and why (``stage 2 (heads.tflite): interpreter: native lacks TRANSPOSE (op 7)``).
    "native-only": natively or UnsupportedOpError.  Any other kind: make_backend's.  ``label`` names the stage
    in the log line."""
    if kind not in ("native", NATIVE_ONLY):
        return make_backend(kind, model_bytes, **options), kind
    from edge_maas.errors import BackendUnavailableError, UnsupportedOpError

    try:
        backend = make_backend("native", model_bytes, **options)
    except UnsupportedOpError as exc:
        if kind == NATIVE_ONLY:
            raise
        why = getattr(exc, "summary", None) or str(exc)
        try:
            fallback = make_backend("litert", model_bytes, xnnpack=False, threads=options.get("threads", 1))
        except BackendUnavailableError as missing:  # an interpreter-less install (the worker image)
            raise UnsupportedOpError(f"{label}: {exc}; no interpreter to run it on instead: {missing}") from None
        log.info("%s: interpreter: %s", label, why)
        return fallback, "litert"
    log.info("%s: native", label)
    return backend, "native"

"""Backends run one model (a whole model or one shard) behind one interface."""

from edge_maas.backends.base import Backend, TensorSpec, check_inputs

__all__ = ["Backend", "TensorSpec", "check_inputs", "make_backend"]


def make_backend(kind: str, model_bytes: bytes, **options) -> Backend:
    """Build a backend by name: 'litert' (the interpreter), 'native' (edge_maas kernels) or
    'accel' (native with GEMM-type ops accumulated by torch, on a GPU when present)."""
    if kind == "litert":
        from edge_maas.backends.litert import LiteRTBackend

        return LiteRTBackend(model_bytes, **options)
    from edge_maas.errors import BackendUnavailableError

    if kind == "native":
        from edge_maas.backends.native import NativeBackend

        # The interpreter's options (xnnpack) mean nothing here; a pipeline passes one set to all stages.
        return NativeBackend(model_bytes, threads=options.get("threads", 1))
    if kind == "accel":
        from edge_maas.backends.accel import AccelBackend

        return AccelBackend(model_bytes, threads=options.get("threads", 1), device=options.get("device"))
    raise BackendUnavailableError(f"unknown backend {kind!r}; choose 'litert', 'native' or 'accel'")

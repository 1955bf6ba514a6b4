"""The interpreter backend: ai-edge-litert if installed, else tflite-runtime."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import ModuleType

import numpy as np

from edge_maas.backends.base import Backend, TensorSpec, check_inputs
from edge_maas.errors import BackendUnavailableError, ModelFormatError
from edge_maas.tflite.graph import Graph, load_graph
from edge_maas.tflite.verify import MAX_TOTAL_TENSOR_BYTES

log = logging.getLogger(__name__)


def interpreter_module() -> tuple[ModuleType, str]:
    """The interpreter's Python module (``Interpreter``, ``OpResolverType``) and the package's name.

    ai-edge-litert when installed, else tflite-runtime (boards on numpy<2).  Raises BackendUnavailableError
    naming both when neither is.
    """
    try:
        from ai_edge_litert import interpreter as mod

        return mod, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter as mod

        return mod, "tflite-runtime"
    except ImportError:
        raise BackendUnavailableError(
            "no TFLite interpreter found: pip install 'edge-maas[litert]' (ai-edge-litert), or "
            "'edge-maas[tflite-runtime]' on boards with numpy<2; the native backend needs neither"
        ) from None


class LiteRTBackend(Backend):
    """One interpreter per model.

    ``xnnpack=False`` selects BUILTIN_WITHOUT_DEFAULT_DELEGATES: the interpreter's
    own optimized kernels, no XNNPACK.  (BUILTIN_REF is not offered: it aborts the
    process on some converter outputs.)
    """

    def __init__(self, model_bytes: bytes, threads: int = 1, xnnpack: bool = True, batch: int = 1):
        mod, self.runtime = interpreter_module()
        # Our own checks first (indices, buffer sizes, shape and size limits): the interpreter would allocate
        # whatever a hostile model's shapes ask for, or fail with a bare message.
        self._graph = graph = load_graph(model_bytes)
        need = batch * sum(t.activation_bytes for t in graph.tensors if not t.is_constant)
        if need > MAX_TOTAL_TENSOR_BYTES:
            raise ModelFormatError(f"a batch of {batch} would need {need} bytes of tensors; at most "
                                   f"{MAX_TOTAL_TENSOR_BYTES} are allowed")  # fmt: skip
        resolver = mod.OpResolverType.AUTO if xnnpack else mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self._model = bytes(model_bytes)  # the interpreter reads from this buffer for its lifetime
        try:
            self._interp = mod.Interpreter(
                model_content=self._model, num_threads=threads, experimental_op_resolver_type=resolver
            )
            if batch != 1:
                for d in self._interp.get_input_details():
                    if len(d["shape"]) == 0 or d["shape"][0] != 1:
                        raise ModelFormatError(f"input {d['name']!r} has no batch dimension of 1 to resize")
                    self._interp.resize_tensor_input(d["index"], [batch, *d["shape"][1:]])
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError, TypeError, OverflowError) as exc:
            raise ModelFormatError(f"the interpreter refused the model: {_reason(exc)}") from None
        except MemoryError:
            raise ModelFormatError("the interpreter ran out of memory loading the model") from None
        self.xnnpack = xnnpack
        self.threads = threads
        self.batch = batch
        self._in = {d["name"]: d["index"] for d in self._interp.get_input_details()}
        self._out = {d["name"]: d["index"] for d in self._interp.get_output_details()}
        self.inputs = tuple(_spec(d) for d in self._interp.get_input_details())
        self.outputs = tuple(_spec(d) for d in self._interp.get_output_details())

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_inputs(self.inputs, inputs)
        for name, idx in self._in.items():
            self._interp.set_tensor(idx, inputs[name])
        try:
            self._interp.invoke()
        except (ValueError, RuntimeError) as exc:
            raise ModelFormatError(f"the interpreter failed to run the model: {_reason(exc)}") from None
        return {name: self._interp.get_tensor(idx) for name, idx in self._out.items()}

    def batched(self, n: int) -> LiteRTBackend | None:
        """The same model with its leading (batch) dimension resized to n, when that keeps each sample's bytes:
        None when the graph hard-codes batch 1 (a RESHAPE to a constant shape) or broadcasts across ranks."""
        if why := _batch_breaks_broadcast(self._graph):
            log.info("cannot batch this model: %s", why)
            return None
        try:
            b = LiteRTBackend(self._model, self.threads, self.xnnpack, batch=n)
        except ModelFormatError as exc:
            log.info("cannot batch this model by %d: %s", n, exc)
            return None
        if [s.shape for s in b.outputs] != [(n, *s.shape[1:]) for s in self.outputs]:
            return None
        return b

    def close(self) -> None:
        self._interp = None


def _reason(exc: Exception) -> str:
    """The interpreter's message on one line (it prints its details to stderr itself)."""
    text = " ".join(str(exc).split())
    return text or f"{type(exc).__name__} (see the interpreter's messages above)"


def _spec(detail) -> TensorSpec:
    return TensorSpec(detail["name"], tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"]).name)


def _batch_breaks_broadcast(graph: Graph) -> str | None:
    """Why resizing the leading dimension would mix samples, or None.

    An op whose activation inputs differ in rank broadcasts them aligned on their last dimensions (TFLite's
    broadcasting, as numpy's): at batch 1 a squeeze-excite gate (1, C) times features (1, H, W, C) scales each
    sample by its own gate, but resized to (n, C) and (n, H, W, C) the gate's batch dimension lines up with W, and
    samples mix (seen as 1 LSB differences on branchy_cnn's MUL at batch 8).
    """
    for op in graph.ops:
        ranks = {len(graph.tensors[t].shape) for t in op.inputs if t >= 0 and not graph.tensors[t].is_constant}
        if len(ranks) > 1:
            return f"op {op.index} ({op.op}) takes activations of ranks {sorted(ranks)}"
    return None

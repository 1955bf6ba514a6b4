"""Static post-training quantization of a float .tflite with litert-quantizer (Google's AI Edge quantizer: numpy,
scipy and ai-edge-litert, no TensorFlow), checked to give a model edge_maas can split, compose and run."""

from __future__ import annotations

import io
import logging
import os
import sys
import warnings
from contextlib import ExitStack, contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass

from edge_maas.cli_progress import shown
from edge_maas.errors import BackendUnavailableError, EdgeMaasError
from edge_maas.quantize.float_model import FloatModel, Signature, read_signature
from edge_maas.quantize.recipes import Recipe, RecipeError
from edge_maas.quantize.samples import Samples
from edge_maas.tflite.graph import Graph, load_graph
from edge_maas.tflite.writer import inline_buffers

log = logging.getLogger(__name__)

_FLOAT = ("float32", "float16")
_CONVERSIONS = ("QUANTIZE", "DEQUANTIZE")


class QuantizationError(EdgeMaasError):
    """The quantizer failed, or left the model partly float (ops it has no integer kernels for)."""


@dataclass(frozen=True)
class Quantized:
    """A quantized model: its bytes (constants inline), graph, signature (the float model's names), the recipe
    and the litert-quantizer recipe entries used (saved beside the model, to reproduce it)."""

    model: bytes
    graph: Graph
    signature: Signature
    recipe: Recipe
    entries: list[dict]

    @property
    def io_dtypes(self) -> set[str]:
        g = self.graph
        return {g.tensors[i].dtype for i in (*g.inputs, *g.outputs)}


def quantize_model(model: FloatModel, calibration: Samples, recipe: Recipe) -> Quantized:
    """Calibrate ``model`` on ``calibration`` (min/max of every tensor over the samples) and quantize it with
    ``recipe``.  Errors: BackendUnavailableError (litert-quantizer not installed), RecipeError, QuantizationError
    (the quantizer failed, or left float ops: it has no integer kernel for them)."""
    recipe = recipe.check(model.graph)
    try:
        from litert_quantizer import quantizer
    except ImportError:
        raise BackendUnavailableError("edge-maas quantize needs litert-quantizer: pip install 'edge-maas[quantize]'") from None
    entries = recipe.entries()
    data = list(calibration.feeds(model.inputs))
    try:
        with warnings.catch_warnings(), ExitStack() as quiet:
            # the quantizer's calibration preserves all tensors (the interpreter warns of it), prints a report and
            # draws a progress bar: shown where ours are (a terminal), never in logs
            warnings.simplefilter("ignore", UserWarning)
            quiet.enter_context(redirect_stdout(io.StringIO()))
            if not shown():
                quiet.enter_context(redirect_stderr(io.StringIO()))
                quiet.enter_context(_fd2_to_devnull())  # its interpreter's C++ INFO lines
            qt = quantizer.Quantizer(bytearray(model.data), entries)
            calib = qt.calibrate({model.signature.key: data}, num_threads=os.cpu_count() or 1)
            result = qt.quantize(calib, enable_progress_bar=False, enable_progress_report=False)
    except (ValueError, RuntimeError, KeyError, TypeError, NotImplementedError) as exc:
        raise QuantizationError(f"litert-quantizer failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    blob = inline_buffers(bytes(result.quantized_model))
    graph = load_graph(blob)
    floats = [f"{op.op} (op {op.index}, {graph.tensors[op.outputs[0]].name[:60]!r})"
              for op in graph.ops if op.op not in _CONVERSIONS
              and any(graph.tensors[t].dtype in _FLOAT for t in op.outputs)]  # fmt: skip
    if floats:
        raise QuantizationError(f"the quantizer has no integer kernel for {len(floats)} op(s) and left them float: "
                                f"{', '.join(floats[:8])}; edge_maas runs full-integer models only: replace those "
                                "ops in the float model with ones litert-quantizer quantizes")  # fmt: skip
    q = Quantized(blob, graph, read_signature(blob, "the quantized model"), recipe, entries)
    if recipe.a16w8 and q.io_dtypes != {"int8"}:
        raise RecipeError(f"--a16w8 {' '.join(recipe.a16w8)} made the model's inputs or outputs int16 (the pattern "
                          "matches the layers next to them); narrow it, so that edge-maas split can take the model")  # fmt: skip
    log.info("quantized %s: %d -> %d bytes, recipe %s", model.signature.key, len(model.data), len(blob), recipe.name)
    return q


@contextmanager
def _fd2_to_devnull():
    """Point file descriptor 2 at /dev/null for the block (C++ code writes there, past sys.stderr)."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)

"""What the int8 model lost against the float one, on evaluation samples: per model output (SNR, max error, top-1
agreement for classifiers, accuracy with labels) and per layer (each int8 op output, dequantized, against the float
op output of the same name), plus each model's size and latency.

Definitions (the test checks them against an independent computation):
- dequantized value: scale * (q - zero_point), per tensor;
- SNR (dB): 10 * log10(sum(f^2) / sum((dq - f)^2)) over all samples and elements; None when the error is zero;
- RMS error in LSB: sqrt(mean((dq - f)^2)) / scale;
- clipped: share of float values outside what the tensor can represent, scale * ([qmin, qmax] - zero_point) (the
  quantizer's calibration averages per-sample ranges, so some clipping is by design; much of it says the
  calibration data miss the inputs' range);
- top-1 agreement: share of samples whose float top-1 class is among the int8 output's top-scoring classes (several
  classes can share the int8 maximum: ``top1_ties`` counts those samples); outputs of shape (1, C), C >= 2 only;
- accuracy: share of samples whose argmax equals the label (numpy's argmax: the first of tied classes)."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from edge_maas.errors import EdgeMaasError
from edge_maas.quantize.float_model import FloatModel
from edge_maas.quantize.quantizer import Quantized
from edge_maas.quantize.samples import SampleDataError, Samples

_SKIP_OPS = ("QUANTIZE", "DEQUANTIZE")  # conversions: their error is their neighbours'


class _Model(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings")  # an SNR of -inf must not read as null ("exact")


class OutputError(_Model):
    name: str  # the float model's signature output name
    snr_db: float | None  # None: int8 equals float exactly
    max_abs_error: float
    top1_agreement: float | None  # classifier-shaped outputs only
    top1_ties: int = 0  # samples whose int8 output has several classes at its maximum


class LayerError(_Model):
    index: int  # op index in the quantized model
    op: str
    tensor: str
    dtype: str  # int8, or int16 for layers kept at higher precision
    scale: float
    snr_db: float | None
    max_abs_error: float
    rms_error_lsb: float
    clipped: float  # share of float values outside the tensor's representable range


class Accuracy(_Model):
    output: str
    float_accuracy: float
    int8_accuracy: float


class Cost(_Model):
    model: str  # "float", the recipe's name
    bytes: int
    interpreter_ms: float  # median, built-in kernels (no XNNPACK), 1 thread
    native_ms: float | None  # median, edge_maas native kernels, 1 thread; None when it cannot run the model
    native_note: str = ""


class QuantizationReport(_Model):
    recipe: str
    samples: int  # evaluation samples
    layer_samples: int  # of which the per-layer table uses the first ones
    outputs: list[OutputError]
    accuracy: list[Accuracy]
    layers: list[LayerError]  # op order
    costs: list[Cost] = []
    notes: list[str] = []

    def worst_layers(self, k: int = 5) -> list[LayerError]:
        """The k layers with the lowest SNR (exact layers last)."""
        return sorted(self.layers, key=lambda r: math.inf if r.snr_db is None else r.snr_db)[:k]


class _Acc:
    """Sums over samples for one tensor pair."""

    def __init__(self, bounds: tuple[float, float] | None = None):
        self.signal = self.noise = self.max = 0.0
        self.count = self.clipped = 0
        self.bounds = bounds  # the representable real range, for the clipped share

    def add(self, f: np.ndarray, dq: np.ndarray) -> None:
        f, e = f.astype(np.float64).ravel(), dq.astype(np.float64).ravel() - f.astype(np.float64).ravel()
        self.signal += float(f @ f)
        self.noise += float(e @ e)
        self.max = max(self.max, float(np.abs(e).max(initial=0.0)))
        self.count += e.size
        if self.bounds is not None:
            self.clipped += int(((f < self.bounds[0]) | (f > self.bounds[1])).sum())

    def snr_db(self) -> float | None:
        if self.noise == 0.0:
            return None
        return 10.0 * math.log10(self.signal / self.noise) if self.signal > 0 else -math.inf

    def rms(self) -> float:
        return math.sqrt(self.noise / self.count) if self.count else 0.0


def evaluate(model: FloatModel, q: Quantized, samples: Samples, layer_samples: int = 64) -> QuantizationReport:
    """Run both models on every sample of ``samples`` (the float one and the quantized one, the latter on the
    interpreter's built-in kernels; inputs and outputs paired by signature name) and on the first ``layer_samples``
    also compare every layer.  Errors: SampleDataError (labels outside a classifier's classes), EdgeMaasError (the
    interpreter failed on a sample)."""
    from edge_maas.backends.litert import interpreter_module

    ip, _ = interpreter_module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # preserve_all_tensors is "for debugging": so is this
        f_int, q_int = (ip.Interpreter(model_content=data, experimental_preserve_all_tensors=True,
                                       experimental_op_resolver_type=ip.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
                        for data in (model.data, q.model))  # fmt: skip
    f_int.allocate_tensors()
    q_int.allocate_tensors()
    f_idx = {d["name"]: d["index"] for d in f_int.get_tensor_details()}
    graph = q.graph
    q_out = {s.name: graph.tensors[s.index] for s in q.signature.outputs}
    outs = [(o, q_out[o.name]) for o in model.outputs]
    classifiers = [o.name for o, t in outs if _classifier(t.shape)]
    notes = []
    if samples.labels is not None:
        if not classifiers:
            notes.append("labels y ignored: no output is a classifier's (shape (1, C), C >= 2)")
        for o, t in outs:
            if o.name in classifiers and samples.labels.max(initial=0) >= t.shape[1]:
                raise SampleDataError(f"labels y go up to {int(samples.labels.max())}, but output {o.name} has "
                                      f"{t.shape[1]} classes")  # fmt: skip
    layers = [(op, graph.tensors[op.outputs[0]]) for op in graph.ops
              if op.op not in _SKIP_OPS and graph.tensors[op.outputs[0]].name in f_idx
              and graph.tensors[op.outputs[0]].quant is not None]  # fmt: skip
    out_acc = {o.name: _Acc() for o, _ in outs}
    agree = {o.name: 0 for o, _ in outs}
    ties = {o.name: 0 for o, _ in outs}
    hits = {o.name: [0, 0] for o, _ in outs}
    layer_acc = {t.index: _Acc(_bounds(t)) for _, t in layers}
    n_layer = min(layer_samples, samples.n)
    for i, feed in enumerate(samples.feeds(model.inputs)):
        try:
            for s in model.inputs:
                f_int.set_tensor(s.index, feed[s.name])
            for name, x in quantized_feed(feed, q).items():
                q_int.set_tensor(graph.by_name[name].index, x)
            f_int.invoke()
            q_int.invoke()
        except (RuntimeError, ValueError) as exc:
            raise EdgeMaasError(f"the interpreter failed on evaluation sample {i}: {exc}") from None
        for o, t_q in outs:
            f = f_int.get_tensor(o.index)
            dq = dequantize(q_int.get_tensor(t_q.index), t_q)
            out_acc[o.name].add(f, dq)
            if o.name in classifiers:
                top = np.flatnonzero(dq.ravel() == dq.max())
                agree[o.name] += int(np.argmax(f) in top)
                ties[o.name] += int(len(top) > 1)
                if samples.labels is not None:
                    hits[o.name][0] += int(np.argmax(f) == samples.labels[i])
                    hits[o.name][1] += int(np.argmax(dq) == samples.labels[i])
        if i < n_layer:
            for _, t in layers:
                layer_acc[t.index].add(f_int.get_tensor(f_idx[t.name]), dequantize(q_int.get_tensor(t.index), t))
    n = samples.n
    return QuantizationReport(
        recipe=q.recipe.name, samples=n, layer_samples=n_layer, notes=notes,
        outputs=[OutputError(name=o.name, snr_db=out_acc[o.name].snr_db(), max_abs_error=out_acc[o.name].max,
                             top1_agreement=agree[o.name] / n if o.name in classifiers else None,
                             top1_ties=ties[o.name])
                 for o, _ in outs],
        accuracy=[Accuracy(output=o.name, float_accuracy=hits[o.name][0] / n, int8_accuracy=hits[o.name][1] / n)
                  for o, _ in outs if samples.labels is not None and o.name in classifiers],
        layers=[LayerError(index=op.index, op=op.op, tensor=t.name, dtype=t.dtype, scale=float(t.quant.scale[0]),
                           snr_db=layer_acc[t.index].snr_db(), max_abs_error=layer_acc[t.index].max,
                           rms_error_lsb=layer_acc[t.index].rms() / float(t.quant.scale[0]),
                           clipped=layer_acc[t.index].clipped / max(layer_acc[t.index].count, 1))
                for op, t in layers],
    )  # fmt: skip


def quantized_feed(feed: Mapping[str, np.ndarray], q: Quantized) -> dict[str, np.ndarray]:
    """One sample's float32 inputs (by signature name, as ``Samples.feeds`` gives them) as the quantized model's
    inputs: by tensor name, each of the tensor's dtype and shape (``quantize_input``)."""
    out = {}
    for s in q.signature.inputs:
        t = q.graph.tensors[s.index]
        out[t.name] = quantize_input(feed[s.name], t).reshape(t.shape)
    return out


def _bounds(t) -> tuple[float, float]:
    info = np.iinfo(t.dtype)
    scale, zp = float(t.quant.scale[0]), int(t.quant.zero_point[0])
    return scale * (info.min - zp), scale * (info.max - zp)


def _classifier(shape: Sequence[int]) -> bool:
    return len(shape) == 2 and shape[0] == 1 and shape[1] >= 2


def quantize_input(x: np.ndarray, t) -> np.ndarray:
    """float32 values (any shape) -> a flat array of tensor ``t``'s dtype with its scale and zero point, rounded as
    the interpreter's QUANTIZE kernel does (the compiled kernel for int8; ties to even for int16, whose rounding
    this report does not depend on)."""
    scale, zp = float(t.quant.scale[0]), int(t.quant.zero_point[0])
    x = np.ascontiguousarray(x, dtype=np.float32).ravel()
    if t.dtype == "int8":
        from edge_maas.kernels import quantize as qk

        q = np.empty(x.size, np.int8)
        qk.quantize(x, scale, zp, q)
        return q
    info = np.iinfo(t.dtype)
    return np.clip(np.round(x / np.float32(scale)) + zp, info.min, info.max).astype(t.dtype)


def dequantize(q: np.ndarray, t) -> np.ndarray:
    """scale * (q - zero_point) in float64 (the report's definition, not a kernel's rounding)."""
    return float(t.quant.scale[0]) * (q.astype(np.float64) - int(t.quant.zero_point[0]))


def measure_cost(label: str, model_bytes: bytes, feed: dict[str, np.ndarray], native: bool = True,
                 budget_s: float = 0.3, min_runs: int = 5) -> Cost:  # fmt: skip
    """Size and median latency (ms, 1 thread) of one model on one input (``feed``: arrays by tensor name): the
    interpreter's built-in kernels and, when ``native``, edge_maas's native kernels (None with the reason when they
    cannot run it).  Errors: EdgeMaasError from the interpreter (a feed that does not fit the model)."""
    from edge_maas.backends import make_backend

    interp = make_backend("litert", model_bytes, xnnpack=False, threads=1)
    native_ms, note = None, "not tried (float model)"
    if native:
        try:
            native_ms = _median_ms(make_backend("native", model_bytes, threads=1), feed, budget_s, min_runs)
            note = ""
        except EdgeMaasError as exc:
            note = str(exc)
    return Cost(model=label, bytes=len(model_bytes), interpreter_ms=_median_ms(interp, feed, budget_s, min_runs),
                native_ms=native_ms, native_note=note)  # fmt: skip


def _median_ms(backend, feed: dict[str, np.ndarray], budget_s: float, min_runs: int) -> float:
    backend.run(feed)  # warm-up: first-run allocations
    times, start = [], time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < budget_s:
        t0 = time.perf_counter()
        backend.run(feed)
        times.append(time.perf_counter() - t0)
        if len(times) >= 1000:
            break
    return float(np.median(times) * 1e3)

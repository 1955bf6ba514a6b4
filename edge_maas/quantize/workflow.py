"""`edge-maas quantize` end to end: read and check the float model and the samples, quantize, check native against
the interpreter, evaluate against float, measure size and latency, write the model, its recipe and the report."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_maas.errors import BackendUnavailableError, EdgeMaasError
from edge_maas.files import atomic_write
from edge_maas.quantize.float_model import FloatModel
from edge_maas.quantize.quantizer import Quantized, quantize_model
from edge_maas.quantize.recipes import Recipe
from edge_maas.quantize.report import QuantizationReport, evaluate, measure_cost, quantized_feed
from edge_maas.quantize.samples import MIN_CALIBRATION_SAMPLES, Samples, read_samples

log = logging.getLogger(__name__)

EXACT_CHECK_SAMPLES = 16


@dataclass(frozen=True)
class QuantizeOutcome:
    """What `edge-maas quantize` did: the model, its report, the files written (by kind), whether the report
    scored the calibration samples, and the native-vs-interpreter check (samples, or why native cannot run it)."""

    quantized: Quantized
    report: QuantizationReport
    written: dict[str, Path]  # model, recipe, report, plot
    eval_on_calibration: bool  # no --eval: the report scores the calibration samples
    exact_samples: int  # samples on which native and the interpreter gave the same bytes (0: native cannot run it)
    native_note: str


def quantize_file(float_path: Path, calibration: Path, out: Path, recipe: Recipe, eval_data: Path | None = None,
                  min_samples: int = MIN_CALIBRATION_SAMPLES, plot: bool = True, costs: bool = True,
                  layer_samples: int = 64) -> QuantizeOutcome:  # fmt: skip
    """Quantize ``float_path`` into ``out`` (plus OUT.recipe.json, OUT.report.json and OUT.layers.png).
    Errors: EdgeMaasError (``out`` unusable, checked first), ModelFormatError, SampleDataError, RecipeError,
    QuantizationError, BackendUnavailableError (litert-quantizer or, with ``plot``, matplotlib missing),
    EdgeMaasError (native and the interpreter disagree: a bug to report)."""
    written = {"model": out, "recipe": _beside(out, ".recipe.json"), "report": _beside(out, ".report.json")}
    if plot:
        written["plot"] = _beside(out, ".layers.png")
    _check_out(list(written.values()), [p for p in (float_path, calibration, eval_data) if p is not None], plot)
    model = FloatModel.load(float_path)
    cal = read_samples(calibration, model.inputs, "calibration", min_samples)
    ev = read_samples(eval_data, model.inputs, "evaluation") if eval_data else cal
    q = quantize_model(model, cal, recipe)  # checks the recipe against the model first
    recipe = q.recipe
    exact, note = _native_matches_interpreter(q, model, ev)
    report = evaluate(model, q, ev, layer_samples)
    if costs:
        feed = next(ev.feeds(model.inputs))
        report.costs.append(measure_cost("float", model.data, {s.tensor: feed[s.name] for s in model.inputs},
                                         native=False))  # fmt: skip
        if recipe.a16w8:  # what keeping layers at int16 costs: the all-int8 model beside it
            base = quantize_model(model, cal, Recipe(recipe.base))
            report.costs.append(measure_cost(base.recipe.name, base.model, quantized_feed(feed, base)))
        report.costs.append(measure_cost(recipe.name, q.model, quantized_feed(feed, q)))
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, q.model)
    atomic_write(written["recipe"], (json.dumps(q.entries, indent=2) + "\n").encode())
    atomic_write(written["report"], (report.model_dump_json(indent=2) + "\n").encode())
    if plot:
        from edge_maas.quantize.plot import plot_layers

        plot_layers(report, written["plot"], f"{Path(float_path).name}: {recipe.name}")
    return QuantizeOutcome(q, report, written, eval_data is None, exact, note)


def _check_out(outputs: list[Path], inputs: list[Path], plot: bool) -> None:
    """Refuse, before any work, outputs that would overwrite an input or cannot be written, and a missing
    matplotlib when a plot is asked for."""
    for o in outputs:
        for i in inputs:
            if o.resolve() == Path(i).resolve() or (o.exists() and Path(i).exists() and o.samefile(i)):
                raise EdgeMaasError(f"--out would overwrite an input: {o} is {i}; choose another output name")
        if o.is_dir():
            raise EdgeMaasError(f"cannot write {o}: it is a folder; --out names the .tflite file to write")
        parent = next((p for p in o.parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            raise EdgeMaasError(f"cannot write {o}: {parent} is not a folder")
    if plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise BackendUnavailableError("the per-layer plot needs matplotlib: pip install 'edge-maas[quantize]', "
                                          "or pass --no-plot") from None  # fmt: skip


def _beside(out: Path, suffix: str) -> Path:
    return out.with_name(out.stem + suffix)


def _native_matches_interpreter(q: Quantized, model: FloatModel, samples: Samples) -> tuple[int, str]:
    """Run the first samples through native and the interpreter's built-in kernels: the same bytes, or an error.
    (0, why) when the native executor cannot run the model (e.g. int16 layers)."""
    from edge_maas.backends import make_backend

    try:
        native = make_backend("native", q.model)
    except EdgeMaasError as exc:
        return 0, str(exc)
    interp = make_backend("litert", q.model, xnnpack=False)
    n = 0
    for feed in samples.feeds(model.inputs, EXACT_CHECK_SAMPLES):
        x = quantized_feed(feed, q)
        a, b = native.run(x), interp.run(x)
        bad = [k for k in b if not np.array_equal(a[k], b[k])]
        if bad:
            raise EdgeMaasError(f"native and the interpreter disagree on {', '.join(bad)} for sample {n}: a bug in "
                                "edge_maas's kernels; please report it with the model")  # fmt: skip
        n += 1
    return n, ""

"""`edge-maas quantize`: a float .tflite to a full-integer int8 one, with an accuracy report."""

from __future__ import annotations

import argparse
from pathlib import Path

_DESCRIPTION = """Static post-training quantization (litert-quantizer; pip install 'edge-maas[quantize]'): run the
float model on the calibration samples to find every tensor's range, then write an int8 model (int8 inputs and
outputs) that edge-maas split, compose and the native backend take.  Checks native against the interpreter, and
reports what int8 lost against float on the evaluation samples: per output (SNR, max error, top-1 agreement, and
accuracy when the data has labels y) and per layer (the worst named), with size and latency of each model.

Data (.npz): one float32 array per model input, keyed by input name (a one-input model: any single key), shaped
(n, ...) as the input without its batch; optional y: integer labels (n,)."""

_EXAMPLE = """examples:
  edge-maas quantize float.tflite --calibration cal.npz --out int8.tflite --eval test.npz
  edge-maas quantize float.tflite --calibration cal.npz --out mixed.tflite --a16w8 'conv2d_8'   # keep a layer at int16
  edge-maas split int8.tflite --shards 2 --out shards"""


def add_quantize(sub) -> None:
    from edge_maas.quantize.recipes import RECIPES
    from edge_maas.quantize.samples import MIN_CALIBRATION_SAMPLES

    q = sub.add_parser("quantize", help="float .tflite -> int8 .tflite with calibration data, and an accuracy report",
                       description=_DESCRIPTION, epilog=_EXAMPLE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    q.add_argument("model", type=Path, metavar="FLOAT.tflite", help="a float32 model (inputs and outputs float32)")
    q.add_argument("--calibration", type=Path, required=True, metavar="DATA.npz",
                   help=f"representative inputs, at least --min-samples of them (default {MIN_CALIBRATION_SAMPLES})")
    q.add_argument("--out", type=Path, required=True, metavar="INT8.tflite",
                   help="the quantized model; beside it OUT.recipe.json, OUT.report.json and OUT.layers.png")
    q.add_argument("--recipe", default="a8w8", metavar="NAME",
                   help="; ".join(f"{k}: {v[1]}" for k, v in RECIPES.items()) + " (default a8w8)")
    q.add_argument("--a16w8", action="append", default=[], metavar="LAYER",
                   help="keep layers whose output tensor name matches this regex at int16 activations (repeatable); "
                   "the report shows what that costs")  # fmt: skip
    q.add_argument("--eval", type=Path, metavar="DATA.npz",
                   help="held-out samples (with labels y for accuracy); default: the calibration samples")
    q.add_argument("--min-samples", type=int, default=MIN_CALIBRATION_SAMPLES, metavar="N",
                   help="refuse calibration data with fewer samples")
    q.add_argument("--layer-samples", type=int, default=64, metavar="N",
                   help="evaluation samples the per-layer table uses (default 64)")
    q.add_argument("--no-plot", action="store_true", help="skip OUT.layers.png")
    q.add_argument("--no-latency", action="store_true", help="skip the size and latency table")
    q.set_defaults(func=cmd_quantize)


def cmd_quantize(args) -> int:
    from edge_maas.errors import EdgeMaasError
    from edge_maas.quantize.recipes import Recipe
    from edge_maas.quantize.workflow import quantize_file

    for opt in ("min_samples", "layer_samples"):
        if getattr(args, opt) < 1:
            raise EdgeMaasError(f"--{opt.replace('_', '-')} must be at least 1")
    r = quantize_file(args.model, args.calibration, args.out, Recipe(args.recipe, tuple(args.a16w8)), args.eval,
                      args.min_samples, plot=not args.no_plot, costs=not args.no_latency,
                      layer_samples=args.layer_samples)  # fmt: skip
    rep, q = r.report, r.quantized
    io = ", ".join(f"{q.graph.tensors[i].name} {q.graph.tensors[i].dtype}" for i in (*q.graph.inputs, *q.graph.outputs))
    print(f"quantized {args.model} with {rep.recipe}: {args.out} ({len(q.model)} bytes; {io})")
    print(f"native vs interpreter: identical bytes on {r.exact_samples} samples" if r.exact_samples
          else f"native backend cannot run it: {r.native_note}")  # fmt: skip
    where = "the calibration samples (no --eval)" if r.eval_on_calibration else str(args.eval)
    print(f"quantized vs float on {rep.samples} samples of {where}:")
    for o in rep.outputs:
        snr = "exact" if o.snr_db is None else f"SNR {o.snr_db:.1f} dB"
        agree = "" if o.top1_agreement is None else f", top-1 agreement {o.top1_agreement:.4f}" + (
            f" ({o.top1_ties} samples with tied int8 classes)" if o.top1_ties else "")
        print(f"  output {o.name}: {snr}, max error {o.max_abs_error:.4g}{agree}")
    for a in rep.accuracy:
        print(f"  accuracy ({a.output}): float {a.float_accuracy:.4f}, quantized {a.int8_accuracy:.4f} "
              f"({(a.int8_accuracy - a.float_accuracy) * 100:+.2f} points)")  # fmt: skip
    for note in rep.notes:
        print(f"  note: {note}")
    print(f"layers losing the most ({rep.layer_samples} samples; all {len(rep.layers)} in the report):")
    for w in rep.worst_layers(5):
        snr = "exact" if w.snr_db is None else f"{w.snr_db:6.1f} dB"
        print(f"  op {w.index:3d} {w.op:<18} {w.dtype:<5} SNR {snr}, RMS error {w.rms_error_lsb:5.2f} LSB, "
              f"clipped {w.clipped:6.2%}  {_short(w.tensor)}")  # fmt: skip
    if rep.costs:
        print("size and latency (median, 1 thread; interpreter = built-in kernels):")
        for c in rep.costs:
            native = f"{c.native_ms:.3f} ms" if c.native_ms is not None else "-"
            print(f"  {c.model:<28} {c.bytes:>9} bytes  interpreter {c.interpreter_ms:.3f} ms  native {native}")
    print("wrote " + ", ".join(str(p) for k, p in r.written.items() if k != "model"))
    if q.io_dtypes != {"int8"}:
        print(f"note: inputs/outputs are {', '.join(sorted(q.io_dtypes))}: edge-maas split and the native backend "
              "take int8 models (use --recipe a8w8, with --a16w8 LAYER for the layers that need int16)")  # fmt: skip
    return 0


def _short(tensor: str, width: int = 60) -> str:
    """A layer's name for the table: its first ';'-separated part (TensorFlow joins fused ops' names), cut from the
    left when long (litert-torch names start with the same long module path; the end tells layers apart)."""
    name = tensor.split(";")[0]
    return name if len(name) <= width else "..." + name[-(width - 3) :]

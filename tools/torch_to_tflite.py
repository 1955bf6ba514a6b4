"""Convert a PyTorch module to a float32 .tflite (for ``edge-maas quantize``) with litert-torch.

Optional, and not part of edge_maas's runtime: it needs ``litert-torch`` (Google's PyTorch -> LiteRT converter) and
a CPU build of torch.  Install the CPU torch first, because plain PyPI's ``torch`` wheel for Linux pulls the CUDA
stack (nvidia-* packages, several GB):

    pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
    pip install 'litert-torch>=0.10,<0.11'          # in a venv of its own: see docs/quantize.md

Usage (MODULE is FILE.py:CALLABLE or package.module:CALLABLE; the callable, a class or a factory, takes no
arguments and returns the torch.nn.Module; --input-shape is the torch module's shape, NCHW for images):

    python tools/torch_to_tflite.py my_net.py:Net --input-shape 1,3,32,32 --out net_float.tflite
    python tools/torch_to_tflite.py my_net.py:build --weights net.pt --input-shape 1,3,32,32 --out net_float.tflite

or from Python: ``convert(module, (example_input,), "net_float.tflite")``.

Layout: by default every 4-D input and output is made channels-last (NHWC) in the .tflite, which is TFLite's own
layout, so the converter can drop its layout transposes; ``--nchw`` keeps torch's layout at the inputs and outputs
at the price of TRANSPOSE ops.  The native backend has no TRANSPOSE kernel, so such a model only runs on the
``litert`` backend; the tool lists the ops the native backend would refuse.  Inside the model, ``torch.flatten`` of
an NCHW feature map larger than 1x1 and ``x.mean((2, 3))`` also leave a TRANSPOSE (torch's C,H,W order has to be
rebuilt from TFLite's H,W,C); ``nn.AdaptiveAvgPool2d(1)`` + flatten, or ``x.permute(0, 2, 3, 1).flatten(1)`` with the
next Linear's weights ordered to match, convert without one.

The result is checked before the tool returns: the .tflite is run by the LiteRT interpreter on the example (random,
seeded) inputs and must match torch within float tolerance.  Conversion runs offline (no network access).

Errors (missing litert-torch or torch, a bad MODULE, a failed conversion, a mismatch) print one line
``torch_to_tflite: error: ...`` and exit 2.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

INSTALL_HINT = (
    "install a CPU build of torch, then litert-torch: pip install torch==2.13.0 --index-url "
    "https://download.pytorch.org/whl/cpu && pip install 'litert-torch>=0.10,<0.11'"
)


class ConversionError(Exception):
    """Something the user can fix: a missing package, a bad module spec, an op litert-torch cannot convert, ..."""


@dataclass
class Report:
    """What was written.  ``input_shapes``/``output_shapes`` are the .tflite's (NHWC unless ``channels_last`` was
    False); ``max_abs_diff`` is the largest |tflite - torch| over all outputs on the example inputs."""

    path: Path
    input_shapes: list[tuple[int, ...]]
    output_shapes: list[tuple[int, ...]]
    ops: dict[str, int]
    max_abs_diff: float
    native_unsupported: list[str] = field(default_factory=list)


def _require_litert_torch():
    try:
        import torch  # noqa: F401
    except ImportError as e:
        raise ConversionError(f"torch is not installed ({e}); {INSTALL_HINT}") from None
    try:
        import litert_torch
    except ImportError as e:
        raise ConversionError(f"litert-torch is not installed ({e}); {INSTALL_HINT}") from None
    return litert_torch


def _native_supported() -> set[str] | None:
    """The ops edge_maas's native backend has kernels for, or None when edge_maas is not importable here."""
    try:
        from edge_maas.native.ops import supported
    except ImportError:
        return None
    return set(supported())


def convert(module, example_inputs: tuple, out, *, channels_last: bool = True, atol: float = 1e-4) -> Report:
    """Convert ``module`` (a torch.nn.Module, put in eval mode) traced with ``example_inputs`` (a tuple of torch
    tensors in the module's own layout) to a float32 .tflite at ``out``, and check it against torch.

    ``channels_last`` makes 4-D inputs and outputs NHWC in the .tflite (see the module docstring).  The check: each
    output must satisfy ``allclose(tflite, torch, atol=atol, rtol=atol)``.  Raises ConversionError.
    """
    litert_torch = _require_litert_torch()
    import torch

    if not isinstance(module, torch.nn.Module):
        raise ConversionError(f"expected a torch.nn.Module, got {type(module).__name__}")
    if not isinstance(example_inputs, tuple) or not all(isinstance(t, torch.Tensor) for t in example_inputs):
        raise ConversionError("example_inputs must be a tuple of torch tensors")
    module = module.eval()
    try:
        with torch.no_grad():
            raw = module(*example_inputs)
    except Exception as e:  # a shape the module does not take, most often
        shapes = ", ".join(str(tuple(t.shape)) for t in example_inputs)
        raise ConversionError(f"the module fails on inputs of shape {shapes}: {type(e).__name__}: {e}") from e
    outs = [raw] if isinstance(raw, torch.Tensor) else list(raw)
    if channels_last:
        in_idx = [i for i, t in enumerate(example_inputs) if t.dim() == 4]
        out_idx = [i for i, t in enumerate(outs) if t.dim() == 4]
        if in_idx or out_idx:
            module = litert_torch.to_channel_last_io(module, args=in_idx, outputs=out_idx).eval()
        example_inputs = tuple(t.permute(0, 2, 3, 1).contiguous() if t.dim() == 4 else t for t in example_inputs)
        with torch.no_grad():
            raw = module(*example_inputs)
        outs = [raw] if isinstance(raw, torch.Tensor) else list(raw)

    out = Path(out)
    try:
        edge_model = litert_torch.convert(module, example_inputs)
        out.parent.mkdir(parents=True, exist_ok=True)
        edge_model.export(str(out))
    except Exception as e:  # the converter raises many types; the user needs the message, on one line
        msg = " ".join(str(e).split())[:500]
        raise ConversionError(f"litert-torch could not convert the module: {type(e).__name__}: {msg}") from e

    from ai_edge_litert.interpreter import Interpreter  # a dependency of litert-torch

    interp = Interpreter(model_path=str(out))
    # DELEGATE is the XNNPACK node the interpreter adds, not an op of the file
    ops = dict(collections.Counter(d["op_name"] for d in interp._get_ops_details() if d["op_name"] != "DELEGATE"))
    runner = interp.get_signature_runner()
    # litert-torch names the signature's inputs args_0.. and outputs output_0.., in the torch order
    got = runner(**{f"args_{i}": t.numpy() for i, t in enumerate(example_inputs)})
    diff = 0.0
    for i, ref in enumerate(outs):
        y, r = got[f"output_{i}"], ref.detach().numpy()
        if y.shape != r.shape:
            raise ConversionError(f"output {i}: the .tflite gives shape {y.shape}, torch {r.shape}")
        diff = max(diff, float(np.abs(y - r).max()))
        if not np.allclose(y, r, atol=atol, rtol=atol):
            raise ConversionError(
                f"output {i} of the .tflite differs from torch by up to {np.abs(y - r).max():.3g} (tolerance {atol})"
            )
    native = _native_supported()
    return Report(
        path=out,
        input_shapes=[tuple(int(v) for v in d["shape"]) for d in interp.get_input_details()],
        output_shapes=[tuple(int(v) for v in d["shape"]) for d in interp.get_output_details()],
        ops=ops,
        max_abs_diff=diff,
        native_unsupported=sorted(op for op in ops if native is not None and op not in native),
    )


def load_module(spec: str, weights: str | None = None):
    """Build the module named by ``FILE.py:CALLABLE`` or ``package.module:CALLABLE``; load a state_dict from
    ``weights`` (torch.save of ``module.state_dict()``) if given.  Raises ConversionError."""
    _require_litert_torch()
    import torch

    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise ConversionError(f"module {spec!r} is not FILE.py:CALLABLE or package.module:CALLABLE")
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise ConversionError(f"{where}: no such file")
            s = importlib.util.spec_from_file_location(path.stem, path)
            mod = importlib.util.module_from_spec(s)
            sys.modules[path.stem] = mod  # so classes defined there pickle/trace under a stable name
            s.loader.exec_module(mod)
        else:
            mod = importlib.import_module(where)
    except ConversionError:
        raise
    except Exception as e:
        raise ConversionError(f"cannot import {where}: {type(e).__name__}: {e}") from e
    factory = getattr(mod, name, None)
    if not callable(factory):
        raise ConversionError(f"{where} has no callable {name!r}")
    module = factory()
    if not isinstance(module, torch.nn.Module):
        raise ConversionError(f"{spec}() returned {type(module).__name__}, not a torch.nn.Module")
    if weights:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            module.load_state_dict(state)
        except Exception as e:
            msg = " ".join(str(e).split())
            raise ConversionError(f"cannot load weights {weights}: {type(e).__name__}: {msg}") from e
    return module


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of sizes, e.g. 1,3,32,32") from None
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"{text!r}: sizes must be positive")
    return dims


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="torch_to_tflite", description=__doc__.splitlines()[0])
    ap.add_argument("module", help="FILE.py:CALLABLE or package.module:CALLABLE returning the torch.nn.Module")
    ap.add_argument(
        "--input-shape",
        type=_shape,
        action="append",
        required=True,
        help="the module's input shape in torch's layout (e.g. 1,3,32,32); once per input, in order",
    )
    ap.add_argument("--out", required=True, help="the float .tflite to write")
    ap.add_argument("--weights", help="a state_dict saved with torch.save(module.state_dict(), PATH)")
    ap.add_argument(
        "--nchw",
        action="store_true",
        help="keep torch's NCHW layout at 4-D inputs/outputs (adds TRANSPOSE ops: litert backend only)",
    )
    ap.add_argument("--atol", type=float, default=1e-4, help="tolerance of the torch vs .tflite check (default 1e-4)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random example inputs")
    a = ap.parse_args(argv)
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")  # litert-torch's per-pass progress lines, on stdout
    try:
        module = load_module(a.module, a.weights)
        import torch

        gen = torch.Generator().manual_seed(a.seed)
        inputs = tuple(torch.randn(s, generator=gen) for s in a.input_shape)
        rep = convert(module, inputs, a.out, channels_last=not a.nchw, atol=a.atol)
    except ConversionError as e:
        print(f"torch_to_tflite: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {rep.path} ({rep.path.stat().st_size} bytes): inputs {rep.input_shapes}, outputs {rep.output_shapes}")
    print(f"ops: {', '.join(f'{k} x{v}' for k, v in rep.ops.items())}; max |tflite - torch| = {rep.max_abs_diff:.2g}")
    if rep.native_unsupported:
        print(
            f"note: the native backend has no kernel for {', '.join(rep.native_unsupported)}; "
            "the quantized model will run on the litert backend only (see this script's docstring)"
        )
    print(f"next: edge-maas quantize {rep.path} --calibration DATA.npz --out INT8.tflite")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

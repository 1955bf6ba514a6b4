"""Executed aarch64 instructions per inference of a model's CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED layers
on each native path (portable, neon, dotprod), counted under qemu-user (issue 12: emulation says nothing about
speed; instruction counts say something).

The layers' shapes come from the .tflite; tools/arm_insn/layers.c runs them with random int8 data (weights in
[-127, 127], as TFLite's quantizer writes them: a -128 sends a neon layer to its int16 GEMM), cross-compiled
(aarch64-linux-gnu-gcc, setup.py's flags, static) and run by qemu-aarch64-static with `-d in_asm,exec,nochain`:
every translated block's instructions are logged once (in_asm) and every execution of a block once (exec; nochain
so chained blocks log too), so the executed count is the sum over executions of the block's length.  Per
inference = count(2 runs) - count(1 run): setup (random data, packing) cancels.  The Debian qemu 7.2 build has no
TCG plugins (no libinsn.so), hence the log; where the dynamically linked qemu-aarch64 is installed (apt-get install
qemu-user), the totals come from tools/qemu_insn's plugin instead (the same counts, in seconds instead of minutes;
--by-symbol still reads the log).

Only these layers count, not the whole graph (ADD, MEAN, pooling... and the executor's Python glue are left out:
they run on no NEON code yet and a whole-graph count needs the aarch64 Python root of scripts/test_arm.sh).

`scalar` is the `portable` path built with `-fno-tree-vectorize`: the same C as a compiler without an
auto-vectorizer runs it.  Since s23 the portable C is written in the loop shapes gcc vectorizes (SSE2 on x86-64;
NEON on aarch64, where gcc vectorizes the same C), and that C built scalar is 2-4x slower than the scalar portable
C of s22, which the issue's "neon <= 1/4 of portable" was set against; tests/test_arm_insn.py pins s22's counts as
that baseline.  Both live columns are reported.

Usage: python tools/arm_insn/count.py MODEL.tflite [--paths scalar,portable,neon,dotprod] [--by-symbol]
       python tools/arm_insn/count.py --report [MODEL.tflite ...]   the table of docs/native.md: per model each
           path's count and its ratio to scalar (default: the zoo's conv models, REPORT_MODELS; a few minutes)
Needs: aarch64-linux-gnu-gcc, qemu-aarch64-static, flatbuffers (edge_maas.tflite's schema bindings).
tests/test_arm_insn.py asserts the issue's target from the same counts."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools" / "qemu_insn"))
import region

#: the native paths, and `scalar`: `portable` in the build without the auto-vectorizer (see above)
PATHS = ("scalar", "portable", "neon", "dotprod")
SCALAR_FLAGS = ("-fno-tree-vectorize",)  # gcc: neither loop nor SLP vectorization
# the zoo models whose time goes to CONV_2D / DEPTHWISE_CONV_2D (mlp_digits is FC only)
REPORT_MODELS = ("mobilenetv2_035_96", "mobilenetv1_025_96", "ds_cnn_kws", "branchy_cnn", "resnet8_32", "speech_dm8")
TRACE = re.compile(rb"^Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/[^\]]*\] ?(\S*)")
INSN = re.compile(rb"^0x([0-9a-f]+):  [0-9a-f]{8} ")


def _same_pad(n: int, k: int, s: int, d: int, out: int) -> int:
    return max((out - 1) * s + (k - 1) * d + 1 - n, 0) // 2


def layer_lines(model: Path) -> list[str]:
    """The model's conv / depthwise / FC layers as layers.c reads them."""
    from edge_maas.tflite import _schema_generated as s

    m = s.Model.GetRootAsModel(model.read_bytes(), 0)
    g = m.Subgraphs(0)
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    lines = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        code = m.OperatorCodes(op.OpcodeIndex())
        name = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        shape = [list(g.Tensors(op.Inputs(j)).ShapeAsNumpy()) for j in range(2)]
        out = list(g.Tensors(op.Outputs(0)).ShapeAsNumpy())
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            t = op.BuiltinOptions()
            o = s.Conv2DOptions() if name == "CONV_2D" else s.DepthwiseConv2DOptions()
            o.Init(t.Bytes, t.Pos)
            (b, h, w, c), (_, kh, kw, _) = shape[0], shape[1]
            oh, ow, oc = out[1], out[2], out[3]
            sh, sw, dh, dw = o.StrideH(), o.StrideW(), o.DilationHFactor(), o.DilationWFactor()
            same = o.Padding() == 0
            pt = _same_pad(h, kh, sh, dh, oh) if same else 0
            pl = _same_pad(w, kw, sw, dw, ow) if same else 0
            fourth = oc if name == "CONV_2D" else oc // c
            lines.append(f"{'conv' if name == 'CONV_2D' else 'dw'} {b} {h} {w} {c} {fourth} {kh} {kw} {sh} {sw} "
                         f"{dh} {dw} {pt} {pl} {oh} {ow}")  # fmt: skip
        elif name == "FULLY_CONNECTED":
            n, k = shape[1]
            rows = 1
            for v in shape[0]:
                rows *= int(v)
            lines.append(f"fc {rows // k} {k} {n}")
    return lines


def _plugin(exe: Path) -> Path | None:
    """tools/qemu_insn's plugin, built once next to exe; None without the dynamically linked qemu-aarch64."""
    try:
        region.qemu("aarch64")
    except region.QemuInsnError:
        return None
    so = exe.parent / "libinsn_region.so"
    return so if so.exists() else region.build_plugin(exe.parent)


def executed(exe: Path, path: str, reps: int, shapes: str, by_symbol: dict | None = None) -> int:
    """Guest instructions executed by one run of layers.c (per function into by_symbol, when given)."""
    plugin = None if by_symbol is not None else _plugin(exe)
    if plugin is not None:
        out = exe.parent / f"insn.{path}.{reps}.txt"
        return region.run(plugin, "aarch64", "cortex-a76", [str(exe), path, str(reps)], out, stdin=shapes).total
    p = subprocess.Popen(["qemu-aarch64-static", "-d", "in_asm,exec,nochain", str(exe), path, str(reps)],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env={"QEMU_CPU": "cortex-a76"})  # fmt: skip  # a76: has the dot product
    p.stdin.write(shapes.encode())
    p.stdin.close()
    blocks: dict[bytes, int] = {}
    cur, n, total = None, 0, 0
    for line in p.stderr:
        if line.startswith(b"Trace"):
            if cur is not None:
                blocks[cur], cur = n, None
            mt = TRACE.match(line)
            if mt:
                k = blocks.get(mt.group(1).lstrip(b"0") or b"0", 0)
                total += k
                if by_symbol is not None:
                    sym = mt.group(2).decode()
                    by_symbol[sym] = by_symbol.get(sym, 0) + k
        elif line.startswith(b"0x"):
            mi = INSN.match(line)
            if mi:
                if cur is None:
                    cur, n = mi.group(1).lstrip(b"0") or b"0", 0
                n += 1
        elif line.startswith(b"IN:") and cur is not None:
            blocks[cur], cur = n, None
    if p.wait() != 0:
        raise RuntimeError(f"layers {path} exited {p.returncode}")
    return total


@dataclass(frozen=True)
class Builds:
    """The executables of :func:`build`: setup.py's flags, and SCALAR_FLAGS added (the `scalar` baseline)."""

    native: Path
    scalar: Path

    def run_as(self, path: str) -> tuple[Path, str]:
        """The executable and layers.c's path argument that count ``path`` (one of PATHS)."""
        return (self.scalar, "portable") if path == "scalar" else (self.native, path)


def build(tmp: Path) -> Builds:
    """layers.c and every kernel source, cross-compiled with setup.py's flags (static), and once more with
    SCALAR_FLAGS: the executables."""
    return Builds(_build(Path(tmp) / "layers", ()), _build(Path(tmp) / "layers-scalar", SCALAR_FLAGS))


def _build(exe: Path, flags: tuple[str, ...]) -> Path:
    exe.parent.mkdir(parents=True, exist_ok=True)
    srcs = sorted(str(p) for p in (REPO / "kernels" / "c").glob("*.c"))
    subprocess.run(["aarch64-linux-gnu-gcc", "-O3", "-fno-strict-aliasing", "-ffp-contract=off", *flags, "-static",
                    f"-I{REPO / 'kernels'}", f"-I{REPO / 'kernels' / 'c'}", str(REPO / "tools" / "arm_insn" / "layers.c"),
                    *srcs, "-o", str(exe), "-lm"], check=True)  # fmt: skip
    return exe


def per_inference(exes: Builds, path: str, shapes: str, by_symbol: dict | None = None) -> int:
    """Instructions of one inference of the layers in shapes on path (one of PATHS): 2 runs minus 1 (setup
    cancels); with by_symbol, the per-function differences go into it."""
    exe, path = exes.run_as(path)
    two: dict = {}
    one: dict = {}
    per = executed(exe, path, 2, shapes, two) - executed(exe, path, 1, shapes, one)
    if by_symbol is not None:
        by_symbol.update({k: two[k] - one.get(k, 0) for k in two})
    return per


def report(models: list[Path], paths: tuple[str, ...] = PATHS, out=sys.stdout) -> dict[str, dict[str, int]]:
    """Per model, each path's instructions per inference; prints a markdown table with the ratios to the first
    path as it goes.  Returns {model stem: {path: count}}."""
    counts: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        exes = build(Path(tmp))
        print("| model | layers | " + " | ".join(paths) + " |", file=out)
        print("|---|---|" + "---|" * len(paths), file=out, flush=True)
        for model in models:
            lines = layer_lines(model)
            shapes = "\n".join(lines) + "\n"
            c = counts[model.stem] = {p: per_inference(exes, p, shapes) for p in paths}
            base = c[paths[0]]
            cells = [f"{c[p] / 1e6:.2f} M" + ("" if p == paths[0] else f" ({c[p] / base:.3f})") for p in paths]
            print(f"| {model.stem} | {len(lines)} | " + " | ".join(cells) + " |", file=out, flush=True)
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, nargs="*")
    ap.add_argument(
        "--paths",
        default=",".join(PATHS),
        help=f"comma-separated, of {', '.join(PATHS)}; the first is the ratios' base (default: all)",
    )
    ap.add_argument("--by-symbol", action="store_true", help="also the top functions per path")
    ap.add_argument("--report", action="store_true", help="a table over the models (default: REPORT_MODELS)")
    args = ap.parse_args()
    paths = tuple(args.paths.split(","))
    if unknown := [p for p in paths if p not in PATHS]:
        ap.error(f"unknown path(s) {', '.join(unknown)}: choose from {', '.join(PATHS)}")
    if args.report:
        models = args.model or [REPO / "tests" / "models" / f"{m}.tflite" for m in REPORT_MODELS]
        print(
            "aarch64 instructions per inference of the conv / depthwise / FC layers (tools/arm_insn/count.py "
            "--report; ratio to " + paths[0] + ")\n"
        )
        report(models, paths)
        return
    if len(args.model) != 1:
        ap.error("one MODEL.tflite (or --report)")
    shapes = "\n".join(layer_lines(args.model[0])) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        exes = build(Path(tmp))
        base = None
        print(f"{args.model[0].name}: {len(shapes.splitlines())} conv/depthwise/FC layers")
        for path in paths:
            sym: dict = {}
            per = per_inference(exes, path, shapes, sym)
            base = base or per
            print(f"  {path:9s} {per:>13,d} instructions per inference  ({per / base:.3f} of {paths[0]})")
            if args.by_symbol:
                diff = sorted(((v, k) for k, v in sym.items()), reverse=True)[:8]
                print("    " + ", ".join(f"{k or '?'} {v:,d}" for v, k in diff if v > 0))


if __name__ == "__main__":
    main()

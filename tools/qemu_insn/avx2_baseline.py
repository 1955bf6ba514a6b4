"""Native vs XNNPACK vs the interpreter's built-in kernels at equal vector width: guest x86-64 instructions per
inference under qemu-user with an AVX2-only CPU model (issue 12's "<= 1.3x XNNPACK where the CPU has AVX2 only").

This machine has AVX-512 VNNI, so natively XNNPACK (through cpuinfo's CPUID) runs its AVX-512 kernels while the
native avx2 path cannot: a timing there compares AVX2 with AVX-512.  Under `qemu-x86_64 -cpu Haswell-noTSX`
(AVX2 + FMA, no AVX-512, no VNNI; qemu 7.2's TCG emulates AVX2 but no AVX-512 at all) both sides see the same
CPUID and pick their AVX2 code, and insn_plugin.c counts the guest instructions of REPS inferences (after a
warm-up on the model's seeded inputs).  Instructions are not time (a vpmaddubsw and a scalar add count the same;
no cache or port model): at equal ISA width they are a fair proxy, nothing more.  Each run also checks its output
bytes: against the zoo's expected outputs (built-in kernels), and against the same runner on this host.

Usage: python tools/qemu_insn/avx2_baseline.py [MODEL ...] [--runners xnnpack,builtin,native-avx2] [--reps 3]
       [--cpu Haswell-noTSX]       prints a markdown table (docs/native.md's AVX2 paragraph); ~1 min per model
A PYTHONPATH set in the environment comes first in the guest's (e.g. another build's edge_maas/kernels: an A/B).
Needs the dynamically linked qemu-user (apt-get install qemu-user) and gcc; see region.py."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
import region

MODELS = ("mobilenetv2_035_96", "mobilenetv1_025_96", "resnet8_32")
RUNNERS = ("xnnpack", "builtin", "native-avx2")
GUEST = HERE / "guest_infer.py"


def measure(plugin: Path, model: str, runner: str, reps: int, cpu: str, tmp: Path) -> dict:
    """One runner on one model under qemu: guest_infer.py's JSON plus insns / ymm per inference, and whether the
    outputs equal those of the same runner run natively on this host (host_same)."""
    argv = [sys.executable, str(GUEST), model, runner, str(reps)]
    # the guest imports edge_maas as this Python does (the editable install); a PYTHONPATH in the environment
    # passes through (e.g. another build's edge_maas/kernels: an A/B of native code)
    got = region.run(plugin, "x86_64", cpu, argv, tmp / f"{model}.{runner}.txt")
    if len(got.regions) != 1:
        raise region.QemuInsnError(f"{model} {runner}: expected one marked region, got {len(got.regions)}")
    res = json.loads(got.stdout.strip().splitlines()[-1])
    host = subprocess.run([*argv[:-1], "1"], capture_output=True, text=True, check=True, cwd=REPO)
    res["host_same"] = json.loads(host.stdout.strip().splitlines()[-1])["sha256"] == res["sha256"]
    r = got.regions[0]
    res.update(insns=r.insns / reps, ymm=r.ymm / reps, zmm=r.zmm / reps)
    return res


def table(models, runners, reps: int, cpu: str, out=sys.stdout) -> dict[str, dict[str, dict]]:
    """Per model, each runner's measure(); prints a markdown table as it goes (ratios to xnnpack / builtin when
    those runners are in the list).  Returns {model: {runner: result}}."""
    got: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        plugin = region.build_plugin(Path(tmp))
        print(f"guest x86-64 instructions per inference under qemu-x86_64 -cpu {cpu} (M = 1e6; ymm: share of "
              "instructions naming a ymm register; bytes: outputs vs built-in expected / vs same runner on host)\n",
              file=out)  # fmt: skip
        print("| model | runner | M insns | ymm | / xnnpack | / builtin | bytes off | host same |", file=out)
        print("|---|---|---|---|---|---|---|---|", file=out, flush=True)
        for m in models:
            got[m] = {}
            for rn in runners:
                r = got[m][rn] = measure(plugin, m, rn, reps, cpu, Path(tmp))
                x, b = got[m].get("xnnpack"), got[m].get("builtin")
                rx = f"{r['insns'] / x['insns']:.2f}" if x else "-"
                rb = f"{r['insns'] / b['insns']:.2f}" if b else "-"
                name = rn + (f" ({r['isa']})" if r["isa"] and rn != f"native-{r['isa']}" else "")
                print(f"| {m} | {name} | {r['insns'] / 1e6:.2f} | {r['ymm'] / r['insns']:.0%} | {rx} | {rb} | "
                      f"{r['bytes_off']}/{r['bytes']} | {'yes' if r['host_same'] else 'NO'} |", file=out, flush=True)  # fmt: skip
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("models", nargs="*", default=list(MODELS), help=f"zoo names (default: {' '.join(MODELS)})")
    ap.add_argument("--runners", default=",".join(RUNNERS), help="xnnpack, builtin, native-ISA (comma-separated)")
    ap.add_argument("--reps", type=int, default=3, help="inferences counted per run (after the warm-up)")
    ap.add_argument("--cpu", default="Haswell-noTSX", help="qemu CPU model (AVX2 without AVX-512 by default)")
    args = ap.parse_args()
    try:
        table(args.models, args.runners.split(","), args.reps, args.cpu)
    except region.QemuInsnError as e:
        sys.exit(f"avx2_baseline: error: {e}")


if __name__ == "__main__":
    main()

"""Run a command on this CPU as if it had no AVX-512 (and, with --cpu avx2, no AVX-VNNI), at this CPU's speed.

Issue 12's targets name CPUs this machine is not: "native <= 1.3x XNNPACK where the CPU has AVX2 only", and the
AVX-VNNI-only cores (Alder Lake class) where native's avxvnni path and XNNPACK's AVX-VNNI kernels run.  Here every
library picks its AVX-512 code from CPUID, so a timing of native's avx2 path against XNNPACK compares AVX2 with
AVX-512.  This runs the command with cpuid_mask.so preloaded: CPUID faulting (the "cpuid_fault" CPU flag, Linux's
arch_prctl ARCH_SET_CPUID) makes every CPUID trap, and the library answers with the profile's features hidden.
XNNPACK (cpuinfo), numpy, OpenBLAS and the native kernels' dispatch then choose their AVX2 or AVX-VNNI code; glibc,
which read CPUID before any preload could run, gets the same features hidden through GLIBC_TUNABLES.  Time is then
real time on real execution units, at equal vector width.  The kernel's /proc/self/arch_status tells whether any
AVX-512 register state was used while the mask was on: a leak fails the run.

Usage: python tools/cpuid_mask/masked.py [--cpu avx2|avxvnni] [--report FILE] -- COMMAND [ARG ...]
   e.g. python tools/cpuid_mask/masked.py --cpu avx2 -- .venv/bin/python -m pytest -p no:faulthandler \\
            bench/test_bench_native_isa.py --benchmark-enable -k resnet8_32
Exits with the command's status, or 2 (with `edge-maas: error: ...`) when this machine cannot mask (no CPUID
faulting, not x86-64 Linux, no gcc to build the library) or the mask leaked.  Python's faulthandler (pytest
enables it) replaces the SIGSEGV handler: pass -p no:faulthandler to pytest.  Needs gcc."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "cpuid_mask.c"
PROFILES = ("avx2", "avxvnni")
# glibc 2.33+ names (sysdeps/x86/cpu-tunables.c); AVX_VNNI only for the avx2 profile
_GLIBC_HIDDEN = ("AVX512F", "AVX512CD", "AVX512BW", "AVX512DQ", "AVX512ER", "AVX512PF", "AVX512VL")


class MaskError(Exception):
    """This machine cannot run a masked command, or the mask leaked."""


@dataclass(frozen=True)
class Report:
    """What cpuid_mask.so saw: CPUIDs it answered (leaf 7: the feature leaf), whether AVX-512 state was used while
    it was active (None: this kernel has no /proc/self/arch_status) and when it was last used (ms after the
    library started; negative: before, inherited from the parent), the run's length in seconds."""

    profile: str
    cpuid_answered: int
    leaf7: int
    avx512_used: bool | None
    avx512_elapsed_ms: int
    avx512_last_use_ms: float
    seconds: float


def unavailable() -> str | None:
    """Why this machine cannot mask (None: it can): x86-64 Linux with CPUID faulting and gcc are needed."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return f"needs x86-64 Linux (this is {sys.platform} {platform.machine()})"
    try:
        flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    except OSError as exc:
        return f"cannot read /proc/cpuinfo: {exc}"
    if "cpuid_fault" not in flags.split():
        return "this CPU (or its hypervisor) has no CPUID faulting (no cpuid_fault flag in /proc/cpuinfo)"
    if not shutil.which("gcc"):
        return "needs gcc to build cpuid_mask.so"
    return None


def build(cache: Path | None = None) -> Path:
    """cpuid_mask.so, built once per source version into `cache` (default ~/.cache/edge_maas/cpuid_mask)."""
    src = SOURCE.read_bytes()
    cache = cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edge_maas" / "cpuid_mask"
    so = cache / f"cpuid_mask-{hashlib.sha256(src).hexdigest()[:16]}.so"
    if not so.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            out = Path(tmp) / so.name
            subprocess.run(["gcc", "-O2", "-Wall", "-shared", "-fPIC", "-o", str(out), str(SOURCE)], check=True)
            out.replace(so)  # atomic: a concurrent build leaves one whole file
    return so


def environ(profile: str, report: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a masked process: cpuid_mask.so first in LD_PRELOAD, glibc's hidden features in
    GLIBC_TUNABLES (added to any there), the profile and the report's path.  Raises MaskError where unavailable()."""
    if profile not in PROFILES:
        raise MaskError(f"unknown CPU profile {profile!r}: expected one of {', '.join(PROFILES)}")
    if why := unavailable():
        raise MaskError(f"cannot hide CPU features here: {why}")
    env = dict(os.environ if base is None else base)
    hidden = _GLIBC_HIDDEN + (("AVX_VNNI",) if profile == "avx2" else ())
    hwcaps = "glibc.cpu.hwcaps=" + ",".join(f"-{f}" for f in hidden)
    env["GLIBC_TUNABLES"] = ":".join(t for t in (env.get("GLIBC_TUNABLES"), hwcaps) if t)
    env["LD_PRELOAD"] = " ".join(p for p in (str(build()), env.get("LD_PRELOAD")) if p)
    env["EDGE_MAAS_CPUID_MASK"] = profile
    env["EDGE_MAAS_CPUID_MASK_REPORT"] = str(report)
    env.pop("PYTHONFAULTHANDLER", None)  # its SIGSEGV handler would take CPUID's traps
    return env


def read_report(path: Path) -> Report:
    """The report a masked process wrote at exit.  Raises MaskError when it wrote none (it did not exit normally,
    or the library was not loaded) or when AVX-512 state was used (the mask leaked)."""
    try:
        rep = Report(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise MaskError(f"the masked process left no report ({path}: {exc}): did it exit normally?") from None
    if rep.avx512_used:
        raise MaskError(f"AVX-512 register state was used under the {rep.profile} mask (arch_status "
                        f"AVX512_elapsed_ms {rep.avx512_elapsed_ms}): something read the CPU's features without "
                        "CPUID")  # fmt: skip
    return rep


def run(profile: str, argv: list[str], report: Path, **kw) -> tuple[subprocess.CompletedProcess, Report]:
    """subprocess.run(argv) under the mask (keyword arguments pass through); the completed process and its
    report.  Raises MaskError as environ() and read_report()."""
    report.unlink(missing_ok=True)
    proc = subprocess.run(argv, env=environ(profile, report, kw.pop("env", None)), **kw)
    return proc, read_report(report)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--cpu", choices=PROFILES, default="avx2", help="what the CPU seems to have (default: avx2)")
    ap.add_argument("--report", type=Path, help="where to keep the mask's JSON report (default: a temp file)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = ap.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("no command given (put it after --)")
    with tempfile.TemporaryDirectory() as tmp:
        report = args.report or Path(tmp) / "report.json"
        try:
            proc, rep = run(args.cpu, cmd, report)
        except MaskError as exc:
            print(f"edge-maas: error: {exc}", file=sys.stderr)
            return 2
    used = {None: "unknown (no arch_status)", False: "none"}[rep.avx512_used]
    print(f"[cpuid_mask] {rep.profile}: {rep.cpuid_answered} CPUIDs answered ({rep.leaf7} of leaf 7), AVX-512 state "
          f"used: {used}, {rep.seconds:.1f} s", file=sys.stderr)  # fmt: skip
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())

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
Exits with the command's status (128 + N when signal N ended it), or 2 (with `edge-maas: error: ...`) when this
machine cannot mask (no CPUID faulting, not x86-64 Linux, no gcc to build the library) or the mask leaked.
Python's faulthandler would replace the SIGSEGV handler that answers CPUID: the environment turns it off for
pytest (PYTEST_ADDOPTS) and Python (no PYTHONFAULTHANDLER, no PYTHONDEVMODE).  Needs gcc."""

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
_FLAGS = {"avx2": "avx2", "avxvnni": "avx_vnni"}  # /proc/cpuinfo's flag the profile keeps
# glibc 2.33+ hwcaps names (sysdeps/x86/cpu-tunables.c); glibc has no AVX-VNNI code to hide
_GLIBC_HIDDEN = ("AVX512F", "AVX512CD", "AVX512BW", "AVX512DQ", "AVX512ER", "AVX512PF", "AVX512VL")


class MaskError(Exception):
    """This machine cannot run a masked command, or the mask leaked."""


@dataclass(frozen=True)
class Report:
    """What cpuid_mask.so saw in a command's processes (merged): CPUIDs it answered (leaf 7: the feature leaf),
    whether any process used AVX-512 state (None: neither sign readable here), how many processes reported, the
    longest process's run time in seconds."""

    profile: str
    processes: int
    cpuid_answered: int
    leaf7: int
    avx512_used: bool | None
    seconds: float


def unavailable(profile: str | None = None) -> str | None:
    """Why this machine cannot mask, or not to `profile` (None: it can): x86-64 Linux with CPUID faulting, gcc, and
    the features the profile keeps (AVX2; AVX-VNNI for avxvnni)."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return f"needs x86-64 Linux (this is {sys.platform} {platform.machine()})"
    try:
        flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    except OSError as exc:
        return f"cannot read /proc/cpuinfo: {exc}"
    flags = flags.split()
    if "cpuid_fault" not in flags:
        return "this CPU (or its hypervisor) has no CPUID faulting (no cpuid_fault flag in /proc/cpuinfo)"
    if profile in _FLAGS and _FLAGS[profile] not in flags:
        return f"this CPU has no {_FLAGS[profile]}: it cannot pass for a {profile} CPU"
    if not shutil.which("gcc"):
        return "needs gcc to build cpuid_mask.so"
    return None


def build(cache: Path | None = None) -> Path:
    """cpuid_mask.so, built once per source version into `cache` (default ~/.cache/edge_maas/cpuid_mask).
    Raises MaskError when it cannot be built."""
    src = SOURCE.read_bytes()
    cache = cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edge_maas" / "cpuid_mask"
    so = cache / f"cpuid_mask-{hashlib.sha256(src).hexdigest()[:16]}.so"
    if so.exists():
        return so
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            out = Path(tmp) / so.name
            subprocess.run(["gcc", "-O2", "-Wall", "-shared", "-fPIC", "-o", str(out), str(SOURCE)], check=True,
                           capture_output=True, text=True)  # fmt: skip
            out.replace(so)  # atomic: a concurrent build leaves one whole file
    except subprocess.CalledProcessError as exc:
        raise MaskError(f"cannot build cpuid_mask.so: {exc.stderr.strip()[-500:]}") from None
    except OSError as exc:
        raise MaskError(f"cannot build cpuid_mask.so in {cache}: {exc}") from None
    return so


def environ(profile: str, report: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a masked process: cpuid_mask.so last in LD_PRELOAD (preloads initialize last to first:
    so it is on before the others' constructors), glibc's hidden features merged into GLIBC_TUNABLES'
    glibc.cpu.hwcaps (glibc takes the last one of a name), the faulthandler off, the profile and the reports' path
    (each process writes REPORT.<pid>).  Profile "none" hides nothing (the tests' control).  Raises MaskError where
    unavailable(profile) or the library cannot be built."""
    if profile not in (*PROFILES, "none"):
        raise MaskError(f"unknown CPU profile {profile!r}: expected one of {', '.join(PROFILES)}")
    if why := unavailable(profile):
        raise MaskError(f"cannot hide CPU features here: {why}")
    env = dict(os.environ if base is None else base)
    tunables = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t]
    caps = [c for t in tunables if t.startswith("glibc.cpu.hwcaps=") for c in t.split("=", 1)[1].split(",") if c]
    if profile != "none":
        caps += [f"-{f}" for f in _GLIBC_HIDDEN if f"-{f}" not in caps]
    tunables = [t for t in tunables if not t.startswith("glibc.cpu.hwcaps=")]
    if caps:
        tunables.append("glibc.cpu.hwcaps=" + ",".join(caps))
    env["GLIBC_TUNABLES"] = ":".join(tunables)
    env["LD_PRELOAD"] = " ".join(p for p in (env.get("LD_PRELOAD"), str(build())) if p)
    env["EDGE_MAAS_CPUID_MASK"] = profile
    env["EDGE_MAAS_CPUID_MASK_REPORT"] = str(report.resolve())
    # faulthandler's SIGSEGV handler would take CPUID's traps
    for k in ("PYTHONFAULTHANDLER", "PYTHONDEVMODE"):
        env.pop(k, None)
    env["PYTEST_ADDOPTS"] = " ".join(a for a in (env.get("PYTEST_ADDOPTS"), "-p no:faulthandler") if a)
    return env


def read_report(path: Path, check: bool = True) -> Report:
    """The reports a masked command's processes wrote at exit (PATH.<pid>), merged.  Raises MaskError when there is
    none (no process exited normally, or the library was not loaded) or, with `check`, when any process used
    AVX-512 state (the mask leaked)."""
    reps = []
    for f in sorted(path.parent.glob(f"{path.name}.*")):
        try:
            reps.append(json.loads(f.read_text()))
        except (OSError, ValueError) as exc:
            raise MaskError(f"unreadable mask report {f}: {exc}") from None
    if not reps:
        raise MaskError(f"the masked command left no report ({path}.<pid>): did it exit normally?")
    used = [r["avx512_used"] for r in reps]
    rep = Report(profile=reps[0]["profile"], processes=len(reps), cpuid_answered=sum(r["cpuid_answered"] for r in reps),
                 leaf7=sum(r["leaf7"] for r in reps), seconds=max(r["seconds"] for r in reps),
                 avx512_used=True if True in used else None if None in used else False)  # fmt: skip
    if check and rep.avx512_used:
        bad = [r for r in reps if r["avx512_used"]]
        raise MaskError(f"AVX-512 register state was used under the {rep.profile} mask (pid {bad[0]['pid']}: XINUSE "
                        f"{bad[0]['xinuse_avx512']:#x}, arch_status AVX512_elapsed_ms {bad[0]['avx512_elapsed_ms']}): "
                        "something chose its code without CPUID")  # fmt: skip
    return rep


def run(profile: str, argv: list[str], report: Path, check_leak: bool = True, **kw
        ) -> tuple[subprocess.CompletedProcess, Report]:  # fmt: skip
    """subprocess.run(argv) under the mask (keyword arguments pass through); the completed process and the merged
    report.  Raises MaskError as environ() and read_report() (check_leak: read_report's check)."""
    for f in report.parent.glob(f"{report.name}.*"):
        f.unlink()
    env, check = environ(profile, report, kw.pop("env", None)), kw.pop("check", False)
    proc = subprocess.run(argv, env=env, check=check, **kw)
    return proc, read_report(report, check_leak)


def main() -> int:
    ap = argparse.ArgumentParser(prog="tools/cpuid_mask/masked.py", description=__doc__.splitlines()[0],
                                 epilog="\n".join(__doc__.splitlines()[2:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--cpu", choices=PROFILES, default="avx2", help="what the CPU seems to have (default: avx2)")
    ap.add_argument(
        "--report",
        type=Path,
        help="where to keep the mask's JSON reports, FILE.<pid> per process (default: a temp folder)",
    )
    ap.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = ap.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("no command given (put it after --)")
    with tempfile.TemporaryDirectory() as tmp:
        report = args.report or Path(tmp) / "report.json"
        try:
            proc, rep = run(args.cpu, cmd, report)
        except FileNotFoundError as exc:
            print(f"edge-maas: error: cannot run {cmd[0]}: {exc.strerror}", file=sys.stderr)
            return 2
        except MaskError as exc:
            print(f"edge-maas: error: {exc}", file=sys.stderr)
            return 2
    used = {None: "unknown (no XINUSE, no arch_status)", False: "none"}[rep.avx512_used]
    print(f"[cpuid_mask] {rep.profile}: {rep.processes} process(es), {rep.cpuid_answered} CPUIDs answered "
          f"({rep.leaf7} of leaf 7), AVX-512 state used: {used}, {rep.seconds:.1f} s", file=sys.stderr)  # fmt: skip
    return proc.returncode if proc.returncode >= 0 else 128 - proc.returncode


if __name__ == "__main__":
    sys.exit(main())

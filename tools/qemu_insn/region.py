"""Guest instructions of marked regions of a program run under qemu-user, counted by insn_plugin.c (a TCG
plugin): what tools/qemu_insn/avx2_baseline.py builds on, for any guest architecture qemu-user runs
(x86_64, aarch64).  Instructions are not time; at equal vector width they are a fair proxy.

The guest marks a region with mark(1) ... mark(2) (a system call qemu-user and Linux both answer ENOSYS, so the
same program runs unchanged natively).  Needs the dynamically linked qemu-user (Debian: `apt-get install
qemu-user`; qemu-user-static cannot load plugins) and gcc."""

from __future__ import annotations

import ctypes
import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
MARKER_SYSCALL = 0x4D41  # insn_plugin.c's MARKER_SYSCALL
LINE = re.compile(r"^region (\d+) insns (\d+) ymm (\d+) zmm (\d+)$")


class QemuInsnError(RuntimeError):
    """qemu-user (with plugins) or gcc is missing, or the guest failed."""


@dataclass(frozen=True)
class Region:
    """One marked region: guest instructions executed, and of them those naming a ymm / zmm register."""

    insns: int
    ymm: int
    zmm: int


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def mark(op: int) -> None:
    """In the guest: op 1 opens a region, 2 closes it (a no-op outside the counter).  libc is opened once, so a
    region's count carries only the call's few thousand instructions of glue, not a dlopen."""
    _libc().syscall(MARKER_SYSCALL, op)


def qemu(arch: str) -> str:
    """The dynamically linked qemu-user binary for arch ('x86_64', 'aarch64'); raises QemuInsnError if absent."""
    exe = shutil.which(f"qemu-{arch}")
    if exe is None:
        raise QemuInsnError(f"qemu-{arch} not found: install the dynamically linked qemu-user (apt-get install "
                            "qemu-user); qemu-user-static has no plugin support")  # fmt: skip
    return exe


def build_plugin(tmp: Path) -> Path:
    """insn_plugin.c compiled into tmp: the plugin's path.  Raises QemuInsnError without gcc."""
    if shutil.which("gcc") is None:
        raise QemuInsnError("gcc not found (it builds the qemu plugin)")
    so = Path(tmp) / "libinsn_region.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", str(HERE / "insn_plugin.c"), "-o", str(so)], check=True)
    return so


@dataclass(frozen=True)
class Counted:
    """A program's run under the plugin: its closed regions in order, all its instructions, its stdout."""

    regions: list[Region]
    total: int
    stdout: str


def run(
    plugin: Path,
    arch: str,
    cpu: str,
    argv: list[str],
    out: Path,
    env: dict | None = None,
    stdin: str | None = None,
    timeout: float = 1800,
) -> Counted:
    """Run argv under qemu-<arch> -cpu <cpu> with the plugin (stdin: text fed to it).
    Raises QemuInsnError if the guest exits non-zero (with its stderr's tail)."""
    cmd = [qemu(arch), "-cpu", cpu, "-plugin", f"{plugin},out={out}", *argv]
    p = subprocess.run(cmd, check=False, input=stdin, capture_output=True, text=True, env={**os.environ, **(env or {})},
                       timeout=timeout)  # fmt: skip
    if p.returncode != 0:
        raise QemuInsnError(f"{' '.join(argv)} under qemu-{arch} -cpu {cpu} exited {p.returncode}: "
                            + p.stderr.strip()[-2000:])  # fmt: skip
    lines = out.read_text().splitlines()
    regions = [Region(int(m[2]), int(m[3]), int(m[4])) for m in map(LINE.match, lines) if m]
    total = next(int(ln.split()[2]) for ln in lines if ln.startswith("total insns "))
    return Counted(regions, total, p.stdout)

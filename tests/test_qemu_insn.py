"""tools/qemu_insn: guest instructions of a marked region under qemu-user's TCG plugin, and the AVX2-only
baseline it gives (issue 12: native vs XNNPACK where the CPU has AVX2 only; this host has AVX-512, so the
comparison runs under `qemu-x86_64 -cpu Haswell-noTSX`).  Skipped without the dynamically linked qemu-x86_64
(apt-get install qemu-user; the static build loads no plugins) or gcc."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import litert_semantics

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "qemu_insn"))
import avx2_baseline
import region

# 1 mov + 2 per turn between the two marker calls (plus the call's own glue: the syscall wrapper's tail after
# opening, its head before closing)
LOOP_C = r"""
#include <unistd.h>
int main(void) {
    syscall(0x4d41, 1);
    __asm__ volatile("mov $1000, %%ecx\n1: dec %%ecx\n jnz 1b" ::: "ecx", "cc");
    syscall(0x4d41, 2);
    return 0;
}
"""


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> Path:
    if not (shutil.which("qemu-x86_64") and shutil.which("gcc")):
        pytest.skip("needs the dynamically linked qemu-x86_64 (apt-get install qemu-user) and gcc")
    return region.build_plugin(tmp_path_factory.mktemp("qemu_insn"))


def test_a_marked_loop_counts_its_instructions(plugin, tmp_path):
    exe = tmp_path / "loop"
    subprocess.run(["gcc", "-O1", "-x", "c", "-", "-o", str(exe)], input=LOOP_C, text=True, check=True)
    got = region.run(plugin, "x86_64", "Haswell-noTSX", [str(exe)], tmp_path / "out.txt")
    assert len(got.regions) == 1
    assert 2001 <= got.regions[0].insns <= 2001 + 60, got.regions[0]
    assert got.total > got.regions[0].insns


@litert_semantics(
    "its XNNPACK runs ResNet-8 mostly on other kernels than ai-edge-litert's (43 % of the "
    "instructions ymm, not over half): the baseline is measured with ai-edge-litert"
)
@pytest.mark.slow
def test_avx2_only_cpu_model_runs_xnnpack_and_native_avx2_exactly(plugin, tmp_path):
    """ResNet-8 (the smallest conv model of the report) under an AVX2-only CPU model: the native executor
    selects avx2, XNNPACK runs ymm (AVX2) code (over half its instructions; mlp_digits' inference is mostly the
    Python glue) and nothing names a zmm register, and the outputs are the interpreter's built-in bytes (native)
    and the same bytes as on this AVX-512 host (both)."""
    res = {rn: avx2_baseline.measure(plugin, "resnet8_32", rn, 1, "Haswell-noTSX", tmp_path)
           for rn in ("xnnpack", "native-avx512vnni")}  # fmt: skip
    native, xnn = res["native-avx512vnni"], res["xnnpack"]
    assert native["isa"] == "avx2", "set_isa must fall back to avx2 on a CPU without AVX-512 / VNNI"
    assert native["bytes_off"] == 0
    assert native["host_same"] and xnn["host_same"]
    for r in res.values():
        assert r["insns"] > 1000 and r["zmm"] == 0
    assert xnn["ymm"] > 0.5 * xnn["insns"], "XNNPACK should have chosen its AVX2 kernels"

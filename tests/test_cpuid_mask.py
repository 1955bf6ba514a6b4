"""tools/cpuid_mask: a process that sees this CPU without AVX-512 (avx2 profile: without AVX-VNNI either) picks its
AVX2 / AVX-VNNI code everywhere (the native kernels' dispatch, numpy, XNNPACK), gives the native bytes, and a use of
AVX-512 under the mask is caught.  Skipped, saying why, where the CPU has no CPUID faulting or there is no gcc."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "cpuid_mask"))
import masked

pytestmark = pytest.mark.skipif(bool(masked.unavailable()), reason=f"cpuid_mask: {masked.unavailable()}")

PROBE = r"""
import json, numpy as np
from edge_maas import zoo
from edge_maas.backends.litert import LiteRTBackend
from edge_maas.backends.native import NativeBackend
from edge_maas.kernels import executor as ex
try:
    from numpy._core._multiarray_umath import __cpu_features__ as feats
except ImportError:  # numpy < 2
    from numpy.core._multiarray_umath import __cpu_features__ as feats
blob = zoo.model_bytes("resnet8_32")
xs, want = zoo.expected("resnet8_32")
out = {}
for name, r in (("native", NativeBackend(blob, threads=1)), ("xnnpack", LiteRTBackend(blob, threads=1, xnnpack=True))):
    got = [r.run({r.inputs[0].name: x[None]})[r.outputs[0].name][0] for x in xs[:4]]
    out[name] = bool(np.array_equal(np.stack(got), want[:4]))
print(json.dumps({"isas": ex.available_isas(), "isa": ex.isa(), "same": out,
                  "numpy_avx512": sorted(k for k, v in feats.items() if v and k.startswith("AVX512"))}))
"""

# a zmm instruction, then long enough on the CPU for a context switch to see the AVX-512 state in use
LEAK_C = r"""
#include <time.h>
int main(void) {
    __asm__ volatile("vpxord %%zmm16, %%zmm16, %%zmm16" ::: "xmm16");
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do clock_gettime(CLOCK_MONOTONIC, &t); while ((t.tv_sec - t0.tv_sec) * 1000000000L + t.tv_nsec - t0.tv_nsec < 200000000L);
    return 0;
}
"""


def _probe(profile: str, tmp_path: Path) -> tuple[dict, masked.Report]:
    proc, rep = masked.run(profile, [sys.executable, "-c", PROBE], tmp_path / "report.json", capture_output=True,
                           text=True, cwd=REPO)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), rep


def test_avx2_profile_hides_avx512_and_avx_vnni(tmp_path):
    got, rep = _probe("avx2", tmp_path)
    assert got["isas"] == ["portable", "avx2"] and got["isa"] == "avx2", got
    assert got["numpy_avx512"] == [], got  # numpy's own dispatch saw the masked CPUID too
    assert got["same"]["native"], "native on the avx2 path must give the built-in kernels' bytes"
    assert rep.leaf7 > 0 and rep.avx512_used is not True, rep


def test_avxvnni_profile_keeps_avx_vnni(tmp_path):
    got, rep = _probe("avxvnni", tmp_path)
    assert got["isas"] == ["portable", "avx2", "avxvnni"] and got["isa"] == "avxvnni", got
    assert got["same"]["native"]
    assert rep.avx512_used is not True, rep


def test_a_use_of_avx512_under_the_mask_is_caught(tmp_path):
    if not Path("/proc/self/arch_status").exists():
        pytest.skip("this kernel has no /proc/<pid>/arch_status (Linux >= 5.3 on x86): a leak cannot be seen")
    exe = tmp_path / "leak"
    subprocess.run(["gcc", "-O1", "-mavx512f", "-x", "c", "-", "-o", str(exe)], input=LEAK_C, text=True, check=True)
    with pytest.raises(masked.MaskError, match="AVX-512 register state was used under the avx2 mask"):
        masked.run("avx2", [str(exe)], tmp_path / "report.json", check=True)


def test_cli_errors(tmp_path):
    cli = [sys.executable, str(REPO / "tools" / "cpuid_mask" / "masked.py")]
    p = subprocess.run([*cli, "--cpu", "avx2"], capture_output=True, text=True)
    assert p.returncode == 2 and "no command given" in p.stderr
    p = subprocess.run([*cli, "--cpu", "avx2", "--", sys.executable, "-c", "import sys; sys.exit(3)"],
                       capture_output=True, text=True)  # fmt: skip
    assert p.returncode == 3 and "[cpuid_mask] avx2:" in p.stderr, p.stderr
    with pytest.raises(masked.MaskError, match="unknown CPU profile"):
        masked.environ("sse2", tmp_path / "r.json")

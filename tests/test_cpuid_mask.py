"""tools/cpuid_mask: a process that sees this CPU without AVX-512 (avx2 profile: without AVX-VNNI either) picks its
AVX2 / AVX-VNNI code everywhere (the native kernels' dispatch, numpy, XNNPACK), gives the native bytes, and a use of
AVX-512 under the mask is caught: by a zmm instruction, and by XNNPACK itself when nothing is hidden (the control
that shows the leak check would see XNNPACK's AVX-512 kernels).  Skipped, saying why, where the CPU has no CPUID
faulting or lacks what a profile keeps, or there is no gcc."""

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
import json, sys, numpy as np
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
runners = {"native": lambda: NativeBackend(blob, threads=1),
           "xnnpack": lambda: LiteRTBackend(blob, threads=1, xnnpack=True)}
same = {}
for name in sys.argv[1].split(","):
    r = runners[name]()
    got = [r.run({r.inputs[0].name: x[None]})[r.outputs[0].name][0] for x in xs[:4]]
    same[name] = bool(np.array_equal(np.stack(got), want[:4]))
print(json.dumps({"isas": ex.available_isas(), "isa": ex.isa(), "same": same,
                  "numpy_avx512": sorted(k for k, v in feats.items() if v and k.startswith("AVX512"))}))
"""

# a zmm instruction under the mask: XINUSE's Hi16_ZMM component stays in use (no vzeroupper clears it)
LEAK_C = r"""
int main(void) {
    __asm__ volatile("vpternlogd $0xff, %%zmm16, %%zmm16, %%zmm16" ::: "xmm16");
    return 0;
}
"""


def _probe(profile: str, runners: str, tmp_path: Path, check_leak: bool = True) -> tuple[dict, masked.Report]:
    if why := masked.unavailable(profile):
        pytest.skip(f"cpuid_mask: {why}")
    proc, rep = masked.run(profile, [sys.executable, "-c", PROBE, runners], tmp_path / "report.json",
                           check_leak=check_leak, capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), rep


def test_avx2_profile_hides_avx512_and_avx_vnni(tmp_path):
    got, rep = _probe("avx2", "native,xnnpack", tmp_path)
    assert got["isas"] == ["portable", "avx2"] and got["isa"] == "avx2", got
    assert got["numpy_avx512"] == [], got  # numpy's own dispatch saw the masked CPUID too
    assert got["same"]["native"], "native on the avx2 path must give the built-in kernels' bytes"
    # cpuinfo (XNNPACK) asked for the features and ran no AVX-512 kernel (the control below shows it would be seen)
    assert rep.leaf7 > 0 and rep.avx512_used is False, rep


def test_avxvnni_profile_keeps_avx_vnni(tmp_path):
    got, rep = _probe("avxvnni", "native,xnnpack", tmp_path)
    assert got["isas"] == ["portable", "avx2", "avxvnni"] and got["isa"] == "avxvnni", got
    assert got["same"]["native"]
    assert rep.avx512_used is False, rep


def test_xnnpack_unmasked_is_seen_using_avx512(tmp_path):
    """The control: with nothing hidden, XNNPACK runs its AVX-512 kernels on this CPU and the leak check says so."""
    if "avx512f" not in Path("/proc/cpuinfo").read_text().split():
        pytest.skip("this CPU has no AVX-512: there is nothing for XNNPACK to leak")
    _, rep = _probe("none", "xnnpack", tmp_path, check_leak=False)
    assert rep.avx512_used is True, rep


def test_a_use_of_avx512_under_the_mask_is_caught(tmp_path):
    if "avx512f" not in Path("/proc/cpuinfo").read_text().split():
        pytest.skip("this CPU has no AVX-512 instruction to leak")
    exe = tmp_path / "leak"
    subprocess.run(["gcc", "-O1", "-mavx512f", "-x", "c", "-", "-o", str(exe)], input=LEAK_C, text=True, check=True)
    with pytest.raises(masked.MaskError, match="AVX-512 register state was used under the avx2 mask"):
        masked.run("avx2", [str(exe)], tmp_path / "report.json", check=True)


def test_cli_errors(tmp_path):
    cli = [sys.executable, str(REPO / "tools" / "cpuid_mask" / "masked.py")]
    p = subprocess.run([*cli, "--cpu", "avx2"], check=False, capture_output=True, text=True)
    assert p.returncode == 2 and "no command given" in p.stderr
    p = subprocess.run([*cli, "--cpu", "avx2", "--", sys.executable, "-c", "import sys; sys.exit(3)"], check=False,
                       capture_output=True, text=True)  # fmt: skip
    assert p.returncode == 3 and "[cpuid_mask] avx2: 1 process(es)" in p.stderr, p.stderr
    p = subprocess.run([*cli, "--", str(tmp_path / "missing")], check=False, capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.startswith("edge-maas: error: cannot run"), p.stderr
    with pytest.raises(masked.MaskError, match="unknown CPU profile"):
        masked.environ("sse2", tmp_path / "r.json")


def test_glibc_tunables_merge(tmp_path):
    env = masked.environ("avx2", tmp_path / "r.json", {"GLIBC_TUNABLES": "glibc.malloc.check=3:glibc.cpu.hwcaps=-AVX2"})
    assert env["GLIBC_TUNABLES"].startswith("glibc.malloc.check=3:glibc.cpu.hwcaps=-AVX2,-AVX512F,")
    assert env["LD_PRELOAD"].endswith("/" + masked.build().name) and "-p no:faulthandler" in env["PYTEST_ADDOPTS"]

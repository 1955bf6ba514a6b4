"""Issue 12's XNNPACK targets on the CPUs this machine is not, by time: native vs XNNPACK with AVX-512 hidden.

    .venv/bin/python -m pytest bench/test_bench_masked_cpu.py --benchmark-enable -s

For each profile of tools/cpuid_mask (avx2: no AVX-512, no AVX-VNNI, a Haswell-to-Comet-Lake class feature set;
avxvnni: AVX-VNNI kept, Alder Lake class), bench/test_bench_native_isa.py runs in a child process that sees the
masked CPUID: XNNPACK picks its AVX2 or AVX-VNNI kernels, the native executor its avx2 or avxvnni path, and the
child's own pytest-benchmark times both, on this CPU's execution units.  The ratio of medians, native / XNNPACK,
per target model (MobileNetV2 0.35 and MobileNetV1 0.25 at 96x96, ResNet-8) must be <= 1.3 (AVX2 only) and
<= 1.0 (VNNI); the child must not have used any AVX-512 state (the mask's report).  Skipped where the CPU has no
CPUID faulting (tools/cpuid_mask/masked.py says why).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "cpuid_mask"))
import masked

MODELS = ("mobilenetv2_035_96", "mobilenetv1_025_96", "resnet8_32")
TARGET = {"avx2": 1.3, "avxvnni": 1.0}  # issue 12: native / XNNPACK where the CPU has AVX2 only / VNNI


def measure(profile: str, tmp: Path) -> dict:
    """The child's medians (us) per model for XNNPACK, the built-in kernels and native on the profile's path, the
    ratios and the mask's report."""
    out = tmp / f"{profile}.json"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:faulthandler", "-p", "no:cacheprovider",
            str(REPO / "bench" / "test_bench_native_isa.py"), "--benchmark-enable", f"--benchmark-json={out}",
            "--benchmark-min-rounds=30", "-k", " or ".join(f"({m} and (litert or native_{profile}))" for m in MODELS)]  # fmt: skip
    proc, rep = masked.run(profile, argv, tmp / f"{profile}.report.json", capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    med = {}
    for b in json.loads(out.read_text())["benchmarks"]:
        model, kind = b["params"]["name"], b["params"]["kind"]
        med.setdefault(model, {})[kind] = b["stats"]["median"] * 1e6
    rows = {m: {**k, "native/xnnpack": k[f"native_{profile}"] / k["litert_xnnpack"],
                "native/builtin": k[f"native_{profile}"] / k["litert_builtin"]} for m, k in med.items()}  # fmt: skip
    return {"profile": profile, "models": rows, "mask": rep.__dict__}


@pytest.mark.parametrize("profile", list(TARGET))
def test_native_vs_xnnpack_on_a_masked_cpu(benchmark, profile, tmp_path):
    if why := masked.unavailable(profile):
        pytest.skip(f"cpuid_mask: {why}")
    report = benchmark.pedantic(measure, args=(profile, tmp_path), rounds=1, iterations=1)
    benchmark.extra_info.update(report)
    rows = report["models"]
    for m, r in rows.items():
        print(f"{profile:8s} {m:20s} xnnpack {r['litert_xnnpack']:8.0f} us  built-in {r['litert_builtin']:8.0f} us  "
              f"native {r[f'native_{profile}']:8.0f} us  native/xnnpack {r['native/xnnpack']:.2f}  "
              f"native/built-in {r['native/builtin']:.2f}")  # fmt: skip
    assert sorted(rows) == sorted(MODELS), rows
    assert report["mask"]["avx512_used"] is False, report["mask"]
    worst = max(r["native/xnnpack"] for r in rows.values())
    print(
        f"{profile}: worst native/xnnpack {worst:.2f} (target <= {TARGET[profile]}), geomean "
        f"{statistics.geometric_mean(r['native/xnnpack'] for r in rows.values()):.2f}"
    )
    assert worst <= TARGET[profile], f"{profile}: native / XNNPACK up to {worst:.2f} (target <= {TARGET[profile]})"

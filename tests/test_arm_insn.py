"""Issue 12's aarch64 target, measured: on the zoo's conv models the `neon` path executes at most 1/4 of the
scalar portable path's instructions per inference in the CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED layers (the
model's real layer shapes through tools/arm_insn/layers.c, cross-compiled with setup.py's flags and counted under
qemu-user by tools/arm_insn/count.py, 2 runs minus 1; the whole table: `count.py --report`).

The baseline is pinned: s23 rewrote the portable C for gcc's auto-vectorizer, which on aarch64 vectorizes it with
NEON (neon is 0.41-0.53 of that), and the same C built without the vectorizer (count.py's `scalar`) is 2-4x
slower than the scalar portable C the target was set against.  So the counts of that code (s22, the last with
it) are the baseline here, and the live counts must also show neon < portable < scalar.
Emulation says nothing about time; instruction counts do.  Skipped without aarch64-linux-gnu-gcc and
qemu-aarch64-static (Debian: gcc-aarch64-linux-gnu qemu-user-static); on an aarch64 machine the counting itself
(qemu's log) is x86-hosted only."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "arm_insn"))
import count

# the conv models whose count takes seconds; mobilenetv2_035_96 (0.180) and mobilenetv1_025_96 (0.199) take
# minutes under qemu's log and are left to `count.py --report`.  ResNet-8 (0.241; 0.307 on the int16 smlal
# tiles) is dense 3x3 convs: the neon path's int8 smull/smlal + sadalp GEMM (gemm_neon.c) does 16 multiply-adds
# per 3 instructions, the int16 smlal 4 per 1 (docs/native.md).
MODELS = ["ds_cnn_kws", "branchy_cnn", "speech_dm8", "resnet8_32"]
#: the scalar portable C's instructions per inference at s22 (`count.py --report` then, same layers.c data)
SCALAR_PORTABLE_S22 = {"ds_cnn_kws": 8.60e6, "branchy_cnn": 9.49e6, "speech_dm8": 7.58e6, "resnet8_32": 16.85e6}


@pytest.fixture(scope="module")
def layers_exe(tmp_path_factory) -> Path:
    if not (shutil.which("aarch64-linux-gnu-gcc") and shutil.which("qemu-aarch64-static")):
        pytest.skip("needs aarch64-linux-gnu-gcc and qemu-aarch64-static (Debian: gcc-aarch64-linux-gnu "
                    "qemu-user-static) to count aarch64 instructions")  # fmt: skip
    return count.build(tmp_path_factory.mktemp("arm_insn"))


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_neon_executes_at_most_a_quarter_of_scalar_portable(layers_exe, model):
    shapes = "\n".join(count.layer_lines(REPO / "tests" / "models" / f"{model}.tflite")) + "\n"
    scalar = count.per_inference(layers_exe, "scalar", shapes)
    portable = count.per_inference(layers_exe, "portable", shapes)
    neon = count.per_inference(layers_exe, "neon", shapes)
    assert neon > 10_000, "nothing counted: the layers did not run"
    base = SCALAR_PORTABLE_S22[model]
    assert neon <= base / 4, f"{model}: neon {neon:,d} instructions, {neon / base:.3f} of scalar portable's {base:,.0f}"
    # the hand-written NEON beats the auto-vectorized portable C, which beats the same C without the vectorizer
    assert neon < portable < scalar, f"{model}: neon {neon:,d}, portable {portable:,d}, scalar {scalar:,d}"

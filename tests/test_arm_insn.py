"""Issue 12's aarch64 target, measured: on the zoo's conv models the `neon` path executes at most 1/4 of the
scalar C's instructions per inference (`scalar`: the `portable` path built without gcc's auto-vectorizer, the
scalar-bound portable the target was set against; the vectorizable portable C of s23 is reported beside it and
must beat scalar) in the CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED layers (the
model's real layer shapes through tools/arm_insn/layers.c, cross-compiled with setup.py's flags and counted from
qemu-user's exec log by tools/arm_insn/count.py, 2 runs minus 1; the whole table: `count.py --report`).
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


@pytest.fixture(scope="module")
def layers_exe(tmp_path_factory) -> Path:
    if not (shutil.which("aarch64-linux-gnu-gcc") and shutil.which("qemu-aarch64-static")):
        pytest.skip("needs aarch64-linux-gnu-gcc and qemu-aarch64-static (Debian: gcc-aarch64-linux-gnu "
                    "qemu-user-static) to count aarch64 instructions")  # fmt: skip
    return count.build(tmp_path_factory.mktemp("arm_insn"))


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_neon_executes_at_most_a_quarter_of_scalar(layers_exe, model):
    shapes = "\n".join(count.layer_lines(REPO / "tests" / "models" / f"{model}.tflite")) + "\n"
    scalar = count.per_inference(layers_exe, "scalar", shapes)
    portable = count.per_inference(layers_exe, "portable", shapes)
    neon = count.per_inference(layers_exe, "neon", shapes)
    assert scalar > 10_000, "nothing counted: the layers did not run"
    assert neon <= scalar / 4, f"{model}: neon {neon:,d} instructions, {neon / scalar:.3f} of scalar's {scalar:,d}"
    # the portable C is written for the auto-vectorizer: built with it, it must run fewer instructions than without
    assert portable < scalar, f"{model}: portable {portable:,d} instructions, scalar {scalar:,d}"

#!/usr/bin/env bash
# Instruction counts (issue 12), the two tests the main suite skips on a machine without the tools:
#   tests/test_arm_insn.py  - on the zoo's conv models the aarch64 `neon` path runs <= 1/4 of the scalar C's
#                             instructions (tools/arm_insn/count.py: cross-compiled layers.c under qemu-aarch64);
#   tests/test_qemu_insn.py - the plugin's count of a known loop, and ResNet-8 under `qemu-x86_64 -cpu
#                             Haswell-noTSX` (the AVX2-only baseline: native avx2 against XNNPACK's AVX2 kernels).
# Installs, as root on Debian/Ubuntu, what they need: the cross compiler, qemu-user-static, and qemu-user (the
# dynamically linked qemu, which loads TCG plugins; tools/qemu_insn/insn_plugin.c).  Uses the repo's .venv
# (scripts/test.sh makes it).  Without root or apt it says why and runs the tests as they are (they skip).
#
# Usage: scripts/test_insn.sh [PYTEST ARGS...]
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/scripts/apt_install.sh"
need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -x /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
command -v qemu-x86_64 >/dev/null || need+=(qemu-user)
if [ ${#need[@]} -gt 0 ]; then
  echo "[insn] installing ${need[*]} (Debian packages)"
  apt_install "${need[@]}" || echo "[insn] warning: ${need[*]} missing and this is not a root apt machine: the tests will skip"
fi
# in CI a skip would pass without counting anything: the tools must be there
if [ -n "${CI:-}" ]; then
  for t in aarch64-linux-gnu-gcc qemu-aarch64-static qemu-x86_64 gcc; do
    command -v "$t" >/dev/null || { echo "[insn] error: $t is missing (CI=$CI): the counts cannot run"; exit 1; }
  done
fi
cd "$REPO"
start=$(date +%s)
.venv/bin/python -m pytest -q -p no:cacheprovider -rs tests/test_arm_insn.py tests/test_qemu_insn.py "$@"
echo "[insn] done in $(( $(date +%s) - start )) s"

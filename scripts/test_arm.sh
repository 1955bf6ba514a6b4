#!/usr/bin/env bash
# ARM in CI (issue 12): the native and per-op tests on aarch64, under qemu-user emulation, on an x86-64 host.
#
#  1. an arm64 Debian bookworm root from Debian's packages (mmdebstrap; dpkg runs emulated through binfmt_misc),
#     cached as a tarball in $CACHE keyed by its package list (a fresh CI machine builds it: ~5 min);
#  2. the Python deps as aarch64 wheels, installed by the host's pip (--platform, --target: nothing emulated),
#     cached in $CACHE keyed by the requirement list;
#  3. the Cython kernels cross-compiled on the host with aarch64-linux-gnu-gcc against the root's Python headers
#     (setup.py itself, through the root's aarch64 sysconfig data: the same flags as a native build, minutes faster
#     than gcc emulated), cached in $CACHE keyed by their sources;
#  4. the tests that exercise native kernels and per-op semantics (TESTS below), run in the root with
#     QEMU_CPU=cortex-a72 and an ARM-looking /proc/cpuinfo bind-mounted: under qemu 7.2's default `max` CPU
#     XNNPACK computes wrong results, and with the host's x86 /proc/cpuinfo ai-edge-litert segfaults in
#     Interpreter() (issue 12).  On aarch64 the tests compare native with the x86 golden bytes and assert the
#     interpreter's documented departures (docs/native.md, "The interpreter on aarch64").
#
# Needs root (mounts, chroot, binfmt registration) and binfmt_misc; without them it says why and exits 0 (skipped).
# Emulation says nothing about speed.
#
# Usage: scripts/test_arm.sh [PYTEST ARGS...]     default: the TESTS below, -q (with ARGS that are all options,
#                                                  such as --durations=30, written --opt=value, the TESTS with them)
#        CACHE=dir (default ~/.cache/edge_maas)   KEEP=1: keep the temp dir (the root, mounted nothing) afterwards
#        ARM_CPU=cortex-a76 (or neoverse-n1): the emulated CPU (default cortex-a72, which lacks the dot product;
#        a76 / n1 have it, so the native `dotprod` path runs too)
set -euo pipefail
# all of it in main(), called on the last line with its exit: bash parses a function whole before running it and
# reads no more of the file, so editing this file during a run (minutes) cannot change what that run executes
main() {
REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/scripts/apt_install.sh"
CACHE=${CACHE:-$HOME/.cache/edge_maas}
SUITE=bookworm
# python3-dev: the headers and aarch64 sysconfig data the cross build reads; libgomp1: the kernels' OpenMP runtime
ROOT_PKGS=python3,python3-dev,libgomp1
# what the selected tests import (pytest-benchmark: pyproject's addopts pass --benchmark-disable)
DEPS=("numpy>=1.24" "ai-edge-litert>=1.2" "flatbuffers>=23.5" "pydantic>=2.5" "pytest>=8" "pytest-benchmark>=4"
      "hypothesis>=6" "tuf>=5.0" "cryptography>=41")  # tuf, cryptography: edge_maas.partition imports the manifest
TESTS=(tests/test_arm_semantics.py tests/test_op_activations.py tests/test_op_add_mul.py tests/test_op_conv.py
       tests/test_op_depthwise_conv.py tests/test_op_fully_connected.py tests/test_op_mean.py
       tests/test_op_movement.py tests/test_op_pooling.py tests/test_op_softmax.py tests/test_kernels_quantize.py
       tests/test_op_sub.py tests/test_op_relu.py tests/test_op_quantize_uint8.py tests/test_op_transpose.py
       tests/test_op_split.py tests/test_op_depth_space.py tests/test_op_resize_nearest.py tests/test_op_minmax.py
       tests/test_native_zoo.py tests/test_native_isa.py tests/test_native_prepare.py tests/test_native_bad_input.py
       tests/test_op_tanh.py tests/test_op_gelu.py tests/test_op_elu.py tests/test_op_exp.py
       tests/test_op_resize_bilinear.py tests/test_op_prelu.py tests/test_op_batch_matmul.py tests/test_op_pack.py
       tests/test_op_arg_min_max.py tests/test_op_reduce_max.py tests/test_op_gather.py
       tests/test_op_resize_nearest_any.py tests/test_op_log_softmax.py tests/test_op_squared_difference.py
       tests/test_op_sum.py tests/test_portable_blocks.py
       tests/test_native_mixed.py
       # the installed `edge-maas` CLI and paho-mqtt are not part of the root: CLI / installer plumbing, no kernel
       --deselect tests/test_native_mixed.py::test_cli_mixed_and_strict
       --deselect tests/test_native_mixed.py::test_device_installer_mixed_stages)
PYV=3.11  # bookworm's python3
CPU=${ARM_CPU:-cortex-a72}

now() { date +%s; }
T0=$(now)
declare -A TIMES
skip() { echo "[arm] skipped: $*"; exit 0; }

[ "$(uname -m)" = x86_64 ] || skip "this runs aarch64 under emulation on an x86-64 host; on $(uname -m) run the tests natively"
[ "$(id -u)" = 0 ] || skip "needs root (binfmt registration, mounts, chroot)"
command -v apt-get >/dev/null || skip "needs a Debian/Ubuntu host (apt-get) for qemu-user-static and mmdebstrap"

# --- host tools: qemu-user-static (binfmt entry file), mmdebstrap, the cross compiler --------------------------
need=()
[ -x /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
if [ ${#need[@]} -gt 0 ]; then
  t=$(now)
  echo "[arm] installing ${need[*]} (Debian packages)"
  apt_install "${need[@]}"
  TIMES[host_packages]=$(( $(now) - t ))
fi

# --- binfmt: qemu-aarch64 with the F flag (the interpreter is opened at registration, so it works in the chroot)
BINFMT=/proc/sys/fs/binfmt_misc
if [ ! -e "$BINFMT/register" ]; then
  mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null || skip "binfmt_misc is not mounted and cannot be (a container without it?)"
fi
if [ ! -e "$BINFMT/qemu-aarch64" ]; then
  if [ -x /lib/systemd/systemd-binfmt ] && [ -f /usr/lib/binfmt.d/qemu-aarch64.conf ]; then
    /lib/systemd/systemd-binfmt /usr/lib/binfmt.d/qemu-aarch64.conf || true
  elif command -v update-binfmts >/dev/null; then
    update-binfmts --enable qemu-aarch64 || true
  fi
fi
grep -qx enabled "$BINFMT/qemu-aarch64" 2>/dev/null || skip "could not register qemu-aarch64 in binfmt_misc"
grep -q '^flags:.*F' "$BINFMT/qemu-aarch64" || skip "the qemu-aarch64 binfmt entry lacks the F flag (needed in a chroot)"

mkdir -p "$CACHE"
T=$(mktemp -d "${TMPDIR:-/tmp}/edge_maas_arm.XXXXXX")
ROOT=$T/root
MOUNTS=()
cleanup() {
  local m
  for ((i=${#MOUNTS[@]}-1; i>=0; i--)); do umount -l "${MOUNTS[i]}" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "[arm] kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
bind() { mount --bind "$1" "$2"; MOUNTS+=("$2"); }

# --- 1. the arm64 root, cached by its package list --------------------------------------------------------------
key=$(printf '%s\n' "$SUITE" arm64 "$ROOT_PKGS" | sha256sum | cut -c1-16)
TARBALL=$CACHE/arm64-root-$key.tar
t=$(now)
if [ ! -s "$TARBALL" ]; then
  echo "[arm] building the arm64 $SUITE root ($ROOT_PKGS; dpkg emulated: ~5 min)"
  # built under a name of this run's own, then renamed: runs sharing the cache never see half a tarball
  mmdebstrap --quiet --arch=arm64 --variant=apt --include="$ROOT_PKGS" "$SUITE" "$CACHE/.part-$key.$$.tar" \
    || { rm -f "$CACHE/.part-$key.$$.tar"; echo "[arm] mmdebstrap failed" >&2; exit 1; }
  mv "$CACHE/.part-$key.$$.tar" "$TARBALL"
  # roots of other package lists, unused for a week (another checkout may still use a recent one)
  find "$CACHE" -maxdepth 1 -name 'arm64-root-*.tar' ! -name "${TARBALL##*/}" -mtime +7 -delete
  TIMES[root_build]=$(( $(now) - t ))
else
  echo "[arm] arm64 root from the cache: $TARBALL"
fi
t=$(now)
mkdir -p "$ROOT" && tar -C "$ROOT" -xf "$TARBALL"
TIMES[root_unpack]=$(( $(now) - t ))

# --- 2. the deps: aarch64 wheels, installed by the host's pip into a directory --------------------------------
# the host's build tools (pyproject's build-system requirements) in a venv of their own, kept in the cache
TOOLS=$CACHE/arm-host-tools
HOSTPY=$TOOLS/bin/python
if ! "$HOSTPY" -c "import Cython, setuptools, wheel" 2>/dev/null; then
  t=$(now)
  python3 -m venv --clear "$TOOLS"
  "$HOSTPY" -m pip install -q "setuptools>=77" wheel "Cython>=3.0" 2>&1 | { grep -v '^WARNING: Location' || true; }
  TIMES[host_tools]=$(( $(now) - t ))
fi
dkey=$(printf '%s\n' "$PYV" "${DEPS[@]}" | sha256sum | cut -c1-16)
DEPDIR=$CACHE/arm64-deps-$dkey
t=$(now)
if [ ! -f "$DEPDIR/.complete" ]; then
  echo "[arm] installing the aarch64 wheels of: ${DEPS[*]}"
  part=$DEPDIR.part.$$
  rm -rf "$part"
  plats=(--platform manylinux2014_aarch64 --platform linux_aarch64)
  for v in $(seq 17 36); do plats+=(--platform "manylinux_2_${v}_aarch64"); done  # bookworm: glibc 2.36
  "$HOSTPY" -m pip install -q --no-warn-conflicts --target "$part" "${plats[@]}" --python-version "$PYV" \
    --implementation cp --abi "cp${PYV/./}" --only-binary=:all: "${DEPS[@]}" 2>&1 | { grep -v '^WARNING: Location' || true; }
  touch "$part/.complete"
  # renamed into place whole (a run that got there first keeps its copy)
  if [ -f "$DEPDIR/.complete" ]; then rm -rf "$part"; else rm -rf "$DEPDIR" && mv "$part" "$DEPDIR"; fi
  find "$CACHE" -maxdepth 1 -name 'arm64-deps-*' ! -name "${DEPDIR##*/}" -mtime +7 -exec rm -rf {} +  # older lists
  TIMES[deps]=$(( $(now) - t ))
else
  echo "[arm] aarch64 deps from the cache: $DEPDIR"
fi
mkdir -p "$ROOT/opt/deps"
bind "$DEPDIR" "$ROOT/opt/deps"
mount -o remount,bind,ro "$ROOT/opt/deps"

# --- 3. the project: the sources as git sees them, kernels cross-compiled on the host ----------------------------
t=$(now)
SRC=$ROOT/src
bash "$REPO/scripts/copy_tree.sh" "$SRC"
ln -s ../kernels "$SRC/edge_maas/kernels"  # what setup.py's package_dir (and an editable install) maps
if [ -f "$REPO/edge_maas/tflite/_schema_generated.py" ]; then
  cp "$REPO/edge_maas/tflite/_schema_generated.py" "$SRC/edge_maas/tflite/"
else  # taken from the aarch64 ai-edge-litert wheel (pure Python), as the build backend does
  (cd "$SRC" && PYTHONPATH="build_backend:$DEPDIR" "$HOSTPY" -c "import edge_maas_backend as b; b.schema_bindings()")
fi
# setup.py under the root's aarch64 sysconfig data: EXT_SUFFIX, CC=aarch64-linux-gnu-gcc, LDSHARED; Debian's
# pyconfig.h includes <aarch64-linux-gnu/python3.11/pyconfig.h>, found through $T/inc
SYSCFG=$(cd "$ROOT/usr/lib/python$PYV" && ls _sysconfigdata__linux_aarch64-linux-gnu.py)
mkdir -p "$T/sysconfig" "$T/inc/aarch64-linux-gnu"
cp "$ROOT/usr/lib/python$PYV/$SYSCFG" "$T/sysconfig/"
ln -s "$ROOT/usr/include/aarch64-linux-gnu/python$PYV" "$T/inc/aarch64-linux-gnu/python$PYV"
# the built modules are cached by what they are built from (the kernels' sources, setup.py, the root, the host
# tools): a second run on the same tree (.ci/run's cortex-a76 run) skips the build (~1-2 min)
bkey=$( (cd "$SRC" && find kernels setup.py -type f ! -name '*.so' -print0 | sort -z | xargs -0 sha256sum;
         echo "$key"; "$HOSTPY" -c "import Cython; print(Cython.__version__)"; aarch64-linux-gnu-gcc --version) \
       | sha256sum | cut -c1-16)
BUILT=$CACHE/arm64-build-$bkey
if [ -f "$BUILT/.complete" ]; then
  echo "[arm] aarch64 modules from the cache: $BUILT"
  cp "$BUILT"/*.so "$SRC/kernels/"
else
  (cd "$SRC" && _PYTHON_HOST_PLATFORM=linux-aarch64 _PYTHON_SYSCONFIGDATA_NAME="${SYSCFG%.py}" \
     PYTHONPATH="$T/sysconfig" CFLAGS="-I$T/inc -I$ROOT/usr/include/python$PYV" \
     "$HOSTPY" setup.py -q build_ext --inplace >"$T/build.log" 2>&1) \
    || { tail -30 "$T/build.log"; echo "[arm] the cross build failed" >&2; exit 1; }
  part=$BUILT.part.$$
  mkdir -p "$part" && cp "$SRC"/kernels/*.cpython-*-aarch64-linux-gnu.so "$part/" && touch "$part/.complete"
  if [ -f "$BUILT/.complete" ]; then rm -rf "$part"; else rm -rf "$BUILT" && mv "$part" "$BUILT"; fi
  find "$CACHE" -maxdepth 1 -name 'arm64-build-*' ! -name "${BUILT##*/}" -mtime +1 -exec rm -rf {} +  # old trees
fi
# e_machine (ELF header bytes 18-19) 0xb7: AArch64
head -c 20 "$SRC"/kernels/executor.cpython-*-aarch64-linux-gnu.so | od -An -tx1 | tr -d ' \n' | grep -q 'b700$' \
  || { echo "[arm] the cross build did not make aarch64 modules" >&2; exit 1; }
# no fused multiply-add in the kernels: gcc contracts a*b+c on aarch64 by default (x86-64 has no FMA in its baseline),
# which moves DEQUANTIZE by 1 ulp (kernels/c/quantize.c: 22 fmadd/fmsub without setup.py's -ffp-contract=off)
fused=$(aarch64-linux-gnu-objdump -d "$SRC"/kernels/*.cpython-*-aarch64-linux-gnu.so \
        | grep -cE '\s(fmadd|fmsub|fnmadd|fnmsub|fmla|fmls)\s' || true)
[ "$fused" = 0 ] || { echo "[arm] the aarch64 kernels hold $fused fused multiply-adds: float contraction is on" >&2; exit 1; }
TIMES[cross_build]=$(( $(now) - t ))

# --- 4. the tests, emulated as a cortex-a72 with an ARM /proc/cpuinfo ---------------------------------------------
cat >"$T/cpuinfo" <<'EOF'
processor	: 0
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd08
CPU revision	: 3

EOF
mount -t proc proc "$ROOT/proc"; MOUNTS+=("$ROOT/proc")
bind /sys "$ROOT/sys"
bind /dev "$ROOT/dev"
bind "$T/cpuinfo" "$ROOT/proc/cpuinfo"
mkdir -p "$ROOT/tmp" && chmod 1777 "$ROOT/tmp"
only_opts=1
for a in "$@"; do [ "${a#-}" != "$a" ] || only_opts=0; done
[ "$only_opts" = 0 ] || set -- -q "$@" "${TESTS[@]}"  # none, or options only (--durations=30): the TESTS
echo "[arm] pytest under qemu-aarch64 (QEMU_CPU=$CPU): $*"
t=$(now)
rc=0
chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/tmp LANG=C.UTF-8 QEMU_CPU="$CPU" \
  PYTHONPATH=/src:/opt/deps PYTHONDONTWRITEBYTECODE=1 HYPOTHESIS_STORAGE_DIRECTORY=/tmp/hypothesis \
  /bin/sh -c 'cd /src && python3 -c "import platform, edge_maas.kernels.executor as e; print(\"[arm] machine\", platform.machine(), \"isa\", e.isa(), \"paths\", e.available_isas())" && exec python3 -m pytest -p no:cacheprovider "$@"' \
  sh "$@" || rc=$?
TIMES[tests]=$(( $(now) - t ))
TIMES[total]=$(( $(now) - T0 ))
for k in host_packages host_tools root_build root_unpack deps cross_build tests total; do
  [ -n "${TIMES[$k]:-}" ] && printf '[arm] time %-13s %5d s\n' "$k" "${TIMES[$k]}"
done
return $rc
}
main "$@"; exit $?  # on one line: bash reads nothing of this file after main (it may have changed)

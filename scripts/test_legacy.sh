#!/usr/bin/env bash
# The suite again on the legacy board stack: numpy<2 and tflite-runtime 2.14, no ai-edge-litert (issue 14).
#
# Runs in a copy of the checkout (tracked and untracked-but-not-ignored files) with its own venv and its own
# compiled kernels, so the repo's .venv and the .so files it has loaded are never touched.  The copy has no TFLite
# schema bindings yet: its build takes them from ai-edge-litert inside pip's isolated build env
# (build_backend/edge_maas_backend.py), never in the test venv, which must not be able to import ai_edge_litert.
# Tests that need something only ai-edge-litert has skip themselves and say why (tests/conftest.py: needs_litert).
#
# Usage: scripts/test_legacy.sh [pytest args]     KEEP=1 keeps the temp dir; PYTHON=python3.11 picks the Python
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
T=$(mktemp -d "${TMPDIR:-/tmp}/edge_maas_legacy.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then echo "[legacy] keeping $T"; else trap 'rm -rf "$T"' EXIT; fi
start=$(date +%s)

mkdir "$T/src"
bash "$REPO/scripts/copy_tree.sh" "$T/src"

"$PY" -m venv "$T/venv"
V="$T/venv/bin/python"
"$V" -m pip install -q --upgrade pip
echo "[legacy] installing edge_maas[tflite-runtime,test] (numpy<2, tflite-runtime 2.14) and building its kernels"
"$V" -m pip install -q "numpy<2" "tflite-runtime==2.14.*"
"$V" -m pip install -q -e "$T/src[tflite-runtime,test]"
cd "$T/src"
"$V" - <<'EOF'
import importlib.util
import numpy
import tflite_runtime
from edge_maas.backends.litert import interpreter_module
from edge_maas.tflite import schema

assert numpy.__version__.startswith("1."), numpy.__version__
assert importlib.util.find_spec("ai_edge_litert") is None, "ai_edge_litert must not be importable in the legacy venv"
assert interpreter_module()[1] == "tflite-runtime"
assert schema.schema.__name__ == "edge_maas.tflite._schema_generated", schema.schema.__name__
print(f"[legacy] numpy {numpy.__version__}, tflite-runtime {tflite_runtime.__version__}, "
      f"schema bindings built into edge_maas")
EOF
echo "[legacy] set up in $(( $(date +%s) - start )) s; running the suite"
"$V" -m pytest -q -p no:cacheprovider "$@"
echo "[legacy] done in $(( $(date +%s) - start )) s"

#!/usr/bin/env bash
# Set up what edge_maas needs on a fresh Debian/Ubuntu machine: Mosquitto (Debian packages), a virtualenv in
# .venv, the Python deps and the compiled Cython kernels (pip install -e . builds them).  Safe to run again: when
# nothing that the install depends on changed since the last run, it installs nothing.
#
# Usage: scripts/setup.sh [EXTRAS]    EXTRAS: pip extras of edge_maas, default litert (what `edge-maas demo`
#        needs); scripts/test.sh passes litert,accel,test,quantize.  PYTHON=python3.12 picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=${1:-litert}

. scripts/apt_install.sh
if ! command -v mosquitto >/dev/null 2>&1; then
  echo "[setup] installing mosquitto from Debian packages"
  apt_install mosquitto mosquitto-clients || \
    echo "[setup] warning: mosquitto is not installed and this is not a root apt machine;" \
         "install mosquitto and mosquitto-clients for the MQTT tests" >&2
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
# up to date when the build and package config and the kernels' sources are those of the last install and it
# had every extra asked for now (a demo after the tests reinstalls nothing)
STAMP=.venv/.edge_maas_setup
src=$(cat pyproject.toml setup.py build_backend/*.py kernels/*.pyx kernels/*.h kernels/c/* | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(head -1 "$STAMP")" = "$src" ] && [ -f edge_maas/tflite/_schema_generated.py ] \
   && .venv/bin/python -c "import edge_maas.kernels.executor" 2>/dev/null; then
  had=",$(sed -n 2p "$STAMP"),"
  missing=0
  for e in ${EXTRAS//,/ }; do [[ "$had" == *",$e,"* ]] || missing=1; done
  if [ "$missing" = 0 ]; then
    echo "[setup] up to date (.venv has edge_maas[$(sed -n 2p "$STAMP")] built from these sources)"
    exit 0
  fi
  EXTRAS="$(sed -n 2p "$STAMP"),$EXTRAS"  # keep what the venv had
fi
.venv/bin/python -m pip install -q --upgrade pip
echo "[setup] installing edge_maas[$EXTRAS] (compiles kernels/, builds in TFLite's schema bindings)"
.venv/bin/python -m pip install -q -e ".[$EXTRAS]"
.venv/bin/python -c "import edge_maas.kernels.executor as e, edge_maas.kernels.quantize; print('[setup] kernels built:', e.__file__, 'isa:', e.isa())"
printf '%s\n%s\n' "$src" "$EXTRAS" > "$STAMP"

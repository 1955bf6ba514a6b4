#!/usr/bin/env bash
# Set up everything edge_maas needs on a fresh Debian/Ubuntu machine:
# Mosquitto (Debian packages), a virtualenv in .venv, the Python deps and the
# compiled Cython kernels (pip install -e . builds them).  Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v mosquitto >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing mosquitto from Debian packages"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients >/dev/null
  else
    echo "[setup] warning: mosquitto is not installed and this is not a root apt machine;" \
         "install mosquitto and mosquitto-clients for the MQTT tests" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
echo "[setup] installing edge_maas (compiles kernels/) with ai-edge-litert, torch and the test extras"
.venv/bin/python -m pip install -q -e '.[litert,accel,test]'
.venv/bin/python -c "import edge_maas.kernels.executor as e, edge_maas.kernels.quantize; print('[setup] kernels built:', e.__file__, 'isa:', e.isa())"

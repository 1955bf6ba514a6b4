#!/usr/bin/env bash
# The test command: sets everything up, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh litert,accel,test,quantize
# the systemd unit tests run `systemd-analyze verify` (Debian's systemd package; no running systemd needed)
. scripts/apt_install.sh
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "[test] installing systemd-analyze (Debian package systemd)"
  apt_install systemd || echo "[test] warning: not a root apt machine: tests/test_systemd.py will fail" >&2
fi
exec .venv/bin/python -m pytest -q "$@"

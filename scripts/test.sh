#!/usr/bin/env bash
# The test command: sets everything up, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh litert,accel,test,quantize
# the systemd unit tests run `systemd-analyze verify` (Debian's systemd package; no running systemd needed)
if ! command -v systemd-analyze >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[test] installing systemd-analyze (Debian package systemd)"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq systemd >/dev/null || \
    { apt-get -o DPkg::Lock::Timeout=300 update -qq && \
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq systemd >/dev/null; }
fi
exec .venv/bin/python -m pytest -q "$@"

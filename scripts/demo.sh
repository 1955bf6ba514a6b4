#!/usr/bin/env bash
# The main job end to end: set up, split a zoo model, run it as a pipeline, report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/edge-maas demo "$@"

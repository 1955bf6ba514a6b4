#!/usr/bin/env bash
# The main job end to end: set up, split a zoo model, run it as a pipeline, report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh litert   # only what the main job needs (no torch, no test tools)
exec .venv/bin/edge-maas demo "$@"

#!/usr/bin/env bash
# Benchmarks (pytest-benchmark): ratios are read within each group of one run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh litert,accel,test
mkdir -p out
exec .venv/bin/python -m pytest bench --benchmark-enable --benchmark-json out/bench.json \
  --benchmark-columns=min,median,mean,ops "$@"

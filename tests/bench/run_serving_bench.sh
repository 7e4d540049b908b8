#!/usr/bin/env bash
# Serving overhead and throughput (issue 3): tests/bench/serving_bench.py runs
# the model alone and the server in alternating rounds and prints a Markdown
# table (per-round figures in BUILD_DIR/bench/serving.json).
# Usage: run_serving_bench.sh [BUILD_DIR] [--rounds N]
set -euo pipefail
build=${1:-build}
shift || true
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
exec /usr/bin/python3 tests/bench/serving_bench.py "$build" "$@"

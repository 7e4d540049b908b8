#!/usr/bin/env bash
# DETR-R50 forward, 800x1066, batch 1, 2 threads: the C++ model for each
# attention type, then the PyTorch eager reference on the same weights, in
# one run on one machine. Usage: run_detr_forward_bench.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
weights=$build/bench/detr-r50-seed0.safetensors
threads=${THREADS:-2}
repetitions=${REPETITIONS:-5}

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "== C++ (LibTorch), median of $repetitions repetitions"
"$build/bin/detr_forward_bench" --weights="$weights" --threads="$threads" \
  --benchmark_repetitions="$repetitions" --benchmark_min_time=0 --benchmark_report_aggregates_only=true \
  --benchmark_time_unit=ms --benchmark_filter="${FILTER:-.}"
echo "== PyTorch eager reference (same architecture and weights)"
/usr/bin/python3 tests/bench/pytorch_eager_reference.py "$weights" --threads "$threads" --runs "$repetitions"

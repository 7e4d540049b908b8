#!/usr/bin/env bash
# DETR-R50 forward, 800x1066, batch 1, 2 threads, on the same seeded weights
# and input: the C++ model for each attention type, the PyTorch eager
# reference, and ONNX Runtime (the official architecture exported to ONNX,
# run by onnxruntime-node's CPU build), in one run on one machine.
#
# Each instruction set in ISAS (default: the CPU's best, plus AVX2 on a CPU
# with AVX-512) runs under ONEDNN_MAX_CPU_ISA, which caps oneDNN for the C++
# model and for PyTorch (Debian's LibTorch uses the same libdnnl), and the
# optimization attention kernel. ONNX Runtime cannot be capped: its MLAS
# kernels pick their instruction set from CPUID alone.
#
# Usage: run_detr_forward_bench.sh [BUILD_DIR]   (env: ISAS, THREADS, REPETITIONS, FILTER)
set -euo pipefail
build=${1:-build}
bench=$build/bench
weights=$bench/detr-r50-seed0.safetensors
onnx=$bench/onnx
onnxruntime=$bench/onnxruntime
threads=${THREADS:-2}
repetitions=${REPETITIONS:-5}
if [[ -z ${ISAS:-} ]]; then
  ISAS=ALL
  grep -q ' avx512f' /proc/cpuinfo && ISAS="ALL AVX2"
fi

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
mkdir -p "$bench"
# The seeded weights (the C++ bench writes them if absent), their ONNX export,
# and onnxruntime-node from npm (its CPU build is inside the package).
"$build/bin/detr_forward_bench" --weights="$weights" --benchmark_filter=none > /dev/null 2>&1 || true
[[ -f $onnx/detr-r50.onnx ]] || /usr/bin/python3 tests/bench/onnx_export.py "$weights" "$onnx"
if ! command -v npm > /dev/null; then apt-get install -y -qq nodejs npm > /dev/null; fi
if [[ ! -d $onnxruntime/node_modules/onnxruntime-node ]]; then
  mkdir -p "$onnxruntime"
  cp tests/bench/package.json "$onnxruntime/"
  npm install --prefix "$onnxruntime" --ignore-scripts --no-audit --no-fund > /dev/null
fi
cp tests/bench/onnxruntime_bench.js "$onnxruntime/"

for isa in $ISAS; do
  export ONEDNN_MAX_CPU_ISA=$isa
  echo "== ONEDNN_MAX_CPU_ISA=$isa: C++ (LibTorch + oneDNN), median of $repetitions repetitions"
  "$build/bin/detr_forward_bench" --weights="$weights" --threads="$threads" \
    --benchmark_repetitions="$repetitions" --benchmark_min_time=0 --benchmark_report_aggregates_only=true \
    --benchmark_time_unit=ms --benchmark_filter="${FILTER:-.}"
  echo "== ONEDNN_MAX_CPU_ISA=$isa: PyTorch eager reference (same architecture, weights and input)"
  /usr/bin/python3 tests/bench/pytorch_eager_reference.py "$weights" --threads "$threads" --runs "$repetitions"
  echo "== ONNX Runtime (its own instruction-set choice, whatever ONEDNN_MAX_CPU_ISA says)"
  node "$onnxruntime/onnxruntime_bench.js" "$onnx" --threads "$threads" --runs "$repetitions"
done

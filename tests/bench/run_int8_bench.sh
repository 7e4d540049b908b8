#!/usr/bin/env bash
# The int8 variant's evidence (docs/int8.md), as records:
#   - speed: DETR-R50 (seeded weights) at 800x1066, whole and backbone alone,
#     float32 against int8 in one run of detr_forward_bench, on this CPU's
#     best instruction set, capped at AVX-512 VNNI (no AMX) and at AVX2
#     (results/benchmarks.jsonl, name int8_r50);
#   - accuracy: the default models in float32 against int8 on held-out draws
#     (tests/bench/int8_accuracy.py -> results/int8_accuracy.jsonl), natively
#     and under the AVX2 cap.
# About 8 minutes here.   tests/bench/run_int8_bench.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
weights="$build/bench/detr-r50-seed0.safetensors"
filter='detr_r50_800x1066/softmax(_int8)?$|r50_backbone'
for isa in "" AVX512_CORE_VNNI AVX2; do
  echo "== speed, ONEDNN_MAX_CPU_ISA=${isa:-(none)}"
  ONEDNN_MAX_CPU_ISA=$isa /usr/bin/python3 tests/bench/record_benchmark.py "$build/bin/detr_forward_bench" \
    --name int8_r50 --out results/benchmarks.jsonl --repetitions 3 --filter "$filter" -- --weights="$weights"
done
for isa in "" AVX2; do
  echo "== accuracy, ONEDNN_MAX_CPU_ISA=${isa:-(none)}"
  ONEDNN_MAX_CPU_ISA=$isa /usr/bin/python3 tests/bench/int8_accuracy.py "$build" --out results/int8_accuracy.jsonl
done
echo "== DETR-R50 outputs, int8 against float32"
/usr/bin/python3 tests/bench/int8_r50_agreement.py "$build" --out results/int8_r50_agreement.jsonl

#!/usr/bin/env bash
# Served int8 against served float32 on the real-traffic mix (traffic_bench.py):
# DETR-R50 (seeded weights) through detr-server on tests/bench/traffic_r50.yaml's
# canvases, in float32, then with precision: int8 (the calibration
# detr_forward_bench writes), each with ONNX Runtime (float32) playing one round
# of the same shapes after each of the server's rounds. ONNX Runtime runs no
# quantised model here: docs/int8.md says why. Records: results/traffic_int8.jsonl.
#
# Usage: run_int8_traffic_bench.sh [BUILD_DIR]   (env: ROUNDS)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
rounds=${ROUNDS:-3}
calibration="$PWD/$build/bench/detr-r50-seed0.int8.json"
if [ ! -f "$calibration" ]; then
  "$build/bin/detr_forward_bench" --weights="$build/bench/detr-r50-seed0.safetensors" --benchmark_filter=none
fi
# traffic_r50.yaml with the model in int8: the same canvases, batching and seed.
int8_config="$build/bench/traffic_r50_int8.yaml"
sed -e "s#model_config: detr_r50.json#model_config: $PWD/tests/bench/detr_r50.json\n    precision: int8\n    calibration: $calibration#" \
  tests/bench/traffic_r50.yaml > "$int8_config"
grep -q "precision: int8" "$int8_config"
for precision in float32 int8; do
  config=tests/bench/traffic_r50.yaml
  [[ $precision == int8 ]] && config=$int8_config
  echo "== detr-server, $precision ($config)"
  /usr/bin/python3 tests/bench/traffic_bench.py "$build" --config "$config" --model r50 --rounds "$rounds" \
    --beside onnxruntime --label "canvases, $precision" --out results/traffic_int8.jsonl | grep -v '^ '
done

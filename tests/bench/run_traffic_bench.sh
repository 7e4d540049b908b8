#!/usr/bin/env bash
# Real traffic (issue 35), in one run on one machine: DETR-R50 through
# detr-server padded into canvases and on each image's own size
# (traffic_bench.py), each with ONNX Runtime playing one round of the same
# shapes after each of the server's rounds (--beside: drift on this VM reaches
# both alike), then the same mix through PyTorch eager (traffic_reference.py,
# the model alone). Each run appends records to OUT.
#
# Usage: run_traffic_bench.sh [BUILD_DIR]   (env: ROUNDS, OUT, LABEL_SUFFIX, ONEDNN_MAX_CPU_ISA, DETR_KERNEL_MAX_ISA)
set -euo pipefail
build=${1:-build}
rounds=${ROUNDS:-3}
out=${OUT:-results/traffic.jsonl}
suffix=${LABEL_SUFFIX:-}
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for variant in canvases unpadded; do
  config=tests/bench/traffic_r50.yaml
  [[ $variant == unpadded ]] && config=tests/bench/traffic_r50_unpadded.yaml
  echo "== detr-server, $variant ($config)"
  /usr/bin/python3 tests/bench/traffic_bench.py "$build" --config "$config" --model r50 --rounds "$rounds" \
    --beside onnxruntime --label "$variant$suffix" --out "$out" | grep -v '^ '
done
for engine in eager; do
  echo "== $engine (the model alone)"
  /usr/bin/python3 tests/bench/traffic_reference.py "$build" --engine "$engine" --rounds "$rounds" --out "$out" |
    grep -E '"(c1_p50_ms|c1_p99_ms|rss_end_mb)"'
done

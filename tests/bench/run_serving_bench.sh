#!/usr/bin/env bash
# Serving overhead and throughput, measured in one run on one machine:
#  1. the model alone (offline_forward_bench): batch 1 and batch 8 at 480x640;
#  2. detr-server on 127.0.0.1 with tests/bench/serving_bench.yaml, driven by
#     detr-client bench with a 640x480 JPEG: concurrency 1 on the model without
#     queue delay (latency: the serving overhead), concurrency 8 with batching
#     on and off (throughput).
# Usage: run_serving_bench.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
port=${PORT:-50771}
metrics_port=${METRICS_PORT:-9771}
image=$build/bench/serving-640x480.jpg
mkdir -p "$build/bench"
/usr/bin/python3 - "$image" <<'PY'
import sys, torch
from torchvision.io import write_jpeg
g = torch.Generator().manual_seed(3)
write_jpeg((torch.rand(3, 480, 640, generator=g) * 255).to(torch.uint8), sys.argv[1], quality=90)
PY

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "== the model alone"
"$build/bin/offline_forward_bench" --model-config deploy/models/default-softmax.json --height 480 --width 640 --batch 1 --runs 30
"$build/bin/offline_forward_bench" --model-config deploy/models/default-softmax.json --height 480 --width 640 --batch 8 --runs 6

"$build/bin/detr-server" --config tests/bench/serving_bench.yaml --listen 127.0.0.1:$port \
  --metrics-listen 127.0.0.1:$metrics_port > "$build/bench/serving-server.log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  "$build/bin/detr-client" --target 127.0.0.1:$port health > /dev/null 2>&1 && break
  sleep 0.2
done
client() { "$build/bin/detr-client" --target 127.0.0.1:$port "$@"; }
client bench --concurrency 1 --requests 5 --model unbatched "$image" > /dev/null 2>&1   # warm-up
echo "== through gRPC, concurrency 1 (no queue delay)"
client bench --concurrency 1 --requests 30 --model unbatched "$image" 2>/dev/null
echo "== through gRPC, concurrency 8, batching on (max 8, 20 ms)"
client bench --concurrency 8 --requests 96 --model batched "$image" 2>/dev/null
echo "== through gRPC, concurrency 8, batching off"
client bench --concurrency 8 --requests 48 --model unbatched "$image" 2>/dev/null
echo "== server-side batch sizes"
curl -s 127.0.0.1:$metrics_port/metrics | grep -E '^detr_batch_size_(sum|count)'

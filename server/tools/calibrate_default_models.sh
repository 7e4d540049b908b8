#!/usr/bin/env bash
# Writes the int8 calibration of each shipped default model beside its weights
# (deploy/models/NAME.int8.json), as precision: int8 reads them:
#   1. detr-data draws the calibration images: 256 images of the training
#      distribution's sizes (square and 1:2 to 2:1), seed 2026, which no
#      training run or evaluation uses (docs/int8.md#calibration).
#   2. detr-calibrate runs each model's float32 backbone over them, prepared
#      by the server's resize rule (128/213 px), and keeps each activation's
#      largest |value|.
# Seconds per model.  server/tools/calibrate_default_models.sh [MODEL...]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD_DIR:-build}
bin="$build/bin"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(default-softmax default-optimization default-optimization-encoder)
data="$build/calibration/shapes-seed2026"
sizes=128x128,144x128,128x144,160x128,128x160,192x128,128x192,224x128,128x224
if [ ! -f "$data/train.json" ]; then
  "$bin/detr-data" --output "$data" --seed 2026 --train 256 --val 0 --sizes "$sizes" --max-shapes 5
fi
for model in "${models[@]}"; do
  echo "== $model"
  "$bin/detr-calibrate" --model-config "deploy/models/$model.json" --weights "deploy/models/$model.safetensors" \
    --images "$data/train" --count 256 --min-size 128 --max-size 213 \
    --source "detr-data --seed 2026 --train 256 --val 0 --sizes $sizes --max-shapes 5" \
    --output "deploy/models/$model.int8.json"
done

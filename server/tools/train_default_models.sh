#!/usr/bin/env bash
# Trains the default models and measures docs/accuracy.md's table, start to
# end, on this machine (about 2 hours on 2 cores):
#   1. detr-data: the synthetic shapes set (seed 7; 30,000 training and 500
#      validation images of 128 px).
#   2. detr-train: a softmax DETR from scratch (STEPS = 6000 steps, batch 32).
#   3. The paper's swap, one row per configuration: start from the softmax
#      weights, switch the attention of some sites, fine-tune FINETUNE_STEPS.
#   4. Every row (and each swap before fine-tuning) through a real detr-server
#      on 127.0.0.1 with `detr-client eval --json`; accuracy_report.py turns
#      the figures and training logs into the table and the loss-curve PNG.
# Every step resumes or skips what an earlier run finished, so the script can
# be stopped and started again.
#   server/tools/train_default_models.sh [OUT_DIR]     (default: runs/accuracy)
# Then copy OUT/softmax/model.safetensors and OUT/optimization-all/model.safetensors
# to deploy/models/default-{softmax,optimization}.safetensors.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/accuracy}
build=${BUILD_DIR:-build}
steps=${STEPS:-6000}
finetune_steps=${FINETUNE_STEPS:-600}
threads=${THREADS:-0}
bin="$build/bin"
mkdir -p "$out"

shapes="$out/shapes"
# shellcheck source=server/tools/training_steps.sh
source server/tools/training_steps.sh
ensure_shapes_dataset

# model_config ROW: the configuration of ROW (server/tools/model_configs.py).
model_config() {
  /usr/bin/python3 server/tools/model_configs.py accuracy "$1" "$out/$1.json"
  echo "$out/$1.json"
}

train() {  # train ROW STEPS [extra detr-train arguments]
  local row=$1 n=$2
  shift 2
  train_row "$out/$row" "$(model_config "$row")" "$n" "$@"
}

train softmax "$steps"
# Rows whose attention differs from softmax; the control fine-tunes softmax itself.
swapped=(optimization-all optimization-encoder-self optimization-decoder-self optimization-decoder-cross identity-qk)
rows=("${swapped[@]}" softmax-control)
for row in "${rows[@]}"; do
  train "$row" "$finetune_steps" --init-from "$out/softmax/checkpoint.safetensors"
done

# One server holds every row, plus each swap straight from the softmax weights.
for row in softmax "${rows[@]}"; do model_config "$row" > /dev/null; done
config="$out/eval-server.yaml"
model_entry() {  # model_entry NAME ROW WEIGHTS_ROW
  server_model_entry "$1" "$2.json" "$3/model.safetensors"
}
names=(softmax softmax-control)
{
  echo "intra_op_threads: $threads"
  echo "models:"
  model_entry softmax softmax softmax
  model_entry softmax-control softmax-control softmax-control
  for row in "${swapped[@]}"; do
    model_entry "$row" "$row" "$row"
    model_entry "$row-no-finetune" "$row" softmax
    names+=("$row" "$row-no-finetune")
  done
} > "$config"
eval_models "$config" "$out/eval" "${names[@]}"
/usr/bin/python3 server/tools/accuracy_report.py "$out" docs/accuracy-loss.png --record accuracy-shapes

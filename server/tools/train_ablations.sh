#!/usr/bin/env bash
# Trains and measures docs/accuracy.md's ablation table (issue 16): every row
# is optimization attention at all sites, fine-tuned from the default softmax
# model trained on square images (square_default_model in training_steps.sh) for 600 steps, with one
# option changed (server/tools/ablation_rows.py lists them); then every
# finished row goes through one real detr-server on 127.0.0.1 with
# `detr-client eval --json`, and ablation_rows.py prints the table.
#   server/tools/train_ablations.sh [OUT_DIR]      (default: runs/ablations)
# About 6-13 minutes per 600-step row on 2 cores (24 rows with the long ones:
# about 6.5 hours). Resumable: finished rows are skipped, an interrupted row
# resumes from its last checkpoint. ROWS="k1 k2" trains only those rows;
# TRAIN=0 only measures what is finished.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/ablations}
build=${BUILD_DIR:-build}
threads=${THREADS:-0}
bin="$build/bin"
shapes=${SHAPES_DIR:-runs/accuracy/shapes}
# shellcheck source=server/tools/training_steps.sh
source server/tools/training_steps.sh
mkdir -p "$out"
init=$(square_default_model softmax "$out")
ensure_shapes_dataset

mkdir -p "$out/configs"
mapfile -t plan < <(/usr/bin/python3 server/tools/ablation_rows.py configs "$out/configs")
wanted=" ${ROWS:-} "
if [[ ${TRAIN:-1} != 0 ]]; then
  for line in "${plan[@]}"; do
    read -r row steps start <<< "$line"
    [[ -z ${ROWS:-} || $wanted == *" $row "* ]] || continue
    extra=()
    [[ $start == finetune ]] && extra=(--init-from "$init")
    train_row "$out/$row" "$out/configs/$row.json" "$steps" "${extra[@]}"
  done
fi

# One server holds every finished row.
config="$out/eval-server.yaml"
names=()
{
  echo "intra_op_threads: $threads"
  echo "models:"
  for line in "${plan[@]}"; do
    read -r row _ _ <<< "$line"
    [[ -f "$out/$row/model.safetensors" ]] || continue
    server_model_entry "$row" "configs/$row.json" "$row/model.safetensors"
    names+=("$row")
  done
} > "$config"
((${#names[@]})) || { echo "no finished row to measure" >&2; exit 1; }
eval_models "$config" "$out/eval" "${names[@]}"
/usr/bin/python3 server/tools/ablation_rows.py report "$out" docs/ablation-loss.png --record ablations-run

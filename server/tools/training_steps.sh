# shellcheck shell=bash disable=SC2154  # bin, threads and shapes come from the caller
# Steps shared by the training scripts (sourced, not run): the synthetic data
# set, one resumable training row, and the evaluation of trained rows through
# a real detr-server on 127.0.0.1.
# The caller sets: bin (detr-* binaries), threads (0 = all cores), shapes
# (the data set's folder).

# The synthetic shapes set of docs/accuracy.md (seed 7; 30,000 training and
# 500 validation images of 128 px), unless it is there already.
ensure_shapes_dataset() {
  [[ -f "$shapes/val.json" ]] ||
    "$bin/detr-data" --output "$shapes" --seed 7 --train 30000 --val 500 --size 128 --max-shapes 5
}

# train_row DIR MODEL_CONFIG STEPS [detr-train arguments]: trains into DIR,
# resuming from DIR's checkpoint; does nothing when DIR holds a finished model.
train_row() {
  local dir=$1 config=$2 n=$3
  shift 3
  if [[ -f "$dir/model.safetensors" ]]; then
    echo "== $(basename "$dir"): done already ($dir/model.safetensors)"
    return
  fi
  echo "== $(basename "$dir"): $n steps"
  mkdir -p "$dir"
  "$bin/detr-train" --model-config "$config" --annotations "$shapes/train.json" --images "$shapes/train" \
    --output "$dir" --steps "$n" --threads "$threads" --half --resume "$@" | tee -a "$dir/train.log"
}

# server_model_entry NAME MODEL_CONFIG WEIGHTS: one `models:` entry of a
# server configuration, preprocessed as the data set was drawn.
server_model_entry() {
  printf '  - {name: %s, model_config: %s, weights: %s,\n' "$1" "$2" "$3"
  printf '     preprocessing: {shortest_edge: 128, longest_edge: 213}}\n'
}

# eval_models SERVER_CONFIG EVAL_DIR NAME...: starts detr-server on
# SERVER_CONFIG (127.0.0.1, free ports), runs `detr-client eval` on the
# validation set for each NAME into EVAL_DIR/NAME.json, and stops the server.
eval_models() {
  local config=$1 eval_dir=$2
  shift 2
  free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
  local port metrics_port server
  port=$(free_port)
  metrics_port=$(free_port)
  "$bin/detr-server" --config "$config" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$metrics_port" \
    > "$eval_dir.server.log" 2>&1 &
  server=$!
  # shellcheck disable=SC2064  # the pid is fixed now
  trap "kill $server 2>/dev/null || true" EXIT
  for _ in $(seq 300); do
    "$bin/detr-client" --target "127.0.0.1:$port" --timeout 2 health > /dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { echo "detr-server stopped; see $eval_dir.server.log" >&2; return 1; }
    sleep 1
  done
  mkdir -p "$eval_dir"
  for name in "$@"; do
    echo "== eval $name"
    "$bin/detr-client" --target "127.0.0.1:$port" eval --annotations "$shapes/val.json" \
      --images "$shapes/val" --model "$name" --json "$eval_dir/$name.json" | tail -n 13
  done
  kill "$server"
  wait "$server" || true
  trap - EXIT
}

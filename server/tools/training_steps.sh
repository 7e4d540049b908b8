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

# square_default_model softmax|optimization DIR: the path of that default
# model as trained on square images only: `make train`'s, or the one shipped
# before the non-square fine-tuning (commit bc37deb), kept in DIR. The
# ablations start from the square softmax, so that every row has the same
# origin.
square_default_model() {
  local trained="runs/accuracy/$1/model.safetensors" kept="$2/square-$1.safetensors"
  [[ $1 == optimization ]] && trained=runs/accuracy/optimization-all/model.safetensors
  if [[ -f $trained ]]; then
    echo "$trained"
    return
  fi
  # Through a temporary file: a failed git show (a shallow clone) must not
  # leave an empty file that a later run would take for the model.
  if [[ ! -f $kept ]]; then
    git show "bc37deb:deploy/models/default-$1.safetensors" > "$kept.part"
    mv "$kept.part" "$kept"
  fi
  echo "$kept"
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

# server_model_entry NAME MODEL_CONFIG WEIGHTS [SHORTEST LONGEST]: one
# `models:` entry of a server configuration, preprocessed as the data set was
# drawn (by default the 128-px shapes set's 128 and 213).
server_model_entry() {
  printf '  - {name: %s, model_config: %s, weights: %s,\n' "$1" "$2" "$3"
  printf '     preprocessing: {shortest_edge: %s, longest_edge: %s}}\n' "${4:-128}" "${5:-213}"
}

# start_eval_server SERVER_CONFIG LOG: detr-server on SERVER_CONFIG at
# 127.0.0.1 (port 0: the ports it bound come from its --ports-file), stopped
# when the script exits; sets eval_target.
start_eval_server() {
  local config=$1 log=$2 ports="$2.ports"
  eval_target=""
  rm -f "$ports"
  "$bin/detr-server" --config "$config" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
    --http-listen 127.0.0.1:0 --ports-file "$ports" > "$log" 2>&1 &
  eval_server=$!
  # shellcheck disable=SC2064  # the pid is fixed now
  trap "kill $eval_server 2>/dev/null || true" EXIT
  for _ in $(seq 300); do
    if [[ -s $ports && -z ${eval_target:-} ]]; then
      eval_target="127.0.0.1:$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["grpc"])' "$ports")"
    fi
    [[ -n ${eval_target:-} ]] && "$bin/detr-client" --target "$eval_target" --timeout 2 health > /dev/null 2>&1 &&
      return 0
    kill -0 "$eval_server" 2>/dev/null || { echo "detr-server stopped; see $log" >&2; return 1; }
    sleep 1
  done
  echo "detr-server did not become ready; see $log" >&2
  return 1
}

stop_eval_server() {
  kill "$eval_server"
  wait "$eval_server" || true
  trap - EXIT
}

# eval_model NAME EVAL_DIR: `detr-client eval` of NAME on the validation set
# into EVAL_DIR/NAME.json, through the running eval server.
eval_model() {
  echo "== eval $1"
  mkdir -p "$2"
  "$bin/detr-client" --target "$eval_target" eval --annotations "$shapes/val.json" \
    --images "$shapes/val" --model "$1" --json "$2/$1.json" | tail -n 13
}

# eval_models SERVER_CONFIG EVAL_DIR NAME...: eval_model of each NAME on a
# server of its own.
eval_models() {
  local config=$1 eval_dir=$2
  shift 2
  start_eval_server "$config" "$eval_dir.server.log"
  for name in "$@"; do eval_model "$name" "$eval_dir"; done
  stop_eval_server
}

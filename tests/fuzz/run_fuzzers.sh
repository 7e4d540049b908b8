#!/usr/bin/env bash
# `make fuzz`: builds the fuzz harnesses with clang's libFuzzer (ASan, UBSan)
# and runs each for FUZZ_SECONDS (default 60) on a copy of its seed corpus.
# What a run finds lands in $FUZZ_DIR/crashes/<harness>/; copy a fixed case to
# tests/fuzz/regressions/<harness>/ so that make test replays it forever.
#
#   bash tests/fuzz/run_fuzzers.sh [harness...]      (default: all of them)
set -euo pipefail
cd "$(dirname "$0")/../.."

FUZZ_DIR=${FUZZ_DIR:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
DETR_DEPS=fuzz bash deploy/install-deps.sh

CC=clang CXX=clang++ cmake -S tests/fuzz/libfuzzer -B "$FUZZ_DIR" -G Ninja >/dev/null
cmake --build "$FUZZ_DIR" -j "$(nproc)"

read -r -a harnesses <<<"${*:-image safetensors model_config server_config detect_request}"
failed=()
for harness in "${harnesses[@]}"; do
  corpus="$FUZZ_DIR/corpus/$harness"
  crashes="$FUZZ_DIR/crashes/$harness"
  mkdir -p "$corpus" "$crashes"
  seeds=(tests/fuzz/corpus/"$harness")
  [[ -d tests/fuzz/regressions/$harness ]] && seeds+=(tests/fuzz/regressions/"$harness")
  log="$FUZZ_DIR/$harness.log"
  echo "fuzz: $harness for ${FUZZ_SECONDS} s (log: $log)"
  # -rss_limit_mb: a harness that grows past 2 GiB is a finding too (the
  # server's inputs are bounded; its memory must be as well).
  if "$FUZZ_DIR/${harness}_fuzzer" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
      -max_len=1048576 -print_final_stats=1 -artifact_prefix="$crashes/" \
      "$corpus" "${seeds[@]}" >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
    echo "fuzz: $harness: no finding in $runs inputs (coverage $cov edges, corpus $(ls "$corpus" | wc -l) files)"
  else
    failed+=("$harness")
    echo "fuzz: $harness: FINDING (see $log and $crashes):" >&2
    grep -m 5 -E 'ERROR|runtime error|SUMMARY' "$log" >&2 || tail -20 "$log" >&2
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: findings in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: all harnesses clean"

#!/usr/bin/env bash
# Checks that every alert and every recording rule of deploy/prometheus/rules/
# is exercised by deploy/prometheus/tests/rules_test.yml, so that a rule added
# without a unit test fails make test (promtool test rules alone would pass).
#
#   check_rules_tested.sh SOURCE_DIR
set -euo pipefail
cd "$1/deploy/prometheus"
tests=tests/rules_test.yml
missing=0
while read -r kind name; do
  case $kind in
    alert) pattern="alertname: ${name}\$" ;;
    record) pattern="expr: ${name}(\{|\$)" ;;
  esac
  if ! grep -Eq "$pattern" "$tests"; then
    echo "no unit test in $tests for $kind $name"
    missing=$((missing + 1))
  fi
done < <(sed -nE 's/^\s*- (alert|record):\s*(\S+)\s*$/\1 \2/p' rules/*.yml)
echo "rules without a unit test: $missing"
((missing == 0))

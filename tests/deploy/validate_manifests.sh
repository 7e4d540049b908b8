#!/usr/bin/env bash
# Renders a kustomization and validates every object against the Kubernetes
# OpenAPI schemas offline (validate_manifests.mjs). The schemas come from npm
# (package.json here), installed once into WORK_DIR. Exit 77 (CTest: skipped)
# without kubectl, which renders kustomizations and is not in Debian 12 (its
# kubernetes-client 1.20 predates kustomize components).
#
#   validate_manifests.sh SOURCE_DIR WORK_DIR KUSTOMIZATION_DIR [--unchecked Kind,...]
set -euo pipefail
source_dir=$1 work_dir=$2 kustomization=$3
shift 3
command -v kubectl > /dev/null || { echo "kubectl is not installed: skipped"; exit 77; }
here=$(cd "$(dirname "$0")" && pwd)
if [[ ! -d "$work_dir/node_modules/kubernetes-models" ]]; then
  mkdir -p "$work_dir"
  cp "$here/package.json" "$work_dir/"
  (cd "$work_dir" && flock "$work_dir" npm install --ignore-scripts --no-audit --no-fund --loglevel=error > /dev/null)
fi
cp "$here/validate_manifests.mjs" "$work_dir/"
kubectl kustomize "$source_dir/$kustomization" | node "$work_dir/validate_manifests.mjs" "$@"

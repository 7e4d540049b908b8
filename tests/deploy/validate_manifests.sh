#!/usr/bin/env bash
# Renders a kustomization and validates every object against the Kubernetes
# OpenAPI schemas offline (validate_manifests.mjs), or the objects of one
# file. The schemas come from npm (package.json here), installed into WORK_DIR
# once per version of package.json. Exit 77 (CTest: skipped)
# without kubectl, which renders kustomizations and is not in Debian 12 (its
# kubernetes-client 1.20 predates kustomize components).
#
#   validate_manifests.sh SOURCE_DIR WORK_DIR KUSTOMIZATION_DIR [--unchecked Kind,...]
#   validate_manifests.sh SOURCE_DIR WORK_DIR --file OBJECTS.yaml [--expect-invalid]
set -euo pipefail
source_dir=$1 work_dir=$2 kustomization=$3
shift 3
[[ $kustomization == --file ]] || command -v kubectl > /dev/null || { echo "kubectl is not installed: skipped"; exit 77; }
here=$(cd "$(dirname "$0")" && pwd)
if ! cmp -s "$here/package.json" "$work_dir/package.json" || [[ ! -d "$work_dir/node_modules/kubernetes-models" ]]; then
  mkdir -p "$work_dir"
  cp "$here/package.json" "$work_dir/"
  (cd "$work_dir" && flock "$work_dir" npm install --ignore-scripts --no-audit --no-fund --loglevel=error > /dev/null)
fi
cp "$here/validate_manifests.mjs" "$here/kserve_schemas.mjs" "$work_dir/"
if [[ $kustomization == --file ]]; then
  node "$work_dir/validate_manifests.mjs" "${@:2}" < "$source_dir/$1"
else
  kubectl kustomize "$source_dir/$kustomization" | node "$work_dir/validate_manifests.mjs" "$@"
fi

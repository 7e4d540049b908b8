#!/usr/bin/env bash
# Checks that every C++ file of the project (server/, client/, tests/)
# follows .clang-format exactly.
#
#   check_format.sh SOURCE_DIR [CLANG_FORMAT]
set -euo pipefail
source_dir=$1
clang_format=${2:-clang-format}
cd "$source_dir"
folders=(server client tests)
mapfile -t files < <(find "${folders[@]}" -type f \( -name '*.h' -o -name '*.cc' -o -name '*.inc' \) | sort)
bad=0
for file in "${files[@]}"; do
  if ! "$clang_format" --style=file --dry-run --Werror "$file" 2> /dev/null; then
    echo "not formatted: $file (run: $clang_format -i --style=file $file)"
    bad=$((bad + 1))
  fi
done
echo "${#files[@]} files checked, $bad not formatted"
((bad == 0))

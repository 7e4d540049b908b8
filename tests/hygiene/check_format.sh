#!/usr/bin/env bash
# Checks that the code in the folders below follows .clang-format exactly.
# They are the folders whose code was written to it (the service layer, the
# model core's API, the shared types, image preprocessing and their tests);
# the others follow it where they are changed, and join this list once
# formatted whole.
#
#   check_format.sh SOURCE_DIR [CLANG_FORMAT]
set -euo pipefail
source_dir=$1
clang_format=${2:-clang-format}
cd "$source_dir"
folders=(server/service server/core/api server/types server/image tests/service tests/hygiene tests/fuzz client server/main.cc)
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

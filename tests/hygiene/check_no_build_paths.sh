#!/usr/bin/env bash
# The shipped binaries carry no path of the machine that built them: the
# built-in configuration's files are found at run time, and __FILE__ and
# debug info are relative (-ffile-prefix-map).
#
#   check_no_build_paths.sh SOURCE_DIR BUILD_DIR BINARY...
set -euo pipefail
source_dir=$1
build_dir=$2
shift 2
bad=0
for binary in "$@"; do
  for path in "$source_dir" "$build_dir"; do
    if strings "$binary" | grep -F "$path/" > /dev/null; then  # not -q: strings would die of SIGPIPE
      echo "$binary contains '$path/', e.g.:"
      strings "$binary" | grep -F "$path/" | head -n 5
      bad=1
    fi
  done
done
((bad == 0)) && echo "no build paths in: $*"
((bad == 0))

#!/usr/bin/env bash
# What the last run of each test skipped (tests/skip.rs): "N skipped: reasons".
# Exit 0 when nothing was skipped, 1 otherwise.
#
#   cargo test --workspace; tests/skipped.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${CARGO_TARGET_DIR:-target}/truc-skipped"
n=0
[[ -d "$dir" ]] && n=$(find "$dir" -type f | wc -l)
if [[ $n -eq 0 ]]; then
  echo "0 skipped"
  exit 0
fi
echo "$n skipped:"
for f in "$dir"/*; do
  echo "  $(basename "$f"): $(cat "$f")"
done
exit 1

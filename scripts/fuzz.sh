#!/usr/bin/env bash
# Runs every libFuzzer harness in build-fuzz/fuzz/ for N seconds (default 20),
# starting from a copy of its corpus fuzz/corpus/<name>/ (so runs never grow the
# committed corpus). Every harness runs; the script fails at the end if any
# found a crash, leak or timeout (the input is left in fuzz/ as crash-*, etc.).
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
shopt -s nullglob
n=0
failed=()
for f in build-fuzz/fuzz/fuzz_*; do
  [ -x "$f" ] || continue
  name=$(basename "$f")
  work=$(mktemp -d)
  corpus=fuzz/corpus/${name#fuzz_}
  [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
  echo "fuzz: $name for ${secs}s"
  if ! "$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -artifact_prefix=fuzz/ "$work" \
       > "$work.log" 2>&1; then
    tail -40 "$work.log"
    failed+=("$name")
  else
    tail -1 "$work.log"
  fi
  rm -rf "$work" "$work.log"
  n=$((n + 1))
done
echo "fuzz: $n harnesses ran"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/)" >&2
  exit 1
fi

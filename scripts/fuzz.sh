#!/usr/bin/env bash
# Runs every libFuzzer harness in build-fuzz/fuzz/ for N seconds (default 20),
# starting from its corpus in fuzz/corpus/<name>/. Fails on the first crash.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
shopt -s nullglob
n=0
for f in build-fuzz/fuzz/fuzz_*; do
  [ -x "$f" ] || continue
  name=$(basename "$f")
  corpus=fuzz/corpus/${name#fuzz_}
  work=$(mktemp -d)
  [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/ 2>/dev/null || true
  echo "fuzz: $name for ${secs}s"
  "$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -artifact_prefix=fuzz/ "$work" 2>&1 | tail -3
  rm -rf "$work"
  n=$((n + 1))
done
echo "fuzz: $n harnesses ran"

#!/usr/bin/env bash
# README command two: installs what is missing, builds, and runs every test —
# the release build, the same suite under ASan+UBSan, and each libFuzzer
# harness for a bounded time.
#   EDDY_TEST_ONLY=release|asan|fuzz   run one stage only
#   EDDY_FUZZ_SECONDS=N                seconds per fuzz target (default 12; the suite stays under 15 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
only=${EDDY_TEST_ONLY:-all}
start=$(date +%s)
stage() { echo; echo "=== $* ($(( $(date +%s) - start ))s) ==="; }

if [ "$only" = all ] || [ "$only" = release ]; then
  stage "release build"
  scripts/build.sh release
  stage "tests (release)"
  ctest --test-dir build --output-on-failure -j2 --timeout 600
fi
if [ "$only" = all ] || [ "$only" = asan ]; then
  stage "ASan+UBSan build"
  scripts/build.sh asan
  stage "tests (ASan+UBSan)"
  # Sanitized runs are slower: tests scale their record counts and deadlines by these.
  EDDY_TEST_SCALE=0.1 TEST_TIMEOUT_MULT=3 \
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j2 --timeout 900 -LE bench
fi
if [ "$only" = all ] || [ "$only" = fuzz ]; then
  stage "libFuzzer harnesses"
  scripts/build.sh fuzz
  scripts/fuzz.sh "${EDDY_FUZZ_SECONDS:-12}"
fi
stage "all tests passed"

#!/usr/bin/env bash
# Builds one configuration: scripts/build.sh [release|asan|fuzz]
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
jobs=$(nproc)
case "$kind" in
  release) cmake -S . -B build -DEDDY_WERROR=ON >/dev/null
           cmake --build build -j"$jobs" ;;
  asan)    cmake -S . -B build-asan -DEDDY_WERROR=ON -DEDDY_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
           cmake --build build-asan -j"$jobs" ;;
  fuzz)    CC=clang CXX=clang++ cmake -S . -B build-fuzz -DEDDY_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
           cmake --build build-fuzz -j"$jobs" ;;
  *) echo "usage: $0 [release|asan|fuzz]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# README command one: installs what is missing, builds, and runs the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh release
./build/eddy --help

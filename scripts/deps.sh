#!/usr/bin/env bash
# Installs what Eddy needs from Debian 12 that is not already on the machine.
# Idempotent: only missing packages are installed; nothing is installed when all are present.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config clang libclang-rt-14-dev   # toolchain, libFuzzer, sanitizers
  librdkafka-dev libuv1-dev libjansson-dev libjemalloc-dev      # broker + clients
  librocksdb-dev libhiredis-dev libmicrohttpd-dev libcsv-dev    # event store + HTTP server
  libcurl4-openssl-dev                                          # HTTP client (CLI -> roles)
  libavro-dev libopenblas-dev liblapacke-dev                    # Avro, ALS
  libopenblas-openmp-dev                                        # ALS: BLAS without its own thread pool
  libcmocka-dev kcat python3-kafka redis-server curl            # tests: real clients and peers
)
if [ "${EDDY_BENCH_DEPS:-0}" = 1 ]; then PKGS+=(wrk nginx-light); fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node + npm run the kafkajs test; a node already on PATH (e.g. NodeSource's,
# which bundles npm) is used as is, else Debian's packages.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then missing+=(nodejs npm); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq || true
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# redis-server's Debian package starts a system instance on 6379; our tests start
# their own instances on free ports and never use it.

# kafkajs (pure-JavaScript Kafka client) for tests/broker/it_kafkajs.py, pinned,
# into .deps/node/ (git-ignored); the test finds it there and never reaches the
# network itself (it is skipped, saying why, when kafkajs is absent).
KAFKAJS_VERSION=2.2.4
node_dir="$(cd "$(dirname "$0")/.." && pwd)/.deps/node"
have=$(node -p "require('$node_dir/node_modules/kafkajs/package.json').version" 2>/dev/null || true)
if [ "$have" != "$KAFKAJS_VERSION" ]; then
  echo "deps: installing kafkajs@$KAFKAJS_VERSION into $node_dir"
  mkdir -p "$node_dir"
  npm install --prefix "$node_dir" --no-audit --no-fund --no-package-lock --save-exact --omit=dev \
    "kafkajs@$KAFKAJS_VERSION" >/dev/null \
    || echo "deps: WARNING: npm could not install kafkajs; it_kafkajs will be skipped" >&2
fi

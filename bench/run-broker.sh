#!/usr/bin/env bash
# Broker benchmark: `eddy broker` (librdkafka clients, bench/broker_bench.c)
# next to Redis Streams (hiredis, bench/redis_streams_bench.c) on the same
# machine in the same run. Both servers start here on free loopback ports with
# temp data dirs and are stopped at the end. Prints one table with the ratios
# and the machine. Not a test: run it by hand on an otherwise quiet machine.
#
#   bench/run-broker.sh                  # 1,000,000 records per produce run
#   RECORDS=200000 DURATION=2 bench/run-broker.sh   # quicker
#
# Redis runs with appendonly yes / appendfsync everysec: the closest match to
# acks=1 on eddy (in the page cache at once, on disk within about a second).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
RECORDS=${RECORDS:-1000000}
RATE=${RATE:-10000}
DURATION=${DURATION:-3}
PY=/usr/bin/python3

cmake --build "$BUILD" --target eddy broker_bench redis_streams_bench -j2 >/dev/null
work=$(mktemp -d /tmp/eddy-bench-XXXXXX)
bpid=""; rpid=""
cleanup() {
  [ -n "$bpid" ] && kill "$bpid" 2>/dev/null && wait "$bpid" 2>/dev/null || true
  [ -n "$rpid" ] && kill "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

wait_for() { # wait_for SECONDS COMMAND...
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || { echo "run-broker: timed out waiting for: $*" >&2; exit 1; }
    sleep 0.05
  done
}

"$BUILD/eddy" broker --data "$work/data" --listen 127.0.0.1:0 2>"$work/broker.log" &
bpid=$!
wait_for 15 grep -q 'listening on 127.0.0.1:[0-9]' "$work/broker.log"
bport=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/broker.log" | head -1 | cut -d: -f2)

rport=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$rport" --bind 127.0.0.1 --dir "$work" --save "" --appendonly yes \
  --appendfsync everysec --daemonize no --logfile "$work/redis.log" &
rpid=$!
wait_for 15 redis-cli -p "$rport" ping

echo "running: eddy broker on :$bport, redis-server on :$rport, $RECORDS records per run, latency at $RATE msg/s for ${DURATION}s" >&2
# Throughput once each; latency three times each, interleaved (eddy, Redis,
# eddy, ...), because on a shared machine a neighbour's burst moves the tail
# of one run: the table shows every run and the targets use the median run.
"$BUILD/bench/broker_bench" --broker "127.0.0.1:$bport" --records "$RECORDS" --only produce | tee -a "$work/eddy.tsv" >&2
"$BUILD/bench/broker_bench" --broker "127.0.0.1:$bport" --only consume | tee -a "$work/eddy.tsv" >&2
"$BUILD/bench/redis_streams_bench" --port "$rport" --records "$RECORDS" --only throughput | tee -a "$work/redis.tsv" >&2
for run in 1 2 3; do
  "$BUILD/bench/broker_bench" --broker "127.0.0.1:$bport" --rate "$RATE" --duration "$DURATION" --only latency | tee -a "$work/eddy.tsv" >&2
  "$BUILD/bench/redis_streams_bench" --port "$rport" --rate "$RATE" --duration "$DURATION" --only latency | tee -a "$work/redis.tsv" >&2
done
load=$(cut -d' ' -f1-3 /proc/loadavg)

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
redis_ver=$(redis-server --version | grep -o 'v=[0-9.]*' | cut -d= -f2)
rdk_ver=$(pkg-config --modversion rdkafka)
$PY - "$work/eddy.tsv" "$work/redis.tsv" "$(nproc)" "$cpu" "$(uname -r)" "$redis_ver" "$rdk_ver" "$RECORDS" "$RATE" "$load" <<'EOF'
import sys
eddy_f, redis_f, nproc, cpu, kernel, redis_ver, rdk_ver, records, rate, load = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for f in (eddy_f, redis_f) for l in open(f) if l.strip()]
prod = [r for r in rows if r[0] == "produce"]
cons = [r for r in rows if r[0] == "consume"]
lat = [r for r in rows if r[0] == "latency"]
print("Machine: %s x %s (nproc %s), Linux %s; librdkafka %s, Redis %s (appendonly everysec)"
      % (nproc, cpu, nproc, kernel, rdk_ver, redis_ver))
print("Load average at the end of the run (shared machine): %s" % load)
print("Payload: %s records of 100-byte values per produce run; latency at %s msg/s\n" % (f"{int(records):,}", f"{int(rate):,}"))
print("| Produce | partitions/streams | batching | records/s | MB/s |")
print("|---|---|---|---:|---:|")
for r in prod:
    print("| %s | %s | %s | %s | %s |" % (r[1], r[2].split("=")[1], r[3] if r[3] != "-" else "pipeline 1000",
                                     f"{float(r[6]):,.0f}", r[7]))
print("\n| Consume | partitions/streams | records/s | MB/s |")
print("|---|---|---:|---:|")
for r in cons:
    print("| %s | %s | %s | %s |" % (r[1], r[2].split("=")[1], f"{float(r[5]):,.0f}", r[6]))
print("\n| End-to-end latency at %s msg/s | samples | p50 ms | p99 ms | p99.9 ms | max ms |" % f"{int(rate):,}")
print("|---|---:|---:|---:|---:|---:|")
for r in lat:
    print("| %s | %s | %s | %s | %s | %s |" % (r[1], r[4], r[5], r[6], r[7], r[8]))

def get(kind, name, part, batching=None):
    for r in rows:
        if r[0] == kind and r[1] == name and r[2].endswith("=" + part) and (batching is None or r[3] == "batching=" + batching):
            return r
e_p1 = get("produce", "eddy acks=1", "1", "default"); r_p1 = get("produce", "redis-xadd-pipelined", "1")
e_p8 = get("produce", "eddy acks=1", "8", "default"); r_p8 = get("produce", "redis-xadd-pipelined", "8")
e_c1 = get("consume", "eddy", "1"); r_c1 = get("consume", "redis-xrange", "1")
e_c8 = get("consume", "eddy", "8"); r_c8 = get("consume", "redis-xrange", "8")
def median_run(name):
    runs = sorted((r for r in lat if r[1] == name), key=lambda r: float(r[6]))
    return runs[len(runs) // 2]
e_l = median_run("eddy acks=1"); r_l = median_run("redis-xadd-xread")
best_prod = max(float(r[6]) for r in prod if r[1] == "eddy acks=1")
best_cons = max(float(r[5]) for r in cons if r[1] == "eddy")
print("\nRatios (eddy / Redis Streams, >1 = eddy ahead):")
print("  produce acks=1, 1 partition vs 1 stream:   %.2f" % (float(e_p1[6]) / float(r_p1[6])))
print("  produce acks=1, 8 partitions vs 8 streams: %.2f" % (float(e_p8[6]) / float(r_p8[6])))
print("  consume, 1 partition vs 1 stream:          %.2f" % (float(e_c1[5]) / float(r_c1[5])))
print("  consume, 8 partitions vs 8 streams:        %.2f" % (float(e_c8[5]) / float(r_c8[5])))
print("  e2e p99 latency, median runs (Redis / eddy): %.2f" % (float(r_l[6]) / max(float(e_l[6]), 1e-3)))
ok = lambda b: "met" if b else "NOT met"
print("\nTargets:")
print("  produce acks=1 >= 1,000,000 records/s: best %s -> %s" % (f"{best_prod:,.0f}", ok(best_prod >= 1e6)))
print("  consume >= 2,000,000 records/s:        best %s -> %s" % (f"{best_cons:,.0f}", ok(best_cons >= 2e6)))
print("  e2e p99 <= 3 ms at 10k msg/s (acks=1, median run): %s ms -> %s" % (e_l[6], ok(float(e_l[6]) <= 3)))
print("  e2e p99.9 <= 14 ms (acks=1, same run):             %s ms -> %s" % (e_l[7], ok(float(e_l[7]) <= 14)))
ahead = float(e_p1[6]) > float(r_p1[6]) and float(e_c1[5]) > float(r_c1[5]) and float(e_l[6]) <= float(r_l[6])
print("  ahead of Redis Streams (produce, consume, p99): %s" % ok(ahead))
EOF

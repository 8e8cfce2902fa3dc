#!/usr/bin/env bash
# Event ingest and point-read benchmark of `eddy eventserver`, next to
# redis-server doing the same number of SETs, in the same run on the same
# machine. Usage: bench/eventserver/run.sh [SECONDS] (default 10 per phase).
# Prints a markdown table (events/s, p99) for --sync always and interval.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
EDDY=${EDDY:-$root/build/eddy}
secs=${1:-10}
conns=${BENCH_CONNS:-16}
wthreads=${BENCH_WRK_THREADS:-1}
# Point reads are measured below saturation (p99 at saturation is queueing).
rconns=${BENCH_READ_CONNS:-4}
tmp=$(mktemp -d /tmp/eddy-bench-es.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wrk's latency distribution prints "99%  1.23ms"; normalise to ms.
p99() { awk '$1=="99%" { v=$2; if (v ~ /us$/) { sub(/us/,"",v); v=v/1000 } else if (v ~ /ms$/) { sub(/ms/,"",v) } else if (v ~ /s$/) { sub(/s/,"",v); v=v*1000 } printf "%.2f", v }'; }
rps() { awk '/^Requests\/sec:/ { print $2 }'; }
cpu_ticks() { awk '{ print $14 + $15 }' /proc/$1/stat; } # utime + stime of a pid

start_es() { # $1 = sync mode
  local data=$tmp/data-$1
  mkdir -p "$data"
  key=$("$EDDY" app new bench --data "$data" | awk '/^Access Key:/ {print $3}')
  local port; port=$(freeport)
  "$EDDY" eventserver --data "$data" --listen 127.0.0.1:$port --sync "$1" > "$tmp/es-$1.out" 2> "$tmp/es-$1.log" &
  es_pid=$!; pids+=($es_pid)
  for _ in $(seq 200); do grep -q "listening" "$tmp/es-$1.out" 2>/dev/null && break; sleep 0.05; done
  es_url=http://127.0.0.1:$port
}

rows=()
for mode in always interval; do
  start_es $mode
  c0=$(cpu_ticks $es_pid)
  out=$(wrk -t$wthreads -c$conns -d${secs}s --latency -s "$here/ingest.lua" "$es_url" -- "$key")
  c1=$(cpu_ticks $es_pid)
  ev=$(echo "$out" | rps | awk '{printf "%.0f", $1*50}')
  # events per CPU-second of the server: comparable across machine loads
  per=$(awk -v ev=$ev -v s=$secs -v t=$((c1 - c0)) -v hz=$(getconf CLK_TCK) 'BEGIN { printf "%.0f", t ? ev*s/(t/hz) : 0 }')
  rows+=("| ingest, --sync $mode (POST /batch/events.json, 50 events/request, $conns conns) | $ev events/s | $(echo "$out" | p99) ms | $per |")
  if [ $mode = interval ]; then
    # Right after the ingest, RocksDB is still flushing and compacting what
    # it took in, on the same 2 cores; then again once the server is idle.
    out=$(wrk -t$wthreads -c$rconns -d${secs}s --latency -s "$here/read.lua" "$es_url" -- "$key" 1)
    rows+=("| point read by entity, right after the ingest (background compaction running; GET /events.json?entityType&entityId&limit=20, $rconns conns) | $(echo "$out" | rps | awk '{printf "%.0f", $1}') reads/s | $(echo "$out" | p99) ms | - |")
    for _ in $(seq 60); do # until the server used < 5% of a core for a second (at most 60 s)
      c0=$(cpu_ticks $es_pid); sleep 1; c1=$(cpu_ticks $es_pid)
      [ $((c1 - c0)) -le $(( $(getconf CLK_TCK) / 20 )) ] && break
    done
    out=$(wrk -t$wthreads -c$rconns -d${secs}s --latency -s "$here/read.lua" "$es_url" -- "$key" 2)
    rows+=("| point read by entity, store at rest (same query, $rconns conns) | $(echo "$out" | rps | awk '{printf "%.0f", $1}') reads/s | $(echo "$out" | p99) ms | - |")
  fi
  kill $es_pid; wait $es_pid 2>/dev/null || true
done

# Peer: redis-server, SETs of a ~200-byte value, pipelined 50 per round trip
# (one round trip = one batch request above), same connection count.
rport=$(freeport)
redis-server --port $rport --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" >/dev/null &
rpid=$!; pids+=($rpid)
for _ in $(seq 100); do redis-cli -p $rport ping >/dev/null 2>&1 && break; sleep 0.05; done
n=$(( secs * 200000 ))
c0=$(cpu_ticks $rpid)
r=$(redis-benchmark -p $rport -t set -n $n -c $conns -P 50 -d 200 -r 100000 -q 2>/dev/null | tr '\r' '\n' | awk '/^SET:/ {print $2}' | tail -1)
c1=$(cpu_ticks $rpid)
per=$(awk -v n=$n -v t=$((c1 - c0)) -v hz=$(getconf CLK_TCK) 'BEGIN { printf "%.0f", t ? n/(t/hz) : 0 }')
rows+=("| peer: redis-server SET (-P 50, $conns conns, 200 B, no persistence) | ${r%.*} SETs/s | - | $per |")
raof=$(freeport)
redis-server --port $raof --bind 127.0.0.1 --save '' --appendonly yes --appendfsync always --dir "$tmp" >/dev/null &
pids+=($!)
for _ in $(seq 100); do redis-cli -p $raof ping >/dev/null 2>&1 && break; sleep 0.05; done
r=$(redis-benchmark -p $raof -t set -n $(( secs * 50000 )) -c $conns -P 50 -d 200 -r 100000 -q 2>/dev/null | tr '\r' '\n' | awk '/^SET:/ {print $2}' | tail -1)
rows+=("| peer: redis-server SET, appendfsync always (-P 50, $conns conns) | ${r%.*} SETs/s | - | - |")

echo "| workload (${secs}s each, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg), wrk -t$wthreads) | throughput | p99 | events per server CPU-second |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"

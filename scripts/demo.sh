#!/usr/bin/env bash
# README command one: installs what is missing, builds, and runs the main job.
# Today's job: start `eddy broker` on a free loopback port in a temp dir,
# produce a few keyed records with kcat (the topic is auto-created), consume
# them back with kcat and print them, then stop the broker cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh release

work=$(mktemp -d /tmp/eddy-demo-XXXXXX)
broker_pid=""
cleanup() {
  if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
    kill -TERM "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "== starting eddy broker (data in $work/data)"
./build/eddy broker --data "$work/data" --listen 127.0.0.1:0 --num-partitions 3 2>"$work/broker.log" &
broker_pid=$!
for _ in $(seq 1 200); do
  grep -q 'listening on' "$work/broker.log" && break
  kill -0 "$broker_pid" 2>/dev/null || { cat "$work/broker.log"; exit 1; }
  sleep 0.05
done
port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/broker.log" | sed 's/.*://')
[ -n "$port" ] || { echo "broker did not start"; cat "$work/broker.log"; exit 1; }
B=127.0.0.1:$port
echo "== broker listening on $B"

echo "== producing 6 keyed records to topic 'demo' with kcat (acks=all)"
printf '%s\n' "user-1:clicked item-42" "user-2:viewed item-7" "user-1:bought item-42" \
  "user-3:viewed item-9" "user-2:clicked item-7" "user-3:bought item-9" |
  kcat -b "$B" -P -t demo -K: -H source=demo -X acks=all

echo "== consuming them back with kcat (partition, offset, key, value, headers)"
kcat -b "$B" -C -t demo -o beginning -e -q -f 'partition %p offset %o  key=%k  value=%s  headers=%h\n' | sort

echo "== topic metadata"
kcat -b "$B" -L -t demo

echo "== stopping the broker (SIGTERM)"
kill -TERM "$broker_pid"
wait "$broker_pid"
broker_pid=""
echo "== broker log"
cat "$work/broker.log"

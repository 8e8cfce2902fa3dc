#!/usr/bin/env bash
# kcat against `eddy broker`: -L; -P with keys (-K:) and headers (-H); -C with
# -o beginning, -o -N, -o end, -e; binary values byte-identical; SIGTERM
# shuts down cleanly (exit 0) and a restart on the same data keeps everything.
set -euo pipefail
EDDY=${EDDY:-build/eddy}
MULT=${TEST_TIMEOUT_MULT:-1}
work=$(mktemp -d /tmp/eddy-it-kcat-XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- broker log"; tail -30 "$work/broker.log" || true; exit 1; }

start_broker() {
  local before
  before=$(grep -c 'listening on' "$work/broker.log" || true)
  "$EDDY" broker --data "$work/data" --listen 127.0.0.1:0 --num-partitions 3 >>"$work/broker.log" 2>&1 &
  pid=$!
  local deadline=$(( $(date +%s) + 10 * ${MULT%.*} ))
  while [ "$(grep -c 'listening on' "$work/broker.log" || true)" = "$before" ]; do
    kill -0 "$pid" 2>/dev/null || fail "broker exited at start"
    [ "$(date +%s)" -lt "$deadline" ] || fail "broker did not start"
    sleep 0.05
  done
  port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/broker.log" | tail -1 | sed 's/.*://')
  B=127.0.0.1:$port
}
stop_broker() {
  kill -TERM "$pid"
  local rc=0
  wait "$pid" || rc=$?
  pid=""
  [ "$rc" = 0 ] || fail "broker exited $rc after SIGTERM"
  tail -1 "$work/broker.log" | grep -q "stopped cleanly" || fail "no clean-stop line"
}
K() { timeout $((30 * ${MULT%.*})) kcat -b "$B" "$@"; }

: >"$work/broker.log"
start_broker

# -L
K -L | grep -q "broker 0 at $B" || fail "kcat -L does not list the broker"

# -P with keys and headers (auto-creates a 3-partition topic)
for i in $(seq 0 29); do echo "key-$i:value-$i"; done >"$work/in.txt"
K -P -t keyed -K: -H app=eddy -H "n=with space" -l "$work/in.txt"
K -L -t keyed | grep -q 'topic "keyed" with 3 partitions' || fail "topic keyed not auto-created with 3 partitions"
K -C -t keyed -o beginning -e -q -f '%k:%s|%h|%p\n' >"$work/out.txt"
[ "$(wc -l <"$work/out.txt")" = 30 ] || fail "expected 30 records, got $(wc -l <"$work/out.txt")"
cut -d'|' -f1 "$work/out.txt" | sort >"$work/got.txt"
sort "$work/in.txt" >"$work/want.txt"
cmp -s "$work/got.txt" "$work/want.txt" || fail "keys/values read back differ"
grep -v '|app=eddy,n=with space|' "$work/out.txt" && fail "headers not read back"
# same key -> same partition (librdkafka: consistent_random = crc32(key) % 3)
for i in 3 17; do
  [ "$(grep -c "^key-$i:" "$work/out.txt")" = 1 ] || fail "key-$i not exactly once"
done

# binary values: each file is one message, read back byte-identical
head -c 200000 /dev/urandom >"$work/bin1"
printf 'a\0b\nc\r\n\xff\xfe' >"$work/bin2"
K -P -t bin -p 0 "$work/bin1" "$work/bin2"
K -C -t bin -p 0 -o beginning -c 1 -e -q -D '' -f '%s' >"$work/bin1.out"
K -C -t bin -p 0 -o 1 -c 1 -e -q -D '' -f '%s' >"$work/bin2.out"
cmp "$work/bin1" "$work/bin1.out" || fail "binary value 1 differs"
cmp "$work/bin2" "$work/bin2.out" || fail "binary value 2 differs"

# -o -N and -o end on one partition
seq 1 10 | K -P -t tail -p 0
K -C -t tail -p 0 -o -3 -e -q -f '%s\n' >"$work/last3.txt"
[ "$(tr '\n' ' ' <"$work/last3.txt")" = "8 9 10 " ] || fail "-o -3 gave: $(cat "$work/last3.txt")"
K -C -t tail -p 0 -o end -e -q -f '%s\n' >"$work/end.txt"
[ ! -s "$work/end.txt" ] || fail "-o end -e printed records"
K -C -t tail -p 0 -o beginning -e -q -f '%o\n' | tr '\n' ' ' | grep -q '^0 1 2 3 4 5 6 7 8 9 $' || fail "offsets not dense from 0"

# ListOffsets by timestamp (-o s@TS): starts at the first record with timestamp >= TS
for i in 1 2 3; do echo "ts$i" | K -P -t times -p 0 -X linger.ms=0; sleep 0.05; done
ts2=$(K -C -t times -p 0 -o beginning -e -q -f '%T\n' | sed -n 2p)
[ "$(K -C -t times -p 0 -o "s@$ts2" -e -q -f '%o:%s ' )" = "1:ts2 2:ts3 " ] || fail "-o s@TS did not start at offset 1"

# acks=all goes through the group commit
seq 1 1000 | K -P -t durable -p 0 -X acks=all
[ "$(K -C -t durable -p 0 -o beginning -e -q | wc -l)" = 1000 ] || fail "acks=all records missing"

# SIGTERM: clean shutdown; restart on the same data keeps everything
stop_broker
start_broker
K -C -t keyed -o beginning -e -q -f '%k:%s\n' | sort >"$work/got2.txt"
cmp -s "$work/got2.txt" "$work/want.txt" || fail "records changed across restart"
K -C -t bin -p 0 -o beginning -c 1 -e -q -D '' -f '%s' >"$work/bin1.out2"
cmp "$work/bin1" "$work/bin1.out2" || fail "binary value changed across restart"
[ "$(K -C -t durable -p 0 -o beginning -e -q | wc -l)" = 1000 ] || fail "acks=all records lost across restart"
seq 11 12 | K -P -t tail -p 0
K -C -t tail -p 0 -o -2 -e -q -f '%o:%s\n' | tr '\n' ' ' | grep -q '^10:11 11:12 $' || fail "offsets do not continue after restart"
stop_broker
echo ok

#!/usr/bin/env bash
# eddy topics / produce / consume against a real `eddy broker`:
# topic admin, byte-exact round trips (text and --json, keys, headers, bytes
# that are not UTF-8), partition/offset selection, kcat interop, and the error
# paths (duplicate topic, unknown topic, missing --topic, bad flags,
# undeliverable records, unreachable broker) with their exit codes.
set -euo pipefail

EDDY=${EDDY:?EDDY must point at the eddy executable}
PY=/usr/bin/python3
MULT=${TEST_TIMEOUT_MULT:-1}
work=$(mktemp -d /tmp/eddy-it-cli-XXXXXX)
broker_pid=""

cleanup() {
  if [ -n "$broker_pid" ]; then kill -9 "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  echo "---- broker log (tail) ----" >&2
  tail -n 20 "$work/broker.log" >&2 || true
  exit 1
}

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 20 ms.
wait_until() {
  local secs=$1 what=$2; shift 2
  local deadline=$(( $(date +%s%N) / 1000000 + $(awk "BEGIN{print int($secs * $MULT * 1000)}") ))
  until "$@"; do
    [ $(( $(date +%s%N) / 1000000 )) -lt "$deadline" ] || fail "timed out waiting for $what"
    sleep 0.02
  done
}

# expect_rc WANT DESCRIPTION COMMAND...: runs COMMAND, output in $work/out, $work/err.
expect_rc() {
  local want=$1 what=$2; shift 2
  local rc=0
  "$@" >"$work/out" 2>"$work/err" || rc=$?
  [ "$rc" = "$want" ] || { cat "$work/err" >&2; fail "$what: exit status $rc, want $want"; }
}
expect_err() { grep -qF -- "$1" "$work/err" || { cat "$work/err" >&2; fail "stderr lacks '$1'"; }; }

# ---- start a broker on a free port (it binds port 0 and logs the port) ------------
"$EDDY" broker --data "$work/data" --listen 127.0.0.1:0 2>"$work/broker.log" &
broker_pid=$!
listening() {
  kill -0 "$broker_pid" 2>/dev/null || fail "broker exited during start-up"
  grep -q 'listening on 127.0.0.1:[0-9]' "$work/broker.log"
}
wait_until 15 "the broker to listen" listening
port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/broker.log" | head -1 | cut -d: -f2)
B=127.0.0.1:$port
T="timeout $(awk "BEGIN{print int(30 * $MULT)}")" # bound every client call
echo "broker on $B"

# ---- topics ---------------------------------------------------------------------
expect_rc 0 "create" $T "$EDDY" topics create clicks --partitions 3 --config retention.ms=3600000 --broker "$B"
expect_rc 1 "duplicate create" $T "$EDDY" topics create clicks --partitions 3 --broker "$B"
expect_err "topic 'clicks' already exists"
expect_rc 0 "create single" $T "$EDDY" topics create single --broker "$B"
expect_rc 2 "create with 0 partitions" $T "$EDDY" topics create bad --partitions 0 --broker "$B"
expect_rc 1 "create with an unknown config" $T "$EDDY" topics create bad --config no.such.config=1 --broker "$B"
expect_err "invalid config"
expect_rc 0 "list" $T "$EDDY" topics list --broker "$B"
[ "$(cat "$work/out")" = "$(printf 'clicks\nsingle')" ] || fail "list printed: $(cat "$work/out")"

expect_rc 0 "describe" $T "$EDDY" topics describe clicks --broker "$B"
grep -q '^Partitions: 3$' "$work/out" || fail "describe: no 'Partitions: 3' in: $(cat "$work/out")"
[ "$(grep -cE '^ +[0-2] +[0-9]+ ' "$work/out")" = 3 ] || fail "describe: want 3 partition rows: $(cat "$work/out")"
grep -qE '^  retention.ms=3600000 +\(topic\)$' "$work/out" || fail "describe: retention.ms override missing: $(cat "$work/out")"
expect_rc 1 "describe unknown" $T "$EDDY" topics describe nope --broker "$B"
expect_err "topic 'nope' does not exist"

# ---- produce / consume: text mode, byte-exact, in order (one partition) -----------
"$PY" - "$work/in.txt" <<'EOF'
import sys
lines = [b"plain", b"with space and tab\there", b"\xff\xfe not utf-8 \x80", b"caf\xc3\xa9 \xe2\x82\xac",
         b"cr at end\r", b"x" * 5000, b"quote\" backslash\\ nul\x00byte"]
lines += [b"line-%06d" % i for i in range(2000)]
open(sys.argv[1], "wb").write(b"\n".join(lines) + b"\n")
EOF
expect_rc 0 "produce text" $T "$EDDY" produce --topic single --acks 1 --broker "$B" <"$work/in.txt"
expect_err "2007 record(s) delivered to 'single', 0 failed"
expect_rc 0 "consume text" $T "$EDDY" consume --topic single --from-beginning --exit-at-end --broker "$B"
cmp -s "$work/out" "$work/in.txt" || fail "consumed bytes differ from produced bytes"
expect_err "2007 record(s) from 'single'"

# empty lines are skipped, a last line without '\n' is a record
printf 'a\n\nb' >"$work/empty.txt"
expect_rc 0 "produce empty lines" $T "$EDDY" produce --topic single --acks 0 --broker "$B" <"$work/empty.txt"
expect_err "2 record(s) delivered"; expect_err "1 empty line(s) skipped"

# --max-messages, --partition/--offset, --offset -N
expect_rc 0 "max-messages" $T "$EDDY" consume --topic single --from-beginning --max-messages 2 --broker "$B"
[ "$(cat "$work/out")" = "$(printf 'plain\nwith space and tab\there')" ] || fail "max-messages output: $(cat "$work/out")"
expect_rc 0 "partition+offset" $T "$EDDY" consume --topic single --partition 0 --offset 7 --max-messages 1 --broker "$B"
[ "$(cat "$work/out")" = "line-000000" ] || fail "offset 7: $(cat "$work/out")"
wait_until 10 "acks=0 records to land" sh -c "\"$EDDY\" topics describe single --broker $B | grep -qE '^ +0 .* 2009\$'"
expect_rc 0 "offset -2" $T "$EDDY" consume --topic single --offset -2 --exit-at-end --broker "$B"
[ "$(cat "$work/out")" = "$(printf 'a\nb')" ] || fail "offset -2: $(cat "$work/out")"

# ---- keys, headers, --json ---------------------------------------------------------
"$PY" - "$work/kv.txt" <<'EOF'
import sys
out = [b"user%d|event %d \xc3\xa9" % (i % 17, i) for i in range(300)]
out += [b"no separator here", b"|empty key", b"bin\xffkey|v\xfe"]
open(sys.argv[1], "wb").write(b"\n".join(out) + b"\n")
EOF
expect_rc 0 "produce keys+headers" $T "$EDDY" produce --topic clicks --key-separator '|' \
  --header src=cli --header 'note=a=b' --header empty= --broker "$B" <"$work/kv.txt"
expect_err "303 record(s) delivered"; expect_err "1 line(s) without the key separator"
expect_rc 0 "consume json" $T "$EDDY" consume --topic clicks --from-beginning --exit-at-end --json --broker "$B"
cp "$work/out" "$work/json.txt"
"$PY" - "$work/kv.txt" "$work/json.txt" <<'EOF' || fail "json check failed"
import json, sys, time, zlib
def dec(s):
    return None if s is None else s.encode("utf-8", "surrogateescape")
want = []
for line in open(sys.argv[1], "rb").read().split(b"\n")[:-1]:
    k, sep, v = line.partition(b"|")
    want.append((k, v) if sep else (None, line))
got, last = [], {}
now = time.time() * 1000
for text in open(sys.argv[2], "rb").read().split(b"\n")[:-1]:
    o = json.loads(text)
    assert set(o) == {"topic", "partition", "offset", "timestamp", "timestamp_type", "key", "value", "headers"}, o
    assert o["topic"] == "clicks" and 0 <= o["partition"] < 3, o
    assert o["offset"] == last.get(o["partition"], -1) + 1, ("offsets not dense", o)
    last[o["partition"]] = o["offset"]
    assert o["timestamp_type"] == "create" and now - 600000 < o["timestamp"] <= now + 1000, o
    assert o["headers"] == [["src", "cli"], ["note", "a=b"], ["empty", ""]], o["headers"]
    k, v = dec(o["key"]), dec(o["value"])
    if k:  # librdkafka's consistent_random: crc32(key) % partitions
        assert o["partition"] == zlib.crc32(k) % 3, ("key in wrong partition", o)
    got.append((k, v))
assert sorted(got, key=repr) == sorted(want, key=repr), "records differ"
# the key that is not UTF-8 and the empty key
assert (b"bin\xffkey", b"v\xfe") in got and (b"", b"empty key") in got
raw = open(sys.argv[2], "rb").read()
assert b'"key":"bin\\udcffkey"' in raw, "non-UTF-8 byte not escaped as \\udcff"
print("json ok: %d records" % len(got))
EOF
expect_rc 0 "consume key-separator" $T "$EDDY" consume --topic clicks --partition 0 --from-beginning --exit-at-end --key-separator '=>' --broker "$B"
grep -qE '^user[0-9]+=>event [0-9]+ ' "$work/out" || fail "key-separator output: $(head -3 "$work/out")"

# ---- kcat interop: what eddy produced, kcat reads byte-exact, and back ---------------
if command -v kcat >/dev/null; then
  expect_rc 0 "kcat consume" $T kcat -b "$B" -C -t single -p 0 -o beginning -c 2007 -e -q -D '\n'
  cmp -s "$work/out" "$work/in.txt" || fail "kcat read different bytes than eddy produced"
  printf 'k1:from kcat\nk2:second\n' >"$work/kc.txt"
  expect_rc 0 "kcat produce" $T kcat -b "$B" -P -t kc -K : -H h=1 <"$work/kc.txt"
  expect_rc 0 "consume kcat's" $T "$EDDY" consume --topic kc --from-beginning --exit-at-end --json --broker "$B"
  grep -qF '"key":"k1","value":"from kcat","headers":[["h","1"]]' "$work/out" || fail "kcat record: $(cat "$work/out")"
fi

# ---- --group: subscribe under exactly that group, commit, resume -------------------------
seq 1 100 >"$work/seq.txt"
expect_rc 0 "create grouped" $T "$EDDY" topics create grouped --partitions 3 --broker "$B"
expect_rc 0 "produce grouped" $T "$EDDY" produce --topic grouped --broker "$B" <"$work/seq.txt"
expect_rc 0 "group first half" $T "$EDDY" consume --topic grouped --group it-cli --from-beginning --max-messages 40 --broker "$B"
cp "$work/out" "$work/g1.txt"
[ "$(wc -l <"$work/g1.txt")" = 40 ] || fail "group consumer read $(wc -l <"$work/g1.txt") records, want 40"
expect_rc 0 "group resumes" $T "$EDDY" consume --topic grouped --group it-cli --from-beginning --exit-at-end --broker "$B"
[ "$(cat "$work/g1.txt" "$work/out" | sort -n)" = "$(cat "$work/seq.txt")" ] \
  || fail "the group did not resume exactly after its committed offsets"

# ---- errors ---------------------------------------------------------------------------
expect_rc 2 "consume without --topic" $T "$EDDY" consume --broker "$B"
expect_err "--topic is required"
expect_rc 2 "produce without --topic" $T "$EDDY" produce --broker "$B" </dev/null
expect_rc 1 "consume unknown topic" $T "$EDDY" consume --topic nope --broker "$B"
expect_err "topic 'nope' does not exist"
expect_rc 1 "consume missing partition" $T "$EDDY" consume --topic clicks --partition 7 --broker "$B"
expect_err "no partition 7"
expect_rc 2 "group with partition" $T "$EDDY" consume --topic clicks --group g --partition 1 --broker "$B"
expect_rc 2 "bad acks" $T "$EDDY" produce --topic clicks --acks 2 --broker "$B" </dev/null
expect_rc 2 "unknown flag" $T "$EDDY" consume --topic clicks --no-such-flag
echo x >"$work/x.txt"
expect_rc 1 "produce to a missing partition" $T "$EDDY" produce --topic clicks --partition 9 --delivery-timeout 5s --broker "$B" <"$work/x.txt"
expect_err "1 failed"; expect_err "first failure"
expect_rc 0 "help" "$EDDY" produce --help
grep -q -- '--key-separator' "$work/out" || fail "produce --help lacks --key-separator"

# unreachable broker: a clear message, exit 1, quickly (not after --timeout)
dead=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start=$(date +%s)
expect_rc 1 "list on a dead port" $T "$EDDY" topics list --broker "127.0.0.1:$dead"
expect_err "cannot reach broker 127.0.0.1:$dead"
[ $(( $(date +%s) - start )) -le $(awk "BEGIN{print int(10 * $MULT)}") ] || fail "unreachable broker took too long to report"

# SIGINT ends a waiting consumer cleanly (exit 0)
"$EDDY" consume --topic clicks --broker "$B" >"$work/sig.out" 2>"$work/sig.err" &
cpid=$!
# connected to the broker => past signal set-up (a connection is made only after it)
wait_until 10 "the consumer to connect" sh -c "ss -Htnp state established '( dport = :$port )' | grep -q 'pid=$cpid,'"
kill -INT "$cpid"
rc=0; wait_until 10 "the consumer to exit on SIGINT" sh -c "! kill -0 $cpid 2>/dev/null"
wait "$cpid" || rc=$?
[ "$rc" = 0 ] || fail "consumer exit status $rc after SIGINT"

# ---- delete -----------------------------------------------------------------------------
expect_rc 0 "delete" $T "$EDDY" topics delete clicks --broker "$B"
expect_rc 0 "list after delete" $T "$EDDY" topics list --broker "$B"
grep -qx clicks "$work/out" && fail "clicks still listed after delete"
expect_rc 1 "delete again" $T "$EDDY" topics delete clicks --broker "$B"
expect_err "topic 'clicks' does not exist"

kill -TERM "$broker_pid"
wait_until 20 "the broker to exit on SIGTERM" sh -c "! kill -0 $broker_pid 2>/dev/null"
rc=0; wait "$broker_pid" || rc=$?
broker_pid=""
[ "$rc" = 0 ] || fail "broker exit status $rc after SIGTERM"
echo "ok: it_cli"

#!/usr/bin/env bash
# README command one: installs what is missing, builds, starts the whole system
# with `eddy up` in a temporary directory, and runs the talk's pipeline with
# visible progress: generated click logs -> clicklog job -> Avro topic ->
# clicks-to-events job -> event store -> training (plus a retraining schedule)
# -> recommendations over HTTP. Then it stops everything and says how to keep
# it running. Ports: the defaults of `eddy up` (9092, 8085, 8081, 7070, 7077,
# 8000 on 127.0.0.1); set EDDY_DEMO_CONFIG to a properties file to change them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh release

EDDY=$PWD/build/eddy
data=$(mktemp -d /tmp/eddy-demo-XXXXXX)
up_pid=""
cleanup() {
  if [ -n "$up_pid" ] && kill -0 "$up_pid" 2>/dev/null; then
    kill -TERM "$up_pid" 2>/dev/null || true
    wait "$up_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT INT TERM

echo "== eddy up --data $data"
conf=()
if [ -n "${EDDY_DEMO_CONFIG:-}" ]; then
  conf=(--config "$EDDY_DEMO_CONFIG")
else
  # the default ports, unless one is taken on this machine: then free ones
  /usr/bin/python3 - "$data.properties" <<'PY'
import socket, sys
defaults = {"broker": 9092, "broker.http": 8085, "registry": 8081, "eventserver": 7070, "driver": 7077, "serve": 8000}
def free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return s.getsockname()[1]
        except OSError:
            return None
ports = {k: free(p) for k, p in defaults.items()}
if any(v is None for v in ports.values()):
    ports = {k: free(0) for k in defaults}
    print("   (a default port is taken on this machine; using free ports instead)")
with open(sys.argv[1], "w") as f:
    f.write("".join("%s.port = %d\n" % kv for kv in ports.items()))
PY
  conf=(--config "$data.properties")
fi
"$EDDY" up --data "$data" "${conf[@]}" 2>"$data.up.log" &
up_pid=$!
for _ in $(seq 1 300); do
  grep -q "all .* roles are up" "$data.up.log" 2>/dev/null && break
  kill -0 "$up_pid" 2>/dev/null || { cat "$data.up.log"; exit 1; }
  sleep 0.1
done
grep -q "all .* roles are up" "$data.up.log" || { cat "$data.up.log"; echo "eddy up did not start"; exit 1; }
sed 's/^/   /' "$data.up.log"

/usr/bin/python3 scripts/pipeline.py --eddy "$EDDY" --data "$data" --jobs build/jobs \
  --lines "${EDDY_DEMO_LINES:-20000}" --users 1000 --items 400

echo
echo "== eddy status --data $data"
"$EDDY" status --data "$data"

echo
echo "== stopping eddy up (SIGTERM)"
kill -TERM "$up_pid"
wait "$up_pid"
up_pid=""
tail -3 "$data.up.log" | sed 's/^/   /'
ep() { /usr/bin/python3 -c "import json,sys; print(json.load(open('$data/run/endpoints.json'))[sys.argv[1]])" "$1"; }
cat <<EOT

The demo's data is kept in $data. To keep the system running:
  $EDDY up --data $data ${conf[*]}   # all roles again, same data; ^C stops them in order
  $EDDY status --data $data      # roles, topics, groups and lag, jobs, the model
Where to look:
  $data/logs/<role>.log           # one log per role, rotated by size
  curl -s -XPOST $(ep serve)/queries.json -d '{"user":"U7","num":5}'
  curl -s $(ep broker_http)/v3/kafka/local/consumer/eddy-job-clicklog/status   # Burrow-style lag
  kcat -b $(ep broker) -L                                                  # any Kafka tool works
EOT

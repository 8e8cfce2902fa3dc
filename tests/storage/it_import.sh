#!/usr/bin/env bash
# eddy import/export end to end: MovieLens u.data (tab-separated user item
# rating timestamp) when present, else a generated file of the same shape.
# Checks: every row imported once, a re-import adds none, export writes every
# event and its re-import adds none, a bad JSON line is rejected with its
# reason while the good ones land.
set -euo pipefail
EDDY=${EDDY:?} SRC=${EDDY_SOURCE_DIR:?}
tmp=$(mktemp -d /tmp/eddy-it-import-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

data=""
for d in "$SRC/../shared/data/ml-100k" "$SRC/../../shared/data/ml-100k"; do
  [ -f "$d/u.data" ] && data="$d/u.data" && break
done
if [ -n "$data" ]; then
  rows=100000
  echo "using $data"
else
  scale=${EDDY_TEST_SCALE:-1}
  rows=$(awk -v s="$scale" 'BEGIN { n = int(100000 * s); if (n < 1000) n = 1000; print n }')
  echo "ml-100k not found: generating $rows rows"
  data="$tmp/u.data"
  awk -v n="$rows" 'BEGIN { for (i = 0; i < n; i++)
      printf "%d\t%d\t%d\t%d\n", i % 943 + 1, int(i / 943) + 1, i % 5 + 1, 874724710 + i }' > "$data"
fi

csv=(--csv user,item,rating,timestamp --delimiter '\t' --event rate)
out=$("$EDDY" import --app ml --create-app --data "$tmp/d" --input "$data" "${csv[@]}" 2>/dev/null)
echo "$out"
grep -q "^imported $rows events, 0 duplicates skipped, 0 rejected" <<<"$out" || fail "first import: $out"

out=$("$EDDY" import --app ml --data "$tmp/d" --input "$data" "${csv[@]}" 2>/dev/null)
echo "$out"
grep -q "^imported 0 events, $rows duplicates skipped, 0 rejected" <<<"$out" || fail "re-import: $out"

"$EDDY" export --app ml --data "$tmp/d" --output "$tmp/ml.jsonl" 2>/dev/null
[ "$(wc -l < "$tmp/ml.jsonl")" -eq "$rows" ] || fail "export wrote $(wc -l < "$tmp/ml.jsonl") lines"
head -1 "$tmp/ml.jsonl" | grep -q '"event":"rate","entityType":"user"' || fail "export format"
grep -q '"properties":{"rating":[1-5]}' "$tmp/ml.jsonl" || fail "rating property"
"$EDDY" export --app ml --data "$tmp/d" --output "$tmp/ml.jsonl" 2>/dev/null \
  && fail "export overwrote an existing file"

out=$("$EDDY" import --app ml --data "$tmp/d" --input "$tmp/ml.jsonl" 2>/dev/null)
grep -q "^imported 0 events, $rows duplicates skipped" <<<"$out" || fail "re-import of export: $out"

# JSON lines into a second app: a bad line is rejected with its reason, blank lines skipped
cat > "$tmp/mixed.jsonl" <<'JSON'
{"event":"view","entityType":"user","entityId":"u1","targetEntityType":"item","targetEntityId":"i1","eventTime":"2024-01-01T00:00:00.000Z"}

{"event":"view","entityType":"user","entityId":"u1","eventTime":"not a time"}
{"event":"$set","entityType":"user","entityId":"u1","properties":{"age":30}}
{"eventId":"fixed-1","event":"buy","entityType":"user","entityId":"u2"}
JSON
out=$("$EDDY" import --app other --create-app --data "$tmp/d" --input "$tmp/mixed.jsonl" 2>/dev/null)
echo "$out"
grep -q "^imported 3 events, 0 duplicates skipped, 1 rejected" <<<"$out" || fail "mixed: $out"
grep -q "line 3.*Fail to extract eventTime not a time" <<<"$out" || fail "reason: $out"
out=$("$EDDY" import --app other --data "$tmp/d" --input "$tmp/mixed.jsonl" 2>/dev/null)
grep -q "^imported 0 events, 3 duplicates skipped, 1 rejected" <<<"$out" || fail "mixed again: $out"

out=$("$EDDY" store check --data "$tmp/d" 2>/dev/null) || fail "store check: $out"
grep -q "^rocksdb store: $((rows + 3)) events, .* 0 problems" <<<"$out" || fail "store check: $out"

"$EDDY" import --app nosuch --data "$tmp/d" --input "$tmp/mixed.jsonl" 2>/dev/null \
  && fail "import into a missing app succeeded"
echo "it_import: ok"

#!/usr/bin/python3
"""End-to-end tests of the shipped clickstream jobs, each through its own
broker, schema registry, driver (embedded event store) and worker:

  clicklog          generated lines + hand-written malformed ones: every click
                    is one Avro record (decoded here independently of the C
                    encoder) keyed by user, every bad line is in the DLQ with
                    its reason, the counters agree;
  clicks_to_events  gen -> clicklog -> clicks-to-events, driver kill -9
                    mid-stream: each click exactly once in the store, counts
                    per event type match; bad
                    frames to the DLQ; older and newer writer schemas resolve;
                    clicks replayed as an at-least-once re-run of clicklog
                    would (same eddy.source) still land once;
  counts            Avro clicks -> counts with a driver kill -9 mid-stream:
                    every window's count exact, none twice; late records
                    counted, not added.
Usage: it_jobs.py clicklog|clicks_to_events|counts"""
import collections
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobslib as J  # noqa: E402
from jobslib import B, C, check, wait_for  # noqa: E402

N = max(300, int(3000 * J.SCALE))

BAD = [  # (line, a word of the reason)
    ("not-a-time" + B + "userid=U1" + B + "data_array" + C + "event=view" + B + "item=I1" + C, "timestamp"),
    ("2016-04-27T19:00:00-05:00" + B + "userid" + B + "data_array" + C + "event=view" + C, "without '='"),
    ("2016-04-27T19:00:00-05:00" + B + "userid=U1" + B + "data_array" + C + "event=view" + B + "item=I1", "closing ^C"),
    ("2016-04-27T19:00:00-05:00" + B + "=x" + B + "userid=U1" + B + "event=view", "empty key"),
    ("2016-04-27T19:00:00-05:00" + B + "userid=U1" + B + "userid=U2" + B + "event=view", "duplicate key"),
    ("2016-04-27T19:00:00-05:00" + B + "event=view" + B + "item=I3", "missing userid"),
    ("2016-04-27T19:00:00-05:00" + B + "userid=U1" + B + "data_array" + C + "event=view" + B + "subevent=x" + C, "subevent"),
    ("2016-04-27T19:00:00-05:00" + B + "userid=U1" + B + "data_array" + C + "event=rate" + B + "item=I1" + B + "rating=5.5" + C, "rating"),
    ("2016-04-27T19:00:00-05:00" + B + "userid=U1" + B + "data_array" + C + "item=I1" + C, "no event"),
]


def start_clicklog(c, extra=()):
    c.start_driver()
    c.start_worker(slots=2)
    c.submit_job("clicklog", "clicklog", "lines",
                 {"output": "clicks", "dlq": "clicks-dlq", "registry": c.registry},
                 "--max-records-per-batch", str(max(100, N // 4)), *extra)


def expected_clicks(lines):
    return [k for l in lines for k in J.clicks_of(l)]


def clicklog(c):
    lines = c.gen("lines", N, seed=11)
    c.produce([b for b, _ in BAD])
    start_clicklog(c)
    total = N + len(BAD)
    st = c.wait_records("clicklog", total, timeout=60)
    exp = expected_clicks(lines)
    ctr = st["counters"]
    check(ctr.get("lines") == total, "lines counter %s == %d" % (ctr.get("lines"), total))
    check(ctr.get("malformed") == len(BAD), "malformed counter %s == %d" % (ctr.get("malformed"), len(BAD)))
    check(ctr.get("clicks") == len(exp), "clicks counter %s == %d" % (ctr.get("clicks"), len(exp)))
    # Avro output: each record decodes (independent reader), schema id is the registry's
    sid = json.loads(J.rtlib.urllib.request.urlopen(c.registry + "/subjects/clicks-value/versions/latest").read())["id"]
    recs = c.consume("clicks", len(exp))
    check(len(recs) == len(exp), "%d Avro clicks on the topic, parser says %d" % (len(recs), len(exp)))
    got = collections.Counter()
    for r in recs:
        s, d = J.decode_click(J.raw(r["value"]))
        check(s == sid, "schema id %d == registry's %d" % (s, sid)) or sys.exit(1)
        check(r["key"] == d["userid"], "keyed by userid (%s vs %s)" % (r["key"], d["userid"])) or sys.exit(1)
        got[(d["ts"], d["userid"], d["event"], d["item"], d["rating"], d["attrs"].get("session"))] += 1
    want = collections.Counter((k["ts"], k["userid"], k["event"], k.get("item"),
                                int(k["rating"]) if "rating" in k else None, k.get("session")) for k in exp)
    check(got == want, "decoded clicks equal the lines' clicks (%d differ)" % sum(((got - want) + (want - got)).values()))
    # and eddy consume --avro (avro-c via the registry) agrees
    r = c.run([J.EDDY, "consume", "--topic", "clicks", "--broker", c.broker_addr, "--avro",
               "--registry", c.registry, "--from-beginning", "--exit-at-end", "--quiet"])
    viaavro = collections.Counter()
    for l in r.stdout.split("\n"):
        if l.strip():
            d = json.loads(l)
            item = d["item"] and d["item"]["string"]
            rating = d["rating"] and d["rating"]["int"]
            viaavro[(d["ts"], d["userid"], d["event"], item, rating, d["attrs"].get("session"))] += 1
    check(viaavro == want, "eddy consume --avro decodes the same clicks (%d vs %d)" % (sum(viaavro.values()), sum(want.values())))
    # DLQ: every bad line, unchanged, with its reason
    dlq = c.consume("clicks-dlq", len(BAD))
    check(len(dlq) == len(BAD), "%d DLQ records for %d bad lines" % (len(dlq), len(BAD)))
    by_value = {r["value"]: r for r in dlq}
    for line, word in BAD:
        r = by_value.get(line)
        if not check(r is not None, "bad line in the DLQ: %r" % line):
            continue
        h = dict(r["headers"])
        check(word in h.get("eddy.error", ""), "reason %r names %r" % (h.get("eddy.error"), word))
        check(h.get("eddy.source", "").startswith("lines/"), "source header %r" % h.get("eddy.source"))


def clicks_to_events(c):
    lines = c.gen("lines", N, seed=12)
    exp_clicks = expected_clicks(lines)
    start_clicklog(c)
    # clicklog first, to the end: its topic output is at-least-once, so the
    # driver is killed below only once clicklog has nothing left to re-run
    c.wait_records("clicklog", N, timeout=60)
    c.submit_job("clicks_to_events", "c2e", "clicks", {"registry": c.registry, "dlq": "c2e-dlq"},
                 "--max-records-per-batch", str(max(50, N // 15)))
    # Other writers of the same topic: an older schema without item/rating, a
    # newer one with an extra field and no subevent/attrs, and broken frames.
    base = {"type": "record", "name": "Click", "namespace": "eddy.clickstream"}
    old = dict(base, fields=[{"name": "ts", "type": "long"}, {"name": "userid", "type": "string"},
                             {"name": "event", "type": "string"}])
    new = dict(base, fields=[{"name": "ts", "type": "long"}, {"name": "userid", "type": "string"},
                             {"name": "event", "type": "string"},
                             {"name": "item", "type": ["null", "string"], "default": None},
                             {"name": "rating", "type": ["null", "int"], "default": None},
                             {"name": "referrer", "type": "string", "default": ""}])
    old_id = J.register(c.registry, "other-old-value", json.dumps(old))
    new_id = J.register(c.registry, "other-new-value", json.dumps(new))
    hdr = lambda i: b"\x00" + i.to_bytes(4, "big")  # noqa: E731
    old_rec = hdr(old_id) + J._wlong(1461801600000) + J._wstr("UOLD") + J._wstr("view")
    new_rec = (hdr(new_id) + J._wlong(1461801600001) + J._wstr("UNEW") + J._wstr("rate") +
               b"\x02" + J._wstr("INEW") + b"\x02" + J._wlong(5) + J._wstr("https://x"))
    bad = [b"\x01" + new_rec[1:], hdr(99999) + new_rec[5:], hdr(new_id) + b"\x02", b"\x00\x00",
           new_rec + b"\x00"]
    J.produce_bytes(c.broker_addr, "clicks", [old_rec, new_rec] + bad, partition=0)
    # clicklog's topic output is at-least-once: replay clicks as a re-run of one
    # of its batches would (same bytes, same eddy.source header, new offsets).
    # clicks-to-events keys event ids on that header, so the store must still
    # hold each click once.
    stamped = [r for r in c.consume("clicks", 0) if dict(r["headers"]).get("eddy.source")]
    check(len(stamped) >= len(exp_clicks), "clicklog stamps eddy.source on every click (%d of %d)"
          % (len(stamped), len(exp_clicks)))
    replay = stamped[:60]
    J.produce_bytes(c.broker_addr, "clicks", [J.raw(r["value"]) for r in replay],
                    headers=[[(k, J.raw(v)) for k, v in r["headers"]] for r in replay])
    total = len(exp_clicks) + 2 + len(bad) + len(replay)
    # kill -9 the driver mid-stream; the restarted driver re-runs what was
    # planned and not committed: every event must still be there exactly once
    def some():
        st0 = c.status("c2e")
        return st0 if st0 and st0.get("records", 0) >= total // 4 else None
    st0 = wait_for(some, "c2e batches", 60)
    c.kill9("driver")
    check(st0["records"] < total, "driver killed mid-stream (%d of %d records)" % (st0["records"], total))
    c.start_driver()
    st = c.wait_records("c2e", total, timeout=60)
    ctr = st["counters"]
    want = collections.Counter()
    for k in exp_clicks:
        if k["event"] in ("view", "buy", "rate") and k.get("item"):
            want[(k["event"], k["userid"], k["item"], k["ts"], int(k["rating"]) if k["event"] == "rate" else None)] += 1
    want[("rate", "UNEW", "INEW", 1461801600001, 5)] += 1
    # the job emits the replayed clicks again (the counter sees them); the store dedupes
    check(ctr.get("events") == sum(want.values()) + len(replay),
          "events counter %s == %d + %d replayed" % (ctr.get("events"), sum(want.values()), len(replay)))
    check(ctr.get("no_item") == 1, "the old-schema click without item is counted: %s" % ctr)
    check(ctr.get("bad") == len(bad), "bad frames counted: %s" % ctr)
    dlq = c.consume("c2e-dlq", len(bad))
    reasons = sorted(dict(r["headers"]).get("eddy.error", "") for r in dlq)
    # the DLQ is a topic output (at-least-once: a batch re-run after the kill
    # may write a record twice); every bad frame is there, nothing else
    check({J.raw(r["value"]) for r in dlq} == set(bad), "the bad frames in the DLQ: %s" % reasons)
    for word in ("magic", "unknown schema id", "does not decode", "short frame", "trailing bytes"):
        check(any(word in r for r in reasons), "a DLQ reason says %r: %s" % (word, reasons))
    c.stop("driver")
    events = c.export_events()
    got = collections.Counter()
    for e in events:
        check(e["entityType"] == "user" and e.get("targetEntityType") == "item", "entity types %s" % e) or sys.exit(1)
        rating = (e.get("properties") or {}).get("rating")
        got[(e["event"], e["entityId"], e["targetEntityId"], J.ts_ms(e["eventTime"]), rating)] += 1
    check(got == want, "store holds each click exactly once (%d extra, %d missing)" %
          (sum((got - want).values()), sum((want - got).values())))
    by_type = collections.Counter(e["event"] for e in events)
    want_type = collections.Counter(k[0] for k in want.elements())
    check(by_type == want_type, "counts by event type %s == %s" % (dict(by_type), dict(want_type)))


T, S, D, LATE = 10000, 30000, 10000, 2000  # tumbling 10 s, sliding 30 s every 10 s, lateness 2 s


def windows(ts):
    out = [("tumbling", ts // T * T)]
    last = ts // D * D
    out += [("sliding", s) for s in range(last - S + D, last + 1, D)]
    return out


def counts(c):
    lines = J.rtlib.subprocess.run([J.EDDY, "gen", "clicklog", "--output", "-", "--lines", str(N),
                                    "--seed", "13", "--users", "40"], capture_output=True,
                                   text=True, check=True).stdout.splitlines()
    clicks = expected_clicks(lines)
    sid = J.register(c.registry, "clicks-value", J.click_schema())
    enc = [J.encode_click(sid, k) for k in clicks]
    half = len(enc) // 2
    last_ts = clicks[-1]["ts"]
    flush = {"ts": last_ts + 3600 * 1000, "userid": "ZZ", "event": "flush"}
    late = {"ts": clicks[0]["ts"], "userid": clicks[0]["userid"], "event": "view"}
    J.produce_bytes(c.broker_addr, "clicks", enc[:half], partition=0)
    c.start_driver()
    c.start_worker(slots=2)
    c.submit_job("counts", "counts", "clicks",
                 {"registry": c.registry, "tumbling_ms": T, "sliding_ms": S, "slide_ms": D,
                  "lateness_ms": LATE}, "--max-records-per-batch", str(max(50, N // 20)))
    # kill -9 the driver mid-stream, with batches committed and more to come
    wait_for(lambda: (c.status("counts") or {}).get("records", 0) >= half // 3, "first batches", 60)
    c.kill9("driver")
    J.produce_bytes(c.broker_addr, "clicks", enc[half:] + [J.encode_click(sid, flush), J.encode_click(sid, late)],
                    partition=0)
    # then die once more at a known point: after the store commit, before the
    # commit record (the batch is recovered, not re-applied)
    c.start_driver(fault="after-store-commit")
    wait_for(lambda: c.procs["driver"].poll() is not None, "the driver to die at the fault", 60)
    check(c.procs["driver"].returncode == 86, "driver exited at the fault point")
    c.start_driver()
    st = c.wait_records("counts", len(enc) + 2, timeout=60)
    check(st["counters"].get("clicks") == len(enc) + 2, "clicks counter %s" % st["counters"])
    check(st["counters"].get("late") == 1, "the record behind the watermark is late: %s" % st["counters"])
    c.stop("driver")
    want = collections.Counter()
    for k in clicks:
        for kind, s in windows(k["ts"]):
            want[(k["userid"], k["event"], kind, s)] += 1
    got, seen = {}, collections.Counter()
    for e in c.export_events():
        if e["event"] != "window_count":
            continue
        p = e["properties"]
        key = (e["entityId"], p["event"], p["kind"], p["window_start"])
        seen[key] += 1
        got[key] = p["count"]
        check(p["window_end"] - p["window_start"] == (T if p["kind"] == "tumbling" else S), "window size %s" % p)
    dup = [k for k, n in seen.items() if n > 1]
    check(not dup, "%d windows reported twice, e.g. %s" % (len(dup), dup[:3]))
    check(set(got) == set(want), "window set: %d missing, %d extra" % (len(set(want) - set(got)), len(set(got) - set(want))))
    wrong = [(k, got[k], want[k]) for k in want if k in got and got[k] != want[k]]
    check(not wrong, "%d windows with wrong counts, e.g. %s" % (len(wrong), wrong[:3]))
    check(sum(v for (u, e, kind, s), v in got.items() if kind == "tumbling") == len(clicks),
          "tumbling counts add up to the clicks")
    check(st["counters"].get("windows") == len(got), "windows counter %s == %d" % (st["counters"].get("windows"), len(got)))


def main():
    mode = sys.argv[1]
    if mode == "counts":
        c = J.JobsCluster(mode, partitions=1, topic="clicks")
    else:
        c = J.JobsCluster(mode, partitions=2, topic="lines",
                          outputs=[("clicks", 2), ("clicks-dlq", 1), ("c2e-dlq", 1)])
    try:
        {"clicklog": clicklog, "clicks_to_events": clicks_to_events, "counts": counts}[mode](c)
    finally:
        c.close()
    J.rtlib.finish()


main()

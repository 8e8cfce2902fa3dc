#!/usr/bin/python3
"""The PredictionIO Event API of `eddy eventserver`, end to end, against both
engines: the embedded RocksDB store of --data DIR and Redis (--store
redis://...). Each check states the behaviour it pins (compat-apis.md A)."""
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eslib import (EDDY, Client, EventServer, Redis, TempDir, basic, eddy,  # noqa: E402
                   new_app, wait_for)

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what, flush=True)


def ev(event="view", etype="user", eid="u1", **kw):
    d = {"event": event, "entityType": etype, "entityId": eid}
    d.update(kw)
    return d


def suite(name, srv, key, key_view_only, data_dir):
    print("== suite", name, flush=True)
    c = Client(srv.port, key)
    anon = Client(srv.port)

    # --- status and auth (A.2, A.6)
    s, j = anon.req("GET", "/", auth=False)
    check((s, j) == (200, {"status": "alive"}), "GET / is alive: %r" % ((s, j),))
    s, j = anon.req("POST", "/events.json", ev(), auth=False)
    check((s, j) == (401, {"message": "Missing accessKey."}), "no key -> 401 Missing: %r" % ((s, j),))
    s, j = Client(srv.port, "nope").req("POST", "/events.json", ev())
    check((s, j) == (401, {"message": "Invalid accessKey."}), "bad key -> 401 Invalid: %r" % ((s, j),))
    s, j = anon.req("POST", "/events.json", ev(eid="basic"), auth=False, headers=basic(key))
    check(s == 201, "Basic auth accepted: %r" % ((s, j),))
    s, j = anon.req("POST", "/events.json", ev(), auth=False, headers={"Authorization": "Basic !!"})
    check((s, j) == (401, {"message": "Invalid accessKey."}), "malformed Basic -> 401: %r" % ((s, j),))
    s, j = Client(srv.port, key, "nochan").req("GET", "/events.json")
    check((s, j) == (401, {"message": "Invalid channel 'nochan'."}), "bad channel -> 401: %r" % ((s, j),))

    # --- single event: post, get, delete (A.3, A.6)
    body = ev("rate", "user", "u1", targetEntityType="item", targetEntityId="i1",
              properties={"rating": 4.5, "tags": ["a", "b"]}, eventTime="2014-09-09T16:17:42.937-08:00",
              prId="pr1")
    s, j = c.req("POST", "/events.json", body)
    check(s == 201 and isinstance(j, dict) and list(j) == ["eventId"] and j["eventId"], "POST -> 201 eventId: %r" % ((s, j),))
    eid = j["eventId"] if isinstance(j, dict) else ""
    s, raw, ctype = c.raw("GET", c.url("/events/%s.json" % eid))
    check(s == 200 and ctype == "application/json; charset=UTF-8", "GET by id 200 JSON: %r %r" % (s, ctype))
    if s == 200:
        check(list(raw) == ["eventId", "event", "entityType", "entityId", "targetEntityType",
                            "targetEntityId", "properties", "eventTime", "prId", "creationTime"],
              "PIO field order: %r" % list(raw))
        check(raw["eventTime"] == "2014-09-09T16:17:42.937-08:00", "offset kept: %r" % raw["eventTime"])
        check(raw["properties"] == {"rating": 4.5, "tags": ["a", "b"]}, "properties round trip")
    s, j = c.req("POST", "/events.json", ev("buy", eid="tz", eventTime="2015-01-02T03:04:05.678+0000"))
    check(s == 201, "Python SDK +0000 offset accepted: %r" % ((s, j),))
    s, j = c.req("POST", "/events.json", ev("buy", eid="tz2", eventTime="2015-01-02T03:04:05Z"))
    check(s == 201, "no-fraction time accepted: %r" % ((s, j),))
    s, j = c.req("POST", "/events.json", ev(eid=123))
    check(s == 201, "numeric entityId accepted: %r" % ((s, j),))
    s, j = c.req("DELETE", "/events/%s.json" % eid)
    check((s, j) == (200, {"message": "Found"}), "DELETE -> 200 Found: %r" % ((s, j),))
    s, j = c.req("DELETE", "/events/%s.json" % eid)
    check((s, j) == (404, {"message": "Not Found"}), "second DELETE -> 404: %r" % ((s, j),))
    s, j = c.req("GET", "/events/%s.json" % eid)
    check((s, j) == (404, {"message": "Not Found"}), "GET deleted -> 404: %r" % ((s, j),))

    # --- validation (A.5): 400 with a message, server keeps serving
    bad = [
        ("{not json", "malformed JSON"),
        (json.dumps({"entityType": "user", "entityId": "u"}), "missing event"),
        (json.dumps(ev(event="")), "empty event"),
        (json.dumps(ev(etype="")), "empty entityType"),
        (json.dumps(ev(event="$foo")), "unsupported reserved event"),
        (json.dumps(ev(etype="pio_user")), "reserved entityType"),
        (json.dumps(ev(event="$set", targetEntityType="item", targetEntityId="i")), "$set with target"),
        (json.dumps(ev(event="$unset")), "$unset without properties"),
        (json.dumps(ev(targetEntityType="item")), "target type without id"),
        (json.dumps(ev(properties=[1, 2])), "properties not an object"),
        (json.dumps(ev(properties={"$x": 1})), "reserved property key"),
        (json.dumps(ev(eventTime="2015-01-02 03:04:05")), "bad eventTime"),
        (json.dumps(ev(eventTime="2015-01-02T03:04:05")), "eventTime without offset"),
        (json.dumps(ev(event=["a"])), "event is an array"),
        (json.dumps(ev(etype={"a": 1})), "entityType is an object"),
        (json.dumps(ev(eid=True)), "entityId is a boolean"),
        (json.dumps(ev(eid=None)), "entityId is null"),
        (b'{"event":"view","entityType":"user","entityId":"\xff\xfe"}', "invalid UTF-8"),
        ("[1,2]", "an array where an object is expected"),
        ("", "empty body"),
    ]
    for body, what in bad:
        s, j = c.req("POST", "/events.json", body)
        check(s == 400 and isinstance(j, dict) and isinstance(j.get("message"), str) and j["message"],
              "400 with message for %s: %r" % (what, (s, j)))
    s, j = c.req("POST", "/events.json", json.dumps(ev(eventTime="2015-13-45T00:00:00Z")))
    check(s == 400 and "Fail to extract eventTime" in j.get("message", ""), "eventTime message: %r" % ((s, j),))
    s, j = c.req("POST", "/events.json", json.dumps(ev(etype="pio_pr")))
    check(s == 201, "pio_pr entityType is allowed: %r" % ((s, j),))
    s, j, _ = c.raw("POST", c.url("/events.json"), json.dumps(ev()), {"Content-Type": "text/plain"})
    check(s == 415, "text/plain body -> 415: %r" % s)
    s, j = anon.req("GET", "/", auth=False)
    check(s == 200, "still alive after bad input")

    # --- idempotency by eventId (A.8)
    s1, j1 = c.req("POST", "/events.json", ev(eventId="fixed-1", properties={"a": 1}))
    s2, j2 = c.req("POST", "/events.json", ev(eventId="fixed-1", properties={"a": 1}))
    check(s1 == 201 and (s2, j2) == (201, j1) and j1 == {"eventId": "fixed-1"}, "replay -> same 201: %r" % ((s1, j1, s2, j2),))
    s3, j3 = c.req("POST", "/events.json", ev(eventId="fixed-1", properties={"a": 2}))
    check(s3 == 409 and j3.get("message"), "same id other content -> 409: %r" % ((s3, j3),))
    s, j = c.req("GET", "/events/fixed-1.json")
    check(s == 200 and j["properties"] == {"a": 1}, "first write wins: %r" % ((s, j),))
    s, j = c.req("POST", "/events.json", ev(eventId="bad id!"))
    check(s == 400, "eventId outside [A-Za-z0-9_-] -> 400: %r" % ((s, j),))

    # --- access key limited to events (A.2)
    kv = Client(srv.port, key_view_only)
    s, j = kv.req("POST", "/events.json", ev("buy"))
    check((s, j) == (403, {"message": "buy events are not allowed"}), "whitelist 403: %r" % ((s, j),))
    s, j = kv.req("POST", "/events.json", ev("view", eid="wl"))
    check(s == 201, "whitelisted event accepted: %r" % ((s, j),))

    # --- batch (A.6)
    items = [ev("view", eid="b%d" % i, eventTime="2016-01-01T00:00:%02d.000Z" % i) for i in range(5)]
    items.insert(2, 42)
    items.insert(4, ev(event=""))
    s, j = kv.req("POST", "/batch/events.json", items + [ev("buy", eid="bx")])
    check(s == 200 and isinstance(j, list) and len(j) == 8, "batch 200 per item: %r" % ((s, j),))
    if s == 200 and isinstance(j, list) and len(j) == 8:
        check([x["status"] for x in j] == [201, 201, 400, 201, 400, 201, 201, 403], "per-item statuses: %r" % j)
        check(j[7]["message"] == "buy events are not allowed", "per-item 403 message")
        check(all("eventId" in x for x in j if x["status"] == 201), "201 items carry eventId")
        s2, j2 = kv.req("POST", "/batch/events.json", items + [ev("buy", eid="bx")])
        check(j2 == j, "same batch twice -> same answers (ids): %r" % j2)
    s, j = c.req("POST", "/batch/events.json", [ev(eid="x%d" % i) for i in range(51)])
    check((s, j) == (400, {"message": "Batch request must have less than or equal to 50 events"}), "51 items -> 400: %r" % ((s, j),))
    s, j = c.req("POST", "/batch/events.json", [])
    check((s, j) == (200, []), "[] -> 200 []: %r" % ((s, j),))
    s, j = c.req("POST", "/batch/events.json", {"a": 1})
    check(s == 400, "batch not an array -> 400: %r" % ((s, j),))
    s, j = c.req("POST", "/batch/events.json", "[{]")
    check(s == 400, "batch bad JSON -> 400: %r" % ((s, j),))
    s, j = c.req("POST", "/batch/events.json", [ev(eventId="dup", properties={"v": 1}),
                                                ev(eventId="dup", properties={"v": 1}),
                                                ev(eventId="dup", properties={"v": 2})])
    check(s == 200 and [x["status"] for x in j] == [201, 201, 409], "same id inside one batch: %r" % ((s, j),))

    # --- concurrent idempotency: 4 clients post the same 50-event batch
    batch = [ev("rate", "user", "cc%d" % i, targetEntityType="item", targetEntityId="i%d" % (i % 7),
                properties={"rating": i % 5}, eventTime="2017-03-04T05:06:%02d.000Z" % (i % 60))
             for i in range(50)]
    answers = [None] * 4

    def worker(k):
        cl = Client(srv.port, key, "conc")
        answers[k] = [cl.req("POST", "/batch/events.json", batch) for _ in range(3)]
        cl.close()
    s, _ = (0, None)
    r = eddy("channel", "new", "app1", "conc", *srv.args())
    check("Created channel conc" in r.stdout, "channel new through the running server: %r" % r.stdout)
    ths = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    [t.start() for t in ths]
    [t.join() for t in ths]
    flat = [a for per in answers for a in per]
    check(all(s == 200 for s, _ in flat), "concurrent batches all 200")
    check(all(j == flat[0][1] for _, j in flat), "concurrent batches all got the same ids")
    cc = Client(srv.port, key, "conc")
    s, j = cc.req("GET", "/events.json", params=[("limit", "-1")])
    check(s == 200 and len(j) == 50 and len({x["eventId"] for x in j}) == 50,
          "each of 50 events stored once after 12 posts: %r" % (len(j) if isinstance(j, list) else j,))
    s, j = c.req("GET", "/events.json", params=[("entityId", "cc1")])
    check((s, j) == (404, {"message": "Not Found"}), "channel data is not in the default channel: %r" % ((s, j),))

    # --- GET /events.json filters (A.6)
    fc = Client(srv.port, key, "filters")
    eddy("channel", "new", "app1", "filters", *srv.args())
    evs = []
    for i in range(30):
        evs.append(ev(["view", "buy", "rate"][i % 3], "user", "u%d" % (i % 3),
                       targetEntityType="item", targetEntityId="i%d" % (i % 5),
                       eventTime="2018-01-01T00:00:%02d.000Z" % i, properties={"n": i}))
    for k in range(0, 30, 10):
        s, j = fc.req("POST", "/batch/events.json", evs[k:k + 10])
        check(s == 200 and all(x["status"] == 201 for x in j), "filter fixture stored")
    s, j = fc.req("GET", "/events.json")
    check(s == 200 and len(j) == 20, "default limit 20: %r" % (len(j) if isinstance(j, list) else j,))
    check(s == 200 and [x["properties"]["n"] for x in j] == list(range(20)), "ordered by eventTime ascending")
    s, j = fc.req("GET", "/events.json", params=[("limit", "-1")])
    check(s == 200 and len(j) == 30, "limit -1 = all")
    s, j = fc.req("GET", "/events.json", params=[("limit", "0")])
    check((s, j) == (404, {"message": "Not Found"}), "limit 0 -> 404: %r" % ((s, j),))
    s, j = fc.req("GET", "/events.json", params=[("limit", "abc")])
    check(s == 400, "non-integer limit -> 400: %r" % ((s, j),))
    s, j = fc.req("GET", "/events.json", params=[("startTime", "2018-01-01T00:00:10.000Z"),
                                                  ("untilTime", "2018-01-01T00:00:15Z"), ("limit", "-1")])
    check(s == 200 and [x["properties"]["n"] for x in j] == [10, 11, 12, 13, 14], "start inclusive, until exclusive: %r" % ((s, j),))
    s, j = fc.req("GET", "/events.json", params=[("startTime", "2018-01-01T01:00:10.000+01:00"), ("limit", "-1")])
    check(s == 200 and j[0]["properties"]["n"] == 10, "times compared as instants")
    s, j, _ = fc.raw("GET", fc.url("/events.json", [("limit", "-1")]) + "&startTime=2018-01-01T01:00:10.000+01:00")
    check(s == 200 and j[0]["properties"]["n"] == 10, "an unencoded '+' (a space) in a time is read as '+': %r" % s)
    s, j = fc.req("GET", "/events.json", params=[("startTime", "yesterday")])
    check(s == 400, "bad startTime -> 400: %r" % ((s, j),))
    s, j = fc.req("GET", "/events.json", params=[("entityType", "user"), ("entityId", "u1"), ("limit", "-1")])
    check(s == 200 and len(j) == 10 and all(x["entityId"] == "u1" for x in j), "entity filter")
    s, j = fc.req("GET", "/events.json", params=[("entityId", "u2"), ("limit", "-1")])
    check(s == 200 and len(j) == 10 and all(x["entityId"] == "u2" for x in j), "entityId alone")
    s, j = fc.req("GET", "/events.json", params=[("event", "buy"), ("limit", "-1")])
    check(s == 200 and len(j) == 10 and all(x["event"] == "buy" for x in j), "event filter")
    s, j = fc.req("GET", "/events.json", params=[("event", "buy"), ("event", "rate"), ("limit", "-1")])
    check(s == 200 and len(j) == 20 and {x["event"] for x in j} == {"buy", "rate"}, "repeated event = any of")
    s, j = fc.req("GET", "/events.json", params=[("targetEntityType", "item"), ("targetEntityId", "i3"), ("limit", "-1")])
    check(s == 200 and len(j) == 6 and all(x["targetEntityId"] == "i3" for x in j), "target filter")
    s, j = fc.req("GET", "/events.json", params=[("entityType", "user"), ("entityId", "u0"),
                                                  ("reversed", "True"), ("limit", "1")])
    check(s == 200 and len(j) == 1 and j[0]["properties"]["n"] == 27, "reversed=True&limit=1 = latest: %r" % ((s, j),))
    s, j = fc.req("GET", "/events.json", params=[("reversed", "False"), ("limit", "2")])
    check(s == 200 and len(j) == 2, "reversed=False accepted without entity (SDK)")
    s, j = fc.req("GET", "/events.json", params=[("reversed", "true")])
    check(s == 400 and "reversed can only be used with both entityType and entityId" in j.get("message", ""),
          "reversed without entity -> 400: %r" % ((s, j),))
    s, j = fc.req("GET", "/events.json", params=[("reversed", "maybe"), ("entityType", "user"), ("entityId", "u0")])
    check(s == 400, "bad boolean -> 400")
    s, j = fc.req("GET", "/events.json", params=[("entityId", "nobody")])
    check((s, j) == (404, {"message": "Not Found"}), "no match -> 404 Not Found (PIO): %r" % ((s, j),))

    # --- entity properties (Eddy extension, A.7 aggregation)
    pc = Client(srv.port, key, "props")
    eddy("channel", "new", "app1", "props", *srv.args())
    s, j = pc.req("POST", "/batch/events.json", [
        ev("$set", "item", "i1", properties={"a": 1, "b": 2}, eventTime="2019-01-01T00:00:00Z"),
        ev("$unset", "item", "i1", properties={"b": None}, eventTime="2019-01-02T00:00:00Z"),
        ev("$set", "item", "i1", properties={"c": [3]}, eventTime="2019-01-03T00:00:00Z"),
        ev("$set", "item", "i2", properties={"x": 1}, eventTime="2019-01-01T00:00:00Z"),
        ev("$delete", "item", "i2", eventTime="2019-01-02T00:00:00Z")])
    check(s == 200 and all(x["status"] == 201 for x in j), "special events stored: %r" % ((s, j),))
    s, j = pc.req("GET", "/entities/item/i1.json")
    check(s == 200 and j["properties"] == {"a": 1, "c": [3]} and j["firstUpdated"].startswith("2019-01-01")
          and j["lastUpdated"].startswith("2019-01-03"), "aggregated properties: %r" % ((s, j),))
    s, j = pc.req("GET", "/entities/item/i1.json", params=[("untilTime", "2019-01-02T12:00:00Z")])
    check(s == 200 and j["properties"] == {"a": 1}, "properties as of untilTime: %r" % ((s, j),))
    s, j = pc.req("GET", "/entities/item/i2.json")
    check((s, j) == (404, {"message": "Not Found"}), "deleted entity -> 404: %r" % ((s, j),))

    # --- keep-alive: many requests on one connection
    ka = Client(srv.port, key)
    for i in range(200):
        s, _ = ka.req("GET", "/", auth=False)
        if s != 200:
            break
    check(s == 200, "200 requests on one keep-alive connection")

    # --- CLI: list, data-delete, keys
    r = eddy("app", "list", *srv.args())
    check("app1" in r.stdout and key in r.stdout and "Finished listing" in r.stdout, "app list: %r" % r.stdout)
    r = eddy("accesskey", "list", "app1", *srv.args())
    check(key in r.stdout and key_view_only in r.stdout and "view" in r.stdout, "accesskey list: %r" % r.stdout)
    r = eddy("app", "data-delete", "app1", "--channel", "filters", "--force", *srv.args())
    s, j = fc.req("GET", "/events.json")
    check((s, j) == (404, {"message": "Not Found"}), "data-delete emptied the channel: %r" % ((s, j),))
    s, j = c.req("GET", "/events/fixed-1.json")
    check(s == 200, "data-delete of a channel keeps the default channel")
    r = eddy("accesskey", "new", "app1", "--event", "view", *srv.args())
    k2 = r.stdout.strip().rsplit(" ", 1)[1]
    s, _ = Client(srv.port, k2).req("POST", "/events.json", ev("view", eid="k2"))
    check(s == 201, "new key works at once")
    eddy("accesskey", "delete", k2, *srv.args())
    s, j = Client(srv.port, k2).req("POST", "/events.json", ev("view", eid="k2"))
    check(s == 401, "deleted key -> 401: %r" % ((s, j),))

    # --- other processes write through the running server (eddy:// engine):
    # two concurrent imports of one file store each event once
    if not srv.store:
        path = os.path.join(data_dir, "..", name + "-import.jsonl")
        with open(path, "w") as f:
            for i in range(3000):
                f.write(json.dumps(ev("view", "user", "imp%d" % (i % 300), targetEntityType="item",
                                      targetEntityId="i%d" % i, eventTime="2020-02-02T00:00:00.%03dZ" % (i % 1000))) + "\n")
        eddy("channel", "new", "app1", "imported", *srv.args())
        procs = [subprocess.Popen([EDDY, "import", "--app", "app1", "--channel", "imported", "--input", path,
                                   "--batch", "500", "--quiet", *srv.args()],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
        check(all(p.returncode == 0 for p in procs), "concurrent remote imports succeed: %r" % (outs,))
        ic = Client(srv.port, key, "imported")
        s, j = ic.req("GET", "/events.json", params=[("limit", "-1")])
        check(s == 200 and len(j) == 3000 and len({x["eventId"] for x in j}) == 3000,
              "3000 events stored once through the remote engine: %r" % (len(j) if isinstance(j, list) else j,))
        s, j = ic.req("GET", "/events.json", params=[("entityType", "user"), ("entityId", "imp7"), ("limit", "-1")])
        check(s == 200 and len(j) == 10, "remote-written events are indexed by entity")
        ic.close()

    # --- the internal endpoint wants DIR/internal.token
    if not srv.store:
        s, _, _ = anon.raw("POST", "/internal/store", b"\x01\x06\x00\x00\x00\x00")
        check(s == 401, "internal endpoint without token -> 401: %r" % s)
        s, _, _ = anon.raw("POST", "/internal/store", b"\x01\x06\x00\x00\x00\x00", {"X-Eddy-Token": "guess"})
        check(s == 401, "internal endpoint with a wrong token -> 401: %r" % s)
        tok = open(os.path.join(data_dir, "internal.token")).read().strip()
        check(oct(os.stat(os.path.join(data_dir, "internal.token")).st_mode & 0o777) == "0o600", "token file is 0600")
        s, body, _ = anon.raw("POST", "/internal/store", b"\x01\x63", {"X-Eddy-Token": tok})
        check(s == 400, "internal endpoint: unknown op -> 400: %r" % s)

    s, j = anon.req("GET", "/metrics", auth=False)
    check(s == 200 and 'route="/events.json",status="201"' in j, "metrics count by route and status")
    for cl in (c, anon, kv, cc, fc, ka, pc):
        cl.close()


def body_limit_checks(port, key):
    """Bodies over --max-body-bytes get 413 without being read; the server
    keeps serving (huge bodies, A.6)."""
    c = Client(port, key)
    big = json.dumps([ev(eid="big%d" % i, properties={"pad": "x" * 4000}) for i in range(50)])
    s, j = c.req("POST", "/batch/events.json", big)
    check(s == 413 and "message" in j, "over the limit -> 413 JSON: %r" % ((s, j),))
    # 16 MiB announced but never sent: answered at once
    sock = socket.create_connection(("127.0.0.1", port), 10)
    sock.sendall(("POST /events.json?accessKey=%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  "Content-Length: 16777216\r\n\r\n" % key).encode())
    sock.settimeout(10)
    head = sock.recv(4096)
    check(head.startswith(b"HTTP/1.1 413"), "huge announced body -> 413 before upload: %r" % head[:40])
    sock.close()
    s, j = c.req("POST", "/events.json", ev(eid="after413"))
    check(s == 201, "serving after 413")


def run_engine(name, tmp, store_url=None):
    data = os.path.join(tmp, name)
    os.makedirs(data)
    pre = ["--store", store_url] if store_url else ["--data", data]
    # an app created before the server runs: direct store access
    key, appid = new_app(pre, "app1", "--description", "first app")
    check(appid >= 1, "app new prints the app ID")
    check(len(key) == 64 and all(ch.isalnum() or ch in "-_" for ch in key) and key[0] != "-",
          "generated key: 64 chars of [A-Za-z0-9_-]: %r" % key)
    r = eddy("app", "new", "app1", *pre, check=False)
    check(r.returncode != 0, "duplicate app name refused")
    srv = EventServer(data, store_url, ["--max-body-bytes", "64KiB"])
    try:
        if not store_url:
            addr = open(os.path.join(data, "eventserver.addr")).read().strip()
            check(addr == "127.0.0.1:%d" % srv.port, "eventserver.addr holds the listen address")
            r = subprocess.run([EDDY, "eventserver", "--data", data, "--listen", "127.0.0.1:0"],
                               capture_output=True, text=True, timeout=30)
            check(r.returncode != 0 and "another process" in r.stderr,
                  "a second event server on the same data dir is refused: %r" % r.stderr[-300:])
            check(open(os.path.join(data, "eventserver.addr")).read().strip() == addr,
                  "the refused server left the first one's address alone")
        # a key created while the server runs: through the server (remote engine)
        r = eddy("accesskey", "new", "app1", "view", *srv.args())
        key_view = r.stdout.strip().rsplit(" ", 1)[1]
        suite(name, srv, key, key_view, data)
        body_limit_checks(srv.port, key)
    finally:
        srv.stop()
    if not store_url:
        check(not os.path.exists(os.path.join(data, "eventserver.addr")), "addr file removed on clean stop")
    # data persists across a restart
    srv = EventServer(data, store_url)
    try:
        s, j = Client(srv.port, key).req("GET", "/events/fixed-1.json")
        check(s == 200 and j["properties"] == {"a": 1}, "events survive a restart")
        r = eddy("app", "delete", "app1", "--force", *srv.args())
        s, j = Client(srv.port, key).req("GET", "/events.json")
        check(s == 401, "app delete removes its keys: %r" % ((s, j),))
    finally:
        srv.stop()


def main():
    with TempDir() as tmp:
        run_engine("rocksdb", tmp)
        redis = Redis(tmp)
        try:
            run_engine("redis", tmp, redis.url)
        finally:
            redis.stop()
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""kill -9 of `eddy eventserver --sync always` during a concurrent ingest:
every event that was answered 201 is there after a restart, and none is
stored twice (issue 3, durability)."""
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eslib import SCALE, Client, EventServer, TempDir, new_app, wait_for  # noqa: E402

NTHREADS = 4


def main():
    fails = []
    with TempDir() as tmp:
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        key, _ = new_app(["--data", data], "crash")
        srv = EventServer(data, None, ["--sync", "always"])
        acked = [[] for _ in range(NTHREADS)]  # entityIds answered 201
        stop = threading.Event()

        def ingest(t):
            # Server-assigned ids (content hashes): a duplicate would show as
            # two events for one entityId. Alternate single posts and batches.
            c = Client(srv.port, key)
            n = 0
            try:
                while not stop.is_set():
                    if n % 2 == 0:
                        eid = "t%d-%d" % (t, n)
                        s, j = c.req("POST", "/events.json",
                                     {"event": "view", "entityType": "user", "entityId": eid,
                                      "properties": {"n": n}})
                        if s == 201:
                            acked[t].append(eid)
                        n += 1
                    else:
                        batch = [{"event": "view", "entityType": "user", "entityId": "t%d-%d" % (t, n + i),
                                  "properties": {"n": n + i}} for i in range(20)]
                        s, j = c.req("POST", "/batch/events.json", batch)
                        if s == 200:
                            acked[t].extend(b["entityId"] for b, r in zip(batch, j) if r["status"] == 201)
                        n += 20
            except Exception:
                pass  # the server died under us: expected

        ths = [threading.Thread(target=ingest, args=(t,)) for t in range(NTHREADS)]
        [t.start() for t in ths]
        wait_for(lambda: sum(map(len, acked)) >= int(2000 * SCALE) + 10, 60, "some acknowledged events")
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait()
        stop.set()
        [t.join(30) for t in ths]
        srv.stop()
        total = sum(map(len, acked))
        print("acknowledged before kill -9:", total, flush=True)

        srv = EventServer(data, None, ["--sync", "always"])
        try:
            c = Client(srv.port, key)
            s, j = c.req("GET", "/events.json", params=[("limit", "-1")])
            if s != 200:
                fails.append("reading back: %r" % s)
                j = []
            seen = {}
            for e in j:
                seen[e["entityId"]] = seen.get(e["entityId"], 0) + 1
            twice = [k for k, v in seen.items() if v > 1]
            lost = [e for per in acked for e in per if e not in seen]
            print("stored after restart:", len(j), "lost:", len(lost), "twice:", len(twice), flush=True)
            if lost:
                fails.append("%d acknowledged events lost, e.g. %s" % (len(lost), lost[:5]))
            if twice:
                fails.append("%d events stored twice, e.g. %s" % (len(twice), twice[:5]))
            # and the restarted server takes writes
            s, _ = c.req("POST", "/events.json", {"event": "view", "entityType": "user", "entityId": "post-crash"})
            if s != 201:
                fails.append("write after restart: %r" % s)
        finally:
            srv.stop()
    if fails:
        print("FAIL:", *fails, sep="\n  ")
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()

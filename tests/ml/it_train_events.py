#!/usr/bin/python3
"""Integration test: events → `eddy train` → `eddy serve`, all while
`eddy eventserver` owns the data directory (ARCHITECTURE.md §1: training and
serving reach the store through the event server's remote engine).

Checks that training reads `rate` (properties.rating) and `buy` (4.0) events,
ignores other events and entity types, keeps one rating per (user, item),
takes item categories from `$set` events, stores the model so `eddy model`
and `eddy serve` find it, and that serve answers match a brute-force scorer
with category filters.
"""
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import it_serve as base  # noqa: E402

EDDY, MULT, SEED = base.EDDY, base.MULT, base.SEED
check, run = base.check, base.run


def post(addr, path, body):
    req = urllib.request.Request("http://%s%s" % (addr, path), data=json.dumps(body).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10 * MULT) as r:
        return r.status, json.loads(r.read())


def main():
    tmp = tempfile.mkdtemp(prefix="eddy-it-events-")
    procs = []
    try:
        data = os.path.join(tmp, "d")
        p = run(["app", "new", "shop", "--data", data])
        key = re.search(r"Access Key: (\S+)", p.stdout + p.stderr).group(1)
        es = subprocess.Popen([EDDY, "eventserver", "--data", data, "--listen", "127.0.0.1:0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(es)
        addr_file = os.path.join(data, "eventserver.addr")
        deadline = time.time() + 20 * MULT
        while not os.path.exists(addr_file) and time.time() < deadline:
            check(es.poll() is None, "eventserver exited")
            time.sleep(0.02)
        check(os.path.exists(addr_file), "eventserver wrote no address file")
        addr = open(addr_file).read().strip()
        addr = addr.replace("http://", "").split()[0]

        rng = random.Random(SEED)
        events = []
        nu, ni = 60, 50
        t0 = 1700000000000
        rated = {}
        for u in range(nu):
            for i in range(ni):
                if rng.random() < 0.15:
                    r = float(1 + (u * 7 + i * 3) % 5)
                    events.append({"event": "rate", "entityType": "user", "entityId": "u%d" % u,
                                   "targetEntityType": "item", "targetEntityId": "i%d" % i,
                                   "properties": {"rating": r}, "eventTime": "%s" % iso(t0 + len(events))})
                    rated[("u%d" % u, "i%d" % i)] = r
        # an older rating of an already-rated pair must lose to the newer one
        (ou, oi), keep = next(iter(rated.items()))
        events.append({"event": "rate", "entityType": "user", "entityId": ou, "targetEntityType": "item",
                       "targetEntityId": oi, "properties": {"rating": 1.0 if keep != 1.0 else 5.0},
                       "eventTime": iso(t0 - 1000)})
        # buys count as 4.0; views and other entity types are ignored by an explicit engine
        events.append({"event": "buy", "entityType": "user", "entityId": "u1", "targetEntityType": "item",
                       "targetEntityId": "i49", "eventTime": iso(t0 + 10 ** 6)})
        events.append({"event": "view", "entityType": "user", "entityId": "u2", "targetEntityType": "item",
                       "targetEntityId": "i-viewed-only", "eventTime": iso(t0 + 10 ** 6)})
        events.append({"event": "rate", "entityType": "robot", "entityId": "r1", "targetEntityType": "item",
                       "targetEntityId": "i1", "properties": {"rating": 5}, "eventTime": iso(t0)})
        for i in range(ni):
            cats = (["even"] if i % 2 == 0 else ["odd"]) + (["tens"] if i % 10 == 0 else [])
            events.append({"event": "$set", "entityType": "item", "entityId": "i%d" % i,
                           "properties": {"categories": cats}, "eventTime": iso(t0)})
        for j in range(0, len(events), 50):
            st, body = post(addr, "/batch/events.json?accessKey=" + key, events[j:j + 50])
            check(st == 200 and all(x.get("status") == 201 for x in body), "batch post: %s" % body[:3])
        print("posted %d events through the event server at %s" % (len(events), addr))

        engine = os.path.join(tmp, "engine.json")
        with open(engine, "w") as f:
            json.dump({"id": "v1", "datasource": {"params": {"appName": "shop"}},
                       "algorithms": [{"name": "als", "params": {"rank": 6, "numIterations": 8}}]}, f)
        common = ["--engine", engine, "--data", data]
        p = run(["train"] + common + ["--quiet"])
        check("promoted: model v1" in p.stdout, "train: " + p.stdout + p.stderr)
        check(es.poll() is None, "eventserver died during training")
        dump = json.loads(run(["model", "dump"] + common).stdout)
        check(dump["app"] == "shop" and dump["engine"] == "v1", "dump names")
        check("r1" not in dump["userIds"], "another entity type's events were used")
        check("i-viewed-only" not in dump["itemIds"], "view events were used by an explicit engine")
        check("i49" in dump["seen"]["u1"], "buy event not used")
        check(dump["ratings"] == len(rated) + (0 if ("u1", "i49") in rated else 1),
              "ratings %d, want %d (latest rating per pair)" % (dump["ratings"], len(rated) + 1))
        check(dump["categories"].get("i10") == ["even", "tens"] or sorted(dump["categories"].get("i10", [])) == ["even", "tens"],
              "categories from $set: %s" % dump["categories"].get("i10"))

        # an implicit engine on the same app uses view/buy events (weights summed)
        imp = os.path.join(tmp, "implicit.json")
        with open(imp, "w") as f:
            json.dump({"id": "imp", "datasource": {"params": {"appName": "shop", "eventWeights": {"view": 1, "buy": 4, "rate": 1}}},
                       "algorithms": [{"name": "als", "params": {"rank": 6, "numIterations": 5, "implicitPrefs": True, "solver": "cg"}}]}, f)
        p = run(["train", "--engine", imp, "--data", data, "--quiet"])
        check("promoted: model v1" in p.stdout and "precision@10" in p.stdout, "implicit train: " + p.stdout)
        idump = json.loads(run(["model", "dump", "--engine", imp, "--data", data]).stdout)
        check(idump["params"]["implicitPrefs"] and idump["params"]["solver"] == "cg", "implicit params")
        check("i-viewed-only" in idump["itemIds"], "implicit engine ignored view events")
        check("popular_precision@10" in idump["metrics"], "implicit metrics lack the baseline")

        srv = base.Server(common)
        procs.append(srv)
        brute = base.Brute(dump)
        for q in [{"user": "u3", "num": 5}, {"user": "u4", "num": 5, "categories": ["tens"]},
                  {"items": ["i2"], "num": 5, "categories": ["odd"]},
                  {"user": "u5", "num": 5, "categoryBlackList": ["even"]}]:
            got = base.query(srv.port, q)
            base.same_answer(got, brute.answer(q), json.dumps(q))
            if "categories" in q:
                check(all(set(q["categories"]) & set(dump["categories"].get(g["item"], [])) for g in got), "category filter")
        # a second train while both run; serve picks it up on reload
        p = run(["train"] + common + ["--quiet", "--force"])
        check("promoted: model v2" in p.stdout, "second train: " + p.stdout)
        st, body = base.http(srv.port, "POST", "/reload")
        check(st == 200 and json.loads(body)["version"] == 2, "reload: %s" % body)
        check(es.poll() is None, "eventserver died")

        # --- every run is recorded in the store (scheduled runs: it_sched_driver.py) ---
        p = run(["model", "runs"] + common + ["--runs", "2"])
        lines = [l for l in p.stdout.splitlines() if l.startswith("    ")]
        check(p.stdout.startswith("shop/v1") and len(lines) == 2, "model runs: " + p.stdout)
        check("manual" in lines[0] and "promoted v2" in lines[0] and re.search(r"events 4\d\d", lines[0]),
              "newest run record: " + p.stdout)
        # Regression: SIGTERM while the polling server is between waits must
        # stop it cleanly (it used to die from the signal on an OpenBLAS thread).
        for _ in range(3):
            s3 = base.Server(common + ["--reload-every", "20ms"])
            procs.append(s3)
            time.sleep(0.1)
            check(s3.stop() == 0, "serve --reload-every did not stop cleanly on SIGTERM (status %s)" % s3.proc.returncode)
        print("OK")
    finally:
        for pr in procs:
            if isinstance(pr, base.Server):
                pr.stop()
            elif pr.poll() is None:
                pr.terminate()
                try:
                    pr.wait(timeout=10 * MULT)
                except subprocess.TimeoutExpired:
                    pr.kill()
                    pr.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


if __name__ == "__main__":
    main()

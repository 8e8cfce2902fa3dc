#!/usr/bin/python3
"""Integration test of `eddy train` + `eddy serve` (PredictionIO query API).

Trains on generated ratings (with item categories), serves the model on a
free loopback port and checks:
  - answers match a brute-force scorer over the model's own factors
    (`eddy model dump`), for user and similar-item queries;
  - filters (categories, categoryBlackList, whiteList, blackList) for both
    kinds, exclusion of seen items, unknown user → popular items;
  - bad input → 400 with a message;
  - the quality gate refuses a worse model and keeps the old one;
  - POST /reload after a new train swaps the model under concurrent queries
    with no errors and no mixed answers (every answer is exactly one model's).
"""
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

EDDY = os.environ.get("EDDY", "build/eddy")
MULT = float(os.environ.get("TEST_TIMEOUT_MULT", "1"))
SCALE = float(os.environ.get("EDDY_TEST_SCALE", "1"))
SEED = int(os.environ.get("TEST_SEED", "4242"))


def fail(msg):
    print("FAIL (seed %d): %s" % (SEED, msg))
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def run(args, ok=(0,)):
    p = subprocess.run([EDDY] + args, capture_output=True, text=True, timeout=120 * MULT)
    if p.returncode not in ok:
        fail("eddy %s exited %d\nstdout: %s\nstderr: %s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p


def gen_data(d, rng, nu, ni):
    """Low-rank-ish ratings (1..5) and u.item-style genres."""
    k = 3
    U = [[rng.gauss(0, 1) for _ in range(k)] for _ in range(nu)]
    V = [[rng.gauss(0, 1) for _ in range(k)] for _ in range(ni)]
    lines = []
    for u in range(nu):
        for i in range(ni):
            if rng.random() < 0.12:
                s = sum(a * b for a, b in zip(U[u], V[i]))
                r = min(5, max(1, round(3 + s + rng.gauss(0, 0.3))))
                lines.append("u%d\ti%d\t%d\t%d" % (u, i, r, 1000 + len(lines)))
    with open(os.path.join(d, "ratings.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    genres = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
              "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
              "Romance", "Sci-Fi", "Thriller", "War", "Western"]
    with open(os.path.join(d, "items.txt"), "w") as f:
        for i in range(ni):
            flags = ["1" if (i % 3 == 0 and g == 1) or (i % 4 == 0 and g == 5) else "0" for g in range(19)]
            f.write("i%d|Title %d|01-Jan-1995||http://x|%s\n" % (i, i, "|".join(flags)))
    return len(lines)


class Server:
    def __init__(self, args):
        self.proc = subprocess.Popen([EDDY, "serve"] + args + ["--listen", "127.0.0.1:0"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.port = None
        deadline = time.time() + 20 * MULT
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            m = re.search(r"serving .* on 127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        if not self.port:
            self.stop()
            fail("eddy serve did not report its port")
        # keep draining stderr so the server never blocks on a full pipe
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def stop(self):
        """SIGTERM; returns the exit status (0 = stopped cleanly)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10 * MULT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def http(port, method, path, body=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10 * MULT) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def query(port, q):
    st, body = http(port, "POST", "/queries.json", q)
    check(st == 200, "query %s -> %d %s" % (q, st, body))
    return json.loads(body)["itemScores"]


class Brute:
    """Reference scorer from `eddy model dump`."""

    def __init__(self, dump):
        self.d = dump
        self.users = {u: j for j, u in enumerate(dump["userIds"])}
        self.items = dump["itemIds"]
        self.U = dump["userFactors"]
        self.V = dump["itemFactors"]
        self.seen = {u: set(v) for u, v in dump["seen"].items()}
        self.cats = {i: set(c) for i, c in dump["categories"].items()}
        self.pop = {}
        for v in self.seen.values():
            for i in v:
                self.pop[i] = self.pop.get(i, 0) + 1
        self.norm = [math.sqrt(sum(x * x for x in y)) for y in self.V]

    def _filter(self, cands, q):
        white = set(q.get("whiteList", [])) if "whiteList" in q else None
        black = set(q.get("blackList", []))
        cats = set(q.get("categories", [])) if "categories" in q else None
        cblack = set(q.get("categoryBlackList", []))
        out = []
        for item, score in cands:
            if white is not None and item not in white:
                continue
            if item in black:
                continue
            ic = self.cats.get(item, set())
            if cats is not None and not (ic & cats):
                continue
            if ic & cblack:
                continue
            out.append((item, score))
        return out

    def answer(self, q):
        n = q["num"]
        if "user" in q:
            u = self.users.get(q["user"])
            if u is None:
                cands = [(i, float(self.pop.get(i, 0))) for i in self.items]
            else:
                x = self.U[u]
                seen = self.seen.get(q["user"], set())
                cands = [(i, sum(a * b for a, b in zip(x, self.V[j])))
                         for j, i in enumerate(self.items) if i not in seen]
        else:
            idx = {i: j for j, i in enumerate(self.items)}
            qs = [idx[i] for i in dict.fromkeys(q["items"]) if i in idx]
            if not qs:
                return []
            cands = []
            for j, i in enumerate(self.items):
                if j in qs or self.norm[j] == 0:
                    continue
                s = sum(sum(a * b for a, b in zip(self.V[qj], self.V[j])) / (self.norm[qj] * self.norm[j])
                        for qj in qs if self.norm[qj] > 0)
                if s > 0:
                    cands.append((i, s))
        cands = self._filter(cands, q)
        cands.sort(key=lambda t: -t[1])
        return cands[:n]


def same_answer(got, want, what):
    """Scores must match rank by rank; each returned item must carry its own
    brute-force score (so near-ties may swap without failing)."""
    check(len(got) == len(want), "%s: %d results, want %d\n got %s\n want %s" % (what, len(got), len(want), got, want))
    for g, (wi, ws) in zip(got, want):
        check(abs(g["score"] - ws) <= 1e-3 * max(1, abs(ws)),
              "%s: score %r at %s, want %r (%s)\n got %s\n want %s" % (what, g["score"], g["item"], ws, wi, got, want))


def main():
    tmp = tempfile.mkdtemp(prefix="eddy-it-serve-")
    servers = []
    try:
        rng = random.Random(SEED)
        nu, ni = max(30, int(150 * SCALE)), max(40, int(120 * SCALE))
        n = gen_data(tmp, rng, nu, ni)
        print("generated %d ratings, %d users, %d items" % (n, nu, ni))
        engine = os.path.join(tmp, "engine.json")
        with open(engine, "w") as f:
            json.dump({"id": "default", "datasource": {"params": {"appName": "shop"}},
                       "algorithms": [{"name": "als", "params": {"rank": 8, "numIterations": 10, "seed": 1}}]}, f)
        data = os.path.join(tmp, "data")
        common = ["--engine", engine, "--data", data]
        ratings = ["--ratings", os.path.join(tmp, "ratings.tsv"), "--items", os.path.join(tmp, "items.txt")]

        # every ml command answers --help (and a bad flag with status 2)
        for cmd in ["train", "eval", "serve", "model", "schedule"]:
            p = run([cmd, "--help"])
            check("usage: eddy " + cmd in p.stdout, "%s --help: %s" % (cmd, p.stdout[:200]))
            run([cmd, "--no-such-flag"], ok=(2,))

        p = run(["train"] + common + ratings)
        check("promoted: model v1" in p.stdout, "first train not promoted: " + p.stdout)
        brute = Brute(json.loads(run(["model", "dump"] + common).stdout))
        check(brute.d["version"] == 1, "dump version")
        check(len(brute.cats) > 0, "categories from u.item were not kept")

        srv = Server(common)
        servers.append(srv)
        port = srv.port

        # --- answers match the brute-force scorer ---
        users = list(brute.users)[:20] + ["nobody"]
        some_items = brute.items[:6]
        queries = []
        for u in users:
            queries.append({"user": u, "num": 10})
        queries += [
            {"user": users[0], "num": 5, "categories": ["Action"]},
            {"user": users[1], "num": 5, "categories": ["Action", "Comedy"], "categoryBlackList": ["Comedy"]},
            {"user": users[2], "num": 7, "whiteList": brute.items[:30] + ["no-such-item"], "blackList": brute.items[3:9]},
            {"user": users[3], "num": 1000},
            {"user": "nobody", "num": 4, "categories": ["Comedy"]},
            {"items": some_items[:1], "num": 10},
            {"items": some_items[:3] + ["no-such-item"], "num": 8},
            {"items": some_items[:2], "num": 6, "categories": ["Action"], "blackList": brute.items[10:20]},
            {"items": some_items[:2], "num": 6, "whiteList": brute.items[:25], "categoryBlackList": ["Action"]},
            {"items": ["no-such-item"], "num": 5},
            {"user": users[4], "num": 5, "categories": ["no-such-category"]},
        ]
        for q in queries:
            got = query(port, q)
            same_answer(got, brute.answer(q), json.dumps(q))
        # filters really filter (not just agree with a buggy reference)
        got = query(port, {"user": users[0], "num": 50, "categories": ["Action"]})
        check(got and all("Action" in brute.cats.get(g["item"], ()) for g in got), "categories filter leaked")
        got = query(port, {"user": users[0], "num": 1000})
        check(not (set(g["item"] for g in got) & brute.seen[users[0]]), "seen items were returned")
        bl = [g["item"] for g in got[:3]]
        got2 = query(port, {"user": users[0], "num": 10, "blackList": bl})
        check(not (set(g["item"] for g in got2) & set(bl)), "blackList leaked")
        got = query(port, {"items": some_items[:2], "num": 100})
        check(not (set(g["item"] for g in got) & set(some_items[:2])), "query items returned as similar")
        got = query(port, {"user": "nobody", "num": 3})
        check(len(got) == 3 and got[0]["score"] >= got[2]["score"] > 0, "unknown user should get popular items: %s" % got)
        print("answers match brute force for %d queries" % len(queries))

        # --- bad input ---
        bad = [b"{", b"[]", b'"x"', b'{"user":"u1"}', b'{"user":"u1","num":0}', b'{"user":"u1","num":-3}',
               b'{"user":"u1","num":1001}', b'{"user":"u1","num":"5"}', b'{"user":"u1","num":5.5}',
               b'{"user":"u1","num":5,"bogus":1}', b'{"user":"u1","items":["i1"],"num":5}',
               b'{"num":5}', b'{"user":7,"num":5}', b'{"items":"i1","num":5}', b'{"items":[1],"num":5}',
               b'{"user":"u1","num":5,"whiteList":"i1"}', b'{"user":"u1","num":5,"num":6}', b""]
        for b in bad:
            st, body = http(port, "POST", "/queries.json", b)
            check(st == 400, "bad input %r -> %d" % (b, st))
            check("message" in json.loads(body), "400 without a message for %r" % b)
        st, _ = http(port, "GET", "/queries.json")
        check(st == 405, "GET /queries.json -> %d" % st)
        print("bad input answered 400 (%d cases)" % len(bad))

        # --- status and metrics ---
        st, body = http(port, "GET", "/")
        info = json.loads(body)
        check(st == 200 and info["model"]["version"] == 1 and info["model"]["params"]["rank"] == 8, "GET / %s" % body)
        check("rmse" in info["model"]["metrics"], "GET / lacks metrics")
        st, body = http(port, "GET", "/metrics")
        text = body.decode()
        check(st == 200 and "eddy_ml_model_version 1" in text, "metrics lack the model version")
        m = re.search(r'eddy_ml_queries_total\{kind="user",status="200"\} (\d+)', text)
        check(m and int(m.group(1)) >= len(users), "metrics do not count queries")
        check('eddy_ml_queries_total{kind="invalid",status="400"}' in text, "metrics lack 400s")

        # --- quality gate: a much worse model is refused, the old one stays ---
        worse = os.path.join(tmp, "worse.json")
        with open(worse, "w") as f:
            json.dump({"id": "default", "datasource": {"params": {"appName": "shop"}},
                       "algorithms": [{"name": "als", "params": {"rank": 8, "numIterations": 1, "lambda": 50.0, "seed": 1}}]}, f)
        p = run(["train", "--engine", worse, "--data", data] + ratings, ok=(3,))
        check("not promoted" in p.stdout and "worse" in p.stdout, "gate output: " + p.stdout)
        st, body = http(port, "POST", "/reload")
        check(st == 200 and json.loads(body)["version"] == 1, "reload after a refused train: %s" % body)

        # --- model swap under concurrent queries ---
        p = run(["train", "--engine", engine, "--data", data, "--force"] + ratings[:2] + ["--threads", "1"])
        # same data, same seed, different thread count: v2 must equal v1 bit for bit
        v2 = json.loads(run(["model", "dump"] + common).stdout)
        check(v2["version"] == 2 and v2["itemFactors"] == brute.d["itemFactors"], "training is not deterministic across thread counts")
        # now a genuinely different model: another seed
        eng3 = os.path.join(tmp, "engine3.json")
        with open(eng3, "w") as f:
            json.dump({"id": "default", "datasource": {"params": {"appName": "shop"}},
                       "algorithms": [{"name": "als", "params": {"rank": 8, "numIterations": 10, "seed": 99}}]}, f)
        run(["train", "--engine", eng3, "--data", data, "--force"] + ratings)
        brute3 = Brute(json.loads(run(["model", "dump"] + common).stdout))
        check(brute3.d["version"] == 3, "v3 not deployed")
        probe = [{"user": u, "num": 10} for u in list(brute.users)[:8]] + [{"items": some_items[:2], "num": 10}]
        old_ans = [json.dumps([(i, round(s, 3)) for i, s in brute.answer(q)]) for q in probe]
        new_ans = [json.dumps([(i, round(s, 3)) for i, s in brute3.answer(q)]) for q in probe]
        check(any(a != b for a, b in zip(old_ans, new_ans)), "v1 and v3 answer identically: test cannot see a swap")
        errors, seen_old, seen_new = [], [0], [0]
        stop = threading.Event()

        def hammer(tid):
            r = random.Random(tid)
            while not stop.is_set():
                j = r.randrange(len(probe))
                try:
                    st, body = http(port, "POST", "/queries.json", probe[j])
                except Exception as e:  # noqa
                    errors.append("exception %r" % e)
                    continue
                if st != 200:
                    errors.append("status %d" % st)
                    continue
                got = json.loads(body)["itemScores"]
                # match against both models, allowing near-tie swaps via scores
                def matches(ans):
                    want = json.loads(ans)
                    return len(want) == len(got) and all(abs(g["score"] - w[1]) <= 2e-3 * max(1, abs(w[1])) for g, w in zip(got, want))
                if matches(old_ans[j]):
                    seen_old[0] += 1
                elif matches(new_ans[j]):
                    seen_new[0] += 1
                else:
                    errors.append("mixed or wrong answer for %s: %s" % (probe[j], got))

        threads = [threading.Thread(target=hammer, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        deadline = time.time() + 10 * MULT
        while seen_old[0] < 50 and time.time() < deadline:
            time.sleep(0.01)
        st, body = http(port, "POST", "/reload")
        check(st == 200 and json.loads(body)["version"] == 3, "reload: %d %s" % (st, body))
        before = seen_new[0]
        while seen_new[0] < before + 100 and time.time() < deadline:
            time.sleep(0.01)
        stop.set()
        for t in threads:
            t.join()
        check(not errors, "%d bad answers during the swap, e.g. %s" % (len(errors), errors[:3]))
        check(seen_old[0] >= 50 and seen_new[0] >= 100, "too few answers around the swap: old %d new %d" % (seen_old[0], seen_new[0]))
        for q, a in zip(probe, new_ans):
            got = query(port, q)
            same_answer(got, json.loads(a), "after reload " + json.dumps(q))
        print("swap under load: %d answers from v1, %d from v3, no errors, none mixed" % (seen_old[0], seen_new[0]))
        st, body = http(port, "GET", "/metrics")
        check("eddy_ml_model_version 3" in body.decode() and "eddy_ml_reloads_total 1" in body.decode(), "metrics after reload")

        # --- a server started before any model exists answers 503, then reloads ---
        fresh = os.path.join(tmp, "fresh.json")
        with open(fresh, "w") as f:
            json.dump({"id": "fresh", "datasource": {"params": {"appName": "shop"}},
                       "algorithms": [{"name": "als", "params": {"rank": 4, "numIterations": 3}}]}, f)
        srv4 = Server(["--engine", fresh, "--data", data])
        servers.append(srv4)
        st, body = http(srv4.port, "POST", "/queries.json", {"user": users[0], "num": 3})
        check(st == 503 and b"no model" in body, "query before any model: %d %s" % (st, body))
        st, body = http(srv4.port, "POST", "/reload")
        check(st == 404, "reload with no model: %d %s" % (st, body))
        run(["train", "--engine", fresh, "--data", data] + ratings)
        st, body = http(srv4.port, "POST", "/reload")
        check(st == 200 and json.loads(body)["version"] == 1, "reload of the first model: %s" % body)
        check(len(query(srv4.port, {"user": users[0], "num": 3})) == 3, "no answer after the first reload")
        print("OK")
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

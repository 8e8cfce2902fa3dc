#!/usr/bin/python3
"""The talk's pipeline, end to end, on a running `eddy up`:

  generated click logs -> topic clicks-raw -> job `clicklog` -> Avro topic clicks
  -> job `clicks-to-events` -> event store -> `eddy train` (and a retraining
  schedule) -> recommendations over HTTP from `eddy serve`.

Used by scripts/demo.sh (README command one) and by the e2e test, which runs it
with small numbers on free ports and checks the accounting it prints.
Prints each stage's figures; exits non-zero if any stage fails its check.
"""
import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request


class Pipeline:
    def __init__(self, a):
        self.a = a
        self.eddy = a.eddy
        with open(os.path.join(a.data, "run", "endpoints.json")) as f:
            self.ep = json.load(f)
        self.jobs_dir = a.jobs
        self.report = {}

    # ---- helpers ---------------------------------------------------------------
    def say(self, msg):
        print(msg, flush=True)

    def step(self, n, total, title):
        self.say("\n==> [%d/%d] %s" % (n, total, title))

    def run(self, *args, check=True, input=None):
        p = subprocess.run([self.eddy] + list(args), capture_output=True, text=True, input=input)
        if check and p.returncode != 0:
            raise SystemExit("eddy %s failed (%d):\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def http(self, method, url, body=None, timeout=10):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode("utf-8", "replace")

    def wait(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = cond()
            if v:
                return v
            time.sleep(0.5)
        raise SystemExit("timed out after %ds waiting for %s" % (timeout, what))

    # ---- stages ----------------------------------------------------------------
    def app(self):
        p = self.run("app", "show", self.a.app, "--data", self.a.data, check=False)
        if p.returncode != 0:
            p = self.run("app", "new", self.a.app, "--data", self.a.data)
        key = app_id = None
        for line in p.stdout.splitlines():
            if "Access Key:" in line:
                key = line.split("Access Key:")[1].strip().split()[0]
            if line.strip().startswith("ID:"):
                app_id = int(line.split("ID:")[1].split()[0])
        if not key or not app_id:
            raise SystemExit("could not read the app's id and access key from:\n" + p.stdout)
        self.key, self.app_id = key, app_id
        self.say("    app %s (id %d), access key %s..." % (self.a.app, app_id, key[:8]))

    def topics(self):
        for name, parts in (("clicks-raw", self.a.partitions), ("clicks", self.a.partitions), ("clicks-dlq", 1)):
            p = self.run("topics", "create", name, "--partitions", str(parts), "--broker", self.ep["broker"], check=False)
            if p.returncode != 0 and "already exists" not in (p.stdout + p.stderr):
                raise SystemExit(p.stderr)
        self.say("    topics clicks-raw, clicks (%d partitions each), clicks-dlq" % self.a.partitions)

    def submit(self, so, name, topic, config):
        path = os.path.join(self.jobs_dir, so)
        if not os.path.exists(path):
            raise SystemExit("job binary %s is missing (build first)" % path)
        p = self.run("submit", path, "--name", name, "--input", topic, "--starting-offsets", "earliest",
                     "--interval", "500ms", "--app", str(self.app_id), "--config", json.dumps(config),
                     "--driver", self.ep["driver"], "--data", os.path.join(self.a.data, "driver"), check=False)
        if p.returncode != 0 and "exists" not in (p.stdout + p.stderr):
            raise SystemExit("submit %s failed:\n%s%s" % (name, p.stdout, p.stderr))
        self.say("    submitted %-18s %s -> %s" % (name, topic, config.get("output", "event store")))

    def generate(self):
        gen = ["gen", "clicklog", "--users", str(self.a.users), "--items", str(self.a.items),
               "--lines", str(self.a.lines), "--seed", str(self.a.seed)]
        lines_file = os.path.join(self.a.data, "generated-clicks.log")
        self.run(*gen, "--output", lines_file)  # the same seed gives the same lines: our ledger
        t0 = time.monotonic()
        self.run(*gen, "--topic", "clicks-raw", "--broker", self.ep["broker"])
        dt = time.monotonic() - t0
        expected = {"view": 0, "buy": 0, "rate": 0}
        clicks = 0
        with open(lines_file, "rb") as f:
            for line in f:
                if b"\x03" not in line:
                    continue
                for elem in line.rstrip(b"\r\n").split(b"\x03", 1)[1].split(b"\x03"):
                    if not elem:
                        continue
                    kv = dict(p.split(b"=", 1) for p in elem.split(b"\x02"))
                    clicks += 1
                    ev = kv.get(b"event", b"").decode()
                    if ev in expected and b"item" in kv:
                        expected[ev] += 1
        self.expected, self.clicks = expected, clicks
        self.say("    %d lines (%d clicks) produced to clicks-raw in %.2fs (%.0f lines/s)"
                 % (self.a.lines, clicks, dt, self.a.lines / dt if dt else 0))
        self.say("    expected events: %s" % ", ".join("%s %d" % kv for kv in sorted(expected.items())))

    def store_counts(self):
        counts = {}
        for ev in ("view", "buy", "rate"):
            st, body = self.http("GET", "http://%s/events.json?accessKey=%s&event=%s&limit=-1"
                                 % (self.ep["eventserver"], self.key, ev), timeout=60)
            counts[ev] = len(body) if st == 200 and isinstance(body, list) else 0
        return counts

    def job_status(self, name):
        p = self.run("jobs", "status", name, "--json", "--driver", self.ep["driver"], check=False)
        try:
            return json.loads(p.stdout)
        except ValueError:
            return {}

    def follow(self):
        t0 = time.monotonic()
        last = None

        def done():
            nonlocal last
            counts = self.store_counts()
            line = "    store: " + ", ".join("%s %d/%d" % (k, counts[k], self.expected[k]) for k in sorted(counts))
            if line != last:
                self.say(line + "   (%.0fs)" % (time.monotonic() - t0))
                last = line
            return counts if counts == self.expected else None

        counts = self.wait(done, self.a.timeout, "every click to reach the event store exactly once")
        dt = time.monotonic() - t0
        self.say("    all %d events stored exactly once, %.1fs after the last line was produced"
                 % (sum(counts.values()), dt))
        for name in ("clicklog", "clicks-to-events"):
            st = self.job_status(name)
            self.say("    job %-17s %-8s batches %-3s records %-7s last batch %s ms  counters %s" % (
                name, st.get("status", "?"), st.get("batches", "?"), st.get("records", "?"),
                st.get("last_batch_duration_ms", "?"), json.dumps(st.get("counters", {}))))
        p = self.run("groups", "lag", "eddy-job-clicklog", "--http", self.ep["broker_http"], check=False)
        if p.returncode == 0:
            self.say("    lag of eddy-job-clicklog (Burrow rules):")
            for line in p.stdout.strip().splitlines()[:6]:
                self.say("      " + line)
        self.report["events"] = counts

    def dlq(self):
        p = self.run("consume", "--topic", "clicks-dlq", "--from-beginning", "--exit-at-end",
                     "--broker", self.ep["broker"], check=False)
        n = len([l for l in p.stdout.splitlines() if l.strip()])
        self.say("    dead-letter topic clicks-dlq: %d malformed lines (generated lines are all valid)" % n)
        self.report["dlq"] = n

    def train(self):
        engine = os.path.join(self.a.data, "engine.json")
        t0 = time.monotonic()
        p = self.run("train", "--app", self.a.app, "--engine", engine, "--data", self.a.data, "--quiet",
                     "--force", check=False)
        self.say("    " + "\n    ".join((p.stdout + p.stderr).strip().splitlines()[-8:]))
        if p.returncode not in (0, 3):
            raise SystemExit("training failed")
        self.say("    trained in %.1fs" % (time.monotonic() - t0))
        # Registered with the driver, which runs `eddy train` every hour on
        # the eddy up store (its own); `eddy schedule list` shows the runs.
        p = self.run("schedule", "train", "--app", self.a.app, "--engine", engine, "--every", "1h",
                     "--driver", self.ep["driver"], "--driver-data", os.path.join(self.a.data, "driver"),
                     check=False)
        self.say("    retraining schedule: %s" % (p.stdout.strip() if p.returncode == 0 else p.stderr.strip()))

    def query(self):
        base = "http://%s" % self.ep["serve"]
        self.http("POST", base + "/reload")
        st, info = self.wait(lambda: (lambda r: r if r[0] == 200 and r[1].get("model") else None)(self.http("GET", base + "/")),
                             60, "the query server to load the model")
        m = info["model"]
        self.say("    serving model version %s (trained at %s)" % (m.get("version"), m.get("trainedAt", m.get("trained_at"))))
        lat = []
        shown = 0
        results = {}
        for u in range(self.a.query_users):
            user = "U%d" % u
            t0 = time.monotonic()
            st, ans = self.http("POST", base + "/queries.json", {"user": user, "num": 5})
            lat.append((time.monotonic() - t0) * 1000)
            if st != 200:
                raise SystemExit("query for %s failed: %s %s" % (user, st, ans))
            items = ans.get("itemScores", [])
            results[user] = items
            if items and shown < 5:
                shown += 1
                self.say("    %-5s -> %s" % (user, ", ".join("%s (%.2f)" % (i["item"], i["score"]) for i in items)))
        lat.sort()
        self.say("    %d queries: p50 %.2f ms, p99 %.2f ms (HTTP round trip from Python)"
                 % (len(lat), lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]))
        self.report["recommendations"] = results
        self.report["model_version"] = m.get("version")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--eddy", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--jobs", required=True, help="directory holding clicklog.so and clicks_to_events.so")
    ap.add_argument("--app", default="demo")
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--items", type=int, default=300)
    ap.add_argument("--lines", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--query-users", type=int, default=50)
    ap.add_argument("--timeout", type=int, default=180)
    ap.add_argument("--report", help="write the figures and recommendations as JSON here")
    a = ap.parse_args()
    p = Pipeline(a)
    total = 7
    p.step(1, total, "app and topics")
    p.app()
    p.topics()
    p.step(2, total, "submit the jobs (clicklog: lines -> Avro; clicks-to-events: Avro -> events)")
    p.submit("clicklog.so", "clicklog", "clicks-raw",
             {"output": "clicks", "dlq": "clicks-dlq", "registry": "http://%s" % p.ep["registry"]})
    p.submit("clicks_to_events.so", "clicks-to-events", "clicks",
             {"registry": "http://%s" % p.ep["registry"], "dlq": "clicks-dlq"})
    p.step(3, total, "generate click logs into clicks-raw")
    p.generate()
    p.step(4, total, "follow the clicks through both jobs into the event store")
    p.follow()
    p.dlq()
    p.step(5, total, "train the recommender (ALS, implicit feedback)")
    p.train()
    p.step(6, total, "query recommendations over HTTP")
    p.query()
    p.step(7, total, "done")
    if a.report:
        with open(a.report, "w") as f:
            json.dump(p.report, f)


if __name__ == "__main__":
    main()

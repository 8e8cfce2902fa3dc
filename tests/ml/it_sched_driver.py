#!/usr/bin/python3
"""Integration test: retraining schedules registered with the driver.

A broker, an event server owning the data dir (as in `eddy up`), a driver
whose store is that data dir, and `eddy serve --reload-every 1s`. Checks:
  - the API refuses what it must: no token (401), a command outside the
    allow-list, a flag outside train's list, a bad cron (400 with a message),
    and on a driver that embeds its store (so a child could not open it) a
    schedule that names no store;
  - `eddy schedule train --every 2s` registers under the derived name
    train-<app>-<engine id>, a cron schedule is accepted (and a bad one is
    refused by the CLI);
  - the driver runs `eddy train`, records runs (start, end, events, metric,
    promoted), `eddy schedule list` shows them, serve picks up the version;
  - a failing schedule records failed runs with the error and keeps its
    period (no retry storm);
  - a run past its --timeout is killed and recorded as "timeout";
  - kill -9 of the driver mid-run: the train child dies with it; after the
    restart schedules and runs are still listed, the cut run is recorded as
    "interrupted" and not re-run early, finished runs are unchanged, run
    numbers do not repeat, runs go on;
  - run-now and delete.
"""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

EDDY = os.environ.get("EDDY", "build/eddy")
MULT = float(os.environ.get("TEST_TIMEOUT_MULT", "1"))
SEED = int(os.environ.get("TEST_SEED", "4242"))
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL (seed %d): %s" % (SEED, msg), flush=True)
    return cond


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_for(cond, what, timeout):
    deadline = time.time() + timeout * MULT
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise TimeoutError("timed out waiting for " + what)


def connectable(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def run(args, ok=(0,)):
    p = subprocess.run([EDDY] + args, capture_output=True, text=True, timeout=120 * MULT)
    if p.returncode not in ok:
        raise RuntimeError("eddy %s: status %d\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p


def http(port, method, path, body=None, token=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=20 * MULT) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Procs:
    def __init__(self, tmp):
        self.tmp, self.p, self.logs = tmp, {}, {}

    def start(self, key, args):
        log = open(os.path.join(self.tmp, key + ".log"), "ab")
        self.logs[key] = log.name
        self.p[key] = subprocess.Popen([EDDY] + args, stdout=log, stderr=subprocess.STDOUT)
        return self.p[key]

    def stop(self, key, sig=signal.SIGTERM):
        p = self.p.get(key)
        if p and p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=20 * MULT)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def tail(self, key):
        with open(self.logs[key], "rb") as f:
            return f.read().decode("utf-8", "replace")[-3000:]


def children_of(pid):
    """Live processes whose parent is pid (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
                if int(st.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


def main():
    tmp = tempfile.mkdtemp(prefix="eddy-it-sched-")
    procs = Procs(tmp)
    try:
        body(tmp, procs)
    except Exception as e:  # noqa: BLE001 - report, print logs, clean up
        failures.append("exception: %r" % e)
        print("FAIL (seed %d): %r" % (SEED, e), flush=True)
    finally:
        if failures:
            for k in procs.logs:
                print("---- %s.log (tail) ----\n%s" % (k, procs.tail(k)))
        for k in list(procs.p):
            procs.stop(k)
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        sys.exit(1)
    print("OK")


def body(tmp, procs):
    data = os.path.join(tmp, "data")
    ddata = os.path.join(tmp, "driver")
    # --- ratings (generated, small), imported before the event server starts ---
    rng = random.Random(SEED)
    rows = []
    for u in range(50):
        for i in range(40):
            if rng.random() < 0.2:
                rows.append("u%d,i%d,%d" % (u, i, 1 + (u * 7 + i * 3) % 5))
    csv = os.path.join(tmp, "ratings.csv")
    with open(csv, "w") as f:
        f.write("\n".join(rows) + "\n")
    run(["app", "new", "shop", "--data", data])
    run(["import", "--app", "shop", "--input", csv, "--csv", "user,item,rating", "--data", data, "--quiet"])
    engine = os.path.join(tmp, "engine.json")
    with open(engine, "w") as f:
        json.dump({"id": "v1", "datasource": {"params": {"appName": "shop"}},
                   "algorithms": [{"name": "als", "params": {"rank": 4, "numIterations": 4}}]}, f)
    run(["train", "--engine", engine, "--data", data, "--quiet"])  # v1, so serve has a model

    # --- roles: broker, event server (owns data), driver (store = data, as eddy up), serve ---
    bport, dport, sport = free_port(), free_port(), free_port()
    procs.start("broker", ["broker", "--data", os.path.join(tmp, "broker"),
                           "--listen", "127.0.0.1:%d" % bport, "--http-listen", "off"])
    procs.start("eventserver", ["eventserver", "--data", data, "--listen", "127.0.0.1:0"])
    wait_for(lambda: os.path.exists(os.path.join(data, "eventserver.addr")), "eventserver.addr", 20)
    driver_args = ["driver", "--data", ddata, "--listen", "127.0.0.1:%d" % dport,
                   "--broker", "127.0.0.1:%d" % bport, "--store-dir", data]

    def start_driver():
        p = procs.start("driver", driver_args)
        wait_for(lambda: p.poll() is not None or connectable(dport), "driver port", 30)
        if p.poll() is not None:
            raise RuntimeError("driver exited")
        return p

    start_driver()
    token = open(os.path.join(ddata, "token")).read().strip()
    procs.start("serve", ["serve", "--engine", engine, "--data", data,
                          "--listen", "127.0.0.1:%d" % sport, "--reload-every", "1s"])
    wait_for(lambda: connectable(sport), "serve port", 30)
    drv = ["--driver", "127.0.0.1:%d" % dport, "--driver-data", ddata]

    # --- bad input: token, allow-list, flags, cron ---
    good = {"command": "train", "args": ["--app=shop"], "every_ms": 60000,
            "files": {"engine": open(engine).read()}}
    st, b = http(dport, "PUT", "/v1/schedules/x", good)
    check(st == 401, "PUT without a token: %s %s" % (st, b))
    st, b = http(dport, "PUT", "/v1/schedules/x", good, "wrong-token-" + "0" * 36)
    check(st == 401, "PUT with a wrong token: %s" % st)
    for bad, want in [
            (dict(good, command="sh"), "not allowed"),
            (dict(good, command="/bin/sh"), "not allowed"),
            (dict(good, args=["--ratings=/etc/passwd"]), "not allowed"),
            (dict(good, args=["--engine=/tmp/other.json"]), "not allowed"),
            (dict(good, args=["--result-json=/tmp/x"]), "not allowed"),
            (dict(good, args=["positional"]), "not allowed"),
            ({k: v for k, v in good.items() if k != "every_ms"}, "exactly one"),
            (dict(good, cron="0 3 * * *"), "exactly one"),
            (dict({k: v for k, v in good.items() if k != "every_ms"}, cron="61 * * * *"), "minute"),
            (dict({k: v for k, v in good.items() if k != "every_ms"}, cron="0 0 31 2 *"), "never"),
            (dict(good, every_ms=10), "every_ms"),
            (dict(good, files={}), "files.engine"),
            (dict(good, files={"other": "x"}), "files.other"),
            (dict(good, shell="yes"), "unknown field")]:
        st, b = http(dport, "PUT", "/v1/schedules/x", bad, token)
        check(st == 400 and want in (b or {}).get("message", ""), "bad PUT %s: %s %s" % (bad.get("command"), st, b))
    st, b = http(dport, "PUT", "/v1/schedules/..", good, token)
    check(st in (400, 404), "PUT with a bad name: %s" % st)
    st, b = http(dport, "GET", "/v1/schedules/x")
    check(st == 404, "a refused schedule exists: %s" % st)
    # a driver that embeds its store holds its lock: schedules there must name a store
    d2port, d2data = free_port(), os.path.join(tmp, "driver2")
    p2 = procs.start("driver2", ["driver", "--data", d2data, "--listen", "127.0.0.1:%d" % d2port,
                                 "--broker", "127.0.0.1:%d" % bport])
    wait_for(lambda: p2.poll() is not None or connectable(d2port), "driver2 port", 30)
    tok2 = open(os.path.join(d2data, "token")).read().strip()
    st, b = http(d2port, "PUT", "/v1/schedules/x", good, tok2)
    check(st == 400 and "embeds its RocksDB" in b["message"], "embedded-store driver, no store: %s %s" % (st, b))
    st, b = http(d2port, "PUT", "/v1/schedules/x", dict(good, args=["--app=shop", "--data=" + data]), tok2)
    check(st == 201 and b["name"] == "x", "embedded-store driver, --data given: %s %s" % (st, b))
    procs.stop("driver2")
    p = run(["schedule", "train", "--engine", engine, "--cron", "0 25 * * *"] + drv, ok=(2,))
    check("hour" in p.stderr, "bad --cron message: " + p.stderr)
    p = run(["schedule", "train", "--engine", engine, "--cron", "0 3 * * *", "--name", "nightly"] + drv)
    check("schedule nightly registered" in p.stdout and 'cron "0 3 * * *"' in p.stdout, "cron schedule: " + p.stdout)

    # --- the schedule, its runs, serve picking up the promoted version ---
    p = run(["schedule", "train", "--engine", engine, "--every", "2s"] + drv)
    check("schedule train-shop-v1 registered" in p.stdout and "every 2s" in p.stdout, "schedule train: " + p.stdout)
    run(["schedule", "train", "--engine", engine, "--app", "nosuchapp", "--every", "1s", "--name", "bad"] + drv)

    def runs(name, n=20):
        st, b = http(dport, "GET", "/v1/schedules/%s?runs=%d" % (name, n))
        return b["runs"] if st == 200 else []

    def promoted_run():
        return next((r for r in runs("train-shop-v1")
                     if r["status"] == "ok" and (r.get("result") or {}).get("promoted")), None)
    r = wait_for(promoted_run, "a scheduled run that promoted a model", 60)
    res = r["result"]
    check(res["events"] == len(rows) and res["version"] >= 2 and res["trigger"] == "schedule"
          and "rmse" in res["metrics"] and r["end_ms"] >= r["start_ms"] and r["exit_code"] == 0,
          "run record: %s" % r)
    ver = res["version"]
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % dport, timeout=20 * MULT) as m:
        metrics = m.read().decode()
    mm = re.search(r'^eddy_schedule_runs_total\{schedule="train-shop-v1",status="ok"\} (\d+)', metrics, re.M)
    check(mm and int(mm.group(1)) >= 1 and 'eddy_schedule_running{schedule="train-shop-v1"}' in metrics,
          "driver /metrics lacks the schedule: %s" % metrics[-800:])
    wait_for(lambda: http(sport, "GET", "/")[1]["model"]["version"] >= ver, "serve to reload v%d" % ver, 20)
    p = run(["schedule", "list"] + drv)
    check(re.search(r"^train-shop-v1\s+train shop/v1\s+every 2s", p.stdout, re.M)
          and re.search(r"run \d+ .* ok .*events %d .*rmse \d\.\d+ .*promoted v\d+" % len(rows), p.stdout)
          and re.search(r'^nightly\s+train shop/v1\s+cron "0 3 \* \* \*"', p.stdout, re.M),
          "schedule list: " + p.stdout)

    # a failing schedule: failed runs with the error, spaced by its period
    bad_runs = wait_for(lambda: [r for r in runs("bad") if r["status"] == "failed"][:2] if
                        len([r for r in runs("bad") if r["status"] == "failed"]) >= 2 else None,
                        "two failed runs of the bad schedule", 60)
    check(all("exit status 1" in r["error"] and "nosuchapp" in r["error"] for r in bad_runs),
          "failed run errors: %s" % [r["error"] for r in bad_runs])
    check(bad_runs[0]["start_ms"] - bad_runs[1]["start_ms"] >= 900, "failed runs retried too fast: %s" %
          [r["start_ms"] for r in bad_runs])
    p = run(["schedule", "list"] + drv)
    check(re.search(r"run \d+ .* failed .*exit status 1", p.stdout), "list shows failures: " + p.stdout)
    run(["schedule", "delete", "bad"] + drv)

    # --- a run past its timeout is killed and recorded as such ---
    slow = os.path.join(tmp, "slow.json")
    with open(slow, "w") as f:  # seconds of work on one thread
        json.dump({"id": "slow", "datasource": {"params": {"appName": "shop"}},
                   "algorithms": [{"name": "als", "params": {"rank": 100, "numIterations": 1000}}]}, f)
    slow_args = ["--engine", slow, "--every", "1h", "--threads", "1"]
    run(["schedule", "train", "--name", "slow-timeout", "--timeout", "1s"] + slow_args + drv)
    run(["schedule", "run-now", "slow-timeout"] + drv)
    r = wait_for(lambda: next((r for r in runs("slow-timeout") if r["status"] != "running"), None),
                 "the slow run to end", 60)
    check(r["status"] == "timeout" and "timeout" in r["error"] and r["signal"] == 9 and r["trigger"] == "run-now",
          "timed-out run: %s" % r)
    run(["schedule", "delete", "slow-timeout"] + drv)

    # --- kill -9 of the driver (mid-run), restart: nothing lost, nothing repeated, runs go on ---
    run(["schedule", "train", "--name", "slow"] + slow_args + drv)
    run(["schedule", "run-now", "slow"] + drv)
    wait_for(lambda: [r for r in runs("slow") if r["status"] == "running"], "the slow run to start", 60)
    before = runs("train-shop-v1", 50)
    drv_pid = procs.p["driver"].pid
    kids = children_of(drv_pid)
    check(kids, "no train child is running under the driver")
    procs.stop("driver", signal.SIGKILL)

    def alive(pid):
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    # The train child dies with its driver (PDEATHSIG): no orphan keeps training.
    wait_for(lambda: not any(alive(k) for k in kids), "the running train child to die with the driver", 10)
    start_driver()
    sr = runs("slow")
    check(len(sr) == 1 and sr[0]["status"] == "interrupted" and "crashed" in sr[0]["error"],
          "the run killed with the driver: %s" % sr)
    after = runs("train-shop-v1", 50)
    check(len(after) >= len(before) and after[0]["run"] >= before[0]["run"],
          "runs lost over the restart: %d -> %d" % (len(before), len(after)))
    finished_before = {r["run"]: r for r in before if r["status"] != "running"}
    for r in after:
        if r["run"] in finished_before:
            check(r == finished_before[r["run"]], "finished run %d changed over the restart" % r["run"])
    check(all(r["status"] != "running" for r in after if r["run"] <= before[0]["run"]),
          "a run is still 'running' after the restart: %s" % [(r["run"], r["status"]) for r in after])
    check([r["run"] for r in after] == sorted({r["run"] for r in after}, reverse=True), "run numbers repeat")
    last = after[0]["run"]
    wait_for(lambda: any(r["run"] > last and r["status"] == "ok" for r in runs("train-shop-v1")),
             "a run after the restart", 60)
    check(len(runs("slow")) == 1, "the interrupted schedule ran again before its time: %s" % runs("slow"))
    p = run(["schedule", "list"] + drv)
    check("train-shop-v1" in p.stdout and "nightly" in p.stdout and "bad" not in p.stdout.split()
          and re.search(r"run 1 .* interrupted .*crashed", p.stdout), "list after the restart: " + p.stdout)
    run(["schedule", "delete", "slow"] + drv)

    # --- run-now and delete ---
    p = run(["schedule", "run-now", "nightly"] + drv)
    check("is starting" in p.stdout, "run-now: " + p.stdout)
    wait_for(lambda: any(r["trigger"] == "run-now" and r["status"] == "ok" for r in runs("nightly")),
             "the run-now run", 60)
    p = run(["schedule", "run-now", "nosuch"] + drv, ok=(1,))
    check("404" in p.stderr, "run-now of an unknown schedule: " + p.stderr)
    for name in ["train-shop-v1", "nightly"]:
        p = run(["schedule", "delete", name] + drv)
        check("deleted schedule " + name in p.stdout, "delete: " + p.stdout)
    p = run(["schedule", "list"] + drv)
    check("no schedules" in p.stdout, "after delete: " + p.stdout)
    check(not [d for d in os.listdir(os.path.join(ddata, "schedules"))], "schedule dirs left behind")
    p = run(["schedule", "delete", "nightly"] + drv, ok=(1,))
    check("404" in p.stderr, "deleting twice: " + p.stderr)
    check(procs.p["eventserver"].poll() is None and procs.p["serve"].poll() is None, "a role died")


if __name__ == "__main__":
    main()

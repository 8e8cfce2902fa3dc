"""Helpers for the runtime integration tests: a cluster of `eddy broker`,
`eddy driver` (embedded RocksDB store) and `eddy worker` processes on free
loopback ports, with bounded waits and cleanup on every exit path."""
import json
import os
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
BIN = os.environ.get("EDDY_BINARY_DIR", "build")
JOBS = os.path.join(BIN, "tests", "runtime", "jobs")
SCALE = float(os.environ.get("EDDY_TEST_SCALE", "1"))
MULT = float(os.environ.get("TEST_TIMEOUT_MULT", "1"))

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)
    return cond


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_for(cond, what, timeout=30):
    deadline = time.time() + timeout * MULT
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise TimeoutError("timed out waiting for " + what)


def job_path(name):
    return os.path.join(JOBS, name + ".so")


class Cluster:
    def __init__(self, name, partitions=8, topic="in"):
        self.dir = tempfile.mkdtemp(prefix="eddy-it-%s-" % name)
        self.procs = {}
        self.logs = {}
        self.topic = topic
        self.bport = free_port()
        self.dport = free_port()
        self.broker_addr = "127.0.0.1:%d" % self.bport
        self.driver_addr = "127.0.0.1:%d" % self.dport
        self.data = os.path.join(self.dir, "driver")
        self.nworkers = 0
        self.start_broker()
        self.run([EDDY, "topics", "create", topic, "--partitions", str(partitions),
                  "--broker", self.broker_addr])
        self.run([EDDY, "app", "new", "rt", "--id", "1", "--data", self.data])

    # -- processes -------------------------------------------------------
    def spawn(self, key, args, env=None):
        log = open(os.path.join(self.dir, key + ".log"), "ab")
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=e)
        self.procs[key] = p
        self.logs[key] = log.name
        return p

    def log(self, key):
        with open(self.logs[key], "rb") as f:
            return f.read().decode("utf-8", "replace")

    def run(self, args, check_rc=True, **kw):
        r = subprocess.run(args, capture_output=True, text=True, timeout=120 * MULT, **kw)
        if check_rc and r.returncode != 0:
            raise RuntimeError("%s failed (%d): %s %s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def start_broker(self):
        self.spawn("broker", [EDDY, "broker", "--data", os.path.join(self.dir, "broker"),
                              "--listen", self.broker_addr, "--http-listen", "off"])
        wait_for(lambda: self._connectable(self.bport), "broker port")

    def _connectable(self, port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    def start_driver(self, fault=None, extra=()):
        env = {"EDDY_FAULT": fault} if fault else {"EDDY_FAULT": ""}
        self.spawn("driver", [EDDY, "driver", "--data", self.data, "--listen", self.driver_addr,
                              "--broker", self.broker_addr, "--worker-timeout", "2s"] + list(extra),
                   env)
        wait_for(lambda: self.procs["driver"].poll() is not None or self._connectable(self.dport),
                 "driver port")
        if self.procs["driver"].poll() is not None:
            raise RuntimeError("driver exited: " + self.log("driver"))
        self.token = open(os.path.join(self.data, "token")).read().strip()

    def start_worker(self, slots=2):
        self.nworkers += 1
        key = "worker%d" % self.nworkers
        # The binary cache lives in the cluster dir, so even a kill -9'd
        # worker leaves nothing behind after close().
        self.spawn(key, [EDDY, "worker", "--driver", self.driver_addr, "--data", self.data,
                         "--slots", str(slots), "--heartbeat", "200ms",
                         "--work-dir", os.path.join(self.dir, key + "-cache")])
        return key

    def kill9(self, key):
        p = self.procs[key]
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)

    def stop(self, key):
        p = self.procs.get(key)
        if p and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=20 * MULT)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def close(self, keep=False):
        if sys.exc_info()[0] is not None and not failures:
            failures.append("exception: %s" % sys.exc_info()[1])
        for k in list(self.procs):
            if k != "broker":
                self.stop(k)
        self.stop("broker")
        if failures:
            for k in self.logs:
                print("---- %s.log (tail) ----" % k)
                print(self.log(k)[-3000:])
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- data --------------------------------------------------------------
    def produce(self, lines, key_sep=None, partition=None):
        args = [EDDY, "produce", "--topic", self.topic, "--broker", self.broker_addr, "--quiet"]
        if key_sep:
            args += ["--key-separator", key_sep]
        if partition is not None:
            args += ["--partition", str(partition)]
        r = subprocess.run(args, input="\n".join(lines) + "\n", capture_output=True, text=True,
                           timeout=300 * MULT)
        if r.returncode != 0:
            raise RuntimeError("produce failed: " + r.stderr)

    def export_events(self):
        """Events of app rt (call with the driver stopped: the store is embedded)."""
        r = self.run([EDDY, "export", "--app", "rt", "--output", "-", "--data", self.data])
        return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]

    # -- driver API ---------------------------------------------------------
    def api(self, method, path, body=None, token=True):
        req = urllib.request.Request("http://%s%s" % (self.driver_addr, path), data=body,
                                     method=method)
        if token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=30 * MULT) as r:
                data = r.read()
                return r.status, data
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def status(self, name):
        st, body = self.api("GET", "/v1/jobs/" + name, token=False)
        return json.loads(body) if st == 200 else None

    def submit(self, job, name, *extra, check_rc=True):
        return self.run([EDDY, "submit", job_path(job), "--name", name, "--input", self.topic,
                         "--driver", self.driver_addr, "--data", self.data,
                         "--starting-offsets", "earliest", "--interval", "0"] + list(extra),
                        check_rc=check_rc)

    def wait_records(self, name, n, timeout=120):
        def done():
            s = self.status(name)
            if s and s.get("status") == "paused":
                raise RuntimeError("job paused: %s" % s.get("error"))
            return s if s and s["records"] >= n else None
        return wait_for(done, "%d records through %s" % (n, name), timeout)


def check_exactly_once(events, expected_ids, what):
    """Every expected entity id exactly once, nothing else."""
    ids = [e["entityId"] for e in events]
    check(len(ids) == len(expected_ids),
          "%s: %d events stored for %d records" % (what, len(ids), len(expected_ids)))
    s = set(ids)
    check(len(s) == len(ids), "%s: %d duplicate entity ids" % (what, len(ids) - len(s)))
    missing = set(expected_ids) - s
    check(not missing, "%s: %d records missing (e.g. %s)" % (what, len(missing), sorted(missing)[:3]))


def finish():
    if failures:
        print("%d failure(s)" % len(failures))
        sys.exit(1)
    print("ok")

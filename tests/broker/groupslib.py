#!/usr/bin/python3
"""Helpers for the consumer-group integration tests: a broker on free
loopback ports (Kafka + lag/metrics HTTP) that can be kill -9'ed and
restarted on the same port, consumers as subprocesses whose output is
collected in files, and bounded polling. Deadlines scale with
TEST_TIMEOUT_MULT, record counts with EDDY_TEST_SCALE."""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

MULT = float(os.environ.get("TEST_TIMEOUT_MULT", "1"))
SCALE = float(os.environ.get("EDDY_TEST_SCALE", "1"))
EDDY = os.environ.get("EDDY", "build/eddy")


def scaled(n, minimum=20):
    return max(minimum, int(n * SCALE))


def wait_for(cond, timeout, what, interval=0.05):
    """Polls cond() until it returns a truthy value or the (scaled) deadline passes."""
    deadline = time.time() + timeout * MULT
    while True:
        v = cond()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout * MULT, what))
        time.sleep(interval)


class Broker:
    def __init__(self, tmp, *extra):
        self.tmp = tmp
        self.data = os.path.join(tmp, "data")
        self.extra = list(extra)
        self.proc = None
        self.port = 0
        self.http_port = 0
        self.starts = 0

    def start(self):
        self.starts += 1
        self.log_path = os.path.join(self.tmp, "broker-%d.log" % self.starts)
        self.logf = open(self.log_path, "wb")
        args = [EDDY, "broker", "--data", self.data, "--listen", "127.0.0.1:%d" % self.port,
                "--http-listen", "127.0.0.1:0"] + self.extra
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT)

        def ready():
            log = self.log()
            m = re.search(r"broker: listening on 127\.0\.0\.1:(\d+)", log)
            h = re.search(r"HTTP at http://127\.0\.0\.1:(\d+)", log)
            if self.proc.poll() is not None:
                raise AssertionError("broker exited early:\n" + log)
            if m and h and "loaded" in log:
                return int(m.group(1)), int(h.group(1))
            return None
        self.port, self.http_port = wait_for(ready, 15, "broker start")
        return self

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def http(self, path):
        """GET path on the lag/metrics port: (status, parsed JSON or text)."""
        url = "http://127.0.0.1:%d%s" % (self.http_port, path)
        try:
            with urllib.request.urlopen(url, timeout=5 * MULT) as r:
                body, status = r.read(), r.status
        except urllib.error.HTTPError as e:
            body, status = e.read(), e.code
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace")

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.logf.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20 * MULT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.logf.close()


class Proc:
    """A subprocess writing to a file; lines() reads what it printed so far."""

    def __init__(self, tmp, name, args, env=None):
        self.path = os.path.join(tmp, name + ".out")
        self.errpath = os.path.join(tmp, name + ".err")
        self.out = open(self.path, "wb")
        self.err = open(self.errpath, "wb")
        self.proc = subprocess.Popen(args, stdout=self.out, stderr=self.err, env=env)

    def lines(self):
        with open(self.path, "rb") as f:
            data = f.read().decode(errors="replace")
        # only complete lines
        return data.split("\n")[:-1]

    def stderr(self):
        with open(self.errpath, "rb") as f:
            return f.read().decode(errors="replace")

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20 * MULT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        self.err.close()


def kcat_produce(addr, topic, records):
    """records: list of (key, value) strings; waits for delivery (acks=all)."""
    data = "".join("%s:%s\n" % kv for kv in records).encode()
    r = subprocess.run(["kcat", "-b", addr, "-P", "-t", topic, "-K:", "-X", "acks=all"],
                       input=data, capture_output=True, timeout=60 * MULT)
    if r.returncode != 0:
        raise AssertionError("kcat -P failed: %s" % r.stderr.decode(errors="replace"))


def group_lag(broker, group):
    st, doc = broker.http("/v3/kafka/local/consumer/%s/lag" % group)
    if st != 200:
        return None
    return doc["status"]


def committed_all(broker, group, npartitions, heads=None):
    """True once the group has commits on npartitions partitions and zero lag."""
    s = group_lag(broker, group)
    return bool(s) and s["partition_count"] == npartitions and s["totallag"] == 0


def make_tmp(name):
    return tempfile.mkdtemp(prefix="eddy-%s-" % name)


def rmtree(path):
    shutil.rmtree(path, ignore_errors=True)

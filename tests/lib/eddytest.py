"""Shared helpers for Eddy's Python integration tests (run with /usr/bin/python3).

Servers started here listen on free loopback ports, write their logs into the
test's temporary directory, and are always stopped (SIGTERM, then SIGKILL)
when the test ends, pass or fail. Deadlines scale with TEST_TIMEOUT_MULT and
record counts with EDDY_TEST_SCALE (the ASan run sets both).
"""
import atexit
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

EDDY = os.environ.get("EDDY") or os.path.join(os.environ.get("EDDY_BINARY_DIR", "build"), "eddy")
MULT = float(os.environ.get("TEST_TIMEOUT_MULT", "1"))
SCALE = float(os.environ.get("EDDY_TEST_SCALE", "1"))

_procs = []
_dirs = []


def scaled(n, minimum=1):
    return max(minimum, int(n * SCALE))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tmpdir(prefix="eddy-it-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _dirs.append(d)
    return d


def wait_for(cond, timeout, what):
    """Polls cond() until it returns a true value; fails the test after timeout*MULT seconds."""
    deadline = time.monotonic() + timeout * MULT
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out after %.0fs waiting for %s" % (timeout * MULT, what))


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Server:
    """An eddy subcommand running in the background, e.g. Server(["broker", "--data", d, ...], port)."""

    def __init__(self, args, port, logdir, name=None, env=None):
        self.args, self.port, self.name = args, port, name or args[0]
        self.log_path = os.path.join(logdir, "%s-%d.log" % (self.name, port))
        self.env = env
        self.proc = None

    def start(self, timeout=20):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([EDDY] + self.args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=self.env, start_new_session=True)
        _procs.append(self)
        wait_for(lambda: self.proc.poll() is not None or port_open(self.port), timeout,
                 "%s to listen on %d" % (self.name, self.port))
        if self.proc.poll() is not None:
            raise AssertionError("%s exited with %s at start:\n%s" % (self.name, self.proc.returncode, self.tail()))
        return self

    def tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout=10):
        """SIGTERM and wait; returns the exit code (SIGKILL after timeout)."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout * MULT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("%s did not stop within %ss of SIGTERM" % (self.name, timeout))

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _cleanup():
    for s in _procs:
        try:
            if s.proc and s.proc.poll() is None:
                os.killpg(s.proc.pid, signal.SIGKILL)
                s.proc.wait()
        except OSError:
            pass
    for d in _dirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))


def start_broker(logdir, data=None, extra=()):
    port = free_port()
    data = data or os.path.join(logdir, "broker-data")
    return Server(["broker", "--data", data, "--listen", "127.0.0.1:%d" % port] + list(extra),
                  port, logdir, "broker").start()


def http(method, url, body=None, headers=None, timeout=10):
    """Returns (status, parsed JSON or text). body may be a dict (sent as JSON) or bytes/str."""
    data = body
    hdrs = dict(headers or {})
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        data = body.encode()
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout * MULT) as r:
            raw, status = r.read(), r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")

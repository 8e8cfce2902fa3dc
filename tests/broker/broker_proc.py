"""Start and stop an `eddy broker` for an integration test.

The broker binds 127.0.0.1:0 (a free port chosen by the kernel, so parallel
tests never race for a port) and we read the port from its "listening on
HOST:PORT" log line. Every wait polls a condition under a deadline scaled by
TEST_TIMEOUT_MULT; nothing sleeps a fixed time and hopes. Use as a context
manager so the broker is killed and the temp dir removed even on failure:

    with Broker() as b:
        b.start()
        ... b.bootstrap ...
        b.kill9(); b.start()      # same data dir, new port
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

MULT = float(os.environ.get("TEST_TIMEOUT_MULT", "1") or 1)
SCALE = float(os.environ.get("EDDY_TEST_SCALE", "1") or 1)
LISTEN_RE = re.compile(rb"listening on ([0-9.]+):([0-9]+)")


def eddy_path():
    if os.environ.get("EDDY"):
        return os.environ["EDDY"]
    return os.path.join(os.environ.get("EDDY_BINARY_DIR", "build"), "eddy")


def wait_for(cond, timeout, what, step=0.02):
    """Polls cond() until it returns a true value (returned) or the scaled
    deadline passes (AssertionError naming what)."""
    deadline = time.monotonic() + timeout * MULT
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout * MULT, what))
        time.sleep(step)


class Broker:
    def __init__(self, extra_args=()):
        self.dir = tempfile.mkdtemp(prefix="eddy-it-")
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "broker.log")
        self.extra_args = list(extra_args)
        self.proc = None
        self.port = None
        self.starts = 0

    @property
    def bootstrap(self):
        return "127.0.0.1:%d" % self.port

    def start(self, timeout=15):
        assert self.proc is None
        start_at = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [eddy_path(), "broker", "--data", self.data, "--listen", "127.0.0.1:0"] + self.extra_args,
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        self.starts += 1

        def listening():
            if self.proc.poll() is not None:
                raise AssertionError("broker exited with %s during start-up:\n%s"
                                     % (self.proc.returncode, self.log_tail()))
            with open(self.log_path, "rb") as f:
                f.seek(start_at)
                m = LISTEN_RE.search(f.read())
            return m and int(m.group(2))

        self.port = wait_for(listening, timeout, "the broker to listen")
        return self

    def kill9(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self, timeout=20):
        """SIGTERM and wait for a clean exit; returns the exit status."""
        if not self.proc:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout * MULT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            raise AssertionError("broker did not exit within %.0fs of SIGTERM" % (timeout * MULT))
        self.proc = None
        return rc

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return "(no log)"

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            sys.stderr.write("---- broker log (tail) ----\n%s\n" % self.log_tail())
        self.kill9()
        shutil.rmtree(self.dir, ignore_errors=True)
        return False

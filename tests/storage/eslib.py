"""Helpers shared by the event server integration tests: free ports, starting
`eddy eventserver` and redis-server with bounded waits, an HTTP client that
keeps one connection per thread, and cleanup that runs even on failure."""
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

EDDY = os.environ.get("EDDY", "build/eddy")
MULT = float(os.environ.get("TEST_TIMEOUT_MULT", "1"))
SCALE = float(os.environ.get("EDDY_TEST_SCALE", "1"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout * MULT
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def eddy(*args, check=True):
    r = subprocess.run([EDDY] + list(args), capture_output=True, text=True, timeout=60 * MULT)
    if check and r.returncode != 0:
        raise AssertionError("eddy %s failed (%d): %s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r


class Redis:
    def __init__(self, tmp):
        self.port = free_port()
        self.dir = os.path.join(tmp, "redis-server")
        os.makedirs(self.dir)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.5) as s:
                    s.sendall(b"PING\r\n")
                    return s.recv(16).startswith(b"+PONG")
            except OSError:
                return False
        wait_for(up, 10, "redis-server")
        self.url = "redis://127.0.0.1:%d/0" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class EventServer:
    def __init__(self, data, store=None, extra=(), port=0):
        self.data, self.store = data, store
        args = [EDDY, "eventserver", "--data", data, "--listen", "127.0.0.1:%d" % port]
        if store:
            args += ["--store", store]
        args += list(extra)
        self.log = open(os.path.join(data + ".log"), "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log)
        line = b""
        deadline = time.monotonic() + 20 * MULT
        # The server prints "Event Server listening on HOST:PORT" once serving.
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line or self.proc.poll() is not None:
                break
        if not line.startswith(b"Event Server listening on "):
            self.proc.kill()
            raise AssertionError("eventserver did not start: %r (log %s)" % (line, data + ".log"))
        self.port = int(line.strip().rsplit(b":", 1)[1])

    def args(self):
        return ["--store", self.store] if self.store else ["--data", self.data]

    def stop(self, sig=signal.SIGTERM):
        """Stops the server; a SIGTERM stop must exit 0 (under ASan that
        also means no leak and no memory error was reported)."""
        was_running = self.proc.poll() is None
        if was_running:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20 * MULT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.log.close()
        if was_running and sig == signal.SIGTERM and self.proc.returncode != 0:
            with open(self.data + ".log", "rb") as f:
                tail = f.read()[-3000:].decode("utf-8", "replace")
            raise AssertionError("eventserver exited %d on SIGTERM:\n%s" % (self.proc.returncode, tail))


class Client:
    """One keep-alive connection; methods return (status, parsed JSON or text)."""

    def __init__(self, port, key=None, channel=None):
        self.port, self.key, self.channel = port, key, channel
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30 * MULT)

    def url(self, path, params=None, auth=True):
        q = []
        if auth and self.key is not None:
            q.append(("accessKey", self.key))
        if auth and self.channel is not None:
            q.append(("channel", self.channel))
        for k, v in (params or []):
            q.append((k, v))
        return path + ("?" + urllib.parse.urlencode(q) if q else "")

    def raw(self, method, target, body=None, headers=None):
        h = {"Content-Type": "application/json"} if body is not None else {}
        h.update(headers or {})
        if isinstance(body, str):
            body = body.encode()
        for attempt in range(2):
            try:
                self.conn.request(method, target, body=body, headers=h)
                r = self.conn.getresponse()
                data = r.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30 * MULT)
                if attempt:
                    raise
        ctype = r.getheader("Content-Type", "")
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data.decode("utf-8", "replace")
        return r.status, parsed, ctype

    def req(self, method, path, body=None, params=None, auth=True, headers=None):
        if body is not None and not isinstance(body, (str, bytes)):
            body = json.dumps(body)
        s, j, _ = self.raw(method, self.url(path, params, auth), body, headers)
        return s, j

    def close(self):
        self.conn.close()


def new_app(srv_args, name, *extra):
    r = eddy("app", "new", name, *srv_args, *extra)
    key = [l for l in r.stdout.splitlines() if l.startswith("Access Key: ")]
    assert key, r.stdout
    ids = [l for l in r.stdout.splitlines() if l.strip().startswith("ID: ")]
    assert ids, r.stdout
    return key[0].split(": ", 1)[1].strip(), int(ids[0].split(":")[1])


def basic(key):
    return {"Authorization": "Basic " + base64.b64encode((key + ":").encode()).decode()}


class TempDir:
    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="eddy-es-")
        return self.path

    def __exit__(self, *a):
        shutil.rmtree(self.path, ignore_errors=True)

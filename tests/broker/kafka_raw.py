"""Raw Kafka wire helpers for broker integration tests (no client library):
start/stop an `eddy broker` on a free loopback port, encode requests, read
responses, build RecordBatch v2 blobs with a CRC-32C.
"""
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

MULT = float(os.environ.get("TEST_TIMEOUT_MULT", "1"))
SCALE = float(os.environ.get("EDDY_TEST_SCALE", "1"))


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_T = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _T[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def varint(n):
    u = (n << 1) ^ (n >> 63)
    out = bytearray()
    while u >= 0x80:
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u)
    return bytes(out)


def vbytes(b):
    if isinstance(b, str):
        b = b.encode()
    return varint(-1) if b is None else varint(len(b)) + b


def record_batch(records, ts=1700000000000, pid=-1, epoch=-1, seq=-1, attributes=0):
    """records: list of (key, value, [(hkey, hval)]) -> one RecordBatch v2
    (pid/epoch/seq: an idempotent producer's fields; -1 = not idempotent)."""
    body = bytearray()
    for i, (k, v, hs) in enumerate(records):
        r = b"\x00" + varint(0) + varint(i) + vbytes(k) + vbytes(v) + varint(len(hs))
        for hk, hv in hs:
            r += vbytes(hk) + vbytes(hv)
        body += varint(len(r)) + r
    after_crc = struct.pack(">hiqqqhii", attributes, len(records) - 1, ts, ts, pid, epoch, seq,
                            len(records)) + bytes(body)
    crc = crc32c(after_crc)
    rest = struct.pack(">ibI", -1, 2, crc) + after_crc
    return struct.pack(">qi", 0, len(rest)) + rest


def kstr(s):
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">h", len(b)) + b


def kbytes(b):
    if b is None:
        return struct.pack(">i", -1)
    return struct.pack(">i", len(b)) + b


def frame(api_key, version, corr, body, client_id="it", flexible=False):
    hdr = struct.pack(">hhi", api_key, version, corr) + kstr(client_id)
    if flexible:
        hdr += b"\x00"
    payload = hdr + body
    return struct.pack(">i", len(payload)) + payload


def produce_body(topic, partition, records, acks=1):
    return (kstr(None) + struct.pack(">hii", acks, 30000, 1) + kstr(topic) +
            struct.pack(">ii", 1, partition) + kbytes(records))


def list_offsets_body(topic, partition, ts):
    return struct.pack(">ib", -1, 0) + struct.pack(">i", 1) + kstr(topic) + struct.pack(">iiq", 1, partition, ts)


class Reader:
    def __init__(self, b):
        self.b, self.p = b, 0

    def take(self, n):
        if self.p + n > len(self.b):
            raise ValueError("short response")
        v = self.b[self.p:self.p + n]
        self.p += n
        return v

    def i8(self):
        return struct.unpack(">b", self.take(1))[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def str(self):
        n = self.i16()
        return None if n < 0 else self.take(n).decode()


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            return None
        buf += d
    return buf


def recv_response(s):
    """Returns (corr_id, body bytes) or None when the broker closed."""
    h = recv_exact(s, 4)
    if h is None:
        return None
    size = struct.unpack(">i", h)[0]
    payload = recv_exact(s, size)
    if payload is None:
        return None
    return struct.unpack(">i", payload[:4])[0], payload[4:]


def closed_by_peer(s, timeout=5.0):
    """True when the broker closes the connection (EOF) within timeout."""
    s.settimeout(timeout * MULT)
    try:
        while True:
            d = s.recv(65536)
            if not d:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


class Broker:
    """An `eddy broker` on a free port in a temp dir; always stopped by stop()."""

    def __init__(self, *extra, data=None):
        self.own_dir = data is None
        self.data = data or tempfile.mkdtemp(prefix="eddy-it-")
        self.extra = list(extra)
        self.proc = None
        self.log_path = os.path.join(tempfile.gettempdir(), "eddy-it-%d-%d.log" % (os.getpid(), id(self)))

    def start(self):
        eddy = os.environ.get("EDDY", "build/eddy")
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen([eddy, "broker", "--data", self.data, "--listen", "127.0.0.1:0"] + self.extra,
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.time() + 10 * MULT
        while time.time() < deadline:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", self.log())
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("broker exited early:\n" + self.log())
            time.sleep(0.02)
        raise RuntimeError("broker did not start:\n" + self.log())

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10 * MULT)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def stop(self, sig=signal.SIGTERM, timeout=15):
        rc = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                rc = self.proc.wait(timeout * MULT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
        elif self.proc:
            rc = self.proc.returncode
        if self.proc:
            self.logf.close()
        self.proc = None
        return rc

    def cleanup(self):
        self.stop(signal.SIGKILL)
        if self.own_dir:
            shutil.rmtree(self.data, ignore_errors=True)
        try:
            os.unlink(self.log_path)
        except OSError:
            pass

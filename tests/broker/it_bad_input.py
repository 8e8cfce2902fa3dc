#!/usr/bin/python3
"""Bad input sent as raw bytes to `eddy broker`: each case gets the right
error or a closed connection (only that one), one log line, nothing stored
is damaged, and afterwards another client is still served (raw ApiVersions +
Metadata, and kcat -L)."""
import os
import random
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafka_raw import (MULT, Broker, Reader, closed_by_peer, frame, kstr, list_offsets_body,  # noqa: E402
                       produce_body, record_batch, recv_response)

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


def served(b, what):
    """Another client is still answered: raw ApiVersions v0 + Metadata v1, then kcat -L."""
    s = b.connect()
    try:
        s.sendall(frame(18, 0, 101, b"") + frame(3, 1, 102, struct.pack(">i", -1)))
        r1, r2 = recv_response(s), recv_response(s)
        check(r1 is not None and r1[0] == 101 and Reader(r1[1]).i16() == 0, what + ": ApiVersions answered")
        check(r2 is not None and r2[0] == 102, what + ": Metadata answered in order")
    finally:
        s.close()
    out = subprocess.run(["kcat", "-b", "127.0.0.1:%d" % b.port, "-L", "-m", str(int(5 * MULT))],
                         capture_output=True, text=True, timeout=30 * MULT)
    check(out.returncode == 0 and "broker 0 at 127.0.0.1:%d" % b.port in out.stdout, what + ": kcat -L served")
    check(b.proc.poll() is None, what + ": broker still running")


def latest_offset(b, topic):
    s = b.connect()
    try:
        s.sendall(frame(2, 2, 7, list_offsets_body(topic, 0, -1)))
        corr, body = recv_response(s)
        r = Reader(body)
        r.i32()  # throttle
        r.i32()
        r.str()
        r.i32()
        r.i32()
        err = r.i16()
        r.i64()
        return err, r.i64()
    finally:
        s.close()


def produce(s, topic, batch, corr, acks=1):
    s.sendall(frame(0, 7, corr, produce_body(topic, 0, batch, acks)))
    resp = recv_response(s)
    if resp is None:
        return None
    r = Reader(resp[1])
    r.i32()
    r.str()
    r.i32()
    r.i32()
    return r.i16(), r.i64()


def log_lines_since(b, mark, needle):
    return [ln for ln in b.log()[mark:].splitlines() if needle in ln]


def main():
    b = Broker("--max-request-bytes", "1MiB").start()
    try:
        # --- a good batch, then the same batch with a flipped bit: CORRUPT_MESSAGE, nothing appended
        good = record_batch([(b"k", b"v\x00\xff", [("h", b"x")])])
        s = b.connect()
        check(produce(s, "bad-crc", good, 1) == (0, 0), "good batch appended at offset 0")
        bad = bytearray(good)
        bad[-5] ^= 0x10
        mark = len(b.log())
        check(produce(s, "bad-crc", bytes(bad), 2) == (2, -1), "bad CRC answered CORRUPT_MESSAGE (2)")
        check(latest_offset(b, "bad-crc") == (0, 1), "nothing appended after the bad batch")
        check(len(log_lines_since(b, mark, "checksum")) == 1, "one log line for the bad batch")
        # the connection stays usable after a per-partition error
        check(produce(s, "bad-crc", good, 3) == (0, 1), "same connection still appends")
        # a batch whose length field runs past the records: CORRUPT_MESSAGE too
        torn = good[:-3]
        check(produce(s, "bad-crc", torn, 4)[0] == 2, "torn batch answered CORRUPT_MESSAGE")
        s.close()
        check(latest_offset(b, "bad-crc") == (0, 2), "still two records")
        served(b, "bad CRC")

        # --- ApiVersions with an unsupported version: error 35 + table in a v0 body
        s = b.connect()
        s.sendall(frame(18, 9, 55, b"\x00", flexible=True))
        resp = recv_response(s)
        check(resp is not None and resp[0] == 55, "ApiVersions v9 answered")
        r = Reader(resp[1])
        check(r.i16() == 35, "ApiVersions v9 -> UNSUPPORTED_VERSION")
        n = r.i32()
        keys = {r.i16(): (r.i16(), r.i16()) for _ in range(n)}
        check(keys.get(18) == (0, 3) and keys.get(0) == (3, 7) and keys.get(1) == (4, 11),
              "fallback carries the table")
        s.close()

        cases = [
            # (name, bytes, expected log needle)
            ("unknown api key", frame(99, 0, 1, b"\x00" * 8), "unsupported api key"),
            ("unknown version of Produce", frame(0, 42, 1, b"\x00" * 8), "unsupported version"),
            ("Fetch v3 (below our minimum)", frame(1, 3, 1, b"\x00" * 8), "unsupported version"),
            ("malformed Metadata (count past the end)", frame(3, 1, 1, struct.pack(">i", 1000)), "malformed"),
            ("malformed Produce (records past the end)",
             frame(0, 7, 1, kstr(None) + struct.pack(">hiI", 1, 1000, 1) + kstr("x") +
                   struct.pack(">iii", 1, 0, 5000)), "malformed"),
            ("huge array count", frame(1, 11, 1, struct.pack(">iiiibii", -1, 1, 1, 1, 0, 0, -1) +
                                       struct.pack(">i", 0x7fffffff)), "malformed"),
            ("oversized frame", struct.pack(">i", 0x7fffffff) + b"\x00" * 16, "oversized"),
            ("frame just over --max-request-bytes", struct.pack(">i", (1 << 20) + 1), "oversized"),
            ("negative frame size", struct.pack(">i", -5) + b"\x00" * 8, "invalid frame size"),
            ("frame shorter than a header", struct.pack(">i", 3) + b"\x00" * 3, "invalid frame size"),
            ("truncated header", struct.pack(">i", 9) + b"\x00\x12\x00\x00\x00\x00\x00\x01\x00",
             "unparsable request header"),
        ]
        for name, data, needle in cases:
            mark = len(b.log())
            s = b.connect()
            # an ApiVersions first: its response must still arrive before the close
            s.sendall(frame(18, 0, 11, b"") + data)
            resp = recv_response(s)
            check(resp is not None and resp[0] == 11, name + ": earlier response still sent")
            check(closed_by_peer(s), name + ": connection closed")
            s.close()
            deadline = time.time() + 5 * MULT
            while time.time() < deadline and not log_lines_since(b, mark, needle):
                time.sleep(0.02)
            check(len(log_lines_since(b, mark, needle)) == 1, name + ": one log line containing '%s'" % needle)
            served(b, name)

        # --- a request cut off mid-frame by the client: nothing happens to others
        s = b.connect()
        s.sendall(frame(0, 7, 1, produce_body("bad-crc", 0, good))[:40])
        s.close()
        served(b, "truncated frame then disconnect")
        check(latest_offset(b, "bad-crc") == (0, 2), "truncated produce appended nothing")

        # --- random garbage frames (seeded)
        seed = int(os.environ.get("EDDY_TEST_SEED", "1234"))
        rnd = random.Random(seed)
        for i in range(int(50 * max(0.2, float(os.environ.get("EDDY_TEST_SCALE", "1"))))):
            s = b.connect()
            key = rnd.choice([0, 1, 2, 3, 18, 19, 20, 32, rnd.randrange(-5, 100)])
            ver = rnd.randrange(-1, 13)
            body = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 200)))
            s.sendall(frame(key, ver, i, body))
            s.settimeout(2 * MULT)
            try:
                s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                pass
            s.close()
        served(b, "random frames (seed %d)" % seed)

        # --- many idle connections do not stop service
        idle = [b.connect() for _ in range(100)]
        served(b, "100 idle connections")
        for s in idle:
            s.close()

        check(latest_offset(b, "bad-crc") == (0, 2), "stored data intact at the end")
        rc = b.stop()
        check(rc == 0, "SIGTERM exits 0 (got %s)" % rc)
    finally:
        if failures:
            print(b.log()[-4000:])
        b.cleanup()
    if failures:
        print("%d failure(s)" % len(failures))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()

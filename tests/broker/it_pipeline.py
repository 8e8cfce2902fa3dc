#!/usr/bin/python3
"""Request ordering and waiting, over raw sockets:
- pipelined requests are answered in order; acks=0 gets no response at all;
- pipelined acks=all produces (group commit) are all answered, in order;
- a long-poll Fetch is woken by an append (well before max_wait) and does not
  delay other connections; at the high watermark it answers empty at max_wait;
- Fetch max_bytes: the first batch always comes whole, later partitions only
  when they fit."""
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafka_raw import MULT, Broker, Reader, frame, kstr, produce_body, record_batch, recv_response  # noqa: E402

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


def fetch_body(topic, parts, max_wait, min_bytes=1, max_bytes=52428800, part_max=1048576):
    """Fetch v11; parts = [(partition, offset)]."""
    b = struct.pack(">iiiibii", -1, max_wait, min_bytes, max_bytes, 1, 0, -1)
    b += struct.pack(">i", 1) + kstr(topic) + struct.pack(">i", len(parts))
    for p, off in parts:
        b += struct.pack(">iiqqi", p, -1, off, -1, part_max)
    return b + struct.pack(">i", 0) + kstr("")


def parse_fetch(body):
    """-> {partition: (error, hw, records bytes)}"""
    r = Reader(body)
    r.i32()
    r.i16()
    r.i32()
    out = {}
    for _ in range(r.i32()):
        r.str()
        for _ in range(r.i32()):
            p, err, hw = r.i32(), r.i16(), r.i64()
            r.i64()
            r.i64()
            r.i32()  # aborted: 0
            r.i32()
            n = r.i32()
            out[p] = (err, hw, r.take(n) if n > 0 else b"")
    return out


def produce_resp(body):
    r = Reader(body)
    r.i32()
    r.str()
    r.i32()
    r.i32()
    return r.i16(), r.i64()


def main():
    b = Broker("--num-partitions", "2").start()
    try:
        batch = record_batch([(b"k", b"v" * 100, [])])
        # --- pipelining: ApiVersions, Produce acks=0, Metadata, Produce acks=1, Produce acks=0, ApiVersions
        s = b.connect()
        s.sendall(frame(18, 0, 1, b"") + frame(0, 7, 2, produce_body("pipe", 0, batch, acks=0)) +
                  frame(3, 1, 3, struct.pack(">i", -1)) + frame(0, 7, 4, produce_body("pipe", 0, batch, acks=1)) +
                  frame(0, 7, 5, produce_body("pipe", 0, batch, acks=0)) + frame(18, 2, 6, b""))
        got = [recv_response(s)[0] for _ in range(4)]
        check(got == [1, 3, 4, 6], "pipelined answers in order, none for acks=0 (got %s)" % got)
        s.settimeout(0.3 * MULT)
        try:
            extra = s.recv(1)
        except OSError:
            extra = b""
        check(extra == b"", "no stray response for acks=0")
        s.settimeout(10 * MULT)

        # --- pipelined acks=all: every one answered, in order, offsets dense
        n = 20
        s.sendall(b"".join(frame(0, 7, 100 + i, produce_body("pipe", 1, batch, acks=-1)) for i in range(n)))
        res = [recv_response(s) for _ in range(n)]
        check([c for c, _ in res] == list(range(100, 100 + n)), "acks=all answers in order")
        offs = [produce_resp(body) for _, body in res]
        check(offs == [(0, i) for i in range(n)], "acks=all offsets dense and no error: %s" % offs[:3])
        s.close()

        # --- long poll woken by an append, not delaying another connection
        s = b.connect()
        s.sendall(frame(1, 11, 7, fetch_body("pipe", [(0, 3)], max_wait=int(8000 * MULT))))
        t0 = time.time()
        other = b.connect()
        other.sendall(frame(18, 0, 8, b""))
        check(recv_response(other)[0] == 8, "another connection served during the long poll")
        check(time.time() - t0 < 2 * MULT, "other connection not delayed by the long poll")

        def later():
            time.sleep(0.3)
            other.sendall(frame(0, 7, 9, produce_body("pipe", 0, batch, acks=1)))

        th = threading.Thread(target=later)
        th.start()
        corr, body = recv_response(s)
        waited = time.time() - t0
        th.join()
        recv_response(other)
        f = parse_fetch(body)
        check(corr == 7 and f[0][0] == 0 and len(f[0][2]) == len(batch), "woken fetch returns the new batch")
        check(0.25 < waited < 4 * MULT, "fetch woken by the append after %.2fs (max_wait 8s)" % waited)

        # --- at the high watermark: empty answer after max_wait
        t0 = time.time()
        s.sendall(frame(1, 11, 10, fetch_body("pipe", [(0, 4)], max_wait=400)))
        corr, body = recv_response(s)
        waited = time.time() - t0
        f = parse_fetch(body)
        check(corr == 10 and f[0] == (0, 4, b""), "fetch at HW: empty, error 0, hw 4 (got %s)" % (f,))
        check(0.35 < waited < 3 * MULT, "fetch at HW answered after max_wait (%.2fs)" % waited)

        # --- requests behind a long poll on the same connection wait for it (in order)
        s.sendall(frame(1, 11, 11, fetch_body("pipe", [(0, 4)], max_wait=300)) + frame(18, 0, 12, b""))
        check([recv_response(s)[0], recv_response(s)[0]] == [11, 12], "request behind a long poll answered after it")

        # --- max_bytes: first batch whole even if larger; later partitions only if they fit
        big = record_batch([(b"k", b"x" * 5000, [])])
        s.sendall(frame(0, 7, 13, produce_body("mb", 0, big, acks=1)))
        recv_response(s)
        s.sendall(frame(0, 7, 14, produce_body("mb", 1, big, acks=1)))
        recv_response(s)
        s.sendall(frame(1, 11, 15, fetch_body("mb", [(0, 0), (1, 0)], max_wait=0, max_bytes=100)))
        f = parse_fetch(recv_response(s)[1])
        check(len(f[0][2]) == len(big) and f[1][2] == b"", "max_bytes 100: one whole batch, second partition empty")
        s.sendall(frame(1, 11, 16, fetch_body("mb", [(0, 0), (1, 0)], max_wait=0, max_bytes=1 << 20)))
        f = parse_fetch(recv_response(s)[1])
        check(len(f[0][2]) == len(big) and len(f[1][2]) == len(big), "max_bytes 1MiB: both partitions")
        s.sendall(frame(1, 11, 17, fetch_body("mb", [(0, 0)], max_wait=0, part_max=10)))
        f = parse_fetch(recv_response(s)[1])
        check(len(f[0][2]) == len(big), "partition_max_bytes 10: still one whole batch")
        # out of range
        s.sendall(frame(1, 11, 18, fetch_body("mb", [(0, 5)], max_wait=0)))
        f = parse_fetch(recv_response(s)[1])
        check(f[0][0] == 1, "fetch past HW: OFFSET_OUT_OF_RANGE")
        s.sendall(frame(1, 11, 19, fetch_body("nope", [(0, 0)], max_wait=0)))
        f = parse_fetch(recv_response(s)[1])
        check(f[0][0] == 3, "fetch of unknown topic: UNKNOWN_TOPIC_OR_PARTITION")
        s.close()
        other.close()

        # --- several long polls: an append wakes exactly those reading that partition,
        #     and waiting does not spin the loop (regression: re-linked waiters were revisited forever)
        def cpu_s():
            with open("/proc/%d/stat" % b.proc.pid) as f:
                v = f.read().rsplit(")", 1)[1].split()
            return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")

        polls = [b.connect() for _ in range(5)]
        cpu0 = cpu_s()
        t0 = time.time()
        for i, c in enumerate(polls):
            part = 1 if i == 2 else 0
            # polls 3 and 4 want more bytes than the append brings: woken, they wait again
            c.sendall(frame(1, 11, 30 + i, fetch_body("pipe", [(part, 4 if part == 0 else n)],
                                                       max_wait=int(3000 * MULT),
                                                       min_bytes=10 << 20 if i >= 3 else 1)))
        time.sleep(0.5)
        other = b.connect()
        other.sendall(frame(0, 7, 40, produce_body("pipe", 0, batch, acks=1)))
        recv_response(other)
        woken = [recv_response(polls[i]) for i in range(2)]
        t_woken = time.time() - t0
        check([w[0] for w in woken] == [30, 31], "both polls on partition 0 woken")
        check(all(parse_fetch(w[1])[0][:2] == (0, 5) and len(parse_fetch(w[1])[0][2]) == len(batch)
                  for w in woken), "each woken poll carries the new batch")
        check(t_woken < 2 * MULT, "woken by the append (%.2fs), not by max_wait" % t_woken)
        last = recv_response(polls[2])
        t_last = time.time() - t0
        check(last[0] == 32 and parse_fetch(last[1])[1][2] == b"", "poll on partition 1 answers empty")
        check(t_last > 2.5, "poll on partition 1 not woken by partition 0's append (%.2fs)" % t_last)
        rest = [recv_response(polls[i]) for i in (3, 4)]
        check([r[0] for r in rest] == [33, 34] and all(len(parse_fetch(r[1])[0][2]) == len(batch) for r in rest),
              "polls wanting more than arrived answer at max_wait with what there is")
        spent = cpu_s() - cpu0
        check(spent < 1.0 * MULT, "broker used %.2fs CPU while 3 polls waited %.1fs" % (spent, t_last))
        for c in polls + [other]:
            c.close()

        # --- a client that half-closes after sending still gets every answer
        s = b.connect()
        s.sendall(frame(18, 0, 20, b"") + frame(0, 7, 21, produce_body("pipe", 0, batch, acks=-1)) +
                  frame(3, 1, 22, struct.pack(">i", -1)))
        s.shutdown(socket.SHUT_WR)
        got = [recv_response(s)[0] for _ in range(3)]
        check(got == [20, 21, 22], "half-closed client answered in order (got %s)" % got)
        check(s.recv(1) == b"", "then closed")
        s.close()
        check(b.stop() == 0, "clean SIGTERM")
    finally:
        if failures:
            print(b.log()[-3000:])
        b.cleanup()
    if failures:
        print("%d failure(s)" % len(failures))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()

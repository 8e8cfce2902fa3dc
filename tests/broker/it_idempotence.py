#!/usr/bin/python3
"""Idempotent producers at the wire level, against a real `eddy broker`:
InitProducerId (advertised 0-1, unique ids across restarts, transactional
ids refused with 53), a Produce sent twice with the same producer
id/sequence is stored once and the second answer carries the first base
offset, gaps (45), old epochs (47) and unknown producers (59) are refused,
Fetch returns the producer fields intact, and a retry sent after a kill -9
(state rebuilt from the log) or a clean restart (snapshot) is still
recognised as a duplicate."""
import os
import re
import struct
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafka_raw import Broker, Reader, frame, kbytes, kstr, list_offsets_body, record_batch, recv_response  # noqa: E402

failures = []
TOPIC = "idem"


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


def call(b, key, version, body, corr=1):
    s = b.connect()
    try:
        s.sendall(frame(key, version, corr, body))
        resp = recv_response(s)
        assert resp is not None and resp[0] == corr, "no answer to api %d" % key
        return Reader(resp[1])
    finally:
        s.close()


def api_versions(b):
    r = call(b, 18, 0, b"")
    assert r.i16() == 0
    return {k: (lo, hi) for k, lo, hi in (struct.unpack(">hhh", r.take(6)) for _ in range(r.i32()))}


def init_pid(b, txn_id=None, version=1):
    r = call(b, 22, version, kstr(txn_id) + struct.pack(">i", 60000))
    r.i32()  # throttle
    return r.i16(), r.i64(), r.i16()


def batch(pid, epoch, seq, n, tag):
    return record_batch([(None, "%s-%d" % (tag, seq + i), []) for i in range(n)],
                        pid=pid, epoch=epoch, seq=seq)


def produce(b, records, acks=-1, txn_id=None):
    """-> (error, base_offset) of partition 0."""
    body = (kstr(txn_id) + struct.pack(">hii", acks, 30000, 1) + kstr(TOPIC) +
            struct.pack(">ii", 1, 0) + kbytes(records))
    r = call(b, 0, 7, body)
    r.i32()
    r.str()
    r.i32()
    r.i32()
    return r.i16(), r.i64()


def end_offset(b):
    r = call(b, 2, 2, list_offsets_body(TOPIC, 0, -1))
    r.i32()  # throttle
    r.i32()
    r.str()
    r.i32()
    r.i32()
    assert r.i16() == 0
    r.i64()
    return r.i64()


def fetch_batches(b):
    """All batch headers of partition 0: [(base, count, pid, epoch, seq)]."""
    body = struct.pack(">iiiib", -1, 100, 1, 64 << 20, 0) + struct.pack(">i", 1) + kstr(TOPIC) + \
        struct.pack(">iiqi", 1, 0, 0, 64 << 20)
    r = call(b, 1, 4, body)
    r.i32()
    r.i32()
    r.str()
    r.i32()
    r.i32()
    assert r.i16() == 0
    r.i64()
    r.i64()
    n = r.i32()
    for _ in range(max(n, 0)):
        r.i64()
        r.i64()
    data = r.take(r.i32())
    out, p = [], 0
    while p + 61 <= len(data):
        base, length = struct.unpack_from(">qi", data, p)
        delta, = struct.unpack_from(">i", data, p + 23)
        pid, epoch, seq = struct.unpack_from(">qhi", data, p + 43)
        out.append((base, delta + 1, pid, epoch, seq))
        p += 12 + length
    return out


def metrics(b):
    """The broker's /metrics as {"name{labels}": value}."""
    port = int(re.findall(r"HTTP at http://127\.0\.0\.1:(\d+)", b.log())[-1])
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        text = r.read().decode()
    return {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1])
            for ln in text.splitlines() if ln.startswith("eddy_produce_")}


def find_coordinator_txn(b):
    r = call(b, 10, 1, kstr("tx-1") + struct.pack(">b", 1))
    r.i32()
    return r.i16()


def main():
    b = Broker("--http-listen", "127.0.0.1:0").start()
    try:
        av = api_versions(b)
        check(av.get(22) == (0, 1), "ApiVersions advertises InitProducerId 0-1 (got %s)" % (av.get(22),))

        err, pid, epoch = init_pid(b)
        check(err == 0 and pid >= 0 and epoch == 0, "InitProducerId answers an id, epoch 0")
        err0, pid_v0, _ = init_pid(b, version=0)
        check(err0 == 0 and pid_v0 != pid, "InitProducerId v0 answers another id")
        check(init_pid(b, "my-txn")[0] == 53, "a transactional id is refused (53)")
        check(find_coordinator_txn(b) == 53, "FindCoordinator for a transaction is refused (53)")

        # the same Produce twice: one copy, same base offset
        b0 = batch(pid, 0, 0, 3, "a")
        first = produce(b, b0)
        check(first == (0, 0), "first produce: no error, base 0 (got %s)" % (first,))
        again = produce(b, b0)
        check(again == (0, 0), "retried produce: no error, the first base offset (got %s)" % (again,))
        check(end_offset(b) == 3, "the retried batch was not written again")
        r = produce(b, batch(pid, 0, 3, 2, "a"))
        check(r == (0, 3), "next sequence appended at 3 (got %s)" % (r,))
        check(produce(b, b0) == (0, 0), "a retry of an older kept batch still answers base 0")
        check(produce(b, batch(pid, 0, 9, 1, "a"))[0] == 45, "a gap: OUT_OF_ORDER_SEQUENCE_NUMBER")
        check(produce(b, batch(pid + 1000, 0, 4, 1, "a"))[0] == 59, "unknown producer: UNKNOWN_PRODUCER_ID")
        check(produce(b, batch(pid, 0, 5, 1, "a"), txn_id="t")[0] == 53, "transactional produce refused")
        tx = record_batch([(None, "t", [])], pid=pid, epoch=0, seq=5, attributes=0x10)
        check(produce(b, tx)[0] == 87, "a transactional batch is refused (INVALID_RECORD)")
        check(end_offset(b) == 5, "refused batches were not written")

        # a new epoch restarts at 0 and fences the old one
        r = produce(b, batch(pid_v0, 0, 0, 1, "b"))
        check(r == (0, 5), "second producer appended (got %s)" % (r,))
        r = produce(b, batch(pid_v0, 1, 0, 1, "b"))
        check(r == (0, 6), "new epoch from sequence 0 accepted (got %s)" % (r,))
        check(produce(b, batch(pid_v0, 0, 1, 1, "b"))[0] == 47, "old epoch: INVALID_PRODUCER_EPOCH")

        m = metrics(b)
        check(m.get("eddy_produce_duplicates_total") == 2, "/metrics counts 2 retries (%s)" % m)
        for err, n in (("OUT_OF_ORDER_SEQUENCE_NUMBER", 1), ("INVALID_PRODUCER_EPOCH", 1),
                       ("UNKNOWN_PRODUCER_ID", 1), ("INVALID_RECORD", 1)):
            got = m.get('eddy_produce_sequence_refused_total{error="%s"}' % err)
            check(got == n, "/metrics counts %d refused with %s (got %s)" % (n, err, got))

        hdrs = fetch_batches(b)
        check(hdrs == [(0, 3, pid, 0, 0), (3, 2, pid, 0, 3), (5, 1, pid_v0, 0, 0), (6, 1, pid_v0, 1, 0)],
              "Fetch returns each batch once with its producer fields (got %s)" % (hdrs,))

        # kill -9 between a write (acks=1: page cache only) and its retry
        bk = batch(pid, 0, 5, 4, "k")
        r = produce(b, bk, acks=1)
        check(r == (0, 7), "write before the crash at 7 (got %s)" % (r,))
        b.stop(sig=9)
        b.start()
        r = produce(b, bk)
        check(r == (0, 7), "after kill -9 the retry is a duplicate with base 7 (got %s)" % (r,))
        check(end_offset(b) == 11, "after kill -9 the retry was not written again")
        check("rebuilt from the log" in b.log(), "the state was rebuilt from the log after kill -9")
        r = produce(b, batch(pid, 0, 9, 1, "k"))
        check(r == (0, 11), "the producer continues after the crash (got %s)" % (r,))
        err, pid2, _ = init_pid(b)
        check(err == 0 and pid2 not in (pid, pid_v0), "ids stay unique across a kill -9 (%d)" % pid2)

        # clean restart: the snapshot carries the state
        check(b.stop() == 0, "SIGTERM exits 0")
        b.start()
        r = produce(b, batch(pid, 0, 9, 1, "k"))
        check(r == (0, 11), "after a clean restart the retry is a duplicate (got %s)" % (r,))
        check("(snapshot" in b.log(), "the state came from the snapshot after a clean restart")
        check(end_offset(b) == 12, "nothing written twice across restarts")
        err, pid3, _ = init_pid(b)
        check(err == 0 and pid3 not in (pid, pid_v0, pid2), "ids stay unique across a clean restart")

        # offline: `eddy log dump` shows the producer fields and the snapshot
        check(b.stop() == 0, "SIGTERM exits 0 (2)")
        out = subprocess.run([os.environ.get("EDDY", "build/eddy"), "log", "dump",
                              os.path.join(b.data, "topics", TOPIC, "0")],
                             capture_output=True, text=True, timeout=30)
        check(out.returncode == 0, "eddy log dump exits 0:\n" + out.stdout + out.stderr)
        check("offsets 0..2 " in out.stdout and "producer %d (epoch 0) seq 0..2 ok" % pid in out.stdout,
              "eddy log dump shows the producer fields:\n" + out.stdout)
        check("2 idempotent producers as of offset 12" in out.stdout,
              "eddy log dump reads the producer-state snapshot:\n" + out.stdout)
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

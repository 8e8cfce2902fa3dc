#!/usr/bin/python3
"""kill -9 of `eddy broker` under produce load, many times, at random moments.

Each cycle starts the broker on the same data directory, runs a kafka-python
producer flat out (acks=1 on even cycles, acks=all on odd ones; retries=0 so
a record is never sent twice), kills the broker with SIGKILL after a random
delay, restarts it (recovery) and reads every topic back with kcat
(check.crcs=true). After every restart:

  - every acknowledged record of every cycle so far is there exactly once
    (records are identified by the unique "c<cycle> s<seq>" in the value);
  - unacknowledged records are there at most once;
  - everything seen after the previous restart is still there;
  - the log tail is clean: each partition's offsets are dense from 0, every
    value is exactly what the producer built (no torn or garbage records), and
    kcat reports no error.

A process kill loses nothing that reached the broker's page cache, so acks=1
must keep every acknowledged record here just like acks=all (only a machine
crash may lose acks=1 records that were not yet fsynced).

EDDY_TEST_SEED picks the seed (printed either way); EDDY_CRASH_CYCLES the
number of cycles per acks level (default 10, never fewer).
"""
import os
import random
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from broker_proc import MULT, SCALE, Broker, eddy_path  # noqa: E402

from kafka import KafkaProducer  # noqa: E402

TOPICS = {"1": "crash-acks1", "all": "crash-acksall"}
NPART = 3
VALUE_RE = re.compile(rb"^c(\d+) s(\d+) (x*)$")


def value_of(cycle, seq):
    return b"c%d s%d %s" % (cycle, seq, b"x" * (seq * 7 % 61))


def produce_until_killed(broker, topic, acks, cycle, delay, acked):
    """Sends records as fast as kafka-python can until the broker is killed
    `delay` seconds in; returns how many were sent. acked collects the
    (cycle, seq) of every record whose send was acknowledged."""
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks=acks if acks == "all" else 1,
                      retries=0, linger_ms=2, max_in_flight_requests_per_connection=5,
                      request_timeout_ms=int(10000 * MULT), max_block_ms=int(10000 * MULT))
    lock = threading.Lock()

    def ok(key, _md):  # kafka-python appends the result after our args
        with lock:
            acked.add(key)

    stop = threading.Event()
    killer = threading.Timer(delay, lambda: (broker.kill9(), stop.set()))
    seq = 0
    killer.start()
    try:
        while not stop.is_set():
            try:
                f = p.send(topic, value=value_of(cycle, seq))
            except Exception:  # the broker is gone: buffer full / metadata timeout
                break
            f.add_callback(ok, (cycle, seq))
            seq += 1
            if seq % 200 == 0:
                time.sleep(0.001)  # leave the second core some room for the broker
    finally:
        killer.join()
        p.close(timeout=0)  # fails whatever is still pending
    return seq


def read_back(broker, topic):
    """All records of topic as {partition: [value, ...]} with dense offsets."""
    r = subprocess.run(["kcat", "-b", broker.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e",
                        "-q", "-X", "check.crcs=true", "-f", "%p %o %s\\n"],
                       capture_output=True, timeout=120 * MULT)
    assert r.returncode == 0, "kcat failed (%d): %s" % (r.returncode, r.stderr.decode(errors="replace"))
    assert b"ERROR" not in r.stderr, "kcat reported: %s" % r.stderr.decode(errors="replace")
    parts = {p: [] for p in range(NPART)}
    for line in r.stdout.split(b"\n")[:-1]:
        p, o, v = line.split(b" ", 2)
        p, o = int(p), int(o)
        assert o == len(parts[p]), "%s[%d]: offset %d where %d was next (hole or repeat)" % (topic, p, o, len(parts[p]))
        parts[p].append(v)
    return parts


def verify(broker, topic, acked, before):
    """Checks the invariants; returns the set of (cycle, seq) present."""
    present = {}
    for p, values in read_back(broker, topic).items():
        for o, v in enumerate(values):
            m = VALUE_RE.match(v)
            assert m, "%s[%d]@%d: garbage record %r" % (topic, p, o, v[:80])
            key = (int(m.group(1)), int(m.group(2)))
            assert v == value_of(*key), "%s[%d]@%d: damaged record %r" % (topic, p, o, v[:80])
            assert key not in present, "%s: record %r twice (%r and %d/%d)" % (topic, key, present[key], p, o)
            present[key] = (p, o)
    missing = acked - present.keys()
    assert not missing, "%s: %d acknowledged record(s) lost, e.g. %r" % (topic, len(missing), sorted(missing)[:5])
    vanished = before - present.keys()
    assert not vanished, "%s: %d record(s) seen after the previous restart are gone, e.g. %r" % (
        topic, len(vanished), sorted(vanished)[:5])
    return set(present)


def main():
    seed = int(os.environ.get("EDDY_TEST_SEED") or time.time_ns() % 1000000007)
    cycles = max(10, int(os.environ.get("EDDY_CRASH_CYCLES") or 10))
    print("it_crash: seed %d (rerun with EDDY_TEST_SEED=%d), %d cycles per acks level" % (seed, seed, cycles))
    rnd = random.Random(seed)
    max_delay = max(0.3, 1.0 * SCALE)
    with Broker() as b:
        b.start()
        for t in TOPICS.values():
            subprocess.run([eddy_path(), "topics", "create", t, "--partitions", str(NPART),
                            "--broker", b.bootstrap], check=True, timeout=30 * MULT)
        acked = {a: set() for a in TOPICS}
        seen = {a: set() for a in TOPICS}
        for cycle in range(2 * cycles):
            acks = "1" if cycle % 2 == 0 else "all"
            delay = rnd.uniform(0.02, max_delay)
            t0 = time.monotonic()
            sent = produce_until_killed(b, TOPICS[acks], acks, cycle, delay, acked[acks])
            b.start()  # recovery happens here
            n_acked = sum(1 for k in acked[acks] if k[0] == cycle)
            for a, t in TOPICS.items():
                seen[a] = verify(b, t, acked[a], seen[a])
            n_kept = sum(1 for k in seen[acks] if k[0] == cycle)
            print("cycle %2d acks=%-3s killed after %.3fs: sent %6d, acked %6d, kept %6d (%.1fs)"
                  % (cycle, acks, delay, sent, n_acked, n_kept, time.monotonic() - t0))
            sys.stdout.flush()
        rc = b.stop()
        assert rc == 0, "broker exit status %r after SIGTERM" % rc
        total = sum(len(s) for s in acked.values())
        assert total > 0, "no record was ever acknowledged: the test proved nothing"
    print("ok: %d kill -9 cycles, %d acknowledged records, none lost or duplicated, tails clean"
          % (2 * cycles, total))


if __name__ == "__main__":
    main()

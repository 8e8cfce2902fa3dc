#!/usr/bin/python3
"""Runtime benchmark: records/s through the micro-batch runtime (driver +
workers, each task a child process) next to rt_plain, one librdkafka loop
doing the same work in one process (the ceiling), printed as a ratio.

  pass-through     topic -> topic  (job passthrough.so, at-least-once output)
  parse-and-count  topic -> store  (job parse_count.so, exactly-once events)
  empty batch      plan + write-ahead + atomic store commit + commit record, no records

Run from the repository root after `scripts/build.sh release`:
  /usr/bin/python3 bench/runtime_bench.py          (BENCH_RECORDS=1000000 by default)
"""
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("EDDY", os.path.join(ROOT, "build", "eddy"))
os.environ.setdefault("EDDY_BINARY_DIR", os.path.join(ROOT, "build"))
sys.path.insert(0, os.path.join(ROOT, "tests", "runtime"))
from rtlib import EDDY, BIN, Cluster, wait_for  # noqa: E402

N = int(os.environ.get("BENCH_RECORDS", "1000000"))
PLAIN = os.path.join(BIN, "bench", "rt_plain")


def timed_job(c, job, name, *extra):
    print("running", name, file=sys.stderr, flush=True)
    t0 = time.time()
    c.submit(job, name, "--max-records-per-batch", str(N), *extra)
    st = c.wait_records(name, N, timeout=900)
    dt = time.time() - t0
    return N / dt, st


def plain(args):
    print("plain", args[0], file=sys.stderr, flush=True)
    r = subprocess.run([PLAIN] + args, capture_output=True, text=True, timeout=900)
    if r.returncode:
        raise RuntimeError(r.stderr)
    return float(r.stdout.split("rate=")[1])


def main():
    c = Cluster("bench")
    rows = []
    try:
        for t in ("out", "out2", "idle"):
            c.run([EDDY, "topics", "create", t, "--partitions", "8", "--broker", c.broker_addr])
        # user,item,action lines; 5000 items, skewed a little.
        c.produce(["u%d,i%d,view" % (i % 9973, (i * 7919) % 5000 if i % 3 else i % 50) for i in range(N)])
        c.start_driver()
        c.start_worker(slots=2)
        wait_for(lambda: len(json.loads(c.api("GET", "/v1/workers")[1])["workers"]) == 1, "worker")
        base_pass = plain(["passthrough", c.broker_addr, "in", "out2", str(N)])
        storedir = os.path.join(c.dir, "plainstore")
        base_count = plain(["count", c.broker_addr, "in", str(N), "rocksdb:" + storedir])
        for workers in (1, 2):
            if workers == 2:
                c.start_worker(slots=2)
                wait_for(lambda: len(json.loads(c.api("GET", "/v1/workers")[1])["workers"]) == 2, "2 workers")
            r, _ = timed_job(c, "passthrough", "pass%d" % workers, "--config", '{"output":"out"}')
            rows.append(("pass-through topic->topic", workers, r, base_pass))
            r, _ = timed_job(c, "parse_count", "count%d" % workers)
            rows.append(("parse-and-count topic->store", workers, r, base_count))
        # Empty batches: an idle input, batches forced.
        c.topic = "idle"
        c.submit("passthrough", "empty", "--empty-batches", "--config", '{"output":"out"}')
        time.sleep(3)
        st = c.status("empty")
        durs = [h["duration_ms"] for h in st["history"]]
        c.run([EDDY, "jobs", "stop", "empty", "--driver", c.driver_addr, "--data", c.data])
    finally:
        c.close()
    print("\nruntime_bench: %d records (8 partitions), 2 slots per worker, 2-core machine" % N)
    print("%-30s %7s %14s %14s %7s" % ("workload", "workers", "runtime rec/s", "plain rec/s", "ratio"))
    for name, w, r, b in rows:
        print("%-30s %7d %14.0f %14.0f %6.2f" % (name, w, r, b, r / b))
    if durs:
        print("empty batch round trip: median %.1f ms, p90 %.1f ms over %d batches (plan, fsync'd "
              "plan file, atomic store commit, fsync'd commit record)" %
              (statistics.median(durs), sorted(durs)[int(len(durs) * 0.9)], len(durs)))


main()

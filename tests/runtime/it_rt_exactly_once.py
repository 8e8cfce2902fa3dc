#!/usr/bin/python3
"""End to end: 1,000,000 records (x EDDY_TEST_SCALE) over 8 partitions through
the copy-to-events job on 2 workers; every record is exactly one event in the
store, the job counter matches, and the batch history covers every offset."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rtlib import EDDY, Cluster, SCALE, check, check_exactly_once, finish, wait_for  # noqa: E402

N = max(1000, int(1_000_000 * SCALE))
c = Cluster("exactly-once")
try:
    ids = ["r%08d" % i for i in range(N)]
    c.produce(["%s:%s" % (i, i) for i in ids], key_sep=":")  # keyed: spread over all partitions
    c.start_driver()
    c.start_worker(slots=2)
    c.start_worker(slots=2)
    c.submit("copy_to_events", "copy", "--max-records-per-batch", str(max(1000, N // 5)))
    st = c.wait_records("copy", N, timeout=600)
    check(st["records"] == N, "records processed %d == %d" % (st["records"], N))
    check(st["counters"].get("records") == N, "counter records == N: %s" % st["counters"])
    check(st["batches"] >= 5, "the cap split the input into >= 5 batches (%d)" % st["batches"])
    # The history's ranges tile every partition from 0 without gaps or overlaps.
    ends = {}
    for h in st["history"]:
        for t, p, s, e in h["ranges"]:
            check(ends.get((t, p), 0) == s, "batch %d starts %s/%d where the previous ended" % (h["batch"], t, p))
            ends[(t, p)] = e
    check(sum(ends.values()) == N, "history covers %d offsets" % sum(ends.values()))
    check(len(ends) == 8, "all 8 partitions had data (%d)" % len(ends))
    # Step 6: the end offsets are committed to the broker under eddy-job-copy,
    # so lag monitors see the job (asynchronous: poll).
    def committed():
        r = c.run([EDDY, "groups", "describe", "eddy-job-copy", "--broker", c.broker_addr], check_rc=False)
        rows = [l.split() for l in r.stdout.splitlines() if l.startswith("in ")]
        total = sum(int(x[2]) for x in rows if x[2].isdigit())
        return total == N and all(x[4] == "0" for x in rows)
    check(wait_for(committed, "group offsets committed") is True, "eddy-job-copy committed N offsets, lag 0")
    c.stop("driver")
    check_exactly_once(c.export_events(), ids, "copy")
    # The check tool accepts the driver's files, and catches a damaged plan.
    r = c.run([EDDY, "jobs", "verify", "--data", c.data], check_rc=False)
    check(r.returncode == 0 and "0 damaged files" in r.stdout, "jobs verify: " + r.stdout)
    plan0 = os.path.join(c.data, "jobs", "copy", "plans", "0")
    with open(plan0, "r+b") as f:
        f.seek(-2, 2)
        b = f.read(1)
        f.seek(-2, 2)
        f.write(bytes([b[0] ^ 1]))
    r = c.run([EDDY, "jobs", "verify", "--data", c.data], check_rc=False)
    check(r.returncode == 1 and "BAD plan 0" in r.stdout, "jobs verify finds the flipped bit: " + r.stdout)
finally:
    c.close()
finish()

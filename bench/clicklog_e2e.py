#!/usr/bin/python3
"""clicklog end to end: lines/s through the runtime (broker -> driver +
worker tasks -> clicklog.so parse + Avro encode -> produce to the clicks
topic), next to the job's own work in one process (clicklog_bench, the
ceiling, same run), as a ratio. Target (issue 7): >= 300,000 lines/s on
this 2-core machine.

Run from the repository root after `scripts/build.sh release`:
  /usr/bin/python3 bench/clicklog_e2e.py        (BENCH_LINES=1000000 by default)
"""
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("EDDY", os.path.join(ROOT, "build", "eddy"))
os.environ.setdefault("EDDY_BINARY_DIR", os.path.join(ROOT, "build"))
os.environ.setdefault("EDDY_SOURCE_DIR", ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "jobs"))
import jobslib as J  # noqa: E402

N = int(os.environ.get("BENCH_LINES", "1000000"))


def main():
    c = J.JobsCluster("clicklog-bench", partitions=4, topic="lines",
                      outputs=[("clicks", 4), ("clicks-dlq", 1)])
    try:
        print("generating %d lines" % N, file=sys.stderr, flush=True)
        c.run([J.EDDY, "gen", "clicklog", "--topic", "lines", "--broker", c.broker_addr,
               "--lines", str(N), "--users", "100000", "--items", "20000"])
        c.start_driver()
        c.start_worker(slots=2)
        t0 = time.time()
        c.submit_job("clicklog", "clicklog", "lines",
                     {"output": "clicks", "dlq": "clicks-dlq", "registry": c.registry},
                     "--max-records-per-batch", str(N))
        st = c.wait_records("clicklog", N, timeout=900)
        e2e = N / (time.time() - t0)
        clicks = st["counters"].get("clicks", 0)
    finally:
        c.close()
    out = subprocess.run([os.path.join(J.BIN, "bench", "clicklog_bench"), "200000"],
                         capture_output=True, text=True, check=True).stdout
    own = float(re.search(r"clicklog parse \+ Avro encode\s+(\d+)", out).group(1))
    print("clicklog end to end: %d lines (%d clicks), 4 partitions, 1 worker x 2 slots" % (N, clicks))
    print("%-44s %12s" % ("", "lines/s"))
    print("%-44s %12.0f" % ("job's own work, 1 core (clicklog_bench)", own))
    print("%-44s %12.0f" % ("through the runtime (submit -> all committed)", e2e))
    print("ratio runtime / own work: %.3f; target >= 300,000 lines/s: %s"
          % (e2e / own, "met" if e2e >= 300000 else "NOT met"))


main()

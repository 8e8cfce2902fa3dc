#!/usr/bin/python3
"""Runs it_groups_rdkafka (3+1 librdkafka members joining and leaving while
a producer runs) against a fresh broker; see the C file for the checks."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from groupslib import MULT, Broker, make_tmp, rmtree, scaled

BIN = os.path.join(os.environ.get("EDDY_BINARY_DIR", "build"), "tests", "it_groups_rdkafka")


def main():
    tmp = make_tmp("groups-rdkafka")
    broker = Broker(tmp, "--num-partitions", "6", "--group-initial-rebalance-delay", "500ms")
    try:
        broker.start()
        n = scaled(20000, minimum=2000)
        r = subprocess.run([BIN, broker.addr, "churn", str(n), str(MULT)], capture_output=True, text=True,
                           timeout=240 * MULT)
        print(r.stdout)
        print(r.stderr[-3000:])
        if r.returncode != 0:
            print("--- broker log\n" + broker.log()[-6000:])
            raise SystemExit("FAIL")
        print("PASS")
    finally:
        broker.kill9()
        rmtree(tmp)


if __name__ == "__main__":
    main()

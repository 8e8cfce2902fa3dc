#!/usr/bin/python3
"""The demo pipeline end to end, small: `eddy up` on free ports, then
scripts/pipeline.py (click logs -> clicklog -> Avro topic -> clicks-to-events
-> event store -> train -> query). While the clicks flow, the driver is killed
with kill -9; the supervisor restarts it and every generated click still lands
in the store exactly once (the pipeline checks the counts against the lines it
generated). Recommendations must be non-empty and come from the trained model;
`eddy up` must then stop cleanly."""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("EDDY_SOURCE_DIR", "."), "tests", "lib"))
from eddytest import EDDY, MULT, free_port, port_open, scaled, tmpdir, wait_for  # noqa: E402

SRC = os.environ.get("EDDY_SOURCE_DIR", ".")
BIN = os.environ.get("EDDY_BINARY_DIR", "build")


def roles(data):
    with open(os.path.join(data, "run", "status.json")) as f:
        return {r["name"]: r for r in json.load(f)["roles"]}


def main():
    d = tmpdir()
    data = os.path.join(d, "data")
    conf = os.path.join(d, "eddy.properties")
    ports = {k: free_port() for k in ("broker", "broker.http", "registry", "eventserver", "driver", "serve")}
    with open(conf, "w") as f:
        f.write("".join("%s.port = %d\n" % kv for kv in ports.items()))
        f.write("workers = 2\nserve.reload.every = 1s\n")
    uplog = open(os.path.join(d, "up.log"), "wb")
    up = subprocess.Popen([EDDY, "up", "--data", data, "--config", conf], stdout=uplog, stderr=subprocess.STDOUT,
                          start_new_session=True)
    report = os.path.join(d, "report.json")
    try:
        wait_for(lambda: os.path.exists(os.path.join(data, "run", "status.json")) and
                 all(r["state"] == "up" for r in roles(data).values()), 60, "eddy up")
        pipe = subprocess.Popen(["/usr/bin/python3", os.path.join(SRC, "scripts", "pipeline.py"), "--eddy", EDDY,
                                 "--data", data, "--jobs", os.path.join(BIN, "jobs"),
                                 "--lines", str(scaled(8000, 500)), "--users", "150", "--items", "120",
                                 "--query-users", "20", "--timeout", str(int(150 * MULT)), "--report", report],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = []
        killed = None
        for line in pipe.stdout:
            out.append(line)
            sys.stdout.write(line)
            if "[3/7]" in line and not killed:
                # the jobs are running and the lines are about to flow: kill -9 the driver
                killed = roles(data)["driver"]["pid"]
                os.kill(killed, signal.SIGKILL)
        rc = pipe.wait(timeout=300 * MULT)
        assert rc == 0, "pipeline failed:\n" + "".join(out[-30:])
        assert killed, "the driver was never killed"
        r = roles(data)["driver"]
        assert r["restarts"] >= 1 and r["pid"] != killed, r
        with open(report) as f:
            rep = json.load(f)
        assert sum(rep["events"].values()) > 0
        assert rep["dlq"] == 0, rep["dlq"]
        recs = rep["recommendations"]
        lists = [tuple(i["item"] for i in v) for v in recs.values()]
        assert sum(1 for l in lists if l) >= len(lists) * 0.8, "too many empty recommendations: %s" % recs
        assert len(set(lists)) > 1, "every user got the same list: not personalised"
        assert rep["model_version"] >= 1
    finally:
        t0 = time.monotonic()
        up.send_signal(signal.SIGTERM)
        urc = up.wait(30 * MULT)
    assert urc == 0, urc
    assert time.monotonic() - t0 < 10 * MULT
    for name, port in ports.items():
        assert not port_open(port), "%s still listening after eddy up stopped" % name
    print("pipeline e2e: all checks passed")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Fault injection, one scenario per argument (each is its own ctest entry):
  worker-kill        kill -9 of a worker while its tasks run
  driver-after-plan  the driver dies between the plan and the commit
  driver-after-store the driver dies between the atomic store commit and the commit record
  poison             a job that segfaults on one record pauses with a clear error; the driver lives
  stateful           a running count per key is exact across driver crashes and restarts
  abi                a wrong-ABI job and a non-ELF file are refused at submit; no token -> 401
After recovery the store holds each expected event exactly once."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rtlib import (Cluster, SCALE, check, check_exactly_once, finish, job_path,  # noqa: E402
                   wait_for)

scenario = sys.argv[1]
N = max(2000, int(100_000 * SCALE))


def worker_kill(c):
    ids = ["w%07d" % i for i in range(N)]
    c.produce(ids)
    c.start_driver()
    a = c.start_worker(slots=2)
    b = c.start_worker(slots=2)
    spare = c.start_worker(slots=1)  # the batch must finish even if the survivor is slow to return
    wait_for(lambda: len(json.loads(c.api("GET", "/v1/workers")[1])["workers"]) == 3, "3 workers")
    c.submit("copy_to_events", "copy", "--max-records-per-batch", str(N // 4),
             "--config", '{"sleep_ms": 40}')

    def busy_worker():
        for w in json.loads(c.api("GET", "/v1/workers")[1])["workers"]:
            if w["busy"] > 0:
                return w
        return None
    w = wait_for(busy_worker, "a worker running tasks")
    victim = {"-w1": a, "-w2": b, "-w3": spare}[w["id"][w["id"].rindex("-"):]]
    other = b if victim == a else a
    if not check(c.procs[other].poll() is None, "the surviving worker is alive before the kill"):
        raise RuntimeError("worker %s exited early: %s" % (other, c.log(other)[-2000:]))
    c.kill9(victim)
    st = c.wait_records("copy", N, timeout=180)
    check("declared dead" in c.log("driver") or "unreachable" in c.log("driver"),
          "the driver noticed the dead worker")
    check(st["task_failures"] == 0, "worker loss is not a task failure (%d)" % st["task_failures"])
    c.stop("driver")
    check_exactly_once(c.export_events(), ids, "after worker kill")


def driver_fault(c, fault, expect_log):
    ids = ["d%07d" % i for i in range(N)]
    c.produce(ids)
    c.start_driver(fault=fault)
    c.start_worker(slots=2)
    c.submit("copy_to_events", "copy", "--max-records-per-batch", str(N // 2))
    wait_for(lambda: c.procs["driver"].poll() is not None, "the driver to die at " + fault)
    check(c.procs["driver"].returncode == 86, "driver exited at the fault point (%s)" % c.procs["driver"].returncode)
    c.start_driver()  # no fault this time
    st = c.wait_records("copy", N, timeout=180)
    check(expect_log in c.log("driver"), "driver log says: " + expect_log)
    outcomes = [h["outcome"] for h in st["history"]]
    if fault == "after-store-commit":
        check(outcomes[0] == "recovered", "batch 0 recovered without a re-run: %s" % outcomes)
    check(st["history"][0]["batch"] == 0 and st["history"][1]["batch"] == 1,
          "batches 0 and 1 in order: %s" % [h["batch"] for h in st["history"]])
    check(st["counters"].get("records") == N, "counter exactly once: %s" % st["counters"])
    c.stop("driver")
    check_exactly_once(c.export_events(), ids, "after " + fault)


def poison(c):
    good = ["p%06d" % i for i in range(200)]
    c.produce(good[:100] + ["poison"] + good[100:])
    c.start_driver()
    c.start_worker(slots=2)
    c.submit("crash_on_poison", "poison", "--max-task-failures", "2")

    def paused():
        s = c.status("poison")
        return s if s and s["status"] == "paused" else None
    st = wait_for(paused, "the job to pause", timeout=120)
    err = st.get("error") or ""
    # Sanitizer builds instrument the job too: UBSan halts the task with exit
    # status 1 on the NULL store before the SIGSEGV can happen.
    sanitized = bool(os.environ.get("ASAN_OPTIONS") or os.environ.get("UBSAN_OPTIONS"))
    crash = "exited with status" if sanitized and "signal 11" not in err else "signal 11 (Segmentation fault)"
    check(crash in err, "error names the crash: " + err)
    check("failed 2 times" in err, "error names the attempts: " + err)
    check("offsets" in err and "in/" in err, "error names the offsets: " + err)
    check(c.procs["driver"].poll() is None, "the driver is alive")
    check(c.status("poison")["status"] == "paused", "status stays paused")
    r = c.run([c.procs and os.environ.get("EDDY", "build/eddy"), "jobs", "status", "poison",
               "--driver", c.driver_addr])
    check("paused" in r.stdout and crash in r.stdout, "eddy jobs status shows the error")
    check(c.procs["worker1"].poll() is None, "the worker survived its task's crash")


def stateful(c):
    # Keys k0..k(K-1), each sent `reps` times, split over two rounds with a
    # driver crash between the store commit and the commit record, and a
    # clean restart.
    K, reps = 50, max(4, int(40 * SCALE))
    lines = ["k%d:x" % (i % K) for i in range(K * reps)]
    half = len(lines) // 2
    c.produce(lines[:half], key_sep=":")
    c.start_driver(fault="after-store-commit")
    c.start_worker(slots=2)
    c.submit("running_count", "count", "--max-records-per-batch", str(half // 3))
    wait_for(lambda: c.procs["driver"].poll() is not None, "driver fault")
    c.start_driver()
    c.wait_records("count", half, timeout=120)
    c.stop("driver")
    c.produce(lines[half:], key_sep=":")
    c.start_driver()
    st = c.wait_records("count", len(lines), timeout=120)
    check(st["counters"].get("records") == len(lines), "records counter %s" % st["counters"])
    # The final count of every key, read from the job's state (per partition).
    total = 0
    desc = c.run([os.environ.get("EDDY", "build/eddy"), "topics", "describe", "in", "--broker", c.broker_addr]).stdout
    nparts = 8
    for k in range(K):
        key = ("k%d" % k).encode()
        found = None
        for p in range(nparts):
            st_, body = c.api("GET", "/v1/state/count?topic=in&partition=%d&key=%s" % (p, key.hex()))
            if st_ == 200:
                check(found is None, "key %s in one partition only" % key)
                found = int(body)
        check(found == reps, "count of %s is %s, expected %d" % (key, found, reps))
        total += found or 0
    check(total == len(lines), "total %d == %d (%s)" % (total, len(lines), desc[:0]))


def abi(c):
    c.start_driver()
    r = c.submit("wrong_abi", "bad", check_rc=False)
    check(r.returncode != 0 and "ABI version 2" in r.stderr, "wrong ABI refused: " + r.stderr)
    txt = os.path.join(c.dir, "notajob.so")
    with open(txt, "w") as f:
        f.write("#!/bin/sh\necho I am not a shared object\n")
    r = c.run([os.environ.get("EDDY", "build/eddy"), "submit", txt, "--name", "txt", "--input", "in",
               "--driver", c.driver_addr, "--data", c.data], check_rc=False)
    check(r.returncode != 0 and "not a shared object" in r.stderr, "non-ELF refused: " + r.stderr)
    st, body = c.api("POST", "/v1/jobs?name=x&inputs=in", body=open(job_path("copy_to_events"), "rb").read(),
                     token=False)
    check(st == 401, "submit without token -> 401 (%d)" % st)
    for m, p in [("POST", "/v1/jobs/x/stop"), ("POST", "/v1/jobs/x/resume"), ("DELETE", "/v1/jobs/x")]:
        check(c.api(m, p, token=False)[0] == 401, "%s %s without token -> 401" % (m, p))
    check(json.loads(c.api("GET", "/v1/jobs", token=False)[1])["jobs"] == [], "nothing was registered")
    # A good job submits, stops, resumes and deletes with the token.
    c.submit("copy_to_events", "ok")
    for verb in ("stop", "resume", "delete"):
        r = c.run([os.environ.get("EDDY", "build/eddy"), "jobs", verb, "ok", "--driver", c.driver_addr,
                   "--data", c.data])
        check(r.returncode == 0, "jobs %s ok" % verb)
    check(c.status("ok") is None, "deleted job is gone")


c = Cluster(scenario)
try:
    if scenario == "worker-kill":
        worker_kill(c)
    elif scenario == "driver-after-plan":
        driver_fault(c, "after-plan", "re-running it with the same ranges")
    elif scenario == "driver-after-store":
        driver_fault(c, "after-store-commit", "is in the store but has no commit record")
    elif scenario == "poison":
        poison(c)
    elif scenario == "stateful":
        stateful(c)
    elif scenario == "abi":
        abi(c)
    else:
        raise SystemExit("unknown scenario " + scenario)
finally:
    c.close()
finish()

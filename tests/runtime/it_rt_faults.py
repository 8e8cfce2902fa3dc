#!/usr/bin/python3
"""Fault injection, one scenario per argument (each is its own ctest entry):
  worker-kill        kill -9 of a worker while its tasks run
  worker-lost        a worker dies holding a task with a slot free: the failed push hands the task over
  driver-after-plan  the driver dies between the plan and the commit
  driver-after-store the driver dies between the atomic store commit and the commit record
  poison             a job that segfaults on one record pauses with a clear error; the driver lives
  stateful           a running count per key is exact across driver crashes and restarts
  abi                a wrong-ABI job and a non-ELF file are refused at submit; no token -> 401
After recovery the store holds each expected event exactly once."""
import json
import os
import socket
import sys
import threading
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
    # One at a time, so that registration order (and so the -w1/-w2 ids) is
    # known: started together, the second process may register first.
    a = c.start_worker(slots=2)
    wait_for(lambda: len(json.loads(c.api("GET", "/v1/workers")[1])["workers"]) == 1, "worker 1")
    b = c.start_worker(slots=2)
    wait_for(lambda: len(json.loads(c.api("GET", "/v1/workers")[1])["workers"]) == 2, "worker 2")
    c.submit("copy_to_events", "copy", "--max-records-per-batch", str(N // 4),
             "--config", '{"sleep_ms": 40}')

    def busy_worker():
        for w in json.loads(c.api("GET", "/v1/workers")[1])["workers"]:
            if w["busy"] > 0:
                return w
        return None
    w = wait_for(busy_worker, "a worker running tasks")
    victim = a if w["id"].endswith("-w1") else b
    other = b if victim == a else a
    if not check(c.procs[other].poll() is None, "the surviving worker is alive before the kill"):
        raise RuntimeError("worker %s exited early: %s" % (other, c.log(other)[-2000:]))
    # The driver may find the victim gone either way: no heartbeat for
    # --worker-timeout, or a task push it cannot deliver while the victim still
    # had a free slot. Both must hand the victim's running tasks to the
    # survivor (the second used not to: the batch then never finished).
    c.kill9(victim)
    st = c.wait_records("copy", N, timeout=180)
    check("declared dead" in c.log("driver") or "unreachable" in c.log("driver"),
          "the driver noticed the dead worker")
    check(st["task_failures"] == 0, "worker loss is not a task failure (%d)" % st["task_failures"])
    check(c.procs[other].poll() is None, "the surviving worker is still running")
    c.stop("driver")
    check_exactly_once(c.export_events(), ids, "after worker kill")


def fake_worker(stop):
    """A worker that accepts one task (202) and then dies: its port is closed
    before the 202 is sent, so the driver's next push to it fails at once.
    Returns (address, dict that gets "task" = the accepted body)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    got = {}

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                continue
            break
        else:
            srv.close()
            return
        conn.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, body = data.split(b"\r\n\r\n", 1)
        cl = [int(h.split(b":", 1)[1]) for h in head.split(b"\r\n")
              if h.lower().startswith(b"content-length:")][0]
        while len(body) < cl:
            body += conn.recv(65536)
        srv.close()  # dead from here on: later pushes are refused
        got["task"] = body
        out = b'{"accepted":true}'
        conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(out), out))
        conn.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return "127.0.0.1:%d" % srv.getsockname()[1], got, t


def worker_lost(c):
    """Deterministic form of the worker-kill race: a worker that dies holding a
    running task while it still has a free slot is found dead by a failed task
    push (not by the heartbeat timeout). Its running task must go to another
    worker; before the fix it stayed 'running' forever and the batch hung."""
    n = 2000
    ids = ["l%06d" % i for i in range(n)]
    c.produce(ids)
    c.start_driver(extra=("--task-max-records", str(n // 20)))  # >= 20 tasks in the batch
    real = c.start_worker(slots=1)
    wait_for(lambda: len(json.loads(c.api("GET", "/v1/workers")[1])["workers"]) == 1, "worker 1")
    stop = threading.Event()
    addr, got, srv_thread = fake_worker(stop)
    st, body = c.api("POST", "/v1/workers", body=json.dumps({"address": addr, "slots": 2}).encode())
    if not check(st == 200, "fake worker registered (%d %s)" % (st, body)):
        return
    fid = json.loads(body)["id"]

    def beat():  # alive by heartbeat until the driver drops it (404)
        while not stop.is_set():
            if c.api("POST", "/v1/workers/%s/heartbeat" % fid)[0] != 200:
                return
            time.sleep(0.2)
    threading.Thread(target=beat, daemon=True).start()
    try:
        # The first dispatch round gives the fake (2 free slots, load 0.5
        # after one) two of its first three tasks: the first is accepted, the
        # second finds the port closed.
        c.submit("copy_to_events", "lost", "--max-records-per-batch", str(n))
        st = c.wait_records("lost", n, timeout=60)
    finally:
        stop.set()
    srv_thread.join(5)
    check("task" in got, "the fake worker accepted a task")
    check("unreachable" in c.log("driver"), "the driver found the fake worker unreachable")
    check("running task(s) go to other workers" in c.log("driver"),
          "its running task was handed over")
    check(st["task_failures"] == 0, "worker loss is not a task failure (%d)" % st["task_failures"])
    check(c.procs[real].poll() is None, "the real worker is alive")
    c.stop("driver")
    check_exactly_once(c.export_events(), ids, "after a lost worker")


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
        st, body = c.api(m, p)
        check(st == 404 and b"no job named x" in body, "%s %s of an unknown job -> 404 (%d %s)" % (m, p, st, body))
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
    elif scenario == "worker-lost":
        worker_lost(c)
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

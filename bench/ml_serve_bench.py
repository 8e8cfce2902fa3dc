#!/usr/bin/python3
"""Serving benchmark: `eddy serve` POST /queries.json vs nginx serving a static
file of the same size (the ceiling), same machine, same run, same wrk load.

  bench/ml_serve_bench.py [--eddy build/eddy] [--items 10000] [--rank 50]
                          [--users 5000] [--duration 5] [--connections 64] [--runs 1]
                          [--layout all|both|shared|single|pinned]

Trains a model on generated ratings (ITEMS items, rank RANK), starts
`eddy serve` and nginx on free loopback ports, runs wrk with a Lua script that
posts real query bodies (a different known user each request, num 10) and
prints a markdown table: requests/s, p50, p99, ratio to nginx.

Three layouts, both servers treated alike:
  shared  wrk (2 threads) and the server (2 threads / 2 nginx workers) share
          both cores, as a default deployment would; four busy threads on two
          cores, so a server thread waits out whole scheduler slices while its
          connections' requests wait with it (p99 shows the scheduler);
  single  the same, with one server thread / one nginx worker;
  pinned  wrk (1 thread) on core 0, the server (1 thread / 1 nginx worker) on
          core 1 (taskset): the server's latency without the load generator
          preempting it, so p99 shows the server rather than the scheduler.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, deadline):
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def cpu_seconds(pid):
    """utime + stime of pid and its direct children (nginx's workers)."""
    hz = os.sysconf("SC_CLK_TCK")
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(d) == pid or int(st[1]) == pid:  # st[1] = ppid
            total += int(st[11]) + int(st[12])  # utime, stime
    return total / hz


def wrk(url, script, duration, conns, threads, cpu=None):
    args = (["taskset", "-c", str(cpu)] if cpu is not None else []) + ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % duration, "--latency"]
    if script:
        args += ["-s", script]
    out = subprocess.run(args + [url], capture_output=True, text=True, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        m = re.search(r"\s%s%%\s+([\d.]+)(us|ms|s)" % p, out)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50": pct(50), "p99": pct(99), "non2xx": int(errors.group(1)) if errors else 0,
            "sock": sock.group(1) if sock else "", "raw": out}


# layout: (wrk threads (None = --wrk-threads), wrk's core, server threads / nginx
# workers (0 = one per core), server's core); None = wherever the scheduler puts it
LAYOUTS = {
    "shared": (None, None, 0, None),
    "single": (None, None, 1, None),
    "pinned": (1, 0, 1, 1),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--eddy", default=os.environ.get("EDDY", "build/eddy"))
    ap.add_argument("--items", type=int, default=10000)
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--rank", type=int, default=50)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=1, help="runs per layout (one row each)")
    ap.add_argument("--layout", choices=["all", "both", "shared", "single", "pinned"], default="all",
                    help="both = shared and pinned")
    a = ap.parse_args()
    # a SIGTERM unwinds through the finally below, so servers are not left running
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    tmp = tempfile.mkdtemp(prefix="eddy-serve-bench-")
    os.chmod(tmp, 0o755)  # nginx workers run as an unprivileged user
    procs = []
    try:
        rng = random.Random(1)
        with open(os.path.join(tmp, "r.tsv"), "w") as f:
            for u in range(a.users):
                for _ in range(40):
                    i = int(rng.random() ** 2 * a.items)
                    f.write("u%d\ti%d\t%d\t%d\n" % (u, i, 1 + rng.randrange(5), u))
            for i in range(a.items):  # every item rated at least once
                f.write("u%d\ti%d\t3\t0\n" % (i % a.users, i))
        with open(os.path.join(tmp, "engine.json"), "w") as f:
            json.dump({"id": "bench", "datasource": {"params": {"appName": "bench"}},
                       "datasource_note": "generated",
                       "algorithms": [{"name": "als", "params": {"rank": a.rank, "numIterations": 3}}],
                       "serving": {"params": {}}}, f)
        common = ["--engine", os.path.join(tmp, "engine.json"), "--data", os.path.join(tmp, "d")]
        subprocess.run([a.eddy, "train", "--quiet", "--ratings", os.path.join(tmp, "r.tsv")] + common,
                       check=True, capture_output=True)
        def start_eddy(threads, cpu):
            pre = ["taskset", "-c", str(cpu)] if cpu is not None else []
            srv = subprocess.Popen(pre + [a.eddy, "serve", "--threads", str(threads), "--listen", "127.0.0.1:0"]
                                   + common, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            procs.append(srv)
            for line in srv.stderr:
                m = re.search(r"serving .* on 127\.0\.0\.1:(\d+)", line)
                if m:
                    return srv, int(m.group(1))
            raise AssertionError("eddy serve did not start")

        def stop(p):
            p.terminate()
            p.wait(timeout=10)

        srv, port = start_eddy(0, None)
        info = json.loads(urllib.request.urlopen("http://127.0.0.1:%d/" % port).read())["model"]
        body = json.dumps({"user": "u1", "num": 10}).encode()
        answer = urllib.request.urlopen(urllib.request.Request(
            "http://127.0.0.1:%d/queries.json" % port, data=body, method="POST")).read()
        stop(srv)

        lua = os.path.join(tmp, "post.lua")
        with open(lua, "w") as f:
            f.write("""
local n = 0
local users = %d
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  local body = '{"user":"u' .. (n * 7919 %% users) .. '","num":10}'
  return wrk.format("POST", "/queries.json", nil, body)
end
""" % a.users)
        www = os.path.join(tmp, "www")
        os.makedirs(www)
        with open(os.path.join(www, "answer.json"), "wb") as f:
            f.write(answer)

        def start_nginx(workers, cpu):
            nport = free_port()
            conf = os.path.join(tmp, "nginx.conf")
            with open(conf, "w") as f:
                f.write("""worker_processes %s;
daemon off;
pid %s/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %s/cb; proxy_temp_path %s/pt; fastcgi_temp_path %s/ft;
  uwsgi_temp_path %s/ut; scgi_temp_path %s/st;
  default_type application/json;
  server { listen 127.0.0.1:%d; root %s; }
}
""" % ((workers,) + (tmp,) * 6 + (nport, www)))
            pre = ["taskset", "-c", str(cpu)] if cpu is not None else []
            ng = subprocess.Popen(pre + ["nginx", "-p", tmp, "-c", conf], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
            procs.append(ng)
            assert wait_port(nport, time.time() + 10), "nginx did not start"
            return ng, nport

        def measure(layout):
            threads, load_cpu, server_threads, server_cpu = LAYOUTS[layout]
            if threads is None:
                threads = a.wrk_threads
            srv, port = start_eddy(server_threads, server_cpu)
            url = "http://127.0.0.1:%d/queries.json" % port
            wrk(url, lua, 1, a.connections, threads, load_cpu)  # warm-up
            c0 = cpu_seconds(srv.pid)
            e = wrk(url, lua, a.duration, a.connections, threads, load_cpu)
            e["cpu_us"] = (cpu_seconds(srv.pid) - c0) / (e["rps"] * a.duration) * 1e6
            stop(srv)
            ng, nport = start_nginx(server_threads or "auto", server_cpu)
            url = "http://127.0.0.1:%d/answer.json" % nport
            wrk(url, None, 1, a.connections, threads, load_cpu)
            c0 = cpu_seconds(ng.pid)
            n = wrk(url, None, a.duration, a.connections, threads, load_cpu)
            n["cpu_us"] = (cpu_seconds(ng.pid) - c0) / (n["rps"] * a.duration) * 1e6
            stop(ng)
            return e, n

        print("model: %d users, %d items, rank %d; answer %d bytes; wrk -c%d -d%ds; %d cores (%s)"
              % (info["users"], info["items"], info["params"]["rank"], len(answer),
                 a.connections, a.duration, os.cpu_count(), cpu_model()))
        print()
        print("| layout | server | requests/s | p50 (ms) | p99 (ms) | server CPU µs/request | non-2xx | eddy / nginx |")
        print("|---|---|---|---|---|---|---|---|")
        layouts = {"all": ["shared", "single", "pinned"], "both": ["shared", "pinned"]}.get(
            a.layout, [a.layout])
        for layout in [l for l in layouts for _ in range(a.runs)]:
            if layout == "pinned" and os.cpu_count() < 2:
                continue
            e, n = measure(layout)
            lay = {"pinned": "pinned: wrk -t1 on core 0, server 1 thread on core 1",
                   "single": "single: wrk -t%d, server 1 thread, %d cores" % (a.wrk_threads, os.cpu_count()),
                   "shared": "shared: wrk -t%d, server %d threads, %d cores"
                             % (a.wrk_threads, os.cpu_count(), os.cpu_count())}[layout]
            print("| %s | eddy serve POST /queries.json (top-10 of %d items, rank %d) | %.0f | %.2f | %.2f | %.1f | %d | %.0f%% |"
                  % (lay, info["items"], a.rank, e["rps"], e["p50"], e["p99"], e["cpu_us"], e["non2xx"],
                     100.0 * e["rps"] / n["rps"]))
            print("| %s | nginx GET static file, same size | %.0f | %.2f | %.2f | %.1f | %d | |"
                  % (lay, n["rps"], n["p50"], n["p99"], n["cpu_us"], n["non2xx"]))
            sys.stdout.flush()
            if e["sock"] or n["sock"]:
                print("socket errors: eddy %s; nginx %s" % (e["sock"] or "none", n["sock"] or "none"))
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

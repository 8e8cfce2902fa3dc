#!/usr/bin/python3
"""`eddy up`: every role comes up on its port; a second `eddy up` on the same
data dir is refused; kill -9 of a role is followed by its restart with nothing
lost; logs are per role and rotate by size without losing the live file;
`eddy status` shows it all; SIGTERM stops everything cleanly and quickly."""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("EDDY_SOURCE_DIR", "."), "tests", "lib"))
from eddytest import EDDY, MULT, free_port, port_open, tmpdir, wait_for  # noqa: E402


def roles(data):
    with open(os.path.join(data, "run", "status.json")) as f:
        return {r["name"]: r for r in json.load(f)["roles"]}


def readme_lists_every_setting():
    """The README's settings table is checked against `eddy up --help`, which
    prints the parser's own table: a setting cannot exist undocumented."""
    helptext = subprocess.run([EDDY, "up", "--help"], capture_output=True, text=True).stdout
    flags = [l.split()[0] for l in helptext.split("options:")[1].splitlines() if l.strip().startswith("--")]
    assert len(flags) > 20, helptext
    with open(os.path.join(os.environ.get("EDDY_SOURCE_DIR", "."), "README.md")) as f:
        readme = f.read()
    missing = [f for f in flags if "`%s`" % f not in readme or "`%s`" % f[2:].replace("-", ".") not in readme]
    assert not missing, "README lacks eddy up settings: %s" % missing


def main():
    readme_lists_every_setting()
    d = tmpdir()
    data = os.path.join(d, "data")
    ports = {k: free_port() for k in ("broker", "broker.http", "registry", "eventserver", "driver", "serve")}
    conf = os.path.join(d, "eddy.properties")
    with open(conf, "w") as f:
        f.write("# test config\n")
        for k, p in ports.items():
            f.write("%s.port = %d\n" % (k, p))
        f.write("workers = 2\nlog.max.bytes = 1KiB\nlog.keep = 2\n")
    # flags win over the file: the serve port comes from the flag
    ports["serve"] = free_port()
    log = open(os.path.join(d, "up.log"), "wb")
    up = subprocess.Popen([EDDY, "up", "--data", data, "--config", conf, "--serve-port", str(ports["serve"])],
                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: os.path.exists(os.path.join(data, "run", "status.json")) and
                 all(r["state"] == "up" for r in roles(data).values()) and len(roles(data)) >= 7,
                 60, "every role to be up")
        # broker, registry, event server, driver, 2 workers, serve: retraining
        # schedules are the driver's, there is no scheduler role any more
        assert set(roles(data)) == {"broker", "registry", "eventserver", "driver", "worker-1", "worker-2",
                                    "serve"}, sorted(roles(data))
        for name, port in ports.items():
            assert port_open(port) or name == "broker.http", "%s not listening on %d" % (name, port)
        assert port_open(ports["serve"]), "the --serve-port flag did not win over the file"

        # a second supervisor on the same data dir is refused with a clear message
        p = subprocess.run([EDDY, "up", "--data", data, "--config", conf], capture_output=True, text=True, timeout=30 * MULT)
        assert p.returncode != 0 and "already running" in p.stderr and str(up.pid) in p.stderr, p.stderr

        # data through the broker, then kill -9 the broker: it restarts and the data is there
        b = "127.0.0.1:%d" % ports["broker"]
        subprocess.run([EDDY, "topics", "create", "t", "--partitions", "2", "--broker", b], check=True,
                       capture_output=True, timeout=30 * MULT)
        records = "".join("k%d:v%d\n" % (i, i) for i in range(1000))
        subprocess.run([EDDY, "produce", "--topic", "t", "--acks", "all", "--key-separator", ":", "--broker", b],
                       input=records, text=True, check=True, capture_output=True, timeout=60 * MULT)
        old = roles(data)["broker"]["pid"]
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: roles(data)["broker"]["pid"] not in (0, old) and roles(data)["broker"]["state"] == "up",
                 30, "the broker to be restarted")
        assert roles(data)["broker"]["restarts"] == 1
        out = subprocess.run([EDDY, "consume", "--topic", "t", "--from-beginning", "--exit-at-end", "--broker", b],
                             capture_output=True, text=True, timeout=60 * MULT).stdout.split()
        assert sorted(out) == sorted("v%d" % i for i in range(1000)), "lost or duplicated records: %d" % len(out)

        # status shows every role up, the topic and its offsets
        st = subprocess.run([EDDY, "status", "--data", data, "--sample", "0"], capture_output=True, text=True,
                            timeout=30 * MULT)
        assert st.returncode == 0, st.stderr
        assert "broker" in st.stdout and " t " in st.stdout and "1000" in st.stdout, st.stdout
        assert "down" not in st.stdout, st.stdout

        # logs: one per role; the busiest rotated (1 KiB limit) and its live file is still written
        logs = os.listdir(os.path.join(data, "logs"))
        for name in ("broker.log", "registry.log", "eventserver.log", "driver.log", "worker-1.log", "serve.log"):
            assert name in logs, logs
        rotated = [l for l in logs if l.endswith(".log.1")]
        assert rotated, logs
        live = os.path.join(data, "logs", rotated[0][:-2])
        assert os.path.getsize(live) < 1024 + 65536, "live log not rotated: %d" % os.path.getsize(live)
        assert not any(l.endswith(".3") for l in logs), "log.keep=2 exceeded: %s" % logs
    finally:
        t0 = time.monotonic()
        up.send_signal(signal.SIGTERM)
        rc = up.wait(30 * MULT)
        stop_s = time.monotonic() - t0
    assert rc == 0, rc
    assert stop_s < 10 * MULT, "stopping took %.1fs" % stop_s
    for r in roles(data).values():
        assert r["pid"] == 0 or not os.path.exists("/proc/%d" % r["pid"]), "role left running: %s" % r
    for name, port in ports.items():
        assert not port_open(port), "%s still listening after stop" % name
    print("eddy up: all checks passed (stopped in %.2fs)" % stop_s)


if __name__ == "__main__":
    main()

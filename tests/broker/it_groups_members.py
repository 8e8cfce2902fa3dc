#!/usr/bin/python3
"""Two group members (kcat -G, or kafka-python with --client python) over a
6-partition topic:
  1. the partitions are split between them and every record is consumed
     exactly once across both;
  2. kill -9 one member: the other gets all partitions within the session
     timeout (6 s) and consumes what is produced next, still exactly once;
  3. commits survive a kill -9 of the broker: after a restart a new member of
     the group resumes from the committed offsets (sees only new records).
Also checks DescribeGroups through `eddy groups describe` while both run."""
import collections
import subprocess
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))
from groupslib import (EDDY, MULT, Broker, Proc, committed_all, kcat_produce, make_tmp, rmtree,
                       scaled, wait_for)

CLIENT = "python" if "--client" in sys.argv and sys.argv[sys.argv.index("--client") + 1] == "python" else "kcat"
TOPIC, GROUP, SESSION_S = "orders", "billing", 6


def member(tmp, broker, name):
    if CLIENT == "kcat":
        args = ["kcat", "-b", broker.addr, "-G", GROUP, TOPIC, "-q", "-u", "-f", "%p %o %s\\n",
                "-X", "session.timeout.ms=%d" % (SESSION_S * 1000), "-X", "heartbeat.interval.ms=500",
                "-X", "auto.commit.interval.ms=300", "-X", "auto.offset.reset=earliest",
                "-X", "client.id=it-kcat"]
    else:
        here = __import__("os").path.dirname(__file__)
        args = ["/usr/bin/python3", here + "/groups_py_consumer.py", broker.addr, GROUP, TOPIC]
    return Proc(tmp, name, args)


def parse(lines):
    out = []
    for l in lines:
        p, o, v = l.split(" ", 2)
        out.append((int(p), int(o), v))
    return out


def main():
    tmp = make_tmp("groups-" + CLIENT)
    broker = Broker(tmp, "--num-partitions", "6", "--group-initial-rebalance-delay", "2s")
    procs = []
    try:
        broker.start()
        n = scaled(600)
        first = [("k%d" % i, "a%d" % i) for i in range(n)]
        kcat_produce(broker.addr, TOPIC, first)
        a, b = member(tmp, broker, "a"), member(tmp, broker, "b")
        procs += [a, b]
        wait_for(lambda: len(a.lines()) + len(b.lines()) >= n, 60, "both members to read %d records" % n)
        time.sleep(0.5 * MULT)  # a duplicate would show up now
        ra, rb = parse(a.lines()), parse(b.lines())
        pa, pb = {r[0] for r in ra}, {r[0] for r in rb}
        assert ra and rb, "both members must get records (a=%d b=%d)" % (len(ra), len(rb))
        assert not (pa & pb), "partitions must be split, both read %s" % (pa & pb)
        assert pa | pb == set(range(6)), "all 6 partitions read, got %s" % (pa | pb)
        vals = collections.Counter(r[2] for r in ra + rb)
        dups = [v for v, c in vals.items() if c > 1]
        assert not dups and len(vals) == n, "exactly once: %d distinct of %d, dups %s" % (len(vals), n, dups[:5])
        print("split: a has partitions %s (%d records), b has %s (%d records)" % (sorted(pa), len(ra), sorted(pb), len(rb)))

        desc = subprocess.run([EDDY, "groups", "describe", GROUP, "--broker", broker.addr],
                              capture_output=True, text=True, timeout=30 * MULT)
        assert desc.returncode == 0, desc.stderr
        assert "STATE Stable" in desc.stdout and "MEMBERS 2" in desc.stdout, desc.stdout
        assert desc.stdout.count("/127.0.0.1") >= 2, desc.stdout

        wait_for(lambda: committed_all(broker, GROUP, 6), 30, "commits of all 6 partitions")
        a.kill()  # kill -9: no LeaveGroup, the session must expire
        t0 = time.time()
        m = scaled(300)
        second = [("k%d" % i, "b%d" % i) for i in range(m)]
        kcat_produce(broker.addr, TOPIC, second)
        want = {v for _, v in second}
        wait_for(lambda: want <= {r[2] for r in parse(b.lines())}, SESSION_S + 20,
                 "the survivor to read every new record")
        took = time.time() - t0
        rb = parse(b.lines())
        assert {r[0] for r in rb if r[2].startswith("b")} == set(range(6)), "survivor owns all partitions"
        assert took <= (SESSION_S + 6) * MULT, "takeover took %.1fs (session timeout %ds)" % (took, SESSION_S)
        allv = collections.Counter(r[2] for r in parse(a.lines()) + rb)
        dups = [v for v, c in allv.items() if c > 1]
        assert not dups, "records delivered twice after the takeover: %s" % dups[:5]
        print("takeover after kill -9 of a member: %.1fs (session timeout %ds)" % (took, SESSION_S))

        wait_for(lambda: committed_all(broker, GROUP, 6), 30, "the survivor's commits")
        b.kill(sig=__import__("signal").SIGTERM)
        broker.kill9()
        broker.start()  # same data dir, same port
        k = scaled(120)
        third = [("k%d" % i, "c%d" % i) for i in range(k)]
        kcat_produce(broker.addr, TOPIC, third)
        c = member(tmp, broker, "c")
        procs.append(c)
        wait_for(lambda: len(c.lines()) >= k, 60, "the restarted member to read the new records")
        time.sleep(1.5 * MULT)
        rc = parse(c.lines())
        old = [r for r in rc if not r[2].startswith("c")]
        assert not old, "after broker kill -9 the member re-read %d committed records, e.g. %s" % (len(old), old[:3])
        assert len(rc) == k and {r[2] for r in rc} == {v for _, v in third}, "read %d of %d new" % (len(rc), k)
        print("commits survived broker kill -9: resumed with exactly the %d new records" % k)
        print("PASS")
    except Exception:
        try:
            print("--- broker log\n" + broker.log()[-6000:])
            for p in procs:
                print("--- %s stderr\n%s" % (p.path, p.stderr()[-2000:]))
        except Exception:
            pass
        raise
    finally:
        for p in procs:
            p.kill()
        broker.kill9()
        rmtree(tmp)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Naming standards (the "two processes under one default group" pitfall):
  - --group-name-pattern: a group id that does not match gets INVALID_GROUP_ID
    (kafka-python raises InvalidGroupIdError) and the broker logs why; a
    conforming group works;
  - --topic-name-pattern: creating a non-conforming topic fails with
    INVALID_TOPIC_EXCEPTION and a message naming the pattern (CreateTopics),
    and auto-creation by a producer is refused too;
  - a member joining a group whose members run another client id logs a
    warning naming both;
  - `eddy consume` joins a group only with an explicit --group: without it no
    group appears on the broker, and group.id via --property is refused."""
import subprocess
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from groupslib import EDDY, MULT, Broker, kcat_produce, make_tmp, rmtree, wait_for

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic
from kafka.errors import InvalidGroupIdError, InvalidTopicError

GROUP_RE = r"team-[a-z]+\.[a-z]+"
TOPIC_RE = r"[a-z]+\.[a-z0-9-]+"


def main():
    tmp = make_tmp("groups-naming")
    broker = Broker(tmp, "--num-partitions", "2", "--group-initial-rebalance-delay", "0",
                    "--group-name-pattern", GROUP_RE, "--topic-name-pattern", TOPIC_RE)
    try:
        broker.start()
        kcat_produce(broker.addr, "app.events", [("k%d" % i, "v%d" % i) for i in range(10)])

        # A conforming group consumes.
        ok = KafkaConsumer("app.events", bootstrap_servers=broker.addr, group_id="team-a.billing",
                           auto_offset_reset="earliest", consumer_timeout_ms=int(8000 * MULT))
        got = [m.value for m in ok]
        ok.close()
        assert len(got) == 10, "conforming group read %d of 10" % len(got)

        # Two different applications in one group: the broker warns, naming both.
        k = subprocess.Popen(["kcat", "-b", broker.addr, "-G", "team-a.shared", "app.events", "-q",
                              "-X", "client.id=app-one"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: 'client_id "app-one"' in broker.log(), 15, "the first member to join")
            other = KafkaConsumer("app.events", bootstrap_servers=broker.addr, group_id="team-a.shared",
                                  client_id="app-two")
            other.poll(timeout_ms=int(3000 * MULT))
            line = wait_for(lambda: [l for l in broker.log().splitlines()
                                     if "two different applications" in l], 15, "the mixed-group warning")
            assert 'client_id "app-two"' in line[0] and 'client_id "app-one"' in line[0], line
            print("warned: %s" % line[0].split("WARN", 1)[1].strip())
            other.close(autocommit=False)
        finally:
            k.kill()
            k.wait()

        # A non-conforming one is refused with INVALID_GROUP_ID.
        bad = KafkaConsumer("app.events", bootstrap_servers=broker.addr, group_id="adhoc")
        try:
            bad.poll(timeout_ms=int(5000 * MULT))
            raise AssertionError("group 'adhoc' was accepted")
        except InvalidGroupIdError:
            pass
        finally:
            try:
                bad.close(autocommit=False)
            except Exception:
                pass
        wait_for(lambda: "rejected group 'adhoc'" in broker.log(), 5, "the rejection log line")
        assert GROUP_RE in broker.log()

        # Topics: CreateTopics carries the reason; producer auto-creation is refused.
        admin = KafkaAdminClient(bootstrap_servers=broker.addr)
        try:
            admin.create_topics([NewTopic("Bad_Topic", 1, 1)])
            raise AssertionError("topic Bad_Topic was created")
        except InvalidTopicError as e:
            print("CreateTopics refused: %s" % e)
            assert "naming standard" in str(e), str(e)
        admin.close()
        r = subprocess.run(["kcat", "-b", broker.addr, "-P", "-t", "NoDots", "-X", "message.timeout.ms=3000"],
                           input=b"x\n", capture_output=True, timeout=30 * MULT)
        listing = subprocess.run(["kcat", "-b", broker.addr, "-L"], capture_output=True, text=True,
                                 timeout=30 * MULT).stdout
        assert "NoDots" not in listing and "Bad_Topic" not in listing, listing
        assert "rejected topic 'NoDots'" in broker.log() or "rejected topic 'Bad_Topic'" in broker.log()

        # eddy consume: no --group -> no group on the broker; group.id smuggling refused.
        out = subprocess.run([EDDY, "consume", "--broker", broker.addr, "--topic", "app.events",
                              "--from-beginning", "--exit-at-end", "--quiet"],
                             capture_output=True, text=True, timeout=60 * MULT)
        assert out.returncode == 0 and len(out.stdout.splitlines()) == 10, out.stderr
        groups = subprocess.run([EDDY, "groups", "list", "--broker", broker.addr], capture_output=True,
                                text=True, timeout=30 * MULT)
        names = [l.split()[0] for l in groups.stdout.splitlines()[1:] if l.strip()]
        assert sorted(names) == ["team-a.billing", "team-a.shared"], "groups on the broker: %s" % names
        out = subprocess.run([EDDY, "consume", "--broker", broker.addr, "--topic", "app.events",
                              "--property", "group.id=shared"], capture_output=True, text=True,
                             timeout=30 * MULT)
        assert out.returncode == 2 and "--group" in out.stderr, (out.returncode, out.stderr)
        print("refused: %s" % out.stderr.strip())
        print("PASS")
    except Exception:
        print("--- broker log\n" + broker.log()[-5000:])
        raise
    finally:
        broker.kill9()
        rmtree(tmp)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Lag monitoring end to end: a kafka-python consumer (group "slow", manual
assignment, generation -1 commits) keeps committing the same offset while
records keep arriving -> the broker's Burrow endpoint reports the partition
STALL and the group ERR (also in /metrics and `eddy groups lag`); it then
catches up -> OK. Unknown groups answer 404 with Burrow's NOTFOUND body."""
import subprocess
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))
from groupslib import EDDY, MULT, Broker, kcat_produce, make_tmp, rmtree, wait_for

from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

TOPIC, GROUP = "clicks", "slow"


def status(broker, kind="status"):
    st, doc = broker.http("/v3/kafka/local/consumer/%s/%s" % (GROUP, kind))
    return st, doc


def main():
    tmp = make_tmp("groups-lag")
    broker = Broker(tmp, "--num-partitions", "1", "--lag-refresh-interval", "500ms")
    c = None
    try:
        broker.start()
        st, doc = broker.http("/v3/kafka")
        assert st == 200 and doc["clusters"] == ["local"] and doc["error"] is False, doc
        st, doc = status(broker)
        assert st == 404 and doc["error"] is False and doc["status"]["status"] == "NOTFOUND", (st, doc)

        kcat_produce(broker.addr, TOPIC, [("k", "v%d" % i) for i in range(50)])
        c = KafkaConsumer(bootstrap_servers=broker.addr, group_id=GROUP, enable_auto_commit=False,
                          client_id="it-lag")
        tp = TopicPartition(TOPIC, 0)
        c.assign([tp])
        # Stall: commit offset 10 again and again while the head moves on.
        for i in range(10):
            kcat_produce(broker.addr, TOPIC, [("k", "w%d-%d" % (i, j)) for j in range(3)])
            c.commit({tp: OffsetAndMetadata(10, "")})
        st, doc = status(broker)
        assert st == 200, (st, doc)
        s = doc["status"]
        assert s["status"] == "ERR", s
        assert len(s["partitions"]) == 1 and s["partitions"][0]["status"] == "STALL", s
        assert s["partitions"][0]["current_lag"] == 80 - 10, s
        assert s["totallag"] == 70 and s["maxlag"]["partition"] == 0, s
        assert s["partitions"][0]["client_id"] == "" or isinstance(s["partitions"][0]["client_id"], str)
        print("stalled consumer: group %s, partition %s, lag %d" % (s["status"], s["partitions"][0]["status"], s["totallag"]))

        st, lag = status(broker, "lag")
        p = lag["status"]["partitions"][0]
        assert p["start"]["offset"] == 10 and p["end"]["offset"] == 10 and p["end"]["lag"] >= p["start"]["lag"], p
        assert set(p) >= {"topic", "partition", "owner", "client_id", "status", "start", "end", "current_lag", "complete"}, p
        assert abs(p["complete"] - 1.0) < 1e-9, p
        st, det = broker.http("/v3/kafka/local/consumer/%s" % GROUP)
        assert st == 200 and "current-lag" in det["topics"][TOPIC][0], det  # Burrow's hyphenated field
        st, metrics = broker.http("/metrics")
        assert 'eddy_group_lag{group="slow"} 70' in metrics, metrics[-2000:]
        assert 'eddy_partition_high_watermark{topic="clicks",partition="0"} 80' in metrics
        assert 'eddy_requests_total{api="OffsetCommit"}' in metrics
        assert 'eddy_request_duration_seconds_bucket{api="OffsetCommit",le="+Inf"}' in metrics
        out = subprocess.run([EDDY, "groups", "lag", GROUP, "--http", "127.0.0.1:%d" % broker.http_port],
                             capture_output=True, text=True, timeout=30 * MULT)
        assert out.returncode == 0 and "STALL" in out.stdout and "STATUS ERR" in out.stdout, out.stdout + out.stderr

        # Catch up: commit the head; the consumer is OK again.
        c.commit({tp: OffsetAndMetadata(80, "")})
        st, doc = status(broker)
        s = doc["status"]
        assert st == 200 and s["status"] == "OK" and s["partitions"] == [] and s["totallag"] == 0, s
        print("caught up: group %s" % s["status"])
        st, doc = broker.http("/v3/kafka/local/consumer")
        assert GROUP in doc["consumers"], doc

        # Deleting the topic drops the group's committed offsets (tombstones).
        from kafka import KafkaAdminClient
        admin = KafkaAdminClient(bootstrap_servers=broker.addr)
        assert admin.list_consumer_group_offsets(GROUP), "offsets before deletion"
        admin.delete_topics([TOPIC])
        wait_for(lambda: not admin.list_consumer_group_offsets(GROUP), 10, "offsets dropped with the topic")
        admin.close()
        assert "dropping 1 committed offset" in broker.log()
        print("PASS")
    except Exception:
        print("--- broker log\n" + broker.log()[-5000:])
        raise
    finally:
        if c:
            c.close(autocommit=False)
        broker.kill9()
        rmtree(tmp)


if __name__ == "__main__":
    main()

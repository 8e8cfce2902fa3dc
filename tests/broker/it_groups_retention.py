#!/usr/bin/python3
"""Offsets retention: the committed offsets of a group without members
expire after --offsets-retention (tombstones in __consumer_offsets), and
stay gone after a restart. (That a group with members keeps its offsets is
covered by test_broker_cg.)"""
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))
from groupslib import MULT, Broker, kcat_produce, make_tmp, rmtree, wait_for

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata


def main():
    tmp = make_tmp("groups-retention")
    broker = Broker(tmp, "--num-partitions", "1", "--offsets-retention", "3s")
    try:
        broker.start()
        kcat_produce(broker.addr, "t", [("k", "v%d" % i) for i in range(5)])
        c = KafkaConsumer(bootstrap_servers=broker.addr, group_id="idle", enable_auto_commit=False)
        c.assign([TopicPartition("t", 0)])
        c.commit({TopicPartition("t", 0): OffsetAndMetadata(3, "m")})
        c.close(autocommit=False)
        admin = KafkaAdminClient(bootstrap_servers=broker.addr)
        got = admin.list_consumer_group_offsets("idle")
        assert got[TopicPartition("t", 0)].offset == 3, got
        t0 = time.time()
        wait_for(lambda: not admin.list_consumer_group_offsets("idle"), 15, "offsets of the idle group to expire")
        took = time.time() - t0
        assert took >= 1.0, "expired too early (%.1fs)" % took
        admin.close()
        print("expired after %.1fs (retention 3s)" % took)
        broker.kill9()
        broker.start()
        admin = KafkaAdminClient(bootstrap_servers=broker.addr)
        assert not admin.list_consumer_group_offsets("idle"), "expired offsets came back after restart"
        admin.close()
        print("PASS")
    except Exception:
        print("--- broker log\n" + broker.log()[-4000:])
        raise
    finally:
        broker.kill9()
        rmtree(tmp)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""A kafka-python group member for the integration tests: prints
"partition offset value" per record (flushed), auto-commits every 300 ms.
usage: groups_py_consumer.py BROKER GROUP TOPIC"""
import sys

from kafka import KafkaConsumer

broker, group, topic = sys.argv[1:4]
c = KafkaConsumer(topic, bootstrap_servers=broker, group_id=group, client_id="it-python",
                  auto_offset_reset="earliest", enable_auto_commit=True,
                  auto_commit_interval_ms=300, session_timeout_ms=6000,
                  heartbeat_interval_ms=500, max_poll_interval_ms=60000)
while True:
    batch = c.poll(timeout_ms=200)
    for tp, msgs in batch.items():
        for m in msgs:
            sys.stdout.write("%d %d %s\n" % (m.partition, m.offset, m.value.decode()))
    sys.stdout.flush()

#!/usr/bin/python3
"""kafka-python (Debian's python3-kafka 2.0.2) against `eddy broker`.

Creates a topic with kafka-python's admin client, produces keyed records with
headers (binary values, null keys, empty header values; plain and gzip
batches), then reads them back with a KafkaConsumer that joins no group
(assign + seek_to_beginning) and checks every field: value, key, headers,
the partition and offset the producer was told, each record exactly once, and
per-partition offsets dense from 0. Keyed records must sit in the partition
kafka-python's DefaultPartitioner chose: murmur2(key) & 0x7fffffff % n.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from broker_proc import MULT, SCALE, Broker, wait_for  # noqa: E402

from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402
from kafka.partitioner.default import murmur2  # noqa: E402

TOPIC = "py-records"
NPART = 4
N = max(200, int(5000 * SCALE))


def record(i, codec):
    key = None if i % 10 == 0 else b"key-%d" % (i % 97)
    value = b"v%07d-%s-" % (i, codec) + bytes((i * 7 + j) % 256 for j in range(i % 61))
    headers = [("seq", b"%d" % i), ("bin", b"\x00\xff\x80"), ("empty", b"")]
    return key, value, headers


def produce(bootstrap, codec, first, count):
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                      compression_type=None if codec == b"none" else codec.decode(),
                      request_timeout_ms=int(30000 * MULT))
    futures = []
    for i in range(first, first + count):
        key, value, headers = record(i, codec)
        futures.append((i, p.send(TOPIC, key=key, value=value, headers=headers)))
    p.flush(timeout=60 * MULT)
    placed = {}
    for i, f in futures:
        md = f.get(timeout=30 * MULT)
        placed[i] = (md.partition, md.offset)
    p.close(timeout=10 * MULT)
    return placed


def main():
    with Broker() as b:
        b.start()
        admin = KafkaAdminClient(bootstrap_servers=b.bootstrap,
                                 request_timeout_ms=int(30000 * MULT))
        admin.create_topics([NewTopic(TOPIC, num_partitions=NPART, replication_factor=1)])
        admin.close()

        expected = {}  # seq -> (key, value, headers, codec)
        placed = {}
        half = N // 2
        for codec, first, count in ((b"none", 0, half), (b"gzip", half, N - half)):
            placed.update(produce(b.bootstrap, codec, first, count))
            for i in range(first, first + count):
                expected[i] = record(i, codec)
        assert len(placed) == N, "producer acknowledged %d of %d" % (len(placed), N)

        for i, (key, _, _) in expected.items():
            if key is not None:
                want = (murmur2(key) & 0x7FFFFFFF) % NPART
                assert placed[i][0] == want, \
                    "record %d key %r went to partition %d, murmur2 says %d" % (i, key, placed[i][0], want)

        c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=None, enable_auto_commit=False,
                          request_timeout_ms=int(30000 * MULT), check_crcs=True)
        tps = [TopicPartition(TOPIC, p) for p in range(NPART)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        ends = c.end_offsets(tps)
        assert sum(ends.values()) == N, "end offsets %r, want a total of %d" % (ends, N)

        seen = {}
        last_offset = {p: -1 for p in range(NPART)}
        deadline = time.monotonic() + 120 * MULT
        while len(seen) < N:
            assert time.monotonic() < deadline, "consumed %d of %d records before the deadline" % (len(seen), N)
            for tp, msgs in c.poll(timeout_ms=500).items():
                for m in msgs:
                    hdrs = dict(m.headers)
                    i = int(hdrs["seq"])
                    assert i not in seen, "record %d delivered twice (offsets %r and %d)" % (i, seen[i], m.offset)
                    seen[i] = (m.partition, m.offset)
                    key, value, headers, = expected[i][:3]
                    assert m.value == value, "record %d: value %r != %r" % (i, m.value, value)
                    assert m.key == key, "record %d: key %r != %r" % (i, m.key, key)
                    assert list(m.headers) == headers, "record %d: headers %r != %r" % (i, m.headers, headers)
                    assert (m.partition, m.offset) == placed[i], \
                        "record %d at %r, producer was told %r" % (i, (m.partition, m.offset), placed[i])
                    assert m.offset == last_offset[m.partition] + 1, \
                        "partition %d: offset %d after %d" % (m.partition, m.offset, last_offset[m.partition])
                    last_offset[m.partition] = m.offset
        # nothing beyond what we produced
        extra = c.poll(timeout_ms=300)
        assert not any(extra.values()), "unexpected extra records: %r" % extra
        c.close()
        rc = b.stop()
        assert rc == 0, "broker exit status %r after SIGTERM" % rc
    print("ok: kafka-python produced %d records (plain + gzip) with keys and headers and read them back" % N)


if __name__ == "__main__":
    main()

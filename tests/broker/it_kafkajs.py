#!/usr/bin/python3
"""kafkajs (pure JavaScript, npm) against `eddy broker`.

Starts a broker on a free loopback port in a temp dir and runs
kafkajs_client.js with node: admin createTopics / listTopics /
fetchTopicMetadata / fetchTopicOffsets / fetchTopicOffsetsByTimestamp (the
record, not its batch), keyed produce with acks -1 and 1,
compression none and gzip, a consumer group reading from the beginning
(every message exactly once, per-partition order, keys/headers/timestamps
intact), explicit commit, restart resuming after the committed offsets, two
members splitting the partitions, fetchOffsets / describeGroups / listGroups,
deleteGroups (deleted / NON_EMPTY_GROUP / GROUP_ID_NOT_FOUND), a produce to
an unknown topic without auto-creation (UNKNOWN_TOPIC_OR_PARTITION) and
createPartitions (grow and write the new partition; shrinking refused),
alterConfigs / describeConfigs (set replaced, enforced at once),
deleteTopicRecords (low watermark moves, readers start there), an
idempotent producer (idempotent: true; the stored batches carry its producer
id and dense sequence numbers, checked here on disk). Then
the broker is killed (-9) and restarted on the same data, and a second run
checks that the log, committed offsets, the group deletion, the grown topic,
its altered configs and the deleted records' start persisted.

kafkajs comes from scripts/deps.sh (pinned, into $EDDY_SOURCE_DIR/.deps/node;
EDDY_NODE_MODULES overrides). The test never reaches the network: without
node or kafkajs it exits 77, which CMake marks as skipped (SKIP_RETURN_CODE).
"""
import os
import shutil
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from broker_proc import MULT, Broker  # noqa: E402

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))


def node_modules():
    if os.environ.get("EDDY_NODE_MODULES"):
        return os.environ["EDDY_NODE_MODULES"]
    src = os.environ.get("EDDY_SOURCE_DIR", os.path.join(HERE, "..", ".."))
    return os.path.join(src, ".deps", "node", "node_modules")


def run_client(node, env, bootstrap, phase, timeout):
    proc = subprocess.Popen([node, os.path.join(HERE, "kafkajs_client.js"), bootstrap, phase],
                            env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        rc = proc.wait(timeout=timeout * MULT)
    except subprocess.TimeoutExpired:
        rc = None
        print("FAIL: kafkajs client (%s) did not finish within %.0fs" % (phase, timeout * MULT))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if rc != 0:
        raise AssertionError("kafkajs client (%s) failed (exit %s)" % (phase, rc))


def check_idempotent_batches(topic_dir):
    """kafkajs idempotent: true really wrote as an idempotent producer: every
    stored batch of the topic has one producer id >= 0, epoch 0, and each
    partition's sequences run dense from 0."""
    pids = set()
    nbatches = 0
    for part in sorted(os.listdir(topic_dir)):
        seg = os.path.join(topic_dir, part, "%020d.log" % 0)
        if not os.path.isfile(seg):
            continue
        data = open(seg, "rb").read()
        pos, next_seq = 0, 0
        while pos + 61 <= len(data):
            length, = struct.unpack_from(">i", data, pos + 8)
            delta, = struct.unpack_from(">i", data, pos + 23)
            pid, epoch, seq = struct.unpack_from(">qhi", data, pos + 43)
            assert pid >= 0 and epoch == 0, "batch at %s:%d: producer %d epoch %d" % (seg, pos, pid, epoch)
            assert seq == next_seq, "batch at %s:%d: sequence %d, expected %d" % (seg, pos, seq, next_seq)
            pids.add(pid)
            next_seq = seq + delta + 1
            nbatches += 1
            pos += 12 + length
    assert nbatches > 0 and len(pids) == 1, "idempotent batches: %d batches, producer ids %s" % (nbatches, pids)


def main():
    node = shutil.which("node")
    mods = node_modules()
    if not node:
        print("SKIP: node is not installed (scripts/deps.sh installs nodejs)")
        return SKIP
    if not os.path.isfile(os.path.join(mods, "kafkajs", "package.json")):
        print("SKIP: kafkajs not found in %s (run scripts/deps.sh)" % mods)
        return SKIP
    env = dict(os.environ, NODE_PATH=mods)
    # A short initial rebalance delay keeps the group steps quick; the
    # split step still sees a real rebalance when the second member joins.
    with Broker(["--http-listen", "off", "--group-initial-rebalance-delay", "300ms"]) as b:
        b.start()
        run_client(node, env, b.bootstrap, "main", 200)
        check_idempotent_batches(os.path.join(b.data, "topics", "kjs-idem"))
        # What kafkajs was told is durable must survive a restart (kill -9:
        # no clean shutdown to lean on).
        b.kill9()
        b.start()
        run_client(node, env, b.bootstrap, "restarted", 70)
        status = b.stop()
        assert status == 0, "broker exited %s after SIGTERM" % status
    print("it_kafkajs: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())

// kafkajs against `eddy broker`: the client half of it_kafkajs.py (which starts
// the broker, finds kafkajs and runs this with node).
//   node kafkajs_client.js HOST:PORT            the main run
//   node kafkajs_client.js HOST:PORT restarted  after the broker restarted on
//                                               the same data: what must persist
// Every step asserts real behaviour and every wait has a deadline; any failure
// exits 1 with the step that failed. Scale: EDDY_TEST_SCALE, TEST_TIMEOUT_MULT.
'use strict';
const assert = require('assert/strict');
const { Kafka, logLevel, CompressionTypes, Partitioners, ConfigResourceTypes } = require('kafkajs');

const bootstrap = process.argv[2];
const phase = process.argv[3] || 'main';
const SCALE = parseFloat(process.env.EDDY_TEST_SCALE || '1') || 1;
const MULT = parseFloat(process.env.TEST_TIMEOUT_MULT || '1') || 1;
const N = Math.max(40, Math.round(400 * SCALE)); // messages per produce round
const PARTITIONS = 3;

let step = 'start';
const log = (...a) => console.log('[kafkajs]', ...a);
const sleep = ms => new Promise(r => setTimeout(r, ms));

async function waitFor(cond, seconds, what) {
  const deadline = Date.now() + seconds * 1000 * MULT;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() >= deadline) throw new Error(`timed out after ${seconds * MULT}s waiting for ${what}`);
    await sleep(25);
  }
}

const kafka = new Kafka({
  clientId: 'eddy-it-kafkajs',
  brokers: [bootstrap],
  logLevel: process.env.KAFKAJS_DEBUG ? logLevel.DEBUG : logLevel.WARN,
  connectionTimeout: 3000 * MULT,
  requestTimeout: 10000 * MULT,
  retry: { retries: 3, initialRetryTime: 100 },
});

// The messages of one produce round: keyed (so the DefaultPartitioner spreads
// them by murmur2(key)), with headers and explicit timestamps to check later.
function makeMessages(round, count, tsBase) {
  const msgs = [];
  for (let i = 0; i < count; i++) {
    const id = `${round}-${i}`;
    msgs.push({
      key: `key-${i % 23}`,
      value: `value ${id} ` + 'x'.repeat(i % 50),
      headers: { id, round, bin: Buffer.from([0, 1, 2, i & 0xff]) },
      timestamp: String(tsBase + i),
    });
  }
  return msgs;
}

// Produces msgs in batches of `batch`, each awaited (so per-partition order =
// send order) with the given acks/compression. Returns the expected records:
// id -> {partition, offset, key, value, ts}.
async function produce(producer, topic, msgs, opts, expected, nparts = PARTITIONS) {
  const batch = 25;
  for (let i = 0; i < msgs.length; i += batch) {
    const chunk = msgs.slice(i, i + batch);
    const res = await producer.send({ topic, messages: chunk, ...opts });
    assert.ok(res.length >= 1, 'send returned no RecordMetadata');
    for (const r of res) {
      assert.equal(r.topicName, topic);
      assert.equal(r.errorCode, 0, `produce error ${r.errorCode}`);
    }
    // kafkajs groups a send by partition (preserving order within it); the
    // response gives each partition's base offset.
    const byPart = new Map();
    for (const m of chunk) {
      const p = kafkaPartition(m.key, nparts);
      if (!byPart.has(p)) byPart.set(p, []);
      byPart.get(p).push(m);
    }
    for (const r of res) {
      const list = byPart.get(r.partition);
      assert.ok(list, `response names partition ${r.partition} that got no message`);
      let off = BigInt(r.baseOffset);
      for (const m of list) {
        expected.set(m.headers.id, { partition: r.partition, offset: off, key: m.key, value: m.value, ts: m.timestamp, bin: m.headers.bin });
        off++;
      }
      byPart.delete(r.partition);
    }
    assert.equal(byPart.size, 0, `no RecordMetadata for partitions ${[...byPart.keys()]}`);
  }
}

// Where kafkajs's DefaultPartitioner (Java-compatible murmur2(key) % partitions)
// puts a keyed message; the broker must store it there.
const partitioner = Partitioners.DefaultPartitioner();
const kafkaPartition = (key, n) => partitioner({
  topic: 'any', message: { key },
  partitionMetadata: [...Array(n).keys()].map(p => ({ partitionId: p, leader: 0 })),
});

// Checks one consumed message against what was produced; records it in seen.
function checkMessage(expected, seen, lastOffset, topic, partition, message) {
  const id = message.headers.id && message.headers.id.toString();
  assert.ok(id, `message at ${topic}/${partition}@${message.offset} has no id header`);
  const e = expected.get(id);
  assert.ok(e, `unexpected message ${id} at ${partition}@${message.offset}`);
  assert.ok(!seen.has(id), `message ${id} delivered twice`);
  seen.add(id);
  assert.equal(partition, e.partition, `${id}: partition`);
  assert.equal(BigInt(message.offset), e.offset, `${id}: offset`);
  assert.equal(message.key.toString(), e.key, `${id}: key`);
  assert.equal(message.value.toString(), e.value, `${id}: value`);
  assert.equal(message.timestamp, e.ts, `${id}: timestamp`);
  assert.deepEqual(Buffer.from(message.headers.bin), e.bin, `${id}: binary header`);
  const prev = lastOffset.get(partition);
  assert.ok(prev === undefined || BigInt(message.offset) > prev, `${id}: out of order in partition ${partition}`);
  lastOffset.set(partition, BigInt(message.offset));
}

// Runs a consumer of groupId on topic until `want` messages arrived (or the
// deadline). Commits the next offset of each partition explicitly, then
// disconnects (LeaveGroup). Returns {seen, committed}.
async function consumeAll(groupId, topic, expected, want, seconds) {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000, maxWaitTimeInMs: 200 });
  const seen = new Set(), lastOffset = new Map();
  let failure = null;
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic: t, partition, message }) => {
        try { checkMessage(expected, seen, lastOffset, t, partition, message); } catch (e) { failure = failure || e; }
      },
    });
    await waitFor(() => failure || seen.size >= want, seconds, `${want} messages in group ${groupId} (got ${seen.size})`);
    if (failure) throw failure;
    const offsets = [...lastOffset].map(([p, o]) => ({ topic, partition: p, offset: String(o + 1n) }));
    await consumer.commitOffsets(offsets);
    // Nothing beyond `want` may arrive: give the fetch loop one more round.
    await sleep(600 * MULT);
    if (failure) throw failure;
    assert.equal(seen.size, want, `group ${groupId} got more than the ${want} expected messages`);
    return { seen, lastOffset };
  } finally {
    await consumer.disconnect();
  }
}

// The topic's explicitly set configs, "name=value", sorted.
async function explicitConfigs(admin, topic) {
  const r = await admin.describeConfigs({ resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }] });
  return r.resources[0].configEntries.filter(x => !x.isDefault).map(x => `${x.configName}=${x.configValue}`).sort();
}

// Every partition's committed offset in group equals the partition's end.
async function checkCommittedAtEnd(admin, group, topic) {
  const ends = new Map((await admin.fetchTopicOffsets(topic)).map(o => [o.partition, o.high]));
  const fo = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  assert.equal(fo[0].partitions.length, PARTITIONS);
  for (const p of fo[0].partitions)
    assert.equal(p.offset, ends.get(p.partition), `${group}: committed offset of ${topic}/${p.partition}`);
}

// After a broker restart on the same data: the log, g2's commits and g1's
// deletion are all durable, and a new group reads every message once.
async function restarted() {
  const topic = 'kjs-orders', splitTopic = 'kjs-split';
  const admin = kafka.admin();
  await admin.connect();
  try {
    step = 'restarted: topics';
    const names = await admin.listTopics();
    assert.ok(names.includes(topic) && names.includes(splitTopic), `listTopics: ${names}`);
    const ends = await admin.fetchTopicOffsets(topic);
    const total = ends.reduce((a, o) => a + BigInt(o.high), 0n);
    assert.equal(total, BigInt(5 * N), 'messages in the log after restart');
    const grow = await admin.fetchTopicOffsets('kjs-grow');
    assert.deepEqual(grow.map(o => [o.partition, o.high]).sort(), [[0, '1'], [1, '0'], [2, '1']],
      'the grown topic keeps its partitions and data');
    assert.deepEqual(await explicitConfigs(admin, 'kjs-grow'), ['max.message.bytes=2048', 'retention.ms=86400000'],
      'altered configs persist');
    assert.deepEqual((await admin.fetchTopicOffsets('kjs-trim')).map(o => [o.low, o.high]), [['4', '10']],
      'deleted records stay deleted');
    step = 'restarted: commits';
    await checkCommittedAtEnd(admin, 'kjs-g2', splitTopic);
    step = 'restarted: deleted group';
    assert.equal((await admin.describeGroups(['kjs-g1'])).groups[0].state, 'Dead');
    for (const p of (await admin.fetchOffsets({ groupId: 'kjs-g1', topics: [topic] }))[0].partitions)
      assert.equal(p.offset, '-1', 'the deleted group stays deleted');
    step = 'restarted: read all';
    const consumer = kafka.consumer({ groupId: 'kjs-g4', maxWaitTimeInMs: 200 });
    const ids = new Set();
    let dup = null;
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({ eachMessage: async ({ message }) => {
        const id = message.headers.id.toString();
        if (ids.has(id)) dup = dup || id;
        ids.add(id);
      } });
      await waitFor(() => dup || ids.size >= 5 * N, 60, `${5 * N} messages after restart (got ${ids.size})`);
      assert.equal(dup, null, `message ${dup} delivered twice`);
    } finally {
      await consumer.disconnect();
    }
    log(`after restart: ${ids.size} messages, g2's commits and g1's deletion intact`);
  } finally {
    await admin.disconnect();
  }
}

async function main() {
  const topic = 'kjs-orders', splitTopic = 'kjs-split';
  const admin = kafka.admin();
  const producer = kafka.producer({ allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner });
  await admin.connect();
  try {
    // ---- admin: create, list, metadata -------------------------------------
    step = 'createTopics';
    assert.equal(await admin.createTopics({
      topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 },
               { topic: splitTopic, numPartitions: PARTITIONS, replicationFactor: 1 }],
      waitForLeaders: true,
    }), true, 'createTopics of new topics returns true');
    assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }] }), false,
      'createTopics of an existing topic returns false (TOPIC_ALREADY_EXISTS)');
    step = 'listTopics';
    const names = await admin.listTopics();
    assert.ok(names.includes(topic) && names.includes(splitTopic), `listTopics: ${names}`);
    step = 'fetchTopicMetadata';
    const md = await admin.fetchTopicMetadata({ topics: [topic] });
    assert.equal(md.topics.length, 1);
    assert.equal(md.topics[0].name, topic);
    const parts = md.topics[0].partitions.map(p => p.partitionId).sort();
    assert.deepEqual(parts, [0, 1, 2]);
    for (const p of md.topics[0].partitions) {
      assert.equal(p.partitionErrorCode, 0);
      assert.equal(p.leader, 0, 'leader is node 0');
      assert.deepEqual(p.replicas, [0]);
      assert.deepEqual(p.isr, [0]);
    }

    // ---- produce: acks -1/1 x none/gzip --------------------------------------
    step = 'produce';
    await producer.connect();
    const expected = new Map();
    const tsBase = Date.now() - 3600 * 1000; // an hour ago: not the broker's clock
    const rounds = [
      ['all-none', { acks: -1, compression: CompressionTypes.None }],
      ['all-gzip', { acks: -1, compression: CompressionTypes.GZIP }],
      ['one-none', { acks: 1, compression: CompressionTypes.None }],
      ['one-gzip', { acks: 1, compression: CompressionTypes.GZIP }],
    ];
    for (const [i, [name, opts]] of rounds.entries())
      await produce(producer, topic, makeMessages(name, N, tsBase + i * N), opts, expected);
    assert.equal(expected.size, 4 * N);
    const perPart = [0n, 0n, 0n];
    for (const e of expected.values()) perPart[e.partition]++;
    assert.ok(perPart.every(c => c > 0n), `keys spread over every partition: ${perPart}`);
    log(`produced ${expected.size} messages, per partition ${perPart}`);

    step = 'fetchTopicOffsets';
    const tOff = await admin.fetchTopicOffsets(topic);
    for (const o of tOff) {
      assert.equal(BigInt(o.low), 0n, `low watermark of ${o.partition}`);
      assert.equal(BigInt(o.high), perPart[o.partition], `high watermark of ${o.partition}`);
    }

    // ListOffsets by time answers with the first *record* at or after the
    // time, not its batch (uncompressed round 'one-none': ts tsBase+2N+i).
    step = 'fetchTopicOffsetsByTimestamp';
    const at = tsBase + 2 * N + 7;
    const want = new Map();
    for (const e of expected.values())
      if (Number(e.ts) >= at && (!want.has(e.partition) || e.offset < want.get(e.partition)))
        want.set(e.partition, e.offset);
    const byTime = await admin.fetchTopicOffsetsByTimestamp(topic, at);
    for (const o of byTime)
      assert.equal(BigInt(o.offset), want.get(o.partition), `offset for time ${at} in partition ${o.partition}`);

    // ---- consume from the beginning in group g1, commit ---------------------
    step = 'consume g1';
    const g1 = 'kjs-g1';
    const first = await consumeAll(g1, topic, expected, expected.size, 60);
    log(`group ${g1} consumed ${first.seen.size} messages exactly once, in order`);

    step = 'fetchOffsets g1';
    const fo = await admin.fetchOffsets({ groupId: g1, topics: [topic] });
    assert.equal(fo.length, 1);
    assert.equal(fo[0].topic, topic);
    for (const p of fo[0].partitions)
      assert.equal(BigInt(p.offset), perPart[p.partition], `committed offset of partition ${p.partition}`);

    step = 'describeGroups (empty)';
    let dg = await admin.describeGroups([g1]);
    assert.equal(dg.groups.length, 1);
    assert.equal(dg.groups[0].groupId, g1);
    assert.equal(dg.groups[0].state, 'Empty');
    assert.equal(dg.groups[0].members.length, 0);

    // ---- produce more, restart g1: only the new messages ----------------------
    step = 'resume g1';
    const more = new Map();
    await produce(producer, topic, makeMessages('resume', N, tsBase + 4 * N), { acks: -1 }, more);
    const second = await consumeAll(g1, topic, more, more.size, 60);
    assert.equal(second.seen.size, N);
    log(`group ${g1} resumed after its committed offsets: ${second.seen.size} new messages only`);

    // ---- two consumers in one group split the partitions ---------------------
    step = 'split';
    const g2 = 'kjs-g2';
    const members = ['A', 'B'].map(name => ({
      name,
      consumer: kafka.consumer({ groupId: g2, sessionTimeout: 10000, heartbeatInterval: 500, maxWaitTimeInMs: 200 }),
      assigned: [],
      seen: [],
    }));
    const splitExpected = new Map();
    let splitFailure = null;
    const seenAll = new Set(), lastOff = new Map();
    try {
      for (const m of members) {
        m.consumer.on(m.consumer.events.GROUP_JOIN, e => {
          m.assigned = (e.payload.memberAssignment[splitTopic] || []).slice().sort();
        });
        await m.consumer.connect();
        await m.consumer.subscribe({ topics: [splitTopic], fromBeginning: true });
        await m.consumer.run({
          eachMessage: async ({ topic: t, partition, message }) => {
            try {
              assert.ok(m.assigned.includes(partition), `${m.name} got partition ${partition} it is not assigned`);
              checkMessage(splitExpected, seenAll, lastOff, t, partition, message);
              m.seen.push(partition);
            } catch (e) { splitFailure = splitFailure || e; }
          },
        });
        if (m.name === 'A')
          await waitFor(() => m.assigned.length === PARTITIONS, 30, 'A alone to own every partition');
      }
      await waitFor(() => {
        const [a, b] = members.map(m => m.assigned);
        return a.length > 0 && b.length > 0 && a.length + b.length === PARTITIONS &&
          [...a, ...b].sort().join() === '0,1,2';
      }, 40, 'A and B to split the partitions');
      log(`split: A=${members[0].assigned} B=${members[1].assigned}`);

      step = 'describeGroups (stable)';
      dg = await admin.describeGroups([g2]);
      const g = dg.groups[0];
      assert.equal(g.state, 'Stable');
      assert.equal(g.protocolType, 'consumer');
      assert.equal(g.protocol, 'RoundRobinAssigner');
      assert.equal(g.members.length, 2);
      assert.ok(g.members.every(x => x.clientId === 'eddy-it-kafkajs' && x.memberId), 'member ids and client ids');
      step = 'deleteGroups (live)';
      await assert.rejects(admin.deleteGroups([g2]), e => {
        assert.equal(e.name, 'KafkaJSDeleteGroupsError');
        assert.deepEqual(e.groups.map(x => [x.groupId, x.error && x.error.type]), [[g2, 'NON_EMPTY_GROUP']]);
        return true;
      });
      const lg = await admin.listGroups();
      const ids = lg.groups.map(x => x.groupId);
      assert.ok(ids.includes(g1) && ids.includes(g2), `listGroups: ${ids}`);

      step = 'split consume';
      await produce(producer, splitTopic, makeMessages('split', N, tsBase), { acks: 1 }, splitExpected);
      await waitFor(() => splitFailure || seenAll.size >= splitExpected.size, 60,
        `${splitExpected.size} messages across A and B (got ${seenAll.size})`);
      if (splitFailure) throw splitFailure;
      assert.ok(members.every(m => m.seen.length > 0), 'both members consumed');
      log(`split: A consumed ${members[0].seen.length}, B ${members[1].seen.length}, each exactly once`);
    } finally {
      for (const m of members) await m.consumer.disconnect();
    }

    // ---- deleteGroups: an empty group goes, with its offsets --------------------
    // g2 committed with kafkajs's default autoCommit: its offsets are the ends.
    step = 'fetchOffsets g2';
    await checkCommittedAtEnd(admin, g2, splitTopic);
    step = 'deleteGroups';
    assert.deepEqual(await admin.deleteGroups([g1]), [{ groupId: g1, errorCode: 0 }]);
    dg = await admin.describeGroups([g1]);
    assert.equal(dg.groups[0].state, 'Dead');
    for (const p of (await admin.fetchOffsets({ groupId: g1, topics: [topic] }))[0].partitions)
      assert.equal(p.offset, '-1', `deleted group's offset of partition ${p.partition}`);
    await assert.rejects(admin.deleteGroups([g1, 'kjs-never-existed']), e => {
      assert.deepEqual(e.groups.map(x => [x.groupId, x.error && x.error.type]),
        [[g1, 'GROUP_ID_NOT_FOUND'], ['kjs-never-existed', 'GROUP_ID_NOT_FOUND']]);
      return true;
    });
    assert.ok(!(await admin.listGroups()).groups.some(x => x.groupId === g1), 'deleted group is not listed');

    // ---- produce to an unknown topic without auto-creation --------------------
    step = 'unknown topic';
    const strict = kafka.producer({ allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner, retry: { retries: 1, initialRetryTime: 50 } });
    await strict.connect();
    let err = null;
    try {
      await strict.send({ topic: 'kjs-no-such-topic', messages: [{ value: 'x' }] });
    } catch (e) { err = e; } finally { await strict.disconnect(); }
    assert.ok(err, 'send to an unknown topic must fail');
    const types = [];
    for (let e = err; e; e = e.originalError || e.cause) { types.push(e.type || e.name); if (types.length > 5) break; }
    assert.ok(types.includes('UNKNOWN_TOPIC_OR_PARTITION'), `error chain ${types} names UNKNOWN_TOPIC_OR_PARTITION`);
    assert.ok(!(await admin.listTopics()).includes('kjs-no-such-topic'), 'the unknown topic was not created');
    log(`unknown topic: ${types.join(' <- ')}`);

    // ---- createPartitions: grow a topic, never shrink ---------------------------
    step = 'createPartitions';
    const growTopic = 'kjs-grow';
    assert.equal(await admin.createTopics({ topics: [{ topic: growTopic, numPartitions: 1 }] }), true);
    await admin.createPartitions({ validateOnly: true, topicPartitions: [{ topic: growTopic, count: 3 }] });
    assert.equal((await admin.fetchTopicMetadata({ topics: [growTopic] })).topics[0].partitions.length, 1,
      'validateOnly changes nothing');
    await admin.createPartitions({ topicPartitions: [{ topic: growTopic, count: 3 }] });
    const grown = (await admin.fetchTopicMetadata({ topics: [growTopic] })).topics[0].partitions;
    assert.deepEqual(grown.map(x => [x.partitionId, x.leader]).sort(), [[0, 0], [1, 0], [2, 0]]);
    await assert.rejects(admin.createPartitions({ topicPartitions: [{ topic: growTopic, count: 2 }] }),
      e => e.type === 'INVALID_PARTITIONS');
    await assert.rejects(admin.createPartitions({ topicPartitions: [{ topic: 'kjs-no-such-topic', count: 2 }] }),
      e => e.type === 'UNKNOWN_TOPIC_OR_PARTITION');
    // a producer that looks the topic up now sees and can write the new partition
    const late = kafka.producer({ allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner });
    await late.connect();
    try {
      const r = await late.send({ topic: growTopic, acks: -1, messages: [{ partition: 2, value: 'new partition' }] });
      assert.deepEqual(r.map(x => [x.partition, x.errorCode, x.baseOffset]), [[2, 0, '0']]);
    } finally { await late.disconnect(); }
    log('createPartitions: 1 -> 3 partitions, the new one takes writes; shrinking is refused');

    // ---- alterConfigs: replaces the topic's set, applies at once -----------------
    step = 'alterConfigs';
    const alter = (entries, validateOnly = false) => admin.alterConfigs({
      validateOnly, resources: [{ type: ConfigResourceTypes.TOPIC, name: growTopic, configEntries: entries }] });
    await alter([{ name: 'max.message.bytes', value: '2048' }, { name: 'retention.ms', value: '86400000' }]);
    assert.deepEqual(await explicitConfigs(admin, growTopic), ['max.message.bytes=2048', 'retention.ms=86400000']);
    await alter([{ name: 'retention.ms', value: '5' }], true);
    assert.deepEqual(await explicitConfigs(admin, growTopic), ['max.message.bytes=2048', 'retention.ms=86400000'],
      'validateOnly changes nothing');
    await assert.rejects(alter([{ name: 'retention.ms', value: 'soon' }]), e => e.type === 'INVALID_CONFIG');
    await assert.rejects(alter([{ name: 'no.such.config', value: '1' }]), e => e.type === 'INVALID_CONFIG');
    // the new max.message.bytes is enforced on the next produce
    const strict2 = kafka.producer({ allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner,
      retry: { retries: 0 } });
    await strict2.connect();
    try {
      await assert.rejects(strict2.send({ topic: growTopic, messages: [{ partition: 0, value: 'x'.repeat(4096) }] }),
        e => (e.type || (e.originalError && e.originalError.type)) === 'MESSAGE_TOO_LARGE');
      await strict2.send({ topic: growTopic, messages: [{ partition: 0, value: 'x'.repeat(100) }] });
    } finally { await strict2.disconnect(); }
    log('alterConfigs: set replaced, validateOnly/invalid refused, max.message.bytes enforced at once');

    // ---- deleteTopicRecords: the log start moves; readers start there ------------
    step = 'deleteTopicRecords';
    const trim = 'kjs-trim';
    assert.equal(await admin.createTopics({ topics: [{ topic: trim, numPartitions: 1 }] }), true);
    const trimmed = new Map();
    await produce(producer, trim, makeMessages('trim', 10, tsBase), { acks: -1 }, trimmed, 1);
    await admin.fetchTopicMetadata({ topics: [trim] }); // kafkajs looks the leader up in its cache
    await admin.deleteTopicRecords({ topic: trim, partitions: [{ partition: 0, offset: '4' }] });
    assert.deepEqual((await admin.fetchTopicOffsets(trim)).map(o => [o.low, o.high]), [['4', '10']]);
    const kept = new Map([...trimmed].filter(([, e]) => e.offset >= 4n));
    const t1 = await consumeAll('kjs-g5', trim, kept, kept.size, 30);
    assert.equal(t1.lastOffset.get(0), 9n);
    log('deleteTopicRecords: low watermark 4, a new group reads offsets 4..9 only');

    // ---- idempotent producer: InitProducerId, sequence numbers per partition ----
    // (it_kafkajs.py then checks the stored batches carry the producer id and
    // dense sequences from 0)
    step = 'idempotent producer';
    const idemTopic = 'kjs-idem';
    assert.equal(await admin.createTopics({ topics: [{ topic: idemTopic, numPartitions: PARTITIONS }] }), true);
    const idem = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner });
    const idemExpected = new Map();
    await idem.connect();
    try {
      await produce(idem, idemTopic, makeMessages('idem', N, tsBase), { acks: -1 }, idemExpected);
    } finally { await idem.disconnect(); }
    await consumeAll('kjs-g6', idemTopic, idemExpected, N, 30);
    log(`idempotent producer: ${N} messages, each once, in order`);
  } finally {
    await producer.disconnect();
    await admin.disconnect();
  }
}

const overall = setTimeout(() => {
  console.error(`[kafkajs] FAIL: overall deadline passed during step "${step}"`);
  process.exit(1);
}, (phase === 'restarted' ? 60000 : 180000) * MULT);
(phase === 'restarted' ? restarted() : main()).then(() => {
  clearTimeout(overall);
  log('all steps passed');
  process.exit(0);
}, e => {
  console.error(`[kafkajs] FAIL in step "${step}":`, e && e.stack || e);
  process.exit(1);
});

// sluice against a three-node Kafka cluster (replication 3, min.insync.replicas 2) that loses a
// leader under load: the node leading a partition sluice writes to is SIGKILLed, then all three
// are restarted one after another. Nothing acknowledged is lost; duplicates are counted; the order
// per key within a partition holds (first occurrences in publish order); the time until acks
// resume is reported. The cluster is the stack's optional one (kafka-1..3), started here.
import assert from 'node:assert/strict';
import { after, before, type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runningPid } from '../../deploy/local/daemon.ts';
import { clusterBrokers, clusterNodeNames } from '../../deploy/local/servers/kafka-cluster.ts';
import type { KafkaClientKind } from '../../src/sinks/kafka/client/kafka-client.ts';
import { ackStall } from '../support/ack-stall.ts';
import { type KafkaRecordSeen, publishNumbered, readTopic, waitFor } from '../support/e2e-helpers.ts';
import { testedKafkaClients } from '../support/kafka-clients.ts';
import { type SluiceProcess, sluiceFor } from '../support/sluice-process.ts';
import { config, kafka, mqttClient, printLogsOnFailure, stack, unique } from '../support/stack.ts';

const brokers = clusterBrokers(config);
let started: string[] = [];

before(
  async () => {
    const t0 = Date.now();
    started = await stack.up([...clusterNodeNames]);
    process.stderr.write(`kafka cluster up in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  },
  { timeout: 300_000 },
);

after(
  async () => {
    // stopped only if this file started it (a developer's running cluster stays)
    if (started.length > 0) await stack.down(started);
  },
  { timeout: 120_000 },
);

async function clusterTopic(t: TestContext, partitions: number): Promise<string> {
  const topic = unique('cluster');
  const admin = kafka(undefined, brokers).admin();
  await admin.connect();
  // kafkajs' own waitForLeaders is off: it gives up on the UNKNOWN_TOPIC_OR_PARTITION a node of a
  // cluster just started may answer for a moment after the create (seen on CI, before sluice had
  // started). Instead every node's metadata is asked until it has the topic, with a leader and
  // three replicas in sync.
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: 3 }], waitForLeaders: false });
  for (const broker of brokers) {
    const one = kafka(undefined, [broker]).admin();
    await one.connect();
    try {
      let last = '';
      await waitFor(
        `topic ${topic} on ${broker}`,
        async () => {
          try {
            const meta = await one.fetchTopicMetadata({ topics: [topic] });
            const parts = meta.topics[0]?.partitions ?? [];
            last = `${parts.length} partitions, leaders ${parts.map((p) => p.leader).join(',')}, in sync ${parts.map((p) => p.isr.length).join(',')}`;
            return parts.length === partitions && parts.every((p) => p.leader >= 0 && p.isr.length === 3);
          } catch (err) {
            last = (err as Error).message;
            return false;
          }
        },
        30_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}: last answer ${last}`);
      });
    } finally {
      await one.disconnect();
    }
  }
  t.after(async () => {
    await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    await admin.disconnect();
  });
  return topic;
}

/**
 * Records the cluster holds for the topic (the sum of its partitions' high watermarks). Right
 * after a rolling restart a partition may still be electing its leader (LEADER_NOT_AVAILABLE,
 * seen on CI): a retriable answer is asked again, for up to 30 s.
 */
async function held(topic: string): Promise<number> {
  const admin = kafka(undefined, brokers).admin();
  await admin.connect();
  try {
    let total = 0;
    let last = '';
    await waitFor(
      `the high watermarks of ${topic}`,
      async () => {
        try {
          total = (await admin.fetchTopicOffsets(topic)).reduce((a, o) => a + Number(o.high), 0);
          return true;
        } catch (err) {
          if ((err as { retriable?: boolean }).retriable !== true) throw err;
          last = (err as Error).message;
          await sleep(400);
          return false;
        }
      },
      30_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: last answer ${last}`);
    });
    return total;
  } finally {
    await admin.disconnect();
  }
}

/** Every record the cluster holds for the topic, read back (the reader waits for all of them). */
async function readAll(t: TestContext, topic: string): Promise<{ records: KafkaRecordSeen[]; held: number }> {
  const n = await held(topic);
  return { records: await readTopic(t, topic, (r) => r.length >= n, 120_000, 20_000, brokers), held: n };
}

async function leaderOf(topic: string, partition: number): Promise<number> {
  const admin = kafka(undefined, brokers).admin();
  await admin.connect();
  try {
    const meta = await admin.fetchTopicMetadata({ topics: [topic] });
    return meta.topics[0]?.partitions.find((p) => p.partitionId === partition)?.leader ?? -1;
  } finally {
    await admin.disconnect();
  }
}

function sluiceOnCluster(t: TestContext, prefix: string, topic: string, client: KafkaClientKind): SluiceProcess {
  return sluiceFor(t, {
    rules: {
      subscriptions: [{ filter: `${prefix}/#`, qos: 1 }],
      routes: [{ name: 'telemetry', match: `${prefix}/{deviceId}/telemetry`, kafka: { topic, key: '{deviceId}' } }],
    },
    config: { kafka: { client, brokers, createTopics: { enabled: true, partitions: 1, replicationFactor: 3 } } },
  });
}

/** Lost, duplicated, and keys whose first occurrences are out of publish order, over seq 0..n-1. */
function audit(records: readonly KafkaRecordSeen[], n: number) {
  const counts = new Map<number, number>();
  const lastByKey = new Map<string, number>();
  const partitionsByKey = new Map<string, Set<number>>();
  let outOfOrder = 0;
  for (const r of records) {
    const seq = (JSON.parse(r.value.toString()) as { seq: number }).seq;
    const seen = counts.get(seq) ?? 0;
    counts.set(seq, seen + 1);
    const key = r.key ?? '';
    let parts = partitionsByKey.get(key);
    if (!parts) partitionsByKey.set(key, (parts = new Set()));
    parts.add(r.partition);
    if (seen > 0) continue; // a duplicate of one already seen: counted, not an order break
    if (seq < (lastByKey.get(key) ?? -1)) outOfOrder++;
    lastByKey.set(key, seq);
  }
  let lost = 0;
  let duplicates = 0;
  const missing: number[] = [];
  for (let s = 0; s < n; s++) {
    const c = counts.get(s) ?? 0;
    if (c === 0) {
      lost++;
      if (missing.length < 50) missing.push(s);
    } else duplicates += c - 1;
  }
  const keysOnSeveralPartitions = [...partitionsByKey.values()].filter((p) => p.size > 1).length;
  return { lost, duplicates, outOfOrder, keysOnSeveralPartitions, missing };
}

const rate = 1_500;
const total = 30_000; // 20 s of load

for (const client of testedKafkaClients) {
  test(`${client}: the leader of a partition sluice writes to is SIGKILLed under load: 0 lost, order per key kept, duplicates counted`, {
    timeout: 240_000,
  }, async (t) => {
    printLogsOnFailure(t);
    const prefix = unique('leader');
    const topic = await clusterTopic(t, 3);
    const sluice = sluiceOnCluster(t, prefix, topic, client);
    await sluice.start();
    const pub = await mqttClient(t);
    const stall = ackStall(sluice, 100);
    const load = publishNumbered(pub, total, (s) => `${prefix}/d-${s % 20}/telemetry`, { ratePerSecond: rate });
    await sleep(6_000);
    const leader = await leaderOf(topic, 0);
    assert.ok(leader >= 1 && leader <= 3, `a leader for partition 0 (${leader})`);
    const node = stack.server(`kafka-${leader}`);
    const pid = runningPid(node.files) as number;
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    await waitFor('the killed node to be gone', () => runningPid(node.files) === undefined, 10_000);
    const before = (await sluice.metrics()).get('sluice_messages_acked_total') ?? 0;
    await waitFor('acks to resume with a node down', async () => ((await sluice.metrics()).get('sluice_messages_acked_total') ?? 0) > before + 1_000, 120_000);
    const resumedAfterMs = Date.now() - killedAt;
    await load;
    await waitFor('every message acked, two nodes up', async () => ((await sluice.metrics()).get('sluice_messages_acked_total') ?? 0) >= total, 120_000);
    const longestStallMs = await stall.stop();
    const restartAt = Date.now();
    await stack.up([`kafka-${leader}`]);
    const m = await sluice.metrics();
    const { records, held: inCluster } = await readAll(t, topic);
    const a = audit(records, total);
    t.diagnostic(
      `${client}: killed node ${leader} (leader of partition 0); acks resumed ${resumedAfterMs} ms after the kill; longest ack stall ${longestStallMs} ms; ` +
        `${records.length} records read of ${inCluster} held, for ${total} published: lost ${a.lost}, duplicates ${a.duplicates}, first occurrences out of order per key ${a.outOfOrder}; ` +
        `dead letters ${
          [...m]
            .filter(([k]) => k.startsWith('sluice_dead_letters_total'))
            .map(([k, v]) => `${k}=${v}`)
            .join(' ') || 0
        }; node back in ${Date.now() - restartAt} ms` +
        (a.lost > 0 ? `; missing ${a.missing.join(',')}` : ''),
    );
    assert.equal(records.length, inCluster, 'the reader read every record the cluster holds');
    assert.equal(a.lost, 0, 'nothing acknowledged is lost');
    assert.equal(a.outOfOrder, 0, 'the order per key holds within its partition');
    assert.equal(a.keysOnSeveralPartitions, 0, 'each key stays on one partition');
    assert.equal(m.get('sluice_dead_letters_total{reason="destination-unavailable"}') ?? 0, 0, 'the failover is waited for, never dead-lettered');
  });
}

test('a rolling restart of all three brokers under load: 0 lost, order per key kept', { timeout: 420_000 }, async (t) => {
  printLogsOnFailure(t);
  const client = testedKafkaClients[0] as KafkaClientKind;
  const prefix = unique('rolling');
  const topic = await clusterTopic(t, 3);
  const sluice = sluiceOnCluster(t, prefix, topic, client);
  await sluice.start();
  const pub = await mqttClient(t);
  const n = 60_000; // 40 s at 1,500/s: long enough for three restarts
  const stall = ackStall(sluice, 100);
  const load = publishNumbered(pub, n, (s) => `${prefix}/d-${s % 20}/telemetry`, { ratePerSecond: rate });
  const took: string[] = [];
  await sleep(3_000);
  for (const name of clusterNodeNames) {
    const t0 = Date.now();
    await stack.down([name]); // SIGTERM: a controlled shutdown moves its leaders first
    await stack.up([name]);
    took.push(`${name} ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  await load;
  await waitFor('every message acked', async () => ((await sluice.metrics()).get('sluice_messages_acked_total') ?? 0) >= n, 180_000);
  const longestStallMs = await stall.stop();
  const { records, held: inCluster } = await readAll(t, topic);
  const a = audit(records, n);
  t.diagnostic(
    `${client}: restarted ${took.join(', ')}; longest ack stall ${longestStallMs} ms; ${records.length} records read of ${inCluster} held, for ${n}: lost ${a.lost}, duplicates ${a.duplicates}, out of order ${a.outOfOrder}` +
      (a.lost > 0 ? `; missing ${a.missing.join(',')}` : ''),
  );
  assert.equal(records.length, inCluster, 'the reader read every record the cluster holds');
  assert.equal(a.lost, 0);
  assert.equal(a.outOfOrder, 0);
  assert.equal(a.keysOnSeveralPartitions, 0);
});

// The Kafka sink against the local Kafka: the conformance suite (conformance.ts), once per client
// adapter (test/support/kafka-clients.ts), and what a partly failed produce writes.
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { runningPid } from '../../deploy/local/daemon.ts';
import type { KafkaClientKind } from '../../src/sinks/kafka/client/kafka-client.ts';
import type { KafkaRecord } from '../../src/sinks/kafka/kafka-record.ts';
import { readTopic } from '../support/e2e-helpers.ts';
import { rdkafkaMissing, testedKafkaClients, testKafkaSink } from '../support/kafka-clients.ts';
import { highWater, kafka, kafkaTopic, printLogsOnFailure, stack } from '../support/stack.ts';
import { conformance, freeze } from './conformance.ts';

let context: { t: TestContext; topic: string } | undefined;

export async function readValues(t: TestContext, topic: string, expect: number): Promise<string[]> {
  // it returns as soon as `expect` records are in; the idle limit only ends a read that falls
  // short. Twice in CI a reader right after the outage test thawed the broker joined its group and
  // fetched nothing (for 10 s, then for 40 s with a 20 s limit) while the records were there:
  // readTopic now replaces a reader that falls idle short of the topic's watermarks
  const records = await readTopic(t, topic, (r) => r.length >= expect, 45_000, 10_000);
  return records.map((r) => r.value.toString());
}

for (const client of testedKafkaClients) conformanceFor(client);
for (const client of testedKafkaClients) partlyFailedFor(client);
if (rdkafkaMissing) test('kafka (rdkafka) conformance', { skip: rdkafkaMissing }, () => {});

function conformanceFor(client: KafkaClientKind): void {
  conformance<KafkaRecord>({
    name: `kafka (${client})`,
    async create(t) {
      context = { t, topic: await kafkaTopic(t, 1) };
      return await testKafkaSink(t, client);
    },
    good: (n, from = 0) =>
      Array.from({ length: n }, (_, i) => ({
        topic: context?.topic ?? 'unused',
        key: `d-${from + i}`,
        value: Buffer.from(JSON.stringify({ n: from + i })),
        headers: { 'mqtt-qos': '1' },
        timestamp: Date.now(),
      })),
    async readBack(items) {
      const { t, topic } = context as NonNullable<typeof context>;
      const wanted = new Set(items.map((r) => r.value.toString()));
      const seen = await readValues(t, topic, wanted.size);
      return new Set(seen.filter((v) => wanted.has(v))).size;
    },
    bad: {
      // over the broker's message.max.bytes (1 MiB by default)
      item: () => ({ topic: context?.topic ?? 'unused', key: 'big', value: Buffer.alloc(1_500_000, 0x61), headers: {}, timestamp: Date.now() }),
      reason: 'rejected-by-kafka',
    },
    unreachable: { sink: async (t) => testKafkaSink(t, client, { brokers: ['127.0.0.1:1'] }) },
    fatal: { none: 'Kafka has no fatal failure: a broker that fails is retried until durable; a record it refuses is rejected' },
    outage: freeze(() => runningPid(stack.server('kafka').files)),
  });
}

function partlyFailedFor(client: KafkaClientKind): void {
  // A produce request carries every topic and partition of a write: when Kafka refuses one
  // partition's records, the others are written all the same. Sent again on a new session,
  // they were written twice (a write of 30 records to a healthy topic left 60 in it)
  test(`${client}: a record refused on one topic writes no record twice, on its topic or any other`, { timeout: 60_000 }, async (t) => {
    printLogsOnFailure(t);
    const healthy = await kafkaTopic(t, 3);
    const strict = await kafkaTopic(t, 3);
    const admin = kafka().admin();
    await admin.connect();
    t.after(() => admin.disconnect());
    // records over 200 bytes are too large for this topic alone (MESSAGE_TOO_LARGE from the broker)
    await admin.alterConfigs({ validateOnly: false, resources: [{ type: 2, name: strict, configEntries: [{ name: 'max.message.bytes', value: '200' }] }] });
    const sink = await testKafkaSink(t, client);
    const writes = 3;
    for (let w = 0; w < writes; w++) {
      const batch: KafkaRecord[] = [
        ...Array.from({ length: 30 }, (_, i) => ({ topic: healthy, key: `d-${i}`, value: Buffer.from(`${w}-${i}`), headers: {}, timestamp: Date.now() })),
        // two too large among eight that fit, on every partition of the strict topic
        ...Array.from({ length: 10 }, (_, i) => ({
          topic: strict,
          key: `d-${i}`,
          value: Buffer.from(`${w}-${i}`.padEnd(i < 2 ? 400 : 10, '.')),
          headers: {},
          timestamp: Date.now(),
        })),
      ];
      const { rejected } = await sink.write(batch);
      assert.deepEqual(
        rejected.map((r) => [r.index, r.reason]),
        [
          [30, 'rejected-by-kafka'],
          [31, 'rejected-by-kafka'],
        ],
      );
    }
    assert.equal(await highWater(healthy), 30 * writes, 'the healthy topic holds each record once');
    assert.equal(await highWater(strict), 8 * writes, 'the strict topic holds each record that fits once');
  });
}

// The dead-letter sink against the local Kafka: the conformance suite (conformance.ts), and a
// dead letter too large for Kafka written shrunk, keeping what identifies it.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { type TestContext, test } from 'node:test';
import { runningPid } from '../../deploy/local/daemon.ts';
import { DeadLetterSink } from '../../src/sinks/dead-letter/dead-letter-sink.ts';
import { kafkaConfig } from '../../src/sinks/kafka/config.ts';
import type { KafkaSink } from '../../src/sinks/kafka/kafka-sink.ts';
import { type DeadLetterItem, SinkError } from '../../src/sinks/sink.ts';
import { readTopic } from '../support/e2e-helpers.ts';
import { testKafkaSink } from '../support/kafka-clients.ts';
import { endpoints, kafkaTopic, printLogsOnFailure, stack } from '../support/stack.ts';
import { conformance, freeze } from './conformance.ts';

let context: { t: TestContext; topic: string } | undefined;

/** On the default client: the conformance of both adapters is kafka-sink.test.ts's. */
async function sinkFor(t: TestContext, brokers: string[], topic: string): Promise<DeadLetterSink> {
  const sink = new DeadLetterSink(await testKafkaSink(t, kafkaConfig.parse({}).client, { name: 'dead-letter', brokers }), topic);
  t.after(() => sink.close());
  return sink;
}

const letter = (n: number, payload: Buffer = Buffer.from(`bad-${n}`)): DeadLetterItem => ({
  message: {
    topic: `acme/s/z/t/d-${n}/telemetry`,
    payload,
    qos: 1,
    retain: false,
    properties: { userProperties: { firmware: '1.2' } },
    receivedAt: Date.now(),
  },
  refusals: [{ reason: 'invalid-json', stage: 'decode', route: 'telemetry', error: 'Unexpected token' }],
});

conformance<DeadLetterItem>({
  name: 'dead-letter',
  async create(t) {
    context = { t, topic: await kafkaTopic(t, 1) };
    const sink = await sinkFor(t, [endpoints.kafka], context.topic);
    await sink.start();
    return sink;
  },
  good: (n, from = 0) => Array.from({ length: n }, (_, i) => letter(from + i)),
  async readBack(items) {
    const { t, topic } = context as NonNullable<typeof context>;
    const wanted = new Set(items.map((x) => x.message.topic));
    const records = await readTopic(t, topic, (r) => r.length >= wanted.size, 30_000, 5_000);
    return new Set(records.filter((r) => r.headers['sluice-reason'] === 'invalid-json' && wanted.has(r.key ?? '')).map((r) => r.key)).size;
  },
  bad: { none: 'a dead letter always fits: one Kafka refuses is written shrunk (the test below), never rejected while Kafka is up' },
  unreachable: { sink: async (t) => sinkFor(t, ['127.0.0.1:1'], 'unused') },
  fatal: { none: 'Kafka has no fatal failure: a broker that fails is retried until durable' },
  outage: freeze(() => runningPid(stack.server('kafka').files)),
});

test("dead-letter: a letter too large for Kafka, even without its payload, is written shrunk, keeping reason, topic, sizes and the payload's SHA-256", {
  timeout: 60_000,
}, async (t) => {
  printLogsOnFailure(t);
  const topic = await kafkaTopic(t, 1);
  const sink = await sinkFor(t, [endpoints.kafka], topic);
  await sink.start();
  const payload = Buffer.alloc(1_500_000, 0x62);
  const big = letter(1, payload);
  // ~1.2 MB of user properties: too large even without the payload
  const huge: DeadLetterItem = {
    ...big,
    message: { ...big.message, topic: 'acme/s/z/t/huge/telemetry', properties: { userProperties: { blob: 'x'.repeat(1_200_000), small: 'kept' } } },
  };
  const result = await sink.write([letter(0), big, huge]);
  assert.deepEqual(result.rejected, [], 'written, not rejected');
  const records = await readTopic(t, topic, (r) => r.length >= 3, 30_000, 5_000);
  const byKey = new Map(records.map((r) => [r.key, r]));
  const small = byKey.get('acme/s/z/t/d-0/telemetry');
  assert.equal(small?.value.toString(), 'bad-0', 'a letter that fits keeps its payload');
  for (const key of ['acme/s/z/t/d-1/telemetry', 'acme/s/z/t/huge/telemetry']) {
    const r = byKey.get(key);
    assert.ok(r, `${key} written`);
    assert.equal(r.value.length, 0);
    assert.equal(r.headers['sluice-reason'], 'invalid-json');
    assert.equal(r.headers['mqtt-topic'], key);
    assert.equal(r.headers['sluice-payload-bytes'], String(payload.length));
    assert.equal(r.headers['sluice-payload-sha256'], createHash('sha256').update(payload).digest('hex'));
  }
  const shrunk = byKey.get('acme/s/z/t/huge/telemetry');
  assert.equal(shrunk?.headers.blob, undefined, 'the oversized user property is dropped');
  assert.match(shrunk?.headers['sluice-headers-dropped'] ?? '', /^1 headers, \d+ bytes$/);
});

test('dead-letter: a failure after a pass names the items of the batch written so far, never the indexes of a pass of refused ones', async () => {
  // a scripted Kafka sink: the first pass refuses items 1 and 3 as too large and writes the
  // others; the second pass (those two, shrunk) fails with its record 1 (the batch's item 3) written
  let pass = 0;
  const kafka = {
    write: async (records: readonly unknown[]) => {
      pass++;
      if (pass === 1) {
        assert.equal(records.length, 4);
        return { rejected: [1, 3].map((index) => ({ index, reason: 'rejected-by-kafka', error: 'MESSAGE_TOO_LARGE' })) };
      }
      assert.equal(records.length, 2);
      throw new SinkError('dead-letter', 'a broker timed out', { written: [1] });
    },
  } as unknown as KafkaSink;
  const sink = new DeadLetterSink(kafka, 'dead-letters');
  const err = await sink.write([0, 1, 2, 3].map((n) => letter(n))).catch((e: unknown) => e);
  assert.ok(err instanceof SinkError, String(err));
  assert.deepEqual([...(err.written ?? [])].sort(), [0, 2, 3]);
});

// Smoke test of the stack's Kafka (KRaft) with kafkajs, the client sluice uses: admin
// createTopics, an idempotent producer with acks -1, and a consumer group reading it back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kafka, kafkaTopic, printLogsOnFailure, unique } from '../support/stack.ts';

test('an idempotent acks=-1 produce is read back by a consumer group, keys and headers intact', async (t) => {
  printLogsOnFailure(t);
  const topic = await kafkaTopic(t);
  const client = kafka();

  const producer = client.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  t.after(() => producer.disconnect());
  const messages = Array.from({ length: 50 }, (_, i) => ({
    key: `device-${i % 5}`,
    value: JSON.stringify({ n: i }),
    headers: { 'content-type': 'application/json' },
  }));
  const metadata = await producer.send({ topic, acks: -1, messages });
  assert.ok(metadata.every((m) => m.errorCode === 0));

  const consumer = client.consumer({ groupId: unique('group') });
  await consumer.connect();
  t.after(() => consumer.disconnect());
  await consumer.subscribe({ topic, fromBeginning: true });
  const got: Array<{ key: string; n: number; partition: number; contentType: string }> = [];
  const done = Promise.withResolvers<void>();
  const timer = setTimeout(() => done.reject(new Error(`timed out after ${got.length} of 50`)), 30_000);
  await consumer.run({
    eachMessage: async ({ message, partition }) => {
      got.push({
        key: message.key?.toString() ?? '',
        n: (JSON.parse(message.value?.toString() ?? '{}') as { n: number }).n,
        partition,
        contentType: message.headers?.['content-type']?.toString() ?? '',
      });
      if (got.length === messages.length) done.resolve();
    },
  });
  await done.promise.finally(() => clearTimeout(timer));

  assert.deepEqual(
    got.map((g) => g.n).sort((x, y) => x - y),
    messages.map((_, i) => i),
  );
  assert.ok(got.every((g) => g.contentType === 'application/json'));
  // One key, one partition, in produce order: what per-device ordering rests on.
  for (let d = 0; d < 5; d++) {
    const mine = got.filter((g) => g.key === `device-${d}`);
    assert.equal(new Set(mine.map((g) => g.partition)).size, 1, `device-${d} stays in one partition`);
    assert.deepEqual(
      mine.map((g) => g.n),
      [...mine.map((g) => g.n)].sort((x, y) => x - y),
    );
  }
});

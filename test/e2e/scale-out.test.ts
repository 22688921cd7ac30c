// Scale out by adding workers: three sluice processes in one share group split the load with
// no coordination, and the union of what they wrote is exactly what was published.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { publishNumbered, readTopic, seqCounts, telemetryToKafka } from '../support/e2e-helpers.ts';
import { sluiceFor } from '../support/sluice-process.ts';
import { mqttClient, printLogsOnFailure, unique } from '../support/stack.ts';

test('three workers in one share group: each takes a share, the union is exactly the published set', { timeout: 120_000 }, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('scale');
  const group = unique('group');
  const topic = `${prefix}.telemetry`;
  const rules = telemetryToKafka(prefix, topic);
  const workers = [0, 1, 2].map(() => sluiceFor(t, { rules, group }));
  await Promise.all(workers.map((w) => w.start()));
  const total = 6_000;
  const pub = await mqttClient(t);
  await publishNumbered(pub, total, (seq) => `${prefix}/s/z/sensor/dev-${seq % 60}/telemetry`);

  const records = await readTopic(t, topic, (r) => r.length >= total);
  const counts = seqCounts(records);
  assert.equal(counts.size, total, 'every message');
  assert.equal(records.length, total, 'and each once');
  const shares = await Promise.all(workers.map(async (w) => (await w.metrics()).get('sluice_messages_received_total{qos="1"}') ?? 0));
  t.diagnostic(`shares: ${shares.join(', ')}`);
  assert.equal(
    shares.reduce((a, b) => a + b, 0),
    total,
  );
  for (const s of shares) assert.ok(s > total / 10, `each worker takes a real share (${shares.join(', ')})`);
});

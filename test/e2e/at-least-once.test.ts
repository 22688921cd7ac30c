// The first promise: no telemetry is lost. 20,000 QoS 1 messages while the sluice process is
// killed with SIGKILL three times at random moments and restarted with the same client id;
// afterwards every message is in Kafka, and the duplicates stay within restarts x Receive Maximum.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { publishNumbered, readTopic, seqCounts, telemetryToKafka } from '../support/e2e-helpers.ts';
import { sluiceFor } from '../support/sluice-process.ts';
import { mqttClient, printLogsOnFailure, unique } from '../support/stack.ts';

const total = 20_000;
const kills = 3;
const receiveMaximum = 500;

test(`at least once: ${total} QoS 1 messages, sluice SIGKILLed ${kills} times, 0 lost`, { timeout: 240_000 }, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('alo');
  const topic = `${prefix}.telemetry`;
  const sluice = sluiceFor(t, {
    rules: telemetryToKafka(prefix, topic),
    config: { mqtt: { receiveMaximum } },
  });
  await sluice.start();

  const publisher = await mqttClient(t);
  // ~8 s of publishing at 2,500 msg/s, so the kills land mid-stream
  const publishing = publishNumbered(publisher, total, (seq) => `${prefix}/site-a/z1/sensor/dev-${seq % 100}/telemetry`, { ratePerSecond: 2_500 });
  const killTimes = Array.from({ length: kills }, () => 500 + Math.random() * 6_500).sort((a, b) => a - b);
  let elapsed = 0;
  for (const at of killTimes) {
    await sleep(at - elapsed);
    elapsed = at;
    await sluice.stop('SIGKILL');
    await sluice.start(); // the broker queues for the persistent session meanwhile
  }
  await publishing;

  const records = await readTopic(t, topic, (r) => seqCounts(r).size === total, 120_000);
  const counts = seqCounts(records);
  const missing = Array.from({ length: total }, (_, i) => i).filter((i) => !counts.has(i));
  const duplicates = records.length - counts.size;
  t.diagnostic(
    `killed at ${killTimes.map((ms) => `${(ms / 1000).toFixed(1)}s`).join(', ')}; ${records.length} records, ${duplicates} duplicates (bound ${kills * receiveMaximum})`,
  );
  assert.equal(missing.length, 0, `${missing.length} lost, e.g. ${missing.slice(0, 10).join(', ')}`);
  assert.ok(duplicates <= kills * receiveMaximum, `${duplicates} duplicates exceed ${kills} x ${receiveMaximum}`);
  assert.deepEqual(sluice.exits, [null, null, null], 'three SIGKILLs');
});

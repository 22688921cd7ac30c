// The wall clock stepped under a running worker (an NTP correction, an operator's `date -s`, a VM
// resumed): libfaketime moves the process's wall clock an hour forward, then two hours back,
// while the monotonic clock (timers, durations) goes on. Telemetry at a steady rate and commands
// at 20/s: nothing lost, nothing dead-lettered, no command twice, the audit log verifies, no
// reconnect, and the durations sluice reports (ack latency, how long a route has held a message)
// are never an hour long or negative: they are measured on the monotonic clock (src/clock.ts).
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureDebianPackages, findExecutable } from '../../deploy/local/prerequisites.ts';
import { verifyAuditLog } from '../../src/audit/tools/verify.ts';
import { commandsRecorded, publishCommands, publishNumbered, readTopic, seqCounts, waitFor } from '../support/e2e-helpers.ts';
import { sluiceFor } from '../support/sluice-process.ts';
import { kafkaTopic, mqttClient, printLogsOnFailure, unique } from '../support/stack.ts';

const libfaketime = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';

test('the wall clock stepped an hour forward, then two hours back, under load: 0 lost, 0 dead letters, no command twice, no reconnect, no hour-long or negative duration', {
  timeout: 300_000,
}, async (t) => {
  try {
    ensureDebianPackages([{ executable: 'faketime', pkg: 'faketime' }]);
  } catch (err) {
    t.skip(`needs libfaketime (${(err as Error).message})`);
    return;
  }
  if (findExecutable('faketime') === undefined) return;
  printLogsOnFailure(t);
  const clock = join(mkdtempSync(join(tmpdir(), 'sluice-clock-')), 'offset');
  writeFileSync(clock, '+0\n');
  const topic = await kafkaTopic(t, 3);
  const prefix = unique('clock');
  const rules = {
    subscriptions: [
      { filter: `${prefix}/+/+/+/+/telemetry`, qos: 1 },
      { filter: `${prefix}/+/+/+/+/command`, qos: 2 },
    ],
    routes: [
      { name: 'telemetry', match: `${prefix}/{site}/{zone}/{deviceType}/{deviceId}/telemetry`, kafka: { topic, key: '{deviceId}' } },
      { name: 'commands', match: `${prefix}/{site}/{zone}/{deviceType}/{deviceId}/command`, audit: true, payload: 'raw' },
    ],
  };
  const sluice = sluiceFor(t, {
    rules,
    // batches linger 200 ms: messages are always in flight when the clock steps
    config: { mqtt: { keepalive: 5 }, kafka: { batch: { lingerMs: 200 } }, audit: { dir: 'audit' } },
    env: {
      LD_PRELOAD: libfaketime,
      FAKETIME_TIMESTAMP_FILE: clock,
      FAKETIME_CACHE_DURATION: '1',
      FAKETIME_DONT_FAKE_MONOTONIC: '1',
    },
  });
  await sluice.start();

  const rate = 200;
  const seconds = 40;
  const total = rate * seconds;
  const pub = await mqttClient(t);
  const telemetry = publishNumbered(pub, total, (seq) => `${prefix}/malta/z1/sensor/dev-${seq % 40}/telemetry`, { ratePerSecond: rate });
  const { sent, done: commands } = publishCommands(pub, (n) => `${prefix}/malta/z1/valve/v-${n % 5}/command`, seconds);
  let notReady = 0;
  let worstHeldMs = 0;
  const sampler = setInterval(async () => {
    const r = await sluice.ready().catch(() => undefined);
    if (r && r.status !== 200) notReady++;
    const m = await sluice.metrics(['sluice_route_oldest_unacked_seconds']).catch(() => undefined);
    for (const [, v] of m ?? []) worstHeldMs = Math.max(worstHeldMs, v * 1000);
  }, 250);
  t.after(() => clearInterval(sampler));

  await sleep(10_000);
  writeFileSync(clock, '+1h\n');
  await sleep(15_000);
  writeFileSync(clock, '-1h\n');
  await Promise.all([telemetry, commands]);
  const records = await readTopic(t, topic, (r) => seqCounts(r).size >= total, 60_000);
  clearInterval(sampler);
  const counts = seqCounts(records);
  const auditDir = join(sluice.dir, 'audit');
  await waitFor('every command in the audit log', () => commandsRecorded(auditDir).length >= sent.length, 30_000).catch(() => {});
  const recorded = commandsRecorded(auditDir);
  const m = await sluice.metrics(['sluice_ack_latency_seconds', 'sluice_dead_letters_total', 'sluice_mqtt_reconnects_total', 'sluice_sink_write_errors_total']);
  let deadLetters = 0;
  for (const [k, v] of m) if (k.startsWith('sluice_dead_letters_total')) deadLetters += v;
  const count = m.get('sluice_ack_latency_seconds_count') ?? 0;
  const sum = m.get('sluice_ack_latency_seconds_sum') ?? 0;
  const within10s = m.get('sluice_ack_latency_seconds_bucket{le="10"}') ?? 0;
  const audit = verifyAuditLog(auditDir);
  t.diagnostic(
    `telemetry ${total} published, ${counts.size} in Kafka (${records.length - counts.size} duplicates); commands ${sent.length} sent, ${new Set(recorded).size} recorded, ${recorded.length - new Set(recorded).size} twice; audit verify ${audit.ok ? 'ok' : audit.problem?.kind}; ack latency mean ${((sum / count) * 1000).toFixed(1)} ms over ${count}, ${count - within10s} over 10 s; longest a route held a message ${Math.round(worstHeldMs)} ms; /readyz not 200 in ${notReady} samples; dead letters ${deadLetters}; MQTT reconnects ${m.get('sluice_mqtt_reconnects_total') ?? 0}; Kafka write errors ${m.get('sluice_sink_write_errors_total{sink="kafka"}') ?? 0}`,
  );
  assert.equal(total - counts.size, 0, 'no telemetry lost');
  assert.equal(deadLetters, 0, 'nothing dead-lettered as stuck by a clock step');
  assert.equal(new Set(recorded).size, sent.length, 'every command recorded');
  assert.equal(recorded.length, new Set(recorded).size, 'no command twice');
  assert.ok(audit.ok, `the audit log verifies (${audit.problem?.kind} ${audit.problem?.message})`);
  assert.equal(m.get('sluice_mqtt_reconnects_total') ?? 0, 0, 'no keepalive fooled into a reconnect');
  assert.equal(within10s, count, 'no ack latency of an hour');
  assert.ok(sum >= 0 && sum / count < 1, `no negative or hour-long ack latency (mean ${sum / count} s)`);
  assert.ok(worstHeldMs < 10_000, `no route reported holding a message for an hour (${worstHeldMs} ms)`);
  assert.equal(notReady, 0, '/readyz stayed 200');
});

// A deployment without Kafka: routes to a file only, the dead letter to a file or held. Kafka's
// address is a closed port here, so anything that still needed Kafka would never get ready.
// Held dead letters stay unacknowledged with the broker, and a restart with a destination
// delivers them: nothing lost either way.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { publishNumbered, waitFor } from '../support/e2e-helpers.ts';
import { sluiceFor } from '../support/sluice-process.ts';
import { mqttClient, printLogsOnFailure, unique } from '../support/stack.ts';

const noKafka = { brokers: ['127.0.0.1:1'] };

function rulesFor(prefix: string) {
  return {
    subscriptions: [{ filter: `${prefix}/+/+/+/+/telemetry`, qos: 1 }],
    routes: [{ name: 'telemetry', match: `${prefix}/{site}/{zone}/{deviceType}/{deviceId}/telemetry`, payload: 'json', file: true }],
  };
}

/** The whole lines of a file sluice may still be appending to: a last line without its newline is being written, not damage. */
function jsonLines(path: string): Array<Record<string, unknown>> {
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, 'utf8').split('\n');
  lines.pop();
  return lines.filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('without Kafka: telemetry to a file, refused messages to a dead-letter file, ready and healthy, 0 lost', { timeout: 90_000 }, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('nokafka');
  const sluice = sluiceFor(t, {
    rules: rulesFor(prefix),
    config: { kafka: noKafka, file: { path: 'archive/telemetry.jsonl' }, deadLetter: { to: 'file', path: 'dead/letters.jsonl' } },
  });
  await sluice.start();
  const pub = await mqttClient(t);
  const good = 500;
  await publishNumbered(pub, good, (seq) => `${prefix}/malta/z1/sensor/dev-${seq % 10}/telemetry`);
  const bad = 20;
  for (let i = 0; i < bad; i++) await pub.publishAsync(`${prefix}/malta/z1/sensor/dev-${i}/telemetry`, `{"seq": ${i}, "t": `, { qos: 1 });

  const archive = join(sluice.dir, 'archive/telemetry.jsonl');
  const dead = join(sluice.dir, 'dead/letters.jsonl');
  await waitFor(
    'every good message in the file, every bad one in the dead-letter file',
    () => new Set(jsonLines(archive).map((l) => (l.payload as { seq: number }).seq)).size >= good && jsonLines(dead).length >= bad,
    30_000,
  );
  const letters = jsonLines(dead);
  assert.equal(letters.length, bad, 'one dead letter per refused message');
  const first = letters[0] as Record<string, unknown>;
  assert.equal(first.reason, 'invalid-json');
  assert.equal(first.route, 'telemetry');
  assert.match(String(first.topic), new RegExp(`^${prefix}/malta/z1/sensor/dev-\\d+/telemetry$`));
  assert.match(Buffer.from(String(first.payloadBase64), 'base64').toString(), /^\{"seq": \d+, "t": $/, 'the refused bytes, exactly');
  const ready = await sluice.ready();
  assert.equal(ready.status, 200, `ready without Kafka: ${ready.body}`);
  const m = await sluice.metrics(['sluice_sink_healthy', 'sluice_dead_letters_total']);
  assert.equal(m.get('sluice_sink_healthy{sink="dead-letter"}'), 1, 'the dead-letter file can be written');
  assert.equal(m.get('sluice_sink_healthy{sink="file"}'), 1);
  assert.equal(m.get('sluice_dead_letters_total{reason="invalid-json"}'), bad);
  assert.ok(!sluice.logTail(400).includes('127.0.0.1:1'), 'Kafka was never tried');
});

test('deadLetter.to hold: a refused message stays unacknowledged and /readyz says so; restarted with a dead-letter file, the broker delivers it', {
  timeout: 90_000,
}, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('hold');
  const group = unique('group');
  const clientId = unique('worker');
  const holding = sluiceFor(t, {
    group,
    clientId,
    rules: rulesFor(prefix),
    config: { shutdown: { deadlineMs: 2000 }, kafka: noKafka, file: { path: 'archive/telemetry.jsonl' }, deadLetter: { to: 'hold' } },
  });
  await holding.start();
  const pub = await mqttClient(t);
  await publishNumbered(pub, 50, (seq) => `${prefix}/malta/z1/sensor/dev-${seq % 5}/telemetry`);
  const refused = `${prefix}/malta/z1/sensor/dev-bad/telemetry`;
  await pub.publishAsync(refused, 'not json', { qos: 1 });
  await publishNumbered(pub, 50, (seq) => `${prefix}/malta/z1/sensor/dev-${seq % 5}/telemetry`, { from: 50 });

  let ready = { status: 0, body: '' };
  await waitFor(
    '/readyz to name the held dead letter',
    async () => {
      ready = await holding.ready();
      return ready.status === 503 && ready.body.includes('holding');
    },
    20_000,
  );
  assert.match(ready.body, /dead-letter: holding 1 refused message\(s\) unacknowledged \(deadLetter\.to: hold; first: invalid-json on /);
  const m = await holding.metrics(['sluice_sink_healthy', 'sluice_dead_letters_total']);
  assert.equal(m.get('sluice_sink_healthy{sink="dead-letter"}'), 0, 'SluiceSinkDown fires on it');
  assert.equal(m.get('sluice_dead_letters_total{reason="invalid-json"}') ?? 0, 0, 'nothing was written anywhere');
  const archive = join(holding.dir, 'archive/telemetry.jsonl');
  await waitFor('the good messages in the file', () => jsonLines(archive).length >= 100, 10_000).catch(() => {});
  const archived = jsonLines(archive).length;
  assert.ok(archived >= 100, `the good messages were written (${archived} lines): only the acks wait`);
  await sleep(500);
  assert.equal(await holding.stop('SIGTERM'), 1, 'exit 1: acks left unsettled at the shutdown deadline (the held one and those behind it)');

  // the same worker (client id, share group), now with a destination: the broker redelivers
  const fixed = sluiceFor(t, {
    group,
    clientId,
    rules: rulesFor(prefix),
    config: { kafka: noKafka, file: { path: 'archive/telemetry.jsonl' }, deadLetter: { to: 'file', path: 'dead/letters.jsonl' } },
  });
  await fixed.start();
  const dead = join(fixed.dir, 'dead/letters.jsonl');
  await waitFor('the held message in the dead-letter file', () => jsonLines(dead).length >= 1, 20_000);
  const letters = jsonLines(dead);
  assert.equal(letters.length, 1);
  assert.equal(letters[0]?.topic, refused);
  assert.equal(Buffer.from(String(letters[0]?.payloadBase64), 'base64').toString(), 'not json');
  await waitFor('ready once it is written', async () => (await fixed.ready()).status === 200, 10_000);
});

// Scale in on Mosquitto: a worker's persistent session stays in its share group after the worker
// stops, and Mosquitto 2 goes on handing it its turn. A worker that stops with
// `shutdown.leaveGroup` leaves first (unsubscribes, takes what the broker still holds for it,
// ends its session), so the rest of the group gets everything; a worker that stops without it
// keeps its share queued in its session until it comes back.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt from 'mqtt';
import { commandsRecorded, publishNumbered, publishUntilStopped, readTopic, seqCounts, telemetryToKafka, waitFor } from '../support/e2e-helpers.ts';
import { type SluiceProcess, sluiceFor } from '../support/sluice-process.ts';
import { endpoints, mqttClient, printLogsOnFailure, unique } from '../support/stack.ts';

const burst = 4_000;
const after = 2_000;

/**
 * Two workers in one group; a burst that `leaving` takes slowly (Receive Maximum 5), so the
 * broker still queues part of its share when it is stopped; then more messages with it gone.
 */
async function scaleIn(t: TestContext, leaveGroup: boolean) {
  printLogsOnFailure(t);
  const prefix = unique('scalein');
  const group = unique('group');
  const topic = `${prefix}.telemetry`;
  const rules = telemetryToKafka(prefix, topic);
  const staying = sluiceFor(t, { rules, group });
  const leaving = sluiceFor(t, {
    rules,
    group,
    config: { mqtt: { receiveMaximum: 5 }, shutdown: { deadlineMs: 30_000, leaveGroup } },
  });
  await Promise.all([staying.start(), leaving.start()]);
  const pub = await mqttClient(t);
  const topicOf = (seq: number) => `${prefix}/s/z/sensor/dev-${seq % 40}/telemetry`;
  await publishNumbered(pub, burst, topicOf);
  await waitFor('the leaving worker to have taken some of the burst', async () => ((await received(leaving)) ?? 0) > 100);
  const atSignal = (await received(leaving)) ?? 0;
  const stopping = leaving.stop('SIGTERM');
  await publishNumbered(pub, after, topicOf, { from: burst, ratePerSecond: 2_000 });
  const code = await stopping;
  return { topic, leaving, code, atSignal, total: burst + after };
}

async function received(w: SluiceProcess): Promise<number | undefined> {
  return (await w.metrics(['sluice_messages_received_total'])).get('sluice_messages_received_total{qos="1"}');
}

test('a worker that leaves its group on stop strands nothing: the rest of the group gets every message, and its session is gone', {
  timeout: 120_000,
}, async (t) => {
  const { topic, leaving, code, atSignal, total } = await scaleIn(t, true);
  assert.equal(code, 0, 'the leaving worker stopped cleanly');
  assert.match(leaving.logs, /"msg":"leaving the share group: unsubscribed/);
  assert.match(leaving.logs, /"msg":"left the share group: session ended"/);
  const taken = Number(/"taken":(\d+)[^\n]*"msg":"left the share group: nothing more queued"/.exec(leaving.logs)?.[1]);
  t.diagnostic(`the leaving worker had taken ${atSignal} at the signal, ${taken} when it left`);
  assert.ok(taken > atSignal, 'it went on taking what the broker held for it after the signal');
  const records = await readTopic(t, topic, (r) => seqCounts(r).size >= total);
  const counts = seqCounts(records);
  const missing = [...Array(total).keys()].filter((n) => !counts.has(n));
  assert.deepEqual(missing.slice(0, 20), [], `every message in Kafka (${missing.length} missing)`);
  // the broker kept no session for the client id: a connection with it starts a new one
  assert.equal(await sessionPresent(leaving.clientId), false, 'the leaving worker ended its session');
});

test('a worker that stops without leaving keeps its share in its session, and gets it when it comes back', { timeout: 120_000 }, async (t) => {
  const { topic, leaving, code, total } = await scaleIn(t, false);
  assert.equal(code, 0);
  // what the rest of the group wrote while the worker was gone: Mosquitto queued the rest for it
  const before = await readTopic(t, topic, (r) => seqCounts(r).size >= total, 60_000, 5_000);
  const short = total - seqCounts(before).size;
  t.diagnostic(`missing while the worker was away: ${short} of ${total}`);
  assert.ok(short > 0, 'Mosquitto hands an offline member its turn (the case leaveGroup is for)');
  await leaving.start();
  const records = await readTopic(t, topic, (r) => seqCounts(r).size >= total);
  assert.equal(seqCounts(records).size, total, 'every message once the worker came back');
});

test('commands too: a worker that leaves ends its command session as well, and each command is recorded once across the two workers', {
  timeout: 120_000,
}, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('scalein');
  const group = unique('group');
  const rules = {
    subscriptions: [{ filter: `${prefix}/+/+/+/+/command`, qos: 2 }],
    routes: [{ name: 'commands', match: `${prefix}/{site}/{zone}/{deviceType}/{deviceId}/command`, audit: true, payload: 'raw' }],
  };
  const staying = sluiceFor(t, { rules, group, config: { audit: { dir: 'audit' } } });
  const leaving = sluiceFor(t, { rules, group, config: { audit: { dir: 'audit' }, shutdown: { leaveGroup: true } } });
  await Promise.all([staying.start(), leaving.start()]);
  const pub = await mqttClient(t);
  const commands = publishUntilStopped(pub, 2, 50, (n) => `${prefix}/plant/z/valve/v-${n % 5}/command`, { body: (n) => `cmd-${n}` });
  await sleep(2_000);
  assert.equal(await leaving.stop('SIGTERM'), 0);
  await sleep(2_000);
  await commands.stop();
  assert.match(leaving.logs, /"msg":"left the share group: session ended"/);
  assert.equal(await sessionPresent(`${leaving.clientId}-commands`), false, 'the command session ended');
  const recorded = () => [...commandsRecorded(join(staying.dir, 'audit')), ...commandsRecorded(join(leaving.dir, 'audit'))];
  await waitFor('every acknowledged command recorded', () => new Set(recorded()).size >= commands.ackedAt.size, 30_000).catch(() => {});
  const all = recorded();
  const once = new Set(all);
  const lost = [...commands.ackedAt.keys()].filter((n) => !once.has(`cmd-${n}`));
  t.diagnostic(`${commands.ackedAt.size} commands; the leaving worker recorded ${commandsRecorded(join(leaving.dir, 'audit')).length}`);
  assert.deepEqual(lost, [], 'every command the broker took is recorded');
  assert.equal(all.length, once.size, 'and once');
});

test('a worker that cannot leave within the shutdown deadline keeps its session, so nothing it holds is dropped', { timeout: 60_000 }, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('scalein');
  // the deadline is shorter than the quiet second a leave waits for: it cannot finish
  const w = sluiceFor(t, {
    rules: telemetryToKafka(prefix, `${prefix}.telemetry`),
    group: unique('group'),
    config: { shutdown: { deadlineMs: 500, leaveGroup: true } },
  });
  await w.start();
  assert.equal(await w.stop('SIGTERM'), 0);
  assert.match(w.logs, /"msg":"could not leave the share group in time: session kept/);
  assert.equal(await sessionPresent(w.clientId), true, 'the session is still at the broker');
});

/** Whether the broker holds a session for `clientId` (asked by connecting with it; the session made by asking ends with the connection). */
async function sessionPresent(clientId: string): Promise<boolean> {
  const client = mqtt.connect(endpoints.mqtt, { protocolVersion: 5, clientId, clean: false, reconnectPeriod: 0, properties: { sessionExpiryInterval: 0 } });
  try {
    const connack = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
    });
    return connack.sessionPresent;
  } finally {
    await client.endAsync(true);
  }
}

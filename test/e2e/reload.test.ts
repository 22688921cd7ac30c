// Rules hot reload for real: a SIGHUP under load swaps the rules between messages, subscribes
// the added filter and unsubscribes the removed one on the live connection (no reconnect), and
// loses nothing; a bad file keeps the old rules, names its file:line and is counted; --watch
// reloads on a change of the file; rules that keep more than the heap allows are warned of.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { publishNumbered, readTopic, seqCounts, waitFor } from '../support/e2e-helpers.ts';
import { sluiceFor } from '../support/sluice-process.ts';
import { mqttClient, printLogsOnFailure, unique } from '../support/stack.ts';

const route = (prefix: string, kind: string, topic: string) => ({
  filter: `${prefix}/+/+/+/+/${kind}`,
  route: { name: kind, match: `${prefix}/{site}/{zone}/{deviceType}/{deviceId}/${kind}`, kafka: { topic } },
});

test('SIGHUP under load: the new route takes effect, the removed filter stops, 0 lost, 0 reconnects; a bad file keeps the old rules', {
  timeout: 180_000,
}, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('reload');
  const kept = route(prefix, 'telemetry', `${prefix}.telemetry`);
  const removed = route(prefix, 'status', `${prefix}.status`);
  const added = route(prefix, 'alarm', `${prefix}.alarm`);
  const rulesOf = (rs: Array<typeof kept>) => ({ subscriptions: rs.map((r) => ({ filter: r.filter, qos: 1 })), routes: rs.map((r) => r.route) });
  const sluice = sluiceFor(t, { rules: rulesOf([kept, removed]) });
  await sluice.start();
  const pub = await mqttClient(t);
  const topicOf = (kind: string) => (seq: number) => `${prefix}/s/z/sensor/dev-${seq % 20}/${kind}`;

  // 6,000 telemetry messages at 1,000/s; the reload lands in the middle of them
  const load = publishNumbered(pub, 6_000, topicOf('telemetry'), { ratePerSecond: 1_000 });
  await publishNumbered(pub, 200, topicOf('status'));
  await sleep(2_000);
  sluice.writeRules(rulesOf([kept, added]));
  process.kill(sluice.pid as number, 'SIGHUP');
  await waitFor('rules reloaded', () => sluice.logs.includes('"msg":"rules reloaded"'), 10_000);
  await waitFor('unsubscribed', () => sluice.logs.includes('"msg":"unsubscribed"'), 10_000);
  await waitFor(
    'the new filter subscribed',
    () => sluice.logs.includes(`"topic":"$share/`) && sluice.logs.split('\n').some((l) => l.includes('"msg":"subscribed"') && l.includes('/alarm')),
    10_000,
  );
  await publishNumbered(pub, 300, topicOf('alarm'));
  await publishNumbered(pub, 300, topicOf('status'), { from: 1_000 }); // no route, no subscription any more
  await load;

  // a bad file: refused with its line, the rules in use stay
  writeFileSync(join(sluice.dir, 'rules.yaml'), 'subscriptions:\n  - { filter: "x/#", qos: 7 }\nroutes: []\n');
  process.kill(sluice.pid as number, 'SIGHUP');
  await waitFor('reload refused', () => sluice.logs.includes('rules reload refused'), 10_000);
  await publishNumbered(pub, 300, topicOf('alarm'), { from: 1_000 });

  const telemetry = seqCounts(await readTopic(t, `${prefix}.telemetry`, (r) => seqCounts(r).size >= 6_000));
  const alarms = seqCounts(await readTopic(t, `${prefix}.alarm`, (r) => seqCounts(r).size >= 600, 30_000, 5_000));
  const status = seqCounts(await readTopic(t, `${prefix}.status`, () => false, 8_000, 4_000));
  const m = await sluice.metrics();
  const refused = /"err":"([^"]+)","msg":"rules reload refused/.exec(sluice.logs)?.[1];
  t.diagnostic(
    `telemetry ${telemetry.size}/6000 across the reload; alarms ${alarms.size}/600; status after removal ${[...status.keys()].filter((s) => s >= 1_000).length}/300; reconnects ${m.get('sluice_mqtt_reconnects_total') ?? 0}; refused: ${refused}`,
  );
  assert.equal(telemetry.size, 6_000, 'nothing lost across the reload');
  assert.equal(alarms.size, 600, 'the new route took effect (and stayed after the refused reload)');
  assert.equal([...status.keys()].filter((s) => s < 1_000).length, 200, 'the removed route delivered before');
  assert.equal([...status.keys()].filter((s) => s >= 1_000).length, 0, 'the removed filter stopped delivering');
  assert.equal(m.get('sluice_mqtt_reconnects_total') ?? 0, 0, 'no reconnect');
  assert.equal(m.get('sluice_mqtt_sessions_resumed_total{present="false"}'), 1, 'one connection all along');
  assert.equal(m.get('sluice_rules_reloads_total'), 1);
  assert.equal(m.get('sluice_rules_reload_failures_total'), 1);
  assert.ok((m.get('sluice_rules_last_reload_success_timestamp') ?? 0) > 0);
  assert.match(refused ?? '', /rules\.yaml:2: subscriptions\[0\]\.qos/);
});

test('--watch: a change of the rules file reloads them', { timeout: 60_000 }, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('watch');
  const a = route(prefix, 'telemetry', `${prefix}.telemetry`);
  const b = route(prefix, 'alarm', `${prefix}.alarm`);
  const rulesOf = (rs: Array<typeof a>) => ({ subscriptions: rs.map((r) => ({ filter: r.filter, qos: 1 })), routes: rs.map((r) => r.route) });
  const sluice = sluiceFor(t, { rules: rulesOf([a]), args: ['--watch'] });
  await sluice.start();
  sluice.writeRules(rulesOf([a, b]));
  await waitFor('rules reloaded on the change', () => sluice.logs.includes('"why":"file changed"'), 10_000);
  const pub = await mqttClient(t);
  await waitFor('subscribed', () => sluice.logs.split('\n').some((l) => l.includes('"msg":"subscribed"') && l.includes('/alarm')), 10_000);
  await publishNumbered(pub, 100, (seq) => `${prefix}/s/z/sensor/d-${seq % 5}/alarm`);
  const alarms = seqCounts(await readTopic(t, `${prefix}.alarm`, (r) => seqCounts(r).size >= 100, 30_000, 5_000));
  assert.equal(alarms.size, 100);
});

test('a reload whose rules keep more than the heap allows is warned of, as at start: each InfluxDB output that keeps its series counts', {
  timeout: 60_000,
}, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('heap');
  const match = `${prefix}/{site}/{zone}/{deviceType}/{deviceId}/telemetry`;
  const influx = (measurement: string) => ({ measurement, tags: ['site', 'deviceId'], fields: { temperature: '$.temperature' } });
  const rulesWith = (outputs: number) => ({
    subscriptions: [{ filter: `${prefix}/+/+/+/+/telemetry`, qos: 1 }],
    routes: Array.from({ length: outputs }, (_, i) => ({ name: `r${i}`, match, continue: i < outputs - 1, influx: influx(`${prefix}_${i}`) })),
  });
  // one connection, 1 MiB in flight: 64 + 2 x (8 + 4n) + 6 MiB needed, so 94 with one such
  // output and 126 with five, against a heap limit of 100 MiB of old generation plus the young one
  const sluice = sluiceFor(t, { rules: rulesWith(1), config: { mqtt: { maxInFlightBytes: 2 ** 20 } }, nodeArgs: ['--max-old-space-size=100'] });
  await sluice.start();
  const warning = '"msg":"the heap limit is below what the config may need';
  assert.ok(!sluice.logs.includes(warning), 'one output fits the heap: no warning at start');

  sluice.writeRules(rulesWith(5));
  process.kill(sluice.pid as number, 'SIGHUP');
  await waitFor('rules reloaded', () => sluice.logs.includes('"msg":"rules reloaded"'), 10_000);
  const line = sluice.logs.split('\n').find((l) => l.includes(warning));
  t.diagnostic(`after the reload: ${line}`);
  assert.ok(line, 'five outputs that keep their series do not fit: warned');
  assert.match(line, /"neededMiB":126,/);
  assert.match(line, /"outputsKeepingTopics":5,/);
});

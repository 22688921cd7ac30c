// The start-up check of the heap against what mqtt.maxInFlightBytes lets a worker hold, and the
// per-topic maps the rules keep, counted at their bound.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { compileRules } from '../../src/config/load.ts';
import { rulesFile } from '../../src/config/rules-schema.ts';
import { keptRoutesMiB, keptSeriesMiB, memoryBudget } from '../../src/observability/memory-budget.ts';
import { maxKeptTopicLength, maxKeptTopics } from '../../src/router/kept-topics.ts';

const MiB = 2 ** 20;

test('the heap a config needs: a baseline, the topics kept at their bound (two rule sets during a reload), and six copies of the bytes in flight, per connection', () => {
  assert.deepEqual(memoryBudget(16 * MiB, 2, 1, 512 * MiB), { neededMiB: 64 + 2 * (8 + 4) + 6 * 16 * 2, heapLimitMiB: 512, ok: true });
  assert.deepEqual(memoryBudget(16 * MiB, 2, 1, 200 * MiB), { neededMiB: 280, heapLimitMiB: 200, ok: false });
  assert.equal(memoryBudget(16 * MiB, 2, 0, 512 * MiB).neededMiB, 64 + 2 * 8 + 192, 'no InfluxDB output keeping its series');
  assert.equal(memoryBudget(16 * MiB, 2, 5, 512 * MiB).neededMiB, 64 + 2 * (8 + 5 * 4) + 192, 'five of them');
  assert.equal(memoryBudget(64 * MiB, 1, 1, 256 * MiB).ok, false, '64 + 24 + 384 MiB needed');
  assert.equal(memoryBudget(16 * MiB, 1, 1).heapLimitMiB > 0, true, "V8's own limit by default");
});

const match = 'p/{site}/{zone}/{deviceType}/{deviceId}/telemetry';
const influx = (measurement: string, tags: unknown = ['site', 'zone', 'deviceId']) => ({ measurement, tags, fields: { temperature: '$.temperature' } });

function rulesOf(routes: unknown[]) {
  return compileRules(rulesFile.parse({ subscriptions: [{ filter: 'p/+/+/+/+/telemetry', qos: 1 }], routes }));
}

test('the rules count each InfluxDB output that keeps its series by topic; one that reads a tag from the payload keeps none', () => {
  assert.equal(rulesOf([{ name: 'k', match, kafka: { topic: 'p.t' } }]).outputsKeepingTopics, 0);
  assert.equal(rulesOf([{ name: 'b', match, kafka: { topic: 'p.t' }, influx: influx('p') }]).outputsKeepingTopics, 1);
  const three = rulesOf([
    { name: 'a', match, continue: true, influx: influx('p') },
    { name: 'b', match, continue: true, influx: influx('q', { deviceId: '{deviceId}', unit: '$.unit' }) },
    { name: 'c', match, influx: influx('r') },
  ]);
  assert.equal(three.outputsKeepingTopics, 2);
});

test("the maps at their bound fit the budget's figures: 10,000 topics of 256 characters, routed to Kafka and two InfluxDB outputs", () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const rules = rulesOf([
    { name: 'a', match, continue: true, kafka: { topic: 'p.t', key: '{deviceId}' }, influx: influx('p') },
    { name: 'b', match, influx: influx('q') },
  ]);
  assert.equal(rules.outputsKeepingTopics, 2);
  const payload = Buffer.from('{"temperature":20.5}');
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < maxKeptTopics; i++) {
    const id = `d${i}-`;
    const topic = `p/site-a/zone-b/sensor/${id.padEnd(maxKeptTopicLength - 'p/site-a/zone-b/sensor//telemetry'.length, 'x')}/telemetry`;
    assert.equal(topic.length, maxKeptTopicLength);
    // a topic string of its own, as a socket gives it
    const message = { topic: Buffer.from(topic).toString(), payload, qos: 1 as const, retain: false, properties: {}, receivedAt: Date.now() };
    for (const m of rules.route(message).matches) {
      for (const o of m.outputs)
        assert.equal('item' in o.encode({ message, route: m.route, levels: m.levels, payload: m.payload, clientId: 'c', annotations: undefined }), true);
    }
  }
  gc();
  gc();
  const heldMiB = (process.memoryUsage().heapUsed - before) / MiB;
  const budgetMiB = keptRoutesMiB + 2 * keptSeriesMiB;
  assert.ok(heldMiB <= budgetMiB, `${heldMiB.toFixed(2)} MiB held, the budget counts ${budgetMiB} for one rule set`);
  assert.ok(heldMiB >= budgetMiB / 2, `${heldMiB.toFixed(2)} MiB held: the maps keep the topics (else the figure measures nothing)`);
  assert.equal(
    rules.route({ topic: 'p/s/z/t/d/telemetry', payload, qos: 1, retain: false, properties: {}, receivedAt: Date.now() }).matches.length,
    2,
    'the rules stay alive to here',
  );
});

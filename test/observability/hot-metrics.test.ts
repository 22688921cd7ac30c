// The per-message counters and histograms render exactly as prom-client's own would for the
// same observations, so dashboards, alerts and the tests' readers see no difference.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Histogram, Registry } from 'prom-client';
import { HotCounter, HotHistogram } from '../../src/observability/hot-metrics.ts';

const buckets = [0.001, 0.005, 0.01, 0.1, 1];
const observations = [0, 0.001, 0.0011, 0.004, 0.005, 0.02, 0.5, 1, 3, 120, 0.0999];

test('a HotHistogram renders the same text as a prom-client Histogram fed the same values', async () => {
  const hot = new Registry();
  const reference = new Registry();
  const h = new HotHistogram({ name: 'x_seconds', help: 'help', buckets, registers: [hot] });
  const r = new Histogram({ name: 'x_seconds', help: 'help', buckets, registers: [reference] });
  for (const v of observations) {
    h.observe(v);
    r.observe(v);
  }
  assert.equal(await hot.metrics(), await reference.metrics());
  assert.match(await hot.metrics(), /x_seconds_bucket\{le="0.005"\} 5\n/);
  assert.match(await hot.metrics(), /x_seconds_count 11\n/);
});

test('a HotCounter renders as prom-client Counters do, labelled and not; inc({labels}) and cells add up', async () => {
  const hot = new Registry();
  const reference = new Registry();
  const plain = new HotCounter({ name: 'a_total', help: 'a', registers: [hot] });
  const labelled = new HotCounter({ name: 'b_total', help: 'b', labelNames: ['route', 'sink'], registers: [hot] });
  const refPlain = new Counter({ name: 'a_total', help: 'a', registers: [reference] });
  const refLabelled = new Counter({ name: 'b_total', help: 'b', labelNames: ['route', 'sink'], registers: [reference] });
  plain.inc();
  plain.inc(4);
  refPlain.inc(5);
  const cell = labelled.labels('telemetry', 'kafka');
  cell.inc();
  cell.inc();
  labelled.inc({ route: 'telemetry', sink: 'kafka' }, 3);
  labelled.inc({ route: 'commands', sink: 'audit' });
  refLabelled.inc({ route: 'telemetry', sink: 'kafka' }, 5);
  refLabelled.inc({ route: 'commands', sink: 'audit' });
  assert.equal(await hot.metrics(), await reference.metrics());
  assert.equal(labelled.labels('telemetry', 'kafka'), cell, 'the same cell for the same labels');
  assert.throws(() => labelled.labels('only-one'), /2 label values expected/);
  assert.throws(() => labelled.inc(), /has labels/);
});

test('a scrape renders only the named metrics when asked, through the registry', async () => {
  const registry = new Registry();
  new HotCounter({ name: 'a_total', help: 'a', registers: [registry] }).inc(2);
  new HotHistogram({ name: 'x_seconds', help: 'x', buckets, registers: [registry] }).observe(0.002);
  assert.equal(await registry.getSingleMetricAsString('a_total'), '# HELP a_total a\n# TYPE a_total counter\na_total 2');
});

test('a labelled HotHistogram renders as a prom-client Histogram with the same labels; its cells are kept and it refuses observe() without them', async () => {
  const hot = new Registry();
  const reference = new Registry();
  const h = new HotHistogram({ name: 'y_seconds', help: 'help', labelNames: ['sink'], buckets, registers: [hot] });
  const r = new Histogram({ name: 'y_seconds', help: 'help', labelNames: ['sink'], buckets, registers: [reference] });
  for (const [i, v] of observations.entries()) {
    const sink = i % 3 === 0 ? 'influx' : 'kafka';
    h.labels(sink).observe(v);
    r.observe({ sink }, v);
  }
  // prom-client lists label sets in the order first observed; this one in the order first looked up
  const kafka = h.labels('kafka');
  assert.equal(await hot.metrics(), await reference.metrics());
  assert.match(await hot.metrics(), /y_seconds_bucket\{le="0.005",sink="kafka"\} 3\n/);
  assert.equal(h.labels('kafka'), kafka, 'the same cell for the same labels');
  assert.throws(() => h.observe(1), /has labels: sink/);
  assert.throws(() => h.labels(), /1 label values expected/);
  h.reset();
  r.reset();
  assert.match(await hot.metrics(), /y_seconds_count\{sink="kafka"\} 0\n/);
});

// While sluice waits for a sink at start (Kafka unreachable here), it is alive and says why it
// is not ready: /healthz is 200 from the very start, /readyz is 503 naming what it waits for.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitFor } from '../support/e2e-helpers.ts';
import { sluiceFor } from '../support/sluice-process.ts';
import { printLogsOnFailure, unique } from '../support/stack.ts';

test('/healthz answers from the very start; /readyz names the sink sluice is waiting for', { timeout: 60_000 }, async (t) => {
  printLogsOnFailure(t);
  const p = unique('boot');
  const sluice = sluiceFor(t, {
    rules: { subscriptions: [{ filter: `${p}/#`, qos: 1 }], routes: [{ name: 'r', match: `${p}/#`, payload: 'raw', kafka: { topic: `${p}.t` } }] },
    config: { kafka: { brokers: ['127.0.0.1:1'] } },
  });
  void sluice.start(2_000).catch(() => {}); // it never gets to subscribe: Kafka is not there
  let ready = { status: 0, body: '' };
  await waitFor(
    '/readyz to say what it waits for',
    async () => {
      ready = await sluice.ready().catch(() => ({ status: 0, body: '' }));
      return ready.status === 503 && ready.body.includes('starting: kafka:');
    },
    30_000,
  );
  const health = await sluice.healthz();
  assert.equal(health, 200, 'alive while waiting');
  assert.match(ready.body, /^starting: kafka: /m);
  assert.match(ready.body, /^starting: mqtt: not connected yet \(the sinks start first\)$/m, 'not ready before it even subscribes');
  assert.match(ready.body, /^starting: kafka: cannot connect to Kafka at 127\.0\.0\.1:1: /m, "the address it tries, not only the client's words");
  const m = await sluice.metrics(['sluice_sink_healthy']);
  assert.equal(m.get('sluice_sink_healthy{sink="kafka"}'), 0, 'a sink that cannot start is not healthy');
  assert.equal(m.get('sluice_sink_healthy{sink="dead-letter"}'), 0, 'nor is the dead letter waiting behind it on the same Kafka');
});

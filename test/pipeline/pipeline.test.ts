// The pipeline's promises without a broker: the real router, sinks' compilers, batch queues,
// fan-out and ack window, on an in-memory session (test/support/fake-session.ts) and in-memory
// sinks. Acks leave in arrival order; never more than Receive Maximum in flight; the slowest
// output decides; a rejection becomes one dead letter and the ack waits for it; a dead letter
// that cannot be written, or a fatal sink, holds the ack; shutdown reports what it left.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { Registry } from 'prom-client';
import { compileRules } from '../../src/config/load.ts';
import { rulesFile } from '../../src/config/rules-schema.ts';
import { createMetrics } from '../../src/observability/metrics.ts';
import { BatchQueue } from '../../src/pipeline/batch-queue.ts';
import { Pipeline } from '../../src/pipeline/pipeline.ts';
import type { Routed, RuleSet } from '../../src/router/rule-set.ts';
import type { KafkaRecord } from '../../src/sinks/kafka/kafka-record.ts';
import type { DeadLetterItem } from '../../src/sinks/sink.ts';
import { FakeSession } from '../support/fake-session.ts';
import { failForGood, failRetriably, MemorySink } from '../support/memory-sink.ts';

const rules = compileRules(
  rulesFile.parse({
    subscriptions: [{ filter: '#', qos: 1 }],
    routes: [
      { name: 'slow', match: 'slow/{deviceId}', payload: 'raw', kafka: { topic: 'slow' } },
      { name: 'fast', match: 'fast/{deviceId}', payload: 'raw', file: true },
      { name: 'both', match: 'both/{deviceId}', kafka: { topic: 'both' }, file: true },
      { name: 'commands', match: 'cmd/{deviceId}', payload: 'raw', audit: true, kafka: { topic: 'commands' } },
      { name: 'audited', match: 'audited/{deviceId}', audit: true, kafka: { topic: 'audited', key: '{deviceId}', timestamp: '$.ts' } },
    ],
  }),
);

function build(receiveMaximum = 10, onRouted?: (routed: Routed) => void, lingerMs = 0) {
  const log = pino({ level: 'silent' });
  const metrics = createMetrics(new Registry(), { defaultMetrics: false });
  const sinks = {
    kafka: new MemorySink<KafkaRecord>('kafka'),
    file: new MemorySink<string>('file'),
    audit: new MemorySink('audit'),
    deadLetter: new MemorySink<DeadLetterItem>('dead-letter'),
  };
  const queues = new Map(
    Object.values(sinks).map((s) => [s.name, new BatchQueue<unknown>(s, { maxItems: 100, maxBytes: 1e9, lingerMs }, { minMs: 1, maxMs: 5 }, log, metrics)]),
  );
  const fatal: Error[] = [];
  const watched = onRouted && ({ route: (...args: Parameters<RuleSet['route']>) => tap(rules.route(...args), onRouted) } as RuleSet);
  const pipeline = new Pipeline({
    rules: () => watched ?? rules,
    queues,
    deadLetters: queues.get('dead-letter') as BatchQueue<DeadLetterItem>,
    metrics,
    log,
    onFatal: (err) => fatal.push(err),
  });
  const session = new FakeSession(receiveMaximum);
  session.start(
    (message, slot) => pipeline.dispatch(message, slot, session.clientId),
    () => pipeline.windowFull(),
  );
  const publish = (topic: string, payload = '{"v":1}') => session.publish({ topic, payload: Buffer.from(payload), qos: 1, retain: false, properties: {} });
  const counter = async (name: string, labels: Record<string, string> = {}) =>
    (await metrics.registry.getSingleMetric(name)?.get())?.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value ?? 0;
  return { sinks, queues, session, publish, fatal, counter };
}

const settle = () => sleep(20);

function tap<T>(value: T, see: (value: T) => void): T {
  see(value);
  return value;
}

test('acks leave in arrival order, whichever output finishes first', async () => {
  const { sinks, session, publish } = build();
  sinks.kafka.holding = true;
  const first = publish('slow/d1');
  const later = [publish('fast/d2'), publish('fast/d3')];
  await settle();
  assert.equal(sinks.file.written.length, 2, 'the fast outputs are durable');
  assert.deepEqual(session.acks, [], 'but their acks wait behind the first message');
  sinks.kafka.release();
  await settle();
  assert.deepEqual(session.acks, [first, ...later]);
});

test('never more than Receive Maximum in flight: the session stops taking messages while the window is full', async () => {
  const { sinks, session, publish } = build(5);
  sinks.kafka.holding = true;
  const ids = Array.from({ length: 50 }, (_, i) => publish(`slow/d${i}`));
  await settle();
  assert.equal(session.window.inFlight, 5);
  assert.equal(session.queued, 45, 'the rest waits at the broker');
  sinks.kafka.release();
  for (let i = 0; i < 50 && session.acks.length < 50; i++) await settle();
  assert.deepEqual(session.acks, ids);
  assert.equal(session.window.highWater, 5);
});

test('a full window writes the batches waiting out their linger: nothing else can arrive to fill them', async () => {
  const { sinks, queues, session, publish } = build(4, undefined, 3_600_000);
  try {
    publish('fast/d0');
    publish('fast/d1');
    await settle();
    assert.equal(sinks.file.written.length, 0, 'with room in the window, a part batch waits for its linger');
    const ids = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => publish(`fast/d${i + 2}`));
    for (let i = 0; i < 50 && session.acks.length < 12; i++) await settle();
    assert.equal(session.acks.length, 12, 'every message acked, though the linger is an hour');
    assert.deepEqual(session.acks.slice(2), ids);
    assert.deepEqual(sinks.file.written.length, 12, 'each batch went when the window filled');
    assert.equal(session.window.highWater, 4);
  } finally {
    for (const q of queues.values()) q.close();
  }
});

test('fan-out: the slowest output decides', async () => {
  const { sinks, session, publish } = build();
  sinks.kafka.holding = true;
  publish('both/d1');
  await settle();
  assert.equal(sinks.file.written.length, 1);
  assert.deepEqual(session.acks, []);
  sinks.kafka.release();
  await settle();
  assert.equal(session.acks.length, 1);
});

test('a rejected output becomes one dead letter with its reason; the ack waits for the dead letter', async () => {
  const { sinks, session, publish, counter } = build();
  sinks.kafka.behaviour = (batch) => ({ rejected: batch.map((_, index) => ({ index, reason: 'rejected-by-kafka', error: 'MESSAGE_TOO_LARGE' })) });
  sinks.deadLetter.holding = true;
  publish('both/d1');
  await settle();
  assert.equal(sinks.file.written.length, 1, 'the other output stands');
  assert.deepEqual(session.acks, [], 'not acked before the dead letter is durable');
  sinks.deadLetter.release();
  await settle();
  assert.equal(session.acks.length, 1);
  const [letter] = sinks.deadLetter.written;
  assert.deepEqual(letter?.refusals, [{ reason: 'rejected-by-kafka', stage: 'write', sink: 'kafka', error: 'MESSAGE_TOO_LARGE' }]);
  assert.equal(await counter('sluice_dead_letters_total', { reason: 'rejected-by-kafka' }), 1);
});

test('what the router refuses is dead-lettered and nothing is written for the outputs that read the payload', async () => {
  const { sinks, session, publish } = build();
  publish('both/d1', '{"not json');
  publish('nowhere/at/all');
  await settle();
  assert.deepEqual([sinks.kafka.written.length, sinks.file.written.length], [0, 0]);
  assert.deepEqual(
    sinks.deadLetter.written.map((d) => d.refusals.map((r) => r.reason)),
    [['invalid-json'], ['unmatched']],
  );
  assert.equal(session.acks.length, 2);
});

test('a dead letter the dead-letter sink refuses holds the ack: never acknowledged and lost', async () => {
  const { sinks, session, publish, counter } = build();
  sinks.deadLetter.behaviour = (batch) => ({ rejected: batch.map((_, index) => ({ index, reason: 'dead-letter-refused', error: 'too large' })) });
  publish('nowhere');
  publish('fast/d1');
  await settle();
  assert.deepEqual(session.acks, [], 'the refused one holds the window, and so the one behind it');
  assert.equal(session.window.inFlight, 2);
  assert.equal(await counter('sluice_dead_letters_total', { reason: 'dead-letter-refused' }), 1);
});

test('a retriable failure is retried until durable; the queue reports unhealthy meanwhile', async () => {
  const { sinks, queues, session, publish } = build();
  sinks.kafka.behaviour = failRetriably('kafka');
  publish('slow/d1');
  await settle();
  assert.equal(queues.get('kafka')?.healthy, false);
  assert.deepEqual(session.acks, []);
  sinks.kafka.behaviour = () => ({ rejected: [] });
  for (let i = 0; i < 20 && session.acks.length === 0; i++) await settle();
  assert.equal(session.acks.length, 1);
  assert.equal(queues.get('kafka')?.healthy, true);
});

test('a fatal sink holds every ack that needs it and stops the worker once', async () => {
  const { sinks, session, publish, fatal } = build();
  sinks.file.behaviour = failForGood('file');
  publish('fast/d1');
  publish('fast/d2');
  publish('slow/d3');
  await settle();
  await settle();
  assert.equal(fatal.length, 1, 'onFatal once');
  assert.equal(sinks.file.writes, 1, 'never retried');
  assert.deepEqual(session.acks, [], 'nothing acked behind a held message');
  assert.equal(sinks.kafka.written.length, 1, 'other sinks still write (their acks wait in order)');
});

test("the audit record goes first and its sequence number rides on to the route's other outputs", async () => {
  const { sinks, session, publish } = build();
  sinks.audit.holding = true;
  sinks.audit.behaviour = (batch) => ({ rejected: [], annotations: batch.map((_, i) => ({ 'sluice-audit-seq': String(41 + i) })) });
  publish('cmd/valve-1', 'open');
  await settle();
  assert.equal(sinks.kafka.written.length, 0, 'nothing goes to Kafka before the record is durable');
  sinks.audit.release();
  await settle();
  assert.equal(sinks.kafka.written[0]?.headers['sluice-audit-seq'], '41');
  assert.equal(session.acks.length, 1);
});

test('a message waiting for its sinks holds its bytes, not its parse: the decoded payload and the levels are let go once every output is encoded, after phase 1', async () => {
  const routed: Routed[] = [];
  const { sinks, session, publish } = build(10, (r) => routed.push(r));
  sinks.audit.holding = true;
  sinks.kafka.holding = true;
  publish('audited/valve-7', '{"ts":1764700000000,"open":true}');
  await settle();
  const match = routed[0]?.matches[0];
  assert.ok(match, 'routed');
  // the members its outputs read (the Kafka timestamp's), kept while the audit record (phase 0) is being written: phase 1 reads them
  assert.deepEqual(match.payload, { ts: 1764700000000 }, 'kept while the audit record (phase 0) is being written: phase 1 reads it');
  assert.equal(match.levels.deviceId, 'valve-7');
  sinks.audit.release();
  await settle();
  assert.equal(sinks.kafka.written.length, 0, 'Kafka has not answered');
  assert.equal(match.payload, undefined, 'let go once the Kafka record is encoded');
  assert.deepEqual(match.levels, {});
  sinks.kafka.release();
  await settle();
  const record = sinks.kafka.written[0];
  assert.equal(record?.key, 'valve-7', 'the key from the levels');
  assert.equal(record?.timestamp, 1764700000000, 'the time from the payload');
  assert.equal(session.acks.length, 1);
});

test('shutdown: what is durable is acked; what is not is reported as unsettled and stays unacked', async () => {
  const clean = build();
  clean.publish('fast/d1');
  assert.equal(await clean.session.stop(1000), 0);
  assert.equal(clean.session.acks.length, 1);

  const stuck = build();
  stuck.sinks.kafka.holding = true;
  stuck.publish('slow/d1');
  stuck.publish('fast/d2');
  assert.equal(await stuck.session.stop(50), 2);
  assert.deepEqual(stuck.session.acks, []);
  stuck.sinks.kafka.release();
});

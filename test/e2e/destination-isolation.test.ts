// One bad destination never stops the worker: a deleted topic (under load, idle, or the
// dead-letter topic itself), a device-driven topic template, an oversized record among good
// ones. Good traffic keeps flowing and being acknowledged; nothing good is lost; the fault is
// visible (/readyz names it) and heals by itself when its cause is gone.
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ackStall } from '../support/ack-stall.ts';
import { type KafkaRecordSeen, publishNumbered, readTopic, seqCounts, waitFor } from '../support/e2e-helpers.ts';
import { sluiceFor } from '../support/sluice-process.ts';
import { kafka, mqttClient, printLogsOnFailure, unique } from '../support/stack.ts';

/**
 * An admin client for one test; topics handed to `drop` are deleted before it disconnects (a
 * deleteTopics after disconnect() reconnects kafkajs and leaves the test file hanging).
 */
async function admin(t: TestContext) {
  const a = kafka().admin();
  await a.connect();
  const toDrop: string[] = [];
  t.after(async () => {
    if (toDrop.length > 0) await a.deleteTopics({ topics: toDrop }).catch(() => {});
    await a.disconnect();
  });
  return Object.assign(a, { drop: (topics: readonly string[]) => void toDrop.push(...topics) });
}

const byReason = (records: readonly KafkaRecordSeen[], reason: string) => records.filter((r) => r.headers['sluice-reason'] === reason);

test("a route's topic deleted under load: the other topic flows, the deleted one is recreated and used again, 0 lost", { timeout: 180_000 }, async (t) => {
  printLogsOnFailure(t);
  const p = unique('del');
  const stuckAfterMs = 5_000;
  const sluice = sluiceFor(t, {
    rules: {
      subscriptions: [{ filter: `${p}/#`, qos: 1 }],
      routes: [
        { name: 'good', match: `${p}/good/{deviceId}`, kafka: { topic: `${p}.good` } },
        { name: 'victim', match: `${p}/victim/{deviceId}`, kafka: { topic: `${p}.victim` } },
      ],
    },
    config: { kafka: { stuckAfterMs } },
  });
  await sluice.start();
  const pub = await mqttClient(t);
  await publishNumbered(pub, 100, (s) => `${p}/${s % 2 ? 'good' : 'victim'}/d-${s % 10}`);
  const a = await admin(t);
  await waitFor('both topics', async () => (await a.listTopics()).filter((x) => x.startsWith(`${p}.`)).length === 2);
  const gaps = ackStall(sluice);
  const total = 6_000;
  const rate = 1_000;
  const publishStart = Date.now();
  const publishing = publishNumbered(pub, total, (s) => `${p}/${s % 2 ? 'good' : 'victim'}/d-${s % 10}`, { from: 100, ratePerSecond: rate });
  await sleep(1_500);
  const deletedAt = Date.now();
  await a.deleteTopics({ topics: [`${p}.victim`] });
  // what was written before the deletion went with the topic; a second later, what is published was surely not
  const publishedAfter = 100 + Math.ceil(((Date.now() - publishStart) / 1000 + 1) * rate);
  await publishing;
  let recreatedAfterMs = -1;
  await waitFor(
    'the victim topic recreated',
    async () => {
      const there = (await a.listTopics().catch(() => [] as string[])).includes(`${p}.victim`);
      if (there && recreatedAfterMs < 0) recreatedAfterMs = Date.now() - deletedAt;
      return there;
    },
    60_000,
  );
  await waitFor('everything acknowledged', async () => ((await sluice.metrics()).get('sluice_messages_acked_total') ?? 0) >= total + 100, 90_000);
  const longestGap = await gaps.stop();

  const wanted = (odd: boolean) => Array.from({ length: total + 100 }, (_, s) => s).filter((s) => (s % 2 === 1) === odd);
  const good = seqCounts(await readTopic(t, `${p}.good`, (r) => seqCounts(r).size >= wanted(true).length));
  assert.deepEqual(
    wanted(true).filter((s) => !good.has(s)),
    [],
    'every good message is in its topic',
  );
  const victim = seqCounts(await readTopic(t, `${p}.victim`, () => false, 20_000, 4_000));
  const dead = await readTopic(t, sluice.deadLetterTopic, () => false, 20_000, 4_000);
  const deadSeqs = new Set(dead.map((r) => (JSON.parse(r.value.toString()) as { seq: number }).seq));
  const afterDeletion = wanted(false).filter((s) => s >= publishedAfter); // published once the topic was gone
  const lost = afterDeletion.filter((s) => !victim.has(s) && !deadSeqs.has(s));
  t.diagnostic(
    `topic recreated ${recreatedAfterMs} ms after deletion; longest ack gap ${longestGap} ms (stuckAfterMs ${stuckAfterMs}); victim messages after deletion: ${afterDeletion.filter((s) => victim.has(s)).length} in the recreated topic, ${afterDeletion.filter((s) => deadSeqs.has(s)).length} dead-lettered (${[...new Set(dead.map((r) => r.headers['sluice-reason']))].join(', ') || 'none'})`,
  );
  assert.deepEqual(lost, [], 'a victim message published after the deletion is in the recreated topic or dead-lettered, never lost');
  assert.ok(victim.size > 0, 'the recreated topic is used again, without a restart');
  assert.ok(longestGap < stuckAfterMs + 5_000, `acks never stopped longer than the stuck bound (+5 s): ${longestGap} ms`);
  assert.equal((await sluice.ready()).status, 200, 'ready again');
});

test('a topic with no more traffic deleted: the other topics are not held up', { timeout: 120_000 }, async (t) => {
  printLogsOnFailure(t);
  const p = unique('idle');
  const sluice = sluiceFor(t, {
    rules: {
      subscriptions: [{ filter: `${p}/#`, qos: 1 }],
      routes: [
        { name: 'good', match: `${p}/good/{deviceId}`, kafka: { topic: `${p}.good` } },
        { name: 'idle', match: `${p}/idle/{deviceId}`, kafka: { topic: `${p}.idle` } },
      ],
    },
  });
  await sluice.start();
  const pub = await mqttClient(t);
  await publishNumbered(pub, 200, (s) => `${p}/${s % 2 ? 'good' : 'idle'}/d-${s % 10}`);
  await waitFor('both written', async () => ((await sluice.metrics()).get('sluice_messages_acked_total') ?? 0) >= 200);
  await (await admin(t)).deleteTopics({ topics: [`${p}.idle`] });
  await sleep(500);
  const started = Date.now();
  await publishNumbered(pub, 2_000, (s) => `${p}/good/d-${s % 10}`, { from: 1_000 });
  await waitFor('every good message acked', async () => ((await sluice.metrics()).get('sluice_messages_acked_total') ?? 0) >= 2_200, 60_000);
  const tookMs = Date.now() - started;
  t.diagnostic(`2,000 good messages acked ${tookMs} ms after the idle topic was deleted`);
  const good = seqCounts(await readTopic(t, `${p}.good`, (r) => seqCounts(r).size >= 2_100));
  assert.equal([...good.keys()].filter((s) => s >= 1_000).length, 2_000);
  assert.ok(tookMs < 15_000, `not held up by the deleted topic (${tookMs} ms)`);
});

test('a deleted topic creation may not bring back: its records are dead-lettered, /readyz names it, and is ready a minute after the last', {
  timeout: 180_000,
}, async (t) => {
  printLogsOnFailure(t);
  const p = unique('gone');
  const a = await admin(t);
  const sluice = sluiceFor(t, {
    rules: {
      subscriptions: [{ filter: `${p}/#`, qos: 1 }],
      routes: [
        { name: 'good', match: `${p}/good/{deviceId}`, kafka: { topic: `${p}.good` } },
        { name: 'gone', match: `${p}/gone/{deviceId}`, kafka: { topic: `${p}.gone` } },
      ],
    },
    config: { kafka: { createTopics: { enabled: false }, stuckAfterMs: 3_000 } },
  });
  await a.createTopics({
    topics: [`${p}.good`, `${p}.gone`, sluice.deadLetterTopic].map((topic) => ({ topic, numPartitions: 1 })),
    waitForLeaders: true,
  });
  a.drop([`${p}.good`, sluice.deadLetterTopic]);
  await sluice.start();
  const pub = await mqttClient(t);
  await publishNumbered(pub, 100, (s) => `${p}/${s % 2 ? 'good' : 'gone'}/d-${s % 10}`);
  await waitFor('both written', async () => ((await sluice.metrics()).get('sluice_messages_acked_total') ?? 0) >= 100);
  await a.deleteTopics({ topics: [`${p}.gone`] });
  await sleep(500);
  await publishNumbered(pub, 100, (s) => `${p}/${s % 2 ? 'good' : 'gone'}/d-${s % 10}`, { from: 100 });
  let named = '';
  const lastPublished = Date.now();
  await waitFor('everything acked', async () => ((await sluice.metrics()).get('sluice_messages_acked_total') ?? 0) >= 200, 60_000);
  const ackedAfterMs = Date.now() - lastPublished;
  const readyz = await sluice.ready();
  if (readyz.status === 503) named = readyz.body.trim();
  const dead = await readTopic(t, sluice.deadLetterTopic, (r) => r.length >= 50);
  const good = seqCounts(await readTopic(t, `${p}.good`, (r) => seqCounts(r).size >= 100));
  assert.equal(good.size, 100, 'every good message written');
  const deadSeqs = new Set(dead.map((r) => (JSON.parse(r.value.toString()) as { seq: number }).seq));
  assert.deepEqual(
    Array.from({ length: 50 }, (_, i) => 100 + 2 * i).filter((s) => !deadSeqs.has(s)),
    [],
    'every message for the deleted topic dead-lettered, none lost',
  );
  // no more records ask for the topic: /readyz lets it go a minute after the last did (not at a restart)
  let readyAfterMs = -1;
  await waitFor('ready again', async () => (await sluice.ready()).status === 200 && (readyAfterMs = Date.now() - lastPublished) > 0, 100_000);
  t.diagnostic(
    `acked ${ackedAfterMs} ms after the last publish; readyz then: ${named.split('\n').join(' | ') || '200'}; dead letters ${[...new Set(dead.map((r) => r.headers['sluice-reason']))].join(', ')}; ready again ${readyAfterMs} ms after the last publish`,
  );
  assert.ok(named.includes(`${p}.gone`), `/readyz named the deleted topic while it failed: ${named}`);
});

test('the dead-letter topic deleted: nothing more is acknowledged (backpressure), /readyz names it, and all flows once it is back', {
  timeout: 180_000,
}, async (t) => {
  printLogsOnFailure(t);
  const p = unique('dlqdel');
  const a = await admin(t);
  const sluice = sluiceFor(t, {
    rules: { subscriptions: [{ filter: `${p}/#`, qos: 1 }], routes: [{ name: 'good', match: `${p}/good/{deviceId}`, kafka: { topic: `${p}.good` } }] },
    config: { kafka: { createTopics: { enabled: false } }, http: { maxUnackedAgeMs: 2_000 } },
  });
  await a.createTopics({
    topics: [
      { topic: `${p}.good`, numPartitions: 3 },
      { topic: sluice.deadLetterTopic, numPartitions: 1 },
    ],
    waitForLeaders: true,
  });
  a.drop([`${p}.good`, sluice.deadLetterTopic]);
  await sluice.start();
  const pub = await mqttClient(t);
  await a.deleteTopics({ topics: [sluice.deadLetterTopic] });
  await sleep(500);
  for (let i = 0; i < 20; i++) await pub.publishAsync(`${p}/unrouted/x`, `{"seq": ${10_000 + i}}`, { qos: 1 });
  await publishNumbered(pub, 200, (s) => `${p}/good/d-${s % 10}`);
  let ready = { status: 200, body: '' };
  await waitFor(
    '/readyz to name the dead-letter topic',
    async () => (ready = await sluice.ready()).status === 503 && ready.body.includes(sluice.deadLetterTopic),
    30_000,
  );
  t.diagnostic(`readyz: ${ready.body.trim().split('\n').join(' | ')}`);
  // long enough for the retries to find the topic missing (creation is off): still held, not refused
  await sleep(3_000);
  const m = await sluice.metrics();
  assert.equal(
    m.get('sluice_dead_letters_total{reason="dead-letter-refused"}') ?? 0,
    0,
    'a missing dead-letter topic is waited for, never taken for a too-large record',
  );
  assert.ok((m.get('sluice_messages_acked_total') ?? 0) < 220, 'the unwritable dead letters hold the window: not everything is acked');
  await a.createTopics({ topics: [{ topic: sluice.deadLetterTopic, numPartitions: 1 }], waitForLeaders: true });
  const recreatedAt = Date.now();
  await waitFor('everything acked once the topic is back', async () => ((await sluice.metrics()).get('sluice_messages_acked_total') ?? 0) >= 220, 60_000);
  t.diagnostic(`everything acked ${Date.now() - recreatedAt} ms after the dead-letter topic was recreated by hand`);
  const dead = await readTopic(t, sluice.deadLetterTopic, (r) => r.length >= 20);
  assert.equal(byReason(dead, 'unmatched').length, 20, 'every dead letter written, none lost');
  const good = seqCounts(await readTopic(t, `${p}.good`, (r) => seqCounts(r).size >= 200));
  assert.equal(good.size, 200);
  await waitFor('ready again', async () => (await sluice.ready()).status === 200, 30_000);
});

test("a device-driven topic template (5,000 distinct values): good traffic flows, the template's budget holds across a restart, readiness shows the route", {
  timeout: 240_000,
}, async (t) => {
  printLogsOnFailure(t);
  const p = unique('dyn');
  const maxTopics = 40;
  const sluice = sluiceFor(t, {
    rules: {
      subscriptions: [{ filter: `${p}/#`, qos: 1 }],
      routes: [
        { name: 'good', match: `${p}/good/{deviceId}`, kafka: { topic: `${p}.good` } },
        { name: 'dyn', match: `${p}/dyn/{deviceId}`, payload: 'raw', kafka: { topic: `${p}.dyn.{deviceId}` } },
      ],
    },
    config: { kafka: { maxTopics, createTopics: { enabled: true, partitions: 1, replicationFactor: 1 } }, http: { maxUnackedAgeMs: 1_000 } },
  });
  await sluice.start();
  const pub = await mqttClient(t);
  const gaps = ackStall(sluice);
  let sawRoute = '';
  const watching = (async () => {
    for (let i = 0; i < 200 && !sawRoute; i++) {
      const r = await sluice.ready().catch(() => ({ status: 0, body: '' }));
      if (r.status === 503 && r.body.includes('route dyn')) sawRoute = r.body.split('\n').find((l) => l.includes('route dyn')) ?? '';
      await sleep(100);
    }
  })();
  const started = Date.now();
  await Promise.all([
    publishNumbered(pub, 5_000, (s) => `${p}/dyn/dev-${s}`, { payload: (s) => `{"seq": ${s}}`, ratePerSecond: 1_000 }),
    publishNumbered(pub, 2_000, (s) => `${p}/good/d-${s % 10}`, { from: 100_000, ratePerSecond: 400 }),
  ]);
  await waitFor('every message acked', async () => ((await sluice.metrics()).get('sluice_messages_acked_total') ?? 0) >= 7_000, 120_000);
  const tookMs = Date.now() - started;
  const longestGap = await gaps.stop();
  await watching;
  const good = seqCounts(await readTopic(t, `${p}.good`, (r) => seqCounts(r).size >= 2_000));
  assert.equal(good.size, 2_000, 'every good message arrived');
  const a = await admin(t);
  const dynTopics = (await a.listTopics()).filter((x) => x.startsWith(`${p}.dyn.`));
  a.drop(dynTopics);
  const dead = await readTopic(t, sluice.deadLetterTopic, (r) => r.length >= 5_000 - maxTopics);
  const refused = byReason(dead, 'kafka-topic-missing');
  t.diagnostic(
    `7,000 acked in ${tookMs} ms; longest ack gap ${longestGap} ms; ${dynTopics.length} topics created; ${refused.length} dead-lettered; readyz said: ${sawRoute || '(never 503)'}`,
  );
  assert.equal(dynTopics.length, maxTopics, 'the budget holds');
  const withTopic = new Set(dynTopics.map((x) => Number(x.split('.dev-')[1])));
  const refusedSeqs = new Set(refused.map((r) => (JSON.parse(r.value.toString()) as { seq: number }).seq));
  assert.equal(refusedSeqs.size, 5_000 - maxTopics, 'every other device value dead-lettered (at least once)');
  assert.equal(new Set([...withTopic, ...refusedSeqs]).size, 5_000, 'none lost: each value has its topic or its dead letter');
  assert.match(
    refused[0]?.headers['sluice-error'] ?? '',
    new RegExp(`the template "${p}.dyn.\\{deviceId\\}" has used its kafka.maxTopics budget \\(${maxTopics} of ${maxTopics} topics\\)`),
  );
  assert.ok(longestGap < 10_000, `good traffic was never held more than 10 s (${longestGap} ms)`);
  assert.match(sawRoute, /^route dyn: oldest unacknowledged message is \d+ s old/, 'readiness named the stuck route while its topics were being made');
  assert.ok((await sluice.metrics()).has('sluice_route_oldest_unacked_seconds{route="good"}'), 'the age gauge per route');

  // the budget is counted from the cluster's topics: a restart does not reset it
  await sluice.stop();
  await sluice.start();
  await publishNumbered(pub, 100, (s) => `${p}/dyn/late-${s}`, { payload: (s) => `{"seq": ${s}}` });
  await waitFor(
    'the late ones dead-lettered',
    async () =>
      byReason(await readTopic(t, sluice.deadLetterTopic, () => false, 10_000, 3_000), 'kafka-topic-missing').filter((r) => r.key?.includes('/dyn/late-'))
        .length >= 100,
    60_000,
  );
  assert.equal((await a.listTopics()).filter((x) => x.startsWith(`${p}.dyn.`)).length, maxTopics, 'no new topic after the restart');
});

test('an oversized record amid 200 good ones for several partitions: the 200 arrive, the big one is dead-lettered, the producer keeps working', {
  timeout: 120_000,
}, async (t) => {
  printLogsOnFailure(t);
  const p = unique('big');
  const sluice = sluiceFor(t, {
    rules: { subscriptions: [{ filter: `${p}/#`, qos: 1 }], routes: [{ name: 'raw', match: `${p}/{deviceId}`, payload: 'raw', kafka: { topic: `${p}.raw` } }] },
    config: { kafka: { batch: { lingerMs: 50 } } },
  });
  await sluice.start();
  const pub = await mqttClient(t);
  await publishNumbered(pub, 5, (s) => `${p}/d-${s}`); // the topic exists before the test batch
  await waitFor('the topic', async () => ((await sluice.metrics()).get('sluice_messages_acked_total') ?? 0) >= 5);
  const big = Buffer.alloc(1_500_000, 0x7a);
  const sends: Array<Promise<unknown>> = [];
  for (let s = 100; s < 200; s++) sends.push(pub.publishAsync(`${p}/d-${s % 7}`, JSON.stringify({ seq: s }), { qos: 1 }));
  sends.push(pub.publishAsync(`${p}/d-big`, big, { qos: 1 }));
  for (let s = 200; s < 300; s++) sends.push(pub.publishAsync(`${p}/d-${s % 7}`, JSON.stringify({ seq: s }), { qos: 1 }));
  await Promise.all(sends);
  await waitFor('all acked', async () => ((await sluice.metrics()).get('sluice_messages_acked_total') ?? 0) >= 206, 60_000);
  await publishNumbered(pub, 50, (s) => `${p}/d-${s % 7}`, { from: 300 });
  await waitFor('the next 50 acked', async () => ((await sluice.metrics()).get('sluice_messages_acked_total') ?? 0) >= 256, 30_000);
  const records = await readTopic(t, `${p}.raw`, (r) => seqCounts(r).size >= 255);
  const seqs = seqCounts(records);
  assert.deepEqual(
    Array.from({ length: 250 }, (_, i) => 100 + i).filter((s) => !seqs.has(s)),
    [],
    'the 200 around it and the 50 after arrive',
  );
  const dead = await readTopic(t, sluice.deadLetterTopic, (r) => r.length >= 1);
  assert.equal(dead.length, 1);
  assert.equal(dead[0]?.headers['sluice-reason'], 'rejected-by-kafka');
  assert.equal(dead[0]?.headers['sluice-sink'], 'kafka', 'a write-stage dead letter names its sink');
  assert.equal(dead[0]?.headers['sluice-payload-bytes'], String(big.length), 'written shrunk: too big for the dead-letter topic too');
  assert.equal((await sluice.metrics()).get('sluice_sink_healthy{sink="kafka"}'), 1);
  await waitFor(
    'nothing left in flight (the gauge is sampled every 250 ms)',
    async () => (await sluice.metrics()).get('sluice_inflight_messages') === 0,
    5_000,
  );
});

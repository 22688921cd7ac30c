// Topic administration against the local Kafka: a name Kafka refuses because it collides with
// another topic is reported in Kafka's own words (it becomes the dead letter's reason); a
// template's budget is counted from the cluster's topics and refuses only that template's new
// topics, with no call to Kafka once it is used up.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import type { KafkaAdminPort, KafkaClientKind } from '../../src/sinks/kafka/client/kafka-client.ts';
import { TopicAdmin, templatePattern } from '../../src/sinks/kafka/topic-admin.ts';
import { testedKafkaClients, testKafkaClient } from '../support/kafka-clients.ts';
import { kafka, printLogsOnFailure, unique } from '../support/stack.ts';

/** The real port, with some of its calls changed. */
function changedPort(port: KafkaAdminPort, change: Partial<KafkaAdminPort>): KafkaAdminPort {
  return {
    connect: () => port.connect(),
    listTopics: () => port.listTopics(),
    hasTopic: (topic) => port.hasTopic(topic),
    createTopic: (topic, partitions, replicationFactor) => port.createTopic(topic, partitions, replicationFactor),
    disconnect: () => port.disconnect(),
    ...change,
  };
}

/** The sink's topic admin on one client's adapter, as the sink makes it, its port changed where a test says. */
async function topicAdmin(
  t: import('node:test').TestContext,
  client: KafkaClientKind,
  maxTopics: number,
  createTopics = true,
  change: (port: KafkaAdminPort) => Partial<KafkaAdminPort> = () => ({}),
  log: pino.Logger = pino({ level: 'silent' }),
): Promise<TopicAdmin> {
  const c = await testKafkaClient(client);
  const port = c.admin();
  t.after(() => port.disconnect());
  return new TopicAdmin(
    changedPort(port, change(port)),
    { createTopics: { enabled: createTopics, partitions: 1, replicationFactor: 1 }, maxTopics },
    log,
    (err) => c.reason(err),
  );
}

test('a template names its topics: literal parts as written, each level one or more legal characters', () => {
  const p = templatePattern('telemetry.{site}.x');
  assert.equal(p.test('telemetry.malta.x'), true);
  assert.equal(p.test('telemetry..x'), false);
  assert.equal(p.test('telemetryXmalta.x'), false, 'a dot in the template is a dot');
  assert.equal(p.test('other.malta.x'), false);
});

for (const client of testedKafkaClients) {
  test(`${client}: a colliding topic name is refused with Kafka's own reason; a template's budget refuses only its own new topics`, {
    timeout: 60_000,
  }, async (t) => {
    printLogsOnFailure(t);
    const u = unique('adm').replace('-', '');
    const admin = kafka().admin();
    await admin.connect();
    const created: string[] = [`c_${u}_x`];
    t.after(async () => {
      await admin.deleteTopics({ topics: created }).catch(() => {});
      await admin.disconnect();
    });
    // kafkajs' waitForLeaders gives up when a broker answers UNKNOWN_TOPIC_OR_PARTITION right
    // after the create (seen in CI); the topic exists then: wait for its leader ourselves
    await admin.createTopics({ topics: [{ topic: `c_${u}_x`, numPartitions: 1 }], waitForLeaders: true }).catch((err: { type?: string }) => {
      if (err.type !== 'UNKNOWN_TOPIC_OR_PARTITION') throw err;
    });
    for (let tries = 0; ; tries++) {
      const meta = await admin.fetchTopicMetadata({ topics: [`c_${u}_x`] }).catch(() => undefined);
      if (meta?.topics[0]?.partitions.every((p) => p.leader >= 0)) break;
      if (tries >= 100) throw new Error(`topic c_${u}_x has no leader after 10 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const topics = await topicAdmin(t, client, 2);
    topics.load();

    const collided = await topics.checked(`c.${u}.x`);
    assert.equal(collided.state, 'missing');
    const reason = collided.state === 'missing' ? collided.reason : '';
    assert.ok(reason.startsWith(`topic "c.${u}.x" could not be created: `), reason);
    assert.match(reason, /INVALID_TOPIC_EXCEPTION/, "Kafka's error code");
    assert.ok(reason.endsWith(`: it collides with existing topic c_${u}_x (Kafka treats "." and "_" in topic names as the same)`), reason);

    const template = `b.${u}.{deviceId}`;
    for (const d of ['d1', 'd2']) {
      assert.equal((await topics.checked(`b.${u}.${d}`, template)).state, 'ready');
      created.push(`b.${u}.${d}`);
    }
    const third = topics.state(`b.${u}.d3`, template);
    assert.deepEqual(
      third,
      { state: 'missing', reason: `topic "b.${u}.d3" not created: the template "${template}" has used its kafka.maxTopics budget (2 of 2 topics)` },
      'refused at once, without asking Kafka',
    );
    assert.equal((await topics.checked(`other.${u}`, `other.${u}`)).state, 'ready', 'a fixed topic of another route is not held to that budget');
    created.push(`other.${u}`);

    // a new admin (a restarted worker) counts the same budget from the cluster's topics, read
    // at its first check of a budgeted topic
    const again = await topicAdmin(t, client, 2);
    again.load();
    assert.equal(again.state(`b.${u}.d4`, template).state, 'pending', 'the list is not read at connect');
    assert.equal((await again.checked(`b.${u}.d4`, template)).state, 'missing');
    assert.equal(again.state(`b.${u}.d5`, template).state, 'missing', 'then refused at once');
  });

  test(`${client}: two topics of one template checked at once cannot both take its last place; a topic being created is never refused meanwhile`, {
    timeout: 60_000,
  }, async (t) => {
    printLogsOnFailure(t);
    const u = unique('race').replace('-', '');
    const admin = kafka().admin();
    await admin.connect();
    const template = `r.${u}.{deviceId}`;
    t.after(async () => {
      const mine = (await admin.listTopics()).filter((x) => x.startsWith(`r.${u}.`));
      await admin.deleteTopics({ topics: mine }).catch(() => {});
      await admin.disconnect();
    });
    const topics = await topicAdmin(t, client, 1);
    topics.load();
    assert.deepEqual([topics.state(`r.${u}.a`, template), topics.state(`r.${u}.b`, template)], [{ state: 'pending' }, { state: 'pending' }]);
    // asked again while both checks run (a deferred record retried): still waiting, not refused
    assert.deepEqual(topics.state(`r.${u}.a`, template), { state: 'pending' });
    const [a, b] = await Promise.all([topics.checked(`r.${u}.a`, template), topics.checked(`r.${u}.b`, template)]);
    assert.deepEqual([a.state, b.state].sort(), ['missing', 'ready'], 'one made, one refused by the budget');
    assert.equal((await admin.listTopics()).filter((x) => x.startsWith(`r.${u}.`)).length, 1, 'exactly one topic in the cluster');
  });

  test(`${client}: a fixed topic is looked up alone, not in the cluster's list; a template's topics are, once for many`, { timeout: 60_000 }, async (t) => {
    printLogsOnFailure(t);
    const u = unique('fix').replace('-', '');
    const admin = kafka().admin();
    await admin.connect();
    t.after(async () => {
      await admin.deleteTopics({ topics: [`f.${u}`] }).catch(() => {});
      await admin.disconnect();
    });
    await admin.createTopics({ topics: [{ topic: `f.${u}`, numPartitions: 1 }], waitForLeaders: true }).catch((err: { type?: string }) => {
      if (err.type !== 'UNKNOWN_TOPIC_OR_PARTITION') throw err;
    });
    // the real port, counting how often the cluster's whole list is read
    const lists = { count: 0 };
    const topics = await topicAdmin(t, client, 10, false, (port) => ({
      listTopics: () => {
        lists.count++;
        return port.listTopics();
      },
    }));
    topics.load();
    for (let tries = 0; (await topics.checked(`f.${u}`)).state !== 'ready'; tries++) {
      // a topic just made may take a moment to show in metadata: a check that found it missing waits 10 s
      if (tries >= 20) assert.fail(`f.${u} never found`);
      await new Promise((r) => setTimeout(r, 100));
      topics.forget(`f.${u}`);
    }
    const missing = await topics.checked(`nope.${u}`);
    assert.deepEqual(missing, { state: 'missing', reason: `topic "nope.${u}" does not exist (kafka.createTopics.enabled is off)` });
    // (the kafkajs adapter's own lookup reads the list inside the port: not counted here)
    assert.equal(lists.count, 0, 'no list read for fixed topics, at connect or after');
    const before = lists.count;
    const template = `t.${u}.{deviceId}`;
    const states = await Promise.all(['a', 'b', 'c'].map((d) => topics.checked(`t.${u}.${d}`, template)));
    assert.deepEqual(
      states.map((x) => x.state),
      ['missing', 'missing', 'missing'],
    );
    assert.ok(lists.count - before >= 1 && lists.count - before <= 2, `a template's three topics read the list ${lists.count - before} time(s)`);
  });
}

test('a fixed topic whose lookup fails does not hold up the writes that carry it (only a first lookup is waited for); the failure is kept for the dead letter and /readyz', {
  timeout: 60_000,
}, async (t) => {
  let asked = 0;
  const warnings: Array<{ topic?: string }> = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line) as { topic?: string }) });
  // the real port, but the cluster cannot describe this one topic: the first lookup fails, and
  // any later one never answers (a write that waited for it would wait out its whole bound)
  const topics = await topicAdmin(
    t,
    'platformatic',
    10,
    false,
    () => ({
      hasTopic: () => (asked++ === 0 ? Promise.reject(new Error('TOPIC_AUTHORIZATION_FAILED')) : new Promise<boolean>(() => {})),
    }),
    log,
  );
  topics.load();
  const bound = 60_000;
  const first = await Promise.race([topics.lookedUp(['denied'], bound).then(() => 'returned'), sleep(10_000).then(() => 'still waiting')]);
  assert.equal(first, 'returned', 'the first lookup is waited for until it fails');
  assert.equal(topics.state('denied').state, 'pending', 'a failed lookup leaves the topic pending (its records deferred, looked up again)');
  // kept for the dead letter's reason and /readyz, and warned about once (not at every retry)
  assert.match(topics.checkFailure('denied') ?? '', /TOPIC_AUTHORIZATION_FAILED/);
  assert.equal(topics.problems('kafka').length, 1);
  assert.match(topics.problems('kafka')[0] ?? '', /^kafka: topic denied cannot be looked up for \d+ s: .*TOPIC_AUTHORIZATION_FAILED/);
  assert.equal(warnings.filter((w) => w.topic === 'denied').length, 1, 'one warning');
  const later = await Promise.race([topics.lookedUp(['denied'], bound).then(() => 'returned'), sleep(10_000).then(() => 'still waiting')]);
  assert.equal(later, 'returned', 'a later write does not wait for the lookup again');
  const unanswered = await Promise.race([topics.lookedUp(['silent'], 300).then(() => 'returned'), sleep(10_000).then(() => 'still waiting')]);
  assert.equal(unanswered, 'returned', 'a first lookup that never answers is waited for only as long as the bound');
  assert.ok(asked >= 2);
});

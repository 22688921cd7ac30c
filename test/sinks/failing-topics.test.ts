// Why a deferred Kafka record was given up on (the dead letter's reason): Kafka's own words
// for a topic failing on its own, the lookup's failure for a topic that could not be looked
// up, else that the topic was not ready yet. And how long /readyz names a failing topic: while
// records ask for it, and a minute after the last.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { FailingTopics } from '../../src/sinks/kafka/failing-topics.ts';
import type { KafkaRecord } from '../../src/sinks/kafka/kafka-record.ts';
import { faultForgottenAfterMs, TopicFaults } from '../../src/sinks/kafka/topic-faults.ts';

const record = (topic: string): KafkaRecord => ({ topic, key: null, value: Buffer.from('{}'), headers: [], timestamp: 0 }) as unknown as KafkaRecord;

test("a given-up record's reason: the topic's own failure, else its lookup's, else not ready yet", () => {
  const failing = new FailingTopics(pino({ level: 'silent' }));
  failing.failed('broken', 'TOPIC_AUTHORIZATION_FAILED: not authorised to write');
  assert.equal(failing.giveUp(record('broken'), 'ignored'), 'topic broken: TOPIC_AUTHORIZATION_FAILED: not authorised to write');
  assert.equal(failing.giveUp(record('hidden'), 'TOPIC_AUTHORIZATION_FAILED'), 'topic hidden: not ready: its lookup fails: TOPIC_AUTHORIZATION_FAILED');
  assert.equal(failing.giveUp(record('new')), 'topic new: not ready (being checked or created)');
});

test('a failing topic no record asks for any more leaves /readyz a minute after it was last seen, not at a restart', () => {
  let now = 1_000_000;
  const failing = new FailingTopics(pino({ level: 'silent' }), new TopicFaults(() => now));
  const r = record('broken');
  failing.failed('broken', 'TOPIC_AUTHORIZATION_FAILED');
  failing.track([r], [0]);
  // its waiting record is retried (and fails again) while it waits: the fault stays, its age grows
  for (let i = 0; i < 10; i++) {
    now += 10_000;
    failing.failed('broken', 'TOPIC_AUTHORIZATION_FAILED');
  }
  assert.deepEqual(failing.problems('kafka'), ['kafka: topic broken failing for 100 s: TOPIC_AUTHORIZATION_FAILED']);
  // then it is dead-lettered, with the topic's own words, and nothing asks for the topic again
  assert.equal(failing.giveUp(r), 'topic broken: TOPIC_AUTHORIZATION_FAILED');
  failing.track([], []);
  now += faultForgottenAfterMs;
  assert.equal(failing.problems('kafka').length, 1, 'still named for a minute after it was last seen');
  assert.ok(failing.has('broken'));
  now += 1;
  assert.deepEqual(failing.problems('kafka'), []);
  assert.equal(failing.has('broken'), false, 'its next record goes with the others, not alone');
  // failing again later is a new fault, counted from then
  failing.failed('broken', 'UNKNOWN_TOPIC_OR_PARTITION');
  assert.deepEqual(failing.problems('kafka'), ['kafka: topic broken failing for 0 s: UNKNOWN_TOPIC_OR_PARTITION']);
  failing.recovered('broken');
  assert.deepEqual(failing.problems('kafka'), []);
});

test('of many failing topics, /readyz names the first five current ones, and forgets only the stale', () => {
  let now = 0;
  const faults = new TopicFaults(() => now);
  for (let i = 0; i < 8; i++) faults.seen(`t${i}`, 'NOT_LEADER');
  now += 30_000;
  for (let i = 0; i < 3; i++) faults.seen(`t${i}`, 'NOT_LEADER'); // seen again: kept
  now += faultForgottenAfterMs - 10_000;
  const lines = faults.lines((topic, seconds, reason) => `${topic} ${seconds} ${reason}`);
  assert.deepEqual(lines, ['t0 80 NOT_LEADER', 't1 80 NOT_LEADER', 't2 80 NOT_LEADER']);
  assert.equal(faults.size, 3, 'the five not seen for over a minute are dropped');
});

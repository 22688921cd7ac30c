// Why a deferred Kafka record was given up on (the dead letter's reason): Kafka's own words
// for a topic failing on its own, the lookup's failure for a topic that could not be looked
// up, else that the topic was not ready yet.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { FailingTopics } from '../../src/sinks/kafka/failing-topics.ts';
import type { KafkaRecord } from '../../src/sinks/kafka/kafka-record.ts';

const record = (topic: string): KafkaRecord => ({ topic, key: null, value: Buffer.from('{}'), headers: [], timestamp: 0 }) as unknown as KafkaRecord;

test("a given-up record's reason: the topic's own failure, else its lookup's, else not ready yet", () => {
  const failing = new FailingTopics(pino({ level: 'silent' }));
  failing.failed('broken', 'TOPIC_AUTHORIZATION_FAILED: not authorised to write');
  assert.equal(failing.giveUp(record('broken'), 'ignored'), 'topic broken: TOPIC_AUTHORIZATION_FAILED: not authorised to write');
  assert.equal(failing.giveUp(record('hidden'), 'TOPIC_AUTHORIZATION_FAILED'), 'topic hidden: not ready: its lookup fails: TOPIC_AUTHORIZATION_FAILED');
  assert.equal(failing.giveUp(record('new')), 'topic new: not ready (being checked or created)');
});

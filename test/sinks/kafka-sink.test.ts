// The Kafka sink against the local Kafka: the conformance suite (conformance.ts).
import type { TestContext } from 'node:test';
import pino from 'pino';
import { runningPid } from '../../deploy/local/daemon.ts';
import type { KafkaRecord } from '../../src/sinks/kafka/kafka-record.ts';
import { KafkaSink } from '../../src/sinks/kafka/kafka-sink.ts';
import { readTopic } from '../support/e2e-helpers.ts';
import { endpoints, kafkaTopic, stack } from '../support/stack.ts';
import { conformance, freeze } from './conformance.ts';

let context: { t: TestContext; topic: string } | undefined;

function sinkFor(t: TestContext, brokers: string[]): KafkaSink {
  const sink = new KafkaSink({
    brokers, clientId: 'conformance', ssl: false, compression: 'none',
    createTopics: { enabled: false, partitions: 1, replicationFactor: 1 }, maxTopics: 100, requestTimeoutMs: 3_000,
  }, pino({ level: 'silent' }));
  t.after(() => sink.close());
  return sink;
}

export async function readValues(t: TestContext, topic: string, expect: number): Promise<string[]> {
  const records = await readTopic(t, topic, (r) => r.length >= expect, 30_000, 5_000);
  return records.map((r) => r.value.toString());
}

conformance<KafkaRecord>({
  name: 'kafka',
  async create(t) {
    context = { t, topic: await kafkaTopic(t, 1) };
    return sinkFor(t, [endpoints.kafka]);
  },
  good: (n, from = 0) => Array.from({ length: n }, (_, i) => ({
    topic: context?.topic ?? 'unused', key: `d-${from + i}`, value: Buffer.from(JSON.stringify({ n: from + i })), headers: { 'mqtt-qos': '1' }, timestamp: String(Date.now()),
  })),
  async readBack(items) {
    const { t, topic } = context as NonNullable<typeof context>;
    const wanted = new Set(items.map((r) => r.value.toString()));
    const seen = await readValues(t, topic, wanted.size);
    return new Set(seen.filter((v) => wanted.has(v))).size;
  },
  bad: {
    // over the broker's message.max.bytes (1 MiB by default)
    item: () => ({ topic: context?.topic ?? 'unused', key: 'big', value: Buffer.alloc(1_500_000, 0x61), headers: {}, timestamp: String(Date.now()) }),
    reason: 'rejected-by-kafka',
  },
  unreachable: { sink: async (t) => sinkFor(t, ['127.0.0.1:1']) },
  fatal: { none: 'Kafka has no fatal failure: a broker that fails is retried until durable; a record it refuses is rejected' },
  outage: freeze(() => runningPid(stack.server('kafka').files)),
});

// The Kafka client adapters the tests run against: all three by default (rdkafka where
// node-rdkafka built), some with SLUICE_TEST_KAFKA_CLIENTS=platformatic,rdkafka (say). A client is made from a kafka section
// parsed by the real schema, so a test uses the settings a user would write.

import type { TestContext } from 'node:test';
import pino from 'pino';
import { createKafkaClient } from '../../src/sinks/kafka/client/create-client.ts';
import { type KafkaClient, type KafkaClientKind, kafkaClients } from '../../src/sinks/kafka/client/kafka-client.ts';
import { rdkafkaMissing as whyRdkafkaMissing } from '../../src/sinks/kafka/client/rdkafka-client.ts';
import { type KafkaConfig, kafkaConfig } from '../../src/sinks/kafka/config.ts';
import { kafkaSinkOptions } from '../../src/sinks/kafka/index.ts';
import { KafkaSink } from '../../src/sinks/kafka/kafka-sink.ts';
import { endpoints } from './stack.ts';

/** Why node-rdkafka (an optional dependency built at install) cannot be loaded here, if it cannot. */
export const rdkafkaMissing: string | undefined = whyRdkafkaMissing();

export const testedKafkaClients: readonly KafkaClientKind[] = (() => {
  const wanted = process.env.SLUICE_TEST_KAFKA_CLIENTS?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  // every client by default; rdkafka only where its build installed (the suites say when it did not)
  if (!wanted) return kafkaClients.filter((k) => k !== 'rdkafka' || rdkafkaMissing === undefined);
  if (wanted.includes('rdkafka') && rdkafkaMissing) throw new Error(`SLUICE_TEST_KAFKA_CLIENTS names rdkafka: ${rdkafkaMissing}`);
  for (const w of wanted)
    if (!(kafkaClients as readonly string[]).includes(w)) throw new Error(`SLUICE_TEST_KAFKA_CLIENTS: unknown client ${w} (${kafkaClients.join(', ')})`);
  return wanted as KafkaClientKind[];
})();

/** A kafka section as a user writes it (the local Kafka, short timeouts), parsed by the schema. */
export function kafkaSection(client: KafkaClientKind, section: Record<string, unknown> = {}): KafkaConfig {
  return kafkaConfig.parse({ client, brokers: [endpoints.kafka], requestTimeoutMs: 3_000, ...section });
}

export function testKafkaClient(client: KafkaClientKind, section: Record<string, unknown> = {}): Promise<KafkaClient> {
  return createKafkaClient(kafkaSection(client, section));
}

/** A Kafka sink on the given client, made as the plugin makes it (creation off, 100 topics per template), closed after the test. */
export async function testKafkaSink(
  t: TestContext,
  client: KafkaClientKind,
  options: { name?: string; brokers?: string[]; section?: Record<string, unknown>; isolate?: boolean } = {},
): Promise<KafkaSink> {
  const k = kafkaSection(client, {
    clientId: `test-${options.name ?? 'kafka'}`,
    createTopics: { enabled: false, partitions: 1, replicationFactor: 1 },
    maxTopics: 100,
    ...(options.brokers ? { brokers: options.brokers } : {}),
    ...options.section,
  });
  const sink = new KafkaSink(
    { ...(await kafkaSinkOptions(k, options.name ?? 'kafka')), ...(options.isolate === undefined ? {} : { isolate: options.isolate }) },
    pino({ level: 'silent' }),
  );
  t.after(() => sink.close());
  return sink;
}

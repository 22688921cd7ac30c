// The Kafka sink as a plugin: a route's `kafka:` part, the `kafka:` config section, and an
// idempotent producer behind a batch queue (one batch in flight per sink, the next filling).
// README.md beside this file is its documentation.
import { resolveSecret } from '../../secrets.ts';
import type { SinkPlugin } from '../plugin.ts';
import { createKafkaClient } from './client/create-client.ts';
import { kafkaConfig, type KafkaConfig } from './config.ts';
import { kafkaRoute, kafkaRouteCompiler } from './kafka-route.ts';
import { KafkaSink } from './kafka-sink.ts';
import { SchemaRegistryClient } from './schema-registry/registry.ts';

/** The producer settings of a kafka section (the dead-letter sink connects with the same). */
export async function kafkaSinkOptions(k: KafkaConfig, name: string): Promise<ConstructorParameters<typeof KafkaSink>[0]> {
  return {
    name,
    brokers: k.brokers,
    client: await createKafkaClient(k),
    createTopics: k.createTopics,
    maxTopics: k.maxTopics,
  };
}

export const kafkaPlugin: SinkPlugin = {
  name: 'kafka',
  route: { schema: kafkaRoute.optional().describe('write this route\'s messages to Kafka as records'), compiler: kafkaRouteCompiler },
  config: kafkaConfig,
  async create({ section, log }) {
    const k = section as KafkaConfig;
    const r = k.schemaRegistry;
    const schemaRegistry = r && new SchemaRegistryClient({
      url: r.url, username: r.username, password: r.password && resolveSecret(r.password, 'kafka.schemaRegistry.password'), timeoutMs: r.timeoutMs, register: r.register,
    });
    return {
      sink: new KafkaSink({ ...(await kafkaSinkOptions(k, 'kafka')), isolate: true, schemaRegistry }, log),
      batch: { maxItems: k.batch.maxMessages, maxBytes: k.batch.maxBytes, lingerMs: k.batch.lingerMs, stuckAfterMs: k.stuckAfterMs },
    };
  },
};

// The Kafka sink as a plugin: a route's `kafka:` part, the `kafka:` config section, and an
// idempotent producer behind a batch queue (one batch in flight per sink, the next filling).
// README.md beside this file is its documentation.
import { resolveSecret } from '../../secrets.ts';
import type { Probe, SinkPlugin } from '../plugin.ts';
import { within } from '../probe.ts';
import { createKafkaClient } from './client/create-client.ts';
import { type KafkaConfig, kafkaConfig } from './config.ts';
import type { KafkaRecord } from './kafka-record.ts';
import { kafkaRoute, kafkaRouteCompiler } from './kafka-route.ts';
import { KafkaSink } from './kafka-sink.ts';
import { SchemaRegistryClient } from './schema-registry/registry.ts';
import { ValueEncoder } from './schema-registry/value-encoder.ts';

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

/**
 * `sluice check --connect`: connects an admin client with the section's settings (TLS, SASL),
 * lists the topics, and says for each topic the rules name whether it is there. A missing
 * topic fails the check unless createTopics makes it; a template's topics cannot be listed.
 */
export async function probeKafka(k: KafkaConfig, topics: readonly string[], timeoutMs: number): Promise<Probe> {
  const where = `${k.brokers.join(',')}${k.tls ? ' (TLS)' : ''}${k.sasl ? ` (SASL ${k.sasl.mechanism})` : ''}`;
  let client: Awaited<ReturnType<typeof createKafkaClient>> | undefined;
  const admin = await (async () => {
    client = await createKafkaClient(k, { clientId: `${k.clientId}-check` });
    return client.admin();
  })().catch((err: unknown) => err as Error);
  if (admin instanceof Error) return { ok: false, detail: `${where}: ${admin.message}` };
  try {
    await within(admin.connect(), timeoutMs, 'connect');
    const existing = new Set(await within(admin.listTopics(), timeoutMs, 'list topics'));
    let ok = true;
    const found = topics.map((t) => {
      if (t.includes('{')) return `${t}: a template (${k.createTopics.enabled ? 'its topics are created on first use' : 'each of its topics must exist'})`;
      if (existing.has(t)) return `${t} present`;
      if (k.createTopics.enabled) return `${t} absent (created on first use)`;
      ok = false;
      return `${t} ABSENT (createTopics off: create it)`;
    });
    return { ok, detail: `${where}: connected, ${existing.size} topic(s)${found.length ? `; ${found.join('; ')}` : ''}` };
  } catch (err) {
    return { ok: false, detail: `${where}: ${client?.reason(err) ?? (err as Error).message}` };
  } finally {
    await within(admin.disconnect(), 2_000, 'disconnect').catch(() => {});
  }
}

export const kafkaPlugin: SinkPlugin = {
  name: 'kafka',
  route: { schema: kafkaRoute.optional().describe("write this route's messages to Kafka as records"), compiler: kafkaRouteCompiler },
  config: kafkaConfig,
  async create({ section, log }) {
    const k = section as KafkaConfig;
    const r = k.schemaRegistry;
    const schemaRegistry =
      r &&
      new SchemaRegistryClient({
        url: r.url,
        username: r.username,
        password: r.password && resolveSecret(r.password, 'kafka.schemaRegistry.password'),
        timeoutMs: r.timeoutMs,
        register: r.register,
      });
    return {
      sink: new KafkaSink({ ...(await kafkaSinkOptions(k, 'kafka')), isolate: true, schemaRegistry }, log),
      batch: { maxItems: k.batch.maxMessages, maxBytes: k.batch.maxBytes, lingerMs: k.batch.lingerMs, stuckAfterMs: k.stuckAfterMs },
    };
  },
  probe: ({ section, destinations, timeoutMs }) => probeKafka(section as KafkaConfig, destinations, timeoutMs),
  describe(item) {
    const r = item as KafkaRecord;
    // a schema-encoded body (the registry's header comes at write time): bytes, as base64
    const encoded = r.schema instanceof ValueEncoder;
    const text = (value: Buffer) => (encoded ? value.toString('base64') : value.toString('utf8'));
    return {
      ...r,
      value: text(r.value),
      ...(encoded && r.schema ? { schema: { format: r.schema.format, subject: r.schema.subject } } : {}),
      ...(r.more ? { more: r.more.map((e) => ({ ...e, value: text(e.value) })) } : {}),
    };
  },
};

// The kafkajs adapter (sluice's first client, unmaintained since 2023). Its idempotent
// producer is only safe with one request in flight, and it compresses with gzip only: the
// config refuses other settings for it, naming the client (config.ts).
import { type Admin, CompressionTypes, Kafka, logLevel, type Message, Partitioners, type PartitionMetadata, type Producer, type SASLOptions } from 'kafkajs';
import { monotonicMs } from '../../../clock.ts';
import type { KafkaRecord } from '../kafka-record.ts';
import {
  type BrokerFault,
  type KafkaAdminPort,
  type KafkaClient,
  type KafkaConnection,
  markWritten,
  type ProducerSession,
  type ProducerTuning,
  type TopicBatch,
} from './kafka-client.ts';

const codecs = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP } as const;

export class KafkajsClient implements KafkaClient {
  readonly kind = 'kafkajs';
  private readonly kafka: Kafka;
  private readonly tuning: ProducerTuning;

  constructor(connection: KafkaConnection, tuning: ProducerTuning) {
    this.tuning = tuning;
    const { tls, sasl } = connection;
    this.kafka = new Kafka({
      clientId: connection.clientId,
      brokers: [...connection.brokers],
      ssl: tls
        ? { ca: tls.ca, cert: tls.cert, key: tls.key, passphrase: tls.passphrase, servername: tls.servername, rejectUnauthorized: tls.rejectUnauthorized }
        : false,
      ...(sasl ? { sasl: saslOf(sasl) } : {}),
      logLevel: logLevel.NOTHING, // failures reach the sink as errors and are logged once by the queue
      requestTimeout: connection.requestTimeoutMs,
      connectionTimeout: connection.connectTimeoutMs,
      retry: { retries: 2, initialRetryTime: 200, maxRetryTime: 2_000 },
    });
  }

  session(purpose: 'main' | 'probe'): ProducerSession {
    const { idempotent, maxInFlightRequests } = this.tuning;
    const retry = purpose === 'probe' ? { retries: 1, initialRetryTime: 100, maxRetryTime: 300 } : undefined;
    return new KafkajsSession(
      () => this.kafka.producer({ idempotent, maxInFlightRequests, allowAutoTopicCreation: false, ...(retry ? { retry } : {}) }),
      this.tuning,
      this.partitions,
    );
  }

  /** Each topic's partitions, asked once a minute at most (and again after a failed send). */
  private readonly partitions = new TopicPartitions(() => this.kafka.admin());

  admin(): KafkaAdminPort {
    return new KafkajsAdmin(this.kafka.admin());
  }

  faults(err: unknown): BrokerFault[] {
    const found: BrokerFault[] = [];
    for (let e: unknown = err; e; e = (e as { originalError?: unknown }).originalError ?? (e as { cause?: unknown }).cause) {
      if (isProtocolError(e)) found.push({ code: e.type, text: `${e.type}: ${e.message}` });
    }
    return found;
  }

  answered(err: unknown): boolean {
    return isProtocolError(err);
  }

  reason(err: unknown): string {
    const parts: string[] = [];
    for (
      let e: unknown = err;
      e && parts.length < 4;
      e = (e as { originalError?: unknown; cause?: unknown }).originalError ?? (e as { cause?: unknown }).cause
    ) {
      const x = e as { type?: string; message?: string; errors?: unknown[] };
      const text = `${x.type ? `${x.type}: ` : ''}${x.message ?? String(e)}`;
      if (!parts.includes(text)) parts.push(text);
      if (Array.isArray(x.errors) && x.errors.length > 0) {
        const first = x.errors[0] as { type?: string; message?: string };
        parts.push(`${first.type ?? ''} ${first.message ?? ''}`.trim());
      }
    }
    return parts.join(' / ');
  }
}

/**
 * kafkajs' retry of a send skips every broker that answered the first try, also when a
 * partition's leader has moved onto one of them, and resolves without those records
 * (tulios/kafkajs PR #1798, open; the 3-node failover test lost 3-40 of 30,000 acknowledged
 * records to it when a leader was SIGKILLed). So each send here carries one partition's records
 * only: a retry then has one broker to skip or not, never a sibling's answer to reuse. The
 * partition is chosen as kafkajs would (its default, Java-compatible murmur2 partitioner).
 */
class KafkajsSession implements ProducerSession {
  private producer: Producer;
  private readonly make: () => Producer;
  private readonly tuning: ProducerTuning;
  private readonly partitions: TopicPartitions;
  private readonly partitioner = Partitioners.DefaultPartitioner();
  private connected = false;

  constructor(make: () => Producer, tuning: ProducerTuning, partitions: TopicPartitions) {
    this.make = make;
    this.tuning = tuning;
    this.partitions = partitions;
    this.producer = make();
  }

  async connect(): Promise<void> {
    if (this.connected) return;
    await this.producer.connect();
    this.connected = true;
  }

  async send(batches: readonly TopicBatch[]): Promise<void> {
    const sends: Array<Promise<unknown>> = [];
    const sent: KafkaRecord[][] = [];
    for (const { topic, records } of batches) {
      const partitionMetadata = await this.partitions.of(topic);
      const byPartition = new Map<number, { messages: Message[]; records: KafkaRecord[] }>();
      for (const r of records) {
        const message: Message = { key: r.key, value: r.value, headers: r.headers, timestamp: String(r.timestamp) };
        const partition = this.partitioner({ topic, partitionMetadata, message });
        message.partition = partition;
        let one = byPartition.get(partition);
        if (!one) byPartition.set(partition, (one = { messages: [], records: [] }));
        one.messages.push(message);
        one.records.push(r);
      }
      for (const { messages, records } of byPartition.values()) {
        sends.push(this.producer.send({ topic, messages, acks: this.tuning.acks, compression: codecs[this.tuning.compression as keyof typeof codecs] }));
        sent.push(records);
      }
    }
    const results = await Promise.allSettled(sends);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      this.partitions.forget();
      // the partitions that answered: their records are in Kafka
      const written = new Set<KafkaRecord>();
      results.forEach((r, i) => {
        if (r.status === 'fulfilled') for (const record of sent[i] as KafkaRecord[]) written.add(record);
      });
      markWritten(failed.reason, written);
      throw failed.reason;
    }
  }

  async reset(reconnect = true): Promise<void> {
    const old = this.producer;
    this.producer = this.make();
    this.connected = false;
    await old.disconnect().catch(() => {});
    if (reconnect) await this.connect().catch(() => {}); // else the next write's connect() tries
  }

  async close(): Promise<void> {
    this.connected = false;
    await this.producer.disconnect();
    await this.partitions.close();
  }
}

/** Topic -> partition metadata, from an admin client of its own, cached a minute. */
class TopicPartitions {
  private readonly makeAdmin: () => Admin;
  private admin: Admin | undefined;
  private readonly cache = new Map<string, { at: number; partitions: PartitionMetadata[] }>();

  constructor(makeAdmin: () => Admin) {
    this.makeAdmin = makeAdmin;
  }

  async of(topic: string): Promise<PartitionMetadata[]> {
    const hit = this.cache.get(topic);
    if (hit && monotonicMs() - hit.at < 60_000) return hit.partitions;
    if (!this.admin) {
      const admin = this.makeAdmin();
      await admin.connect();
      this.admin = admin;
    }
    const meta = await this.admin.fetchTopicMetadata({ topics: [topic] });
    const partitions = meta.topics[0]?.partitions ?? [];
    this.cache.set(topic, { at: monotonicMs(), partitions });
    return partitions;
  }

  forget(): void {
    this.cache.clear();
  }

  async close(): Promise<void> {
    const admin = this.admin;
    this.admin = undefined;
    await admin?.disconnect().catch(() => {});
  }
}

class KafkajsAdmin implements KafkaAdminPort {
  private readonly admin: Admin;
  constructor(admin: Admin) {
    this.admin = admin;
  }
  connect(): Promise<void> {
    return this.admin.connect();
  }
  listTopics(): Promise<string[]> {
    return this.admin.listTopics();
  }
  async hasTopic(topic: string): Promise<boolean> {
    // kafkajs, the legacy client, answers from the cluster's list as it always did (its cost
    // grows with the cluster); the two maintained clients ask for the one topic
    return (await this.admin.listTopics()).includes(topic);
  }
  async createTopic(topic: string, partitions: number, replicationFactor: number): Promise<'created' | 'exists'> {
    try {
      const created = await this.admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor }], waitForLeaders: true });
      return created ? 'created' : 'exists';
    } catch (err) {
      if ((err as { type?: string }).type === 'TOPIC_ALREADY_EXISTS') return 'exists';
      throw err;
    }
  }
  disconnect(): Promise<void> {
    return this.admin.disconnect();
  }
}

function saslOf(sasl: NonNullable<KafkaConnection['sasl']>): SASLOptions {
  if (sasl.mechanism === 'oauthbearer') {
    return { mechanism: 'oauthbearer', oauthBearerProvider: async () => ({ value: await sasl.token() }) };
  }
  // a union by mechanism, which TypeScript cannot narrow from ours
  return { mechanism: sasl.mechanism, username: sasl.username, password: sasl.password } as SASLOptions;
}

// kafkajs spreads its error classes into module.exports, which Node's ESM import of a CommonJS
// module cannot see; its errors carry their class name.
function isProtocolError(e: unknown): e is Error & { type: string } {
  return e instanceof Error && e.name === 'KafkaJSProtocolError';
}

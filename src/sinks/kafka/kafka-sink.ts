// Kafka through kafkajs: an idempotent producer with acks -1 (all in-sync replicas), one batch
// in flight (kafkajs' idempotence is only safe so), many records per batch for throughput.
// Retriable vs the record's fault is decided here, once: a record Kafka refuses for what it is
// (too large, invalid) is found by halving the batch and is dead-lettered; anything else
// (broker down, leader moving, timeouts) is retried by the queue until durable.
import { CompressionTypes, Kafka, logLevel, type Admin, type Producer, type SASLOptions } from 'kafkajs';
import type { Logger } from 'pino';
import { allDurable, SinkError, type ItemRejection, type Sink, type WriteResult } from '../sink.ts';
import { recordSize, type KafkaRecord } from './kafka-record.ts';

export interface KafkaSinkOptions {
  /** The sink's name (kafka; the dead-letter sink writes through one named dead-letter). */
  readonly name?: string;
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly ssl: boolean;
  readonly sasl?: SASLOptions | undefined;
  readonly compression: 'none' | 'gzip';
  readonly createTopics: { readonly enabled: boolean; readonly partitions: number; readonly replicationFactor: number };
  readonly maxTopics: number;
  readonly requestTimeoutMs?: number;
}

/** Protocol errors that are about the records, not the cluster's state. */
const recordFaults = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_RECORD', 'CORRUPT_MESSAGE', 'INVALID_TIMESTAMP', 'INVALID_TOPIC_EXCEPTION']);

export class KafkaSink implements Sink<KafkaRecord> {
  readonly name: string;
  private readonly kafka: Kafka;
  private readonly producer: Producer;
  private readonly admin: Admin;
  private readonly options: KafkaSinkOptions;
  private readonly log: Logger;
  private readonly topics = new Set<string>();
  private readonly missingCheckedAt = new Map<string, number>();
  private connected = false;

  constructor(options: KafkaSinkOptions, log: Logger) {
    this.name = options.name ?? 'kafka';
    this.options = options;
    this.log = log;
    this.kafka = new Kafka({
      clientId: options.clientId,
      brokers: [...options.brokers],
      ssl: options.ssl,
      ...(options.sasl ? { sasl: options.sasl } : {}),
      logLevel: logLevel.NOTHING, // failures reach us as errors and are logged once by the queue
      requestTimeout: options.requestTimeoutMs ?? 30_000,
      connectionTimeout: 3_000,
      retry: { retries: 2, initialRetryTime: 200, maxRetryTime: 2_000 },
    });
    this.producer = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
    this.admin = this.kafka.admin();
  }

  async start(): Promise<void> {
    await this.connect();
  }

  /** Whether the topic exists (creating it when allowed); the dead-letter sink checks its topic with it at start. */
  async hasTopic(topic: string): Promise<boolean> {
    await this.connect();
    return this.ensureTopic(topic);
  }

  sizeOf(record: KafkaRecord): number {
    return recordSize(record);
  }

  async write(batch: readonly KafkaRecord[]): Promise<WriteResult> {
    try {
      await this.connect();
    } catch (err) {
      throw new SinkError(this.name, `cannot connect to ${this.options.brokers.join(',')}: ${(err as Error).message}`, { cause: err });
    }
    const rejected: ItemRejection[] = [];
    const sendable: number[] = [];
    for (const topic of new Set(batch.map((r) => r.topic))) {
      if (!this.topics.has(topic) && !(await this.ensureTopic(topic))) {
        batch.forEach((r, i) => {
          if (r.topic === topic) rejected.push({ index: i, reason: 'kafka-topic-missing', error: this.missingReason(topic) });
        });
      }
    }
    batch.forEach((r, i) => {
      if (this.topics.has(r.topic)) sendable.push(i);
    });
    await this.sendIndexes(batch, sendable, rejected);
    return rejected.length === 0 ? allDurable : { rejected };
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.producer.disconnect(), this.admin.disconnect()]);
    this.connected = false;
  }

  private async connect(): Promise<void> {
    if (this.connected) return;
    try {
      await this.admin.connect();
      await this.producer.connect();
      for (const t of await this.admin.listTopics()) this.topics.add(t);
    } catch (err) {
      // a connect that failed half way (a broker frozen mid-handshake) leaves kafkajs' clients
      // "not connected" for good: tear both down so the next attempt starts clean
      await Promise.allSettled([this.producer.disconnect(), this.admin.disconnect()]);
      throw err;
    }
    this.connected = true;
  }

  private async sendIndexes(batch: readonly KafkaRecord[], indexes: readonly number[], rejected: ItemRejection[]): Promise<void> {
    if (indexes.length === 0) return;
    const byTopic = new Map<string, Array<{ key: string | null; value: Buffer; headers: KafkaRecord['headers']; timestamp: string }>>();
    for (const i of indexes) {
      const r = batch[i] as KafkaRecord;
      let list = byTopic.get(r.topic);
      if (!list) byTopic.set(r.topic, (list = []));
      list.push({ key: r.key, value: r.value, headers: r.headers, timestamp: r.timestamp });
    }
    try {
      await this.producer.sendBatch({
        acks: -1,
        compression: this.options.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None,
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
      });
    } catch (err) {
      const fault = recordFault(err);
      if (!fault) {
        if (!isProtocolError(err)) this.connected = false; // reconnect before the retry
        throw new SinkError(this.name, (err as Error).message, { cause: err });
      }
      if (indexes.length === 1) {
        rejected.push({ index: indexes[0] as number, reason: 'rejected-by-kafka', error: fault });
        return;
      }
      // Halve until the offending records are alone; the others are written (some twice: at least once).
      const mid = Math.ceil(indexes.length / 2);
      await this.sendIndexes(batch, indexes.slice(0, mid), rejected);
      await this.sendIndexes(batch, indexes.slice(mid), rejected);
    }
  }

  /** Whether the topic exists (creating it when allowed). Re-checks a missing topic at most every 10 s. */
  private async ensureTopic(topic: string): Promise<boolean> {
    if (this.topics.has(topic)) return true;
    const checked = this.missingCheckedAt.get(topic);
    if (checked !== undefined && Date.now() - checked < 10_000) return false;
    this.missingCheckedAt.set(topic, Date.now());
    const existing = await this.admin.listTopics();
    for (const t of existing) this.topics.add(t);
    if (this.topics.has(topic)) return true;
    const { enabled, partitions, replicationFactor } = this.options.createTopics;
    if (!enabled || this.topics.size >= this.options.maxTopics) return false;
    await this.admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor }], waitForLeaders: true });
    this.log.info({ topic, partitions, replicationFactor }, 'kafka topic created');
    this.topics.add(topic);
    return true;
  }

  private missingReason(topic: string): string {
    if (this.options.createTopics.enabled && this.topics.size >= this.options.maxTopics) {
      return `topic "${topic}" not created: kafka.maxTopics (${this.options.maxTopics}) reached`;
    }
    return `topic "${topic}" does not exist (kafka.createTopics.enabled is off)`;
  }
}

// kafkajs spreads its error classes into module.exports, which Node's ESM import of a CommonJS
// module cannot see; its errors carry their class name.
function isProtocolError(e: unknown): e is Error & { type: string } {
  return e instanceof Error && e.name === 'KafkaJSProtocolError';
}

function recordFault(err: unknown): string | undefined {
  // kafkajs wraps the broker's answer; walk the causes for a protocol error about the records
  for (let e: unknown = err; e; e = (e as { cause?: unknown; originalError?: unknown }).originalError ?? (e as { cause?: unknown }).cause) {
    if (isProtocolError(e) && recordFaults.has(e.type)) return `${e.type}: ${e.message}`;
  }
  return undefined;
}

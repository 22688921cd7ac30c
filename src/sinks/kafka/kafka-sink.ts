// Kafka through kafkajs: an idempotent producer with acks -1 (all in-sync replicas), one
// request in flight (kafkajs' idempotence is only safe so), many records per batch. What is
// decided here, once:
//  - the record's fault (too large, invalid): found by halving that topic's records, rejected
//    alone (dead-lettered);
//  - one topic's fault (deleted, not authorised, leader missing): the batch is split by topic,
//    the healthy topics are written, the failing topic's records are deferred (the queue
//    retries them alone and dead-letters them once they were stuck too long);
//  - the cluster's fault (down, timing out): the whole batch is retried until durable.
// After any failed produce a new producer session starts: Kafka may have written part of the
// request while kafkajs rolled back all its sequence numbers, and a retry on the old session
// would be refused (OutOfOrderSequenceException) for ever. Topics unknown to the sink are
// checked and created off the write path (topic-admin.ts); their records wait meanwhile.
import { CompressionTypes, Kafka, logLevel, type Admin, type Producer, type SASLOptions } from 'kafkajs';
import type { Logger } from 'pino';
import { SinkError, type ItemRejection, type Sink, type WriteResult } from '../sink.ts';
import { recordSize, type KafkaRecord } from './kafka-record.ts';
import { kafkaReason, TopicAdmin } from './topic-admin.ts';

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
  /**
   * true (the kafka sink): a failing topic's records are deferred, the rest written. false (the
   * dead letter, which has nowhere else to go): the whole write fails and is retried.
   */
  readonly isolate?: boolean;
}

/** The reason a record is rejected for what it is (too large, invalid): the only one shrinking can help. */
export const recordRejected = 'rejected-by-kafka';

/** Protocol errors that are about the records, not the cluster's state. */
const recordFaults = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_RECORD', 'CORRUPT_MESSAGE', 'INVALID_TIMESTAMP']);
/** Protocol errors about one topic or its partitions: other topics can still be written. */
const topicFaults = new Set([
  'UNKNOWN_TOPIC_OR_PARTITION', 'TOPIC_AUTHORIZATION_FAILED', 'LEADER_NOT_AVAILABLE', 'NOT_LEADER_FOR_PARTITION',
  'NOT_LEADER_OR_FOLLOWER', 'NOT_ENOUGH_REPLICAS', 'NOT_ENOUGH_REPLICAS_AFTER_APPEND', 'KAFKA_STORAGE_ERROR',
  'REPLICA_NOT_AVAILABLE', 'UNKNOWN_LEADER_EPOCH', 'FENCED_LEADER_EPOCH', 'INVALID_TOPIC_EXCEPTION', 'POLICY_VIOLATION',
]);

type Message = { key: string | null; value: Buffer; headers: KafkaRecord['headers']; timestamp: string };

export class KafkaSink implements Sink<KafkaRecord> {
  readonly name: string;
  private readonly kafka: Kafka;
  /** Writes for topics that work; and for a topic failing on its own, with one quick retry only. */
  private readonly main: Session;
  private readonly probe: Session;
  private readonly admin: Admin;
  private readonly topics: TopicAdmin;
  private readonly options: KafkaSinkOptions;
  private readonly log: Logger;
  private connected = false;
  /** Topics failing on their own now, with Kafka's words (for /readyz and the dead letter). */
  private readonly failing = new Map<string, { since: number; error: string }>();

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
    this.main = new Session(() => this.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false }));
    this.probe = new Session(() => this.kafka.producer({
      idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 300 },
    }));
    this.admin = this.kafka.admin();
    this.topics = new TopicAdmin(this.admin, { createTopics: options.createTopics, maxTopics: options.maxTopics }, log);
  }

  async start(): Promise<void> {
    await this.connect();
  }

  /** Whether the topic exists (creating it when allowed), waiting for the answer: the dead-letter topic at start. */
  async hasTopic(topic: string): Promise<{ ok: true } | { ok: false; reason: string }> {
    await this.connect();
    const s = await this.topics.settle(topic);
    return s.state === 'ready' ? { ok: true } : { ok: false, reason: s.state === 'missing' ? s.reason : `topic "${topic}" is not ready` };
  }

  sizeOf(record: KafkaRecord): number {
    return recordSize(record);
  }

  /** Topics failing on their own, with Kafka's words: /readyz names them. */
  problems(): readonly string[] {
    const now = Date.now();
    return [...this.failing].slice(0, 5).map(([topic, f]) => `${this.name}: topic ${topic} failing for ${Math.round((now - f.since) / 1000)} s: ${f.error}`);
  }

  /** Why a deferred record is not written: the dead letter's error once it was stuck too long. */
  unavailable(record: KafkaRecord): string {
    const f = this.failing.get(record.topic);
    return f ? `topic ${record.topic}: ${f.error}` : `topic ${record.topic}: not ready (being checked or created)`;
  }

  async write(batch: readonly KafkaRecord[]): Promise<WriteResult> {
    try {
      await this.connect();
    } catch (err) {
      throw new SinkError(this.name, `cannot connect to ${this.options.brokers.join(',')}: ${(err as Error).message}`, { cause: err });
    }
    const rejected: ItemRejection[] = [];
    const deferred: number[] = [];
    const byTopic = new Map<string, number[]>();
    for (let i = 0; i < batch.length; i++) {
      const r = batch[i] as KafkaRecord;
      const s = this.topics.state(r.topic, r.template);
      if (s.state === 'missing') rejected.push({ index: i, reason: 'kafka-topic-missing', error: s.reason });
      else if (s.state === 'pending') deferred.push(i);
      else {
        let list = byTopic.get(r.topic);
        if (!list) byTopic.set(r.topic, (list = []));
        list.push(i);
      }
    }
    // topics failing on their own are tried alone on the probe producer (one quick internal
    // retry, the least kafkajs allows an idempotent producer); the rest go together on the main one
    const alone = new Map<string, number[]>();
    if (this.failing.size > 0) for (const [topic, indexes] of byTopic) {
      if (this.failing.has(topic)) {
        alone.set(topic, indexes);
        byTopic.delete(topic);
      }
    }
    if (byTopic.size > 0) {
      try {
        await this.send(this.main, batch, byTopic);
      } catch (err) {
        await this.main.reset();
        if (!this.isolating(err)) throw this.clusterError(err);
        for (const [topic, indexes] of byTopic) alone.set(topic, indexes);
      }
    }
    for (const [topic, indexes] of alone) await this.sendAlone(batch, topic, indexes, rejected, deferred);
    return { rejected, ...(deferred.length > 0 ? { deferred } : {}) };
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.main.close(), this.probe.close(), this.admin.disconnect()]);
    this.connected = false;
  }

  /** One topic's records alone, on the probe producer: written, its bad records rejected, or deferred when the topic fails on its own. */
  private async sendAlone(batch: readonly KafkaRecord[], topic: string, indexes: readonly number[], rejected: ItemRejection[], deferred: number[]): Promise<void> {
    try {
      await this.send(this.probe, batch, new Map([[topic, indexes]]));
      this.recovered(topic);
      return;
    } catch (err) {
      await this.probe.reset();
      const fault = faultOf(err, recordFaults);
      if (fault) {
        await this.halve(batch, topic, indexes, rejected, fault);
        this.recovered(topic);
        return;
      }
      const topicFault = faultOf(err, topicFaults);
      if (topicFault && topicFault.startsWith('UNKNOWN_TOPIC_OR_PARTITION')) this.topics.forget(topic);
      if (!topicFault || !this.options.isolate) throw this.clusterError(err, topic);
      if (!this.failing.has(topic)) {
        this.log.warn({ topic, err: topicFault }, 'kafka topic failing on its own: its records wait, the other topics flow');
        this.failing.set(topic, { since: Date.now(), error: topicFault });
      }
      deferred.push(...indexes);
    }
  }

  /** Halves a topic's records until each bad one stands alone (a new session after each failed try). */
  private async halve(batch: readonly KafkaRecord[], topic: string, indexes: readonly number[], rejected: ItemRejection[], fault: string): Promise<void> {
    if (indexes.length === 1) {
      rejected.push({ index: indexes[0] as number, reason: recordRejected, error: fault });
      return;
    }
    const mid = Math.ceil(indexes.length / 2);
    for (const half of [indexes.slice(0, mid), indexes.slice(mid)]) {
      try {
        await this.send(this.probe, batch, new Map([[topic, half]]));
      } catch (err) {
        await this.probe.reset();
        const f = faultOf(err, recordFaults);
        if (!f) throw this.clusterError(err, topic);
        await this.halve(batch, topic, half, rejected, f);
      }
    }
  }

  private async send(via: Session, batch: readonly KafkaRecord[], byTopic: ReadonlyMap<string, readonly number[]>): Promise<void> {
    const topicMessages: Array<{ topic: string; messages: Message[] }> = [];
    for (const [topic, indexes] of byTopic) {
      const messages: Message[] = new Array(indexes.length);
      for (let j = 0; j < indexes.length; j++) {
        const r = batch[indexes[j] as number] as KafkaRecord;
        messages[j] = { key: r.key, value: r.value, headers: r.headers, timestamp: r.timestamp };
      }
      topicMessages.push({ topic, messages });
    }
    await via.producer.sendBatch({
      acks: -1,
      compression: this.options.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None,
      topicMessages,
    });
  }

  private recovered(topic: string): void {
    const f = this.failing.get(topic);
    if (!f) return;
    this.failing.delete(topic);
    this.log.info({ topic, failedForMs: Date.now() - f.since }, 'kafka topic writable again');
  }

  /** Whether an error may be one topic's or one record's fault (then the batch is split). */
  private isolating(err: unknown): boolean {
    return faultOf(err, recordFaults) !== undefined || faultOf(err, topicFaults) !== undefined;
  }

  private clusterError(err: unknown, topic?: string): SinkError {
    if (!isProtocolError(err)) this.connected = false; // reconnect before the retry
    return new SinkError(this.name, `${topic ? `topic ${topic}: ` : ''}${kafkaReason(err)}`, { cause: err });
  }

  private async connect(): Promise<void> {
    if (this.connected) return;
    try {
      await this.admin.connect();
      await this.main.connect();
      await this.probe.connect();
      await this.topics.load();
    } catch (err) {
      // a connect that failed half way (a broker frozen mid-handshake) leaves kafkajs' clients
      // "not connected" for good: tear them down so the next attempt starts clean
      await Promise.allSettled([this.main.reset(false), this.probe.reset(false), this.admin.disconnect()]);
      throw err;
    }
    this.connected = true;
  }
}

/**
 * One idempotent producer and its session. reset() starts a new session (a new producer id,
 * sequences from 0) after a failed produce: see the top.
 */
class Session {
  producer: Producer;
  private readonly make: () => Producer;
  private connected = false;

  constructor(make: () => Producer) {
    this.make = make;
    this.producer = make();
  }

  async connect(): Promise<void> {
    if (this.connected) return;
    await this.producer.connect();
    this.connected = true;
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
  }
}

// kafkajs spreads its error classes into module.exports, which Node's ESM import of a CommonJS
// module cannot see; its errors carry their class name.
function isProtocolError(e: unknown): e is Error & { type: string } {
  return e instanceof Error && e.name === 'KafkaJSProtocolError';
}

/** The broker's answer among kafkajs' wrapped causes, when it is one of `types`. */
function faultOf(err: unknown, types: ReadonlySet<string>): string | undefined {
  for (let e: unknown = err; e; e = (e as { cause?: unknown; originalError?: unknown }).originalError ?? (e as { cause?: unknown }).cause) {
    if (isProtocolError(e) && types.has(e.type)) return `${e.type}: ${e.message}`;
  }
  return undefined;
}

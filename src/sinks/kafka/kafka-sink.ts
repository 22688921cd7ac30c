// The Kafka sink: a batch split by topic and written through the client adapter (client/); a
// record's own fault found by halving and rejected alone, one topic's fault deferred while the
// others are written, the cluster's fault retried whole (the classes: README.md beside this).
// Two things only this file knows: newer records of a topic with records deferred wait behind
// them (order per partition), and any failed produce starts a new producer session, since Kafka
// may have written part of a request whose sequence numbers the client rolled back (a retry on
// the old session is refused for ever: OutOfOrderSequenceException). What a failed request's
// answer says was written (the partitions that answered without error) is not sent again: on a
// new session Kafka cannot tell it from a new record, and it would be in the topic twice.
import type { Logger } from 'pino';
import { type ItemRejection, type Sink, SinkError, type WriteResult } from '../sink.ts';
import { type KafkaAdminPort, type KafkaClient, type ProducerSession, type TopicBatch, writtenBy } from './client/kafka-client.ts';
import { FailingTopics } from './failing-topics.ts';
import { KafkaFaults, recordRejected } from './kafka-faults.ts';
import { type KafkaRecord, recordSize } from './kafka-record.ts';
import type { SchemaRegistryClient } from './schema-registry/registry.ts';
import type { ValueEncoder } from './schema-registry/value-encoder.ts';
import { pushWireRecords, wireRecordCount } from './schema-registry/wire-format.ts';
import { TopicAdmin, type TopicState } from './topic-admin.ts';

/** How long a write waits for the lookup of a fixed topic it is the first to name, before deferring its records. */
const firstLookupMs = 250;

export interface KafkaSinkOptions {
  /** The sink's name (kafka; the dead-letter sink writes through one named dead-letter). */
  readonly name?: string;
  /** Where the records go (error messages name them). */
  readonly brokers: readonly string[];
  readonly client: KafkaClient;
  readonly createTopics: { readonly enabled: boolean; readonly partitions: number; readonly replicationFactor: number };
  readonly maxTopics: number;
  /**
   * true (the kafka sink): a failing topic's records are deferred, the rest written. false (the
   * dead letter, which has nowhere else to go): the whole write fails and is retried.
   */
  readonly isolate?: boolean;
  /** Gives schema-encoded values (routes with kafka.value {format, schema}) their id. */
  readonly schemaRegistry?: SchemaRegistryClient | undefined;
}

export class KafkaSink implements Sink<KafkaRecord> {
  readonly name: string;
  private readonly client: KafkaClient;
  /** Writes for topics that work; and for a topic failing on its own, with one quick retry only. */
  private readonly main: ProducerSession;
  private readonly probe: ProducerSession;
  private readonly admin: KafkaAdminPort;
  private readonly topics: TopicAdmin;
  private readonly options: KafkaSinkOptions;
  private readonly log: Logger;
  private connected = false;
  private readonly faults: KafkaFaults;
  private readonly failing: FailingTopics;

  constructor(options: KafkaSinkOptions, log: Logger) {
    this.name = options.name ?? 'kafka';
    this.options = options;
    this.log = log;
    this.client = options.client;
    this.main = this.client.session('main');
    this.probe = this.client.session('probe');
    this.admin = this.client.admin();
    this.topics = new TopicAdmin(this.admin, { createTopics: options.createTopics, maxTopics: options.maxTopics }, log, (err) => this.client.reason(err));
    this.faults = new KafkaFaults(this.client);
    this.failing = new FailingTopics(log);
  }

  async start(): Promise<void> {
    try {
      await this.connect();
    } catch (err) {
      // the client's own words rarely say where it tried ("metadata failed 2 times")
      throw new Error(`cannot connect to Kafka at ${this.options.brokers.join(',')}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Whether the topic exists (creating it when allowed), waiting for the answer: the dead-letter topic at start. */
  async hasTopic(topic: string): Promise<{ ok: true } | { ok: false; reason: string }> {
    await this.start();
    const s = await this.topics.checked(topic);
    return s.state === 'ready' ? { ok: true } : { ok: false, reason: s.state === 'missing' ? s.reason : `topic "${topic}" is not ready` };
  }

  sizeOf(record: KafkaRecord): number {
    return recordSize(record);
  }

  /** Topics failing on their own, with Kafka's words: /readyz names them. */
  problems(): readonly string[] {
    return [...this.failing.problems(this.name), ...this.topics.problems(this.name)];
  }

  /** The queue gives up on a deferred record (dead-lettered): why it was not written. */
  giveUp(record: KafkaRecord): string {
    return this.failing.giveUp(record, this.topics.checkFailure(record.topic));
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
    let looking: number[] | undefined;
    const refusedSchemas = await this.registerSchemas(batch);
    for (let i = 0; i < batch.length; i++) {
      const r = batch[i] as KafkaRecord;
      const refused = r.schema && refusedSchemas?.get(r.schema);
      if (refused) {
        rejected.push({ index: i, reason: 'schema-registry-refused', error: refused });
        continue;
      }
      const s = this.topics.state(r.topic, r.template);
      // a fixed topic not looked up yet (the first write after a connect): placed once looked up
      if (s.state === 'pending' && r.template === undefined) (looking ??= []).push(i);
      else this.place(batch, i, s, rejected, deferred, byTopic);
    }
    if (looking) {
      // one metadata request, rather than the deferred lane's retry (a fixed topic is one a rule
      // names, so there are few); still pending after it (being created, a slow cluster):
      // deferred. Waited for after the loop, so every other record was placed on the states of
      // one moment: a topic that became ready meanwhile cannot pass its own earlier records.
      await this.topics.lookedUp(new Set(looking.map((i) => (batch[i] as KafkaRecord).topic)), firstLookupMs);
      for (const i of looking) this.place(batch, i, this.topics.state((batch[i] as KafkaRecord).topic), rejected, deferred, byTopic);
      deferred.sort((x, y) => x - y); // the lane keeps arrival order
    }
    // topics failing on their own are tried alone on the probe producer (which gives up
    // quickly); the rest go together on the main one
    const alone = new Map<string, number[]>();
    if (this.failing.any)
      for (const [topic, indexes] of byTopic) {
        if (this.failing.has(topic)) {
          alone.set(topic, indexes);
          byTopic.delete(topic);
        }
      }
    // what is written so far: a failure that fails the whole write says so, and the batch queue
    // settles those items and tries the rest again
    const written: number[] = [];
    if (byTopic.size > 0) {
      try {
        await this.send(this.main, batch, byTopic, written);
      } catch (err) {
        await this.main.reset();
        if (!this.faults.isolating(err)) throw this.clusterError(err, written);
        for (const [topic, indexes] of byTopic) alone.set(topic, indexes); // those not written
      }
    }
    for (const [topic, indexes] of alone) await this.sendAlone(batch, topic, indexes, rejected, deferred, written);
    // what is deferred now holds its topic; what was written or rejected no longer does (only
    // with a lane behind: the dead letter retries its whole write, with new records each time)
    if (this.options.isolate && (deferred.length > 0 || this.failing.anyWaiting)) this.failing.track(batch, deferred);
    return { rejected, ...(deferred.length > 0 ? { deferred } : {}) };
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.main.close(), this.probe.close(), this.admin.disconnect()]);
    this.connected = false;
  }

  /** One topic's records alone, on the probe producer: written, its bad records rejected, or deferred when the topic fails on its own. */
  private async sendAlone(
    batch: readonly KafkaRecord[],
    topic: string,
    indexes: readonly number[],
    rejected: ItemRejection[],
    deferred: number[],
    written: number[],
  ): Promise<void> {
    const sending = new Map([[topic, [...indexes]]]);
    try {
      await this.send(this.probe, batch, sending, written);
      this.failing.recovered(topic);
      return;
    } catch (err) {
      await this.probe.reset();
      const left = sending.get(topic) ?? []; // what the failed try did not write
      const fault = this.faults.record(err);
      if (fault) {
        await this.halve(batch, topic, left, rejected, fault, written);
        this.failing.recovered(topic);
        return;
      }
      const topicFault = this.faults.topic(err);
      if (topicFault?.startsWith('UNKNOWN_TOPIC_OR_PARTITION')) this.topics.forget(topic);
      if (!topicFault || !this.options.isolate) throw this.clusterError(err, written, topic);
      this.failing.failed(topic, topicFault);
      for (const i of left) deferred.push(i); // not spread: a batch can be longer than a call's arguments
    }
  }

  /** Halves a topic's records until each bad one stands alone (a new session after each failed try). */
  private async halve(
    batch: readonly KafkaRecord[],
    topic: string,
    indexes: readonly number[],
    rejected: ItemRejection[],
    fault: string,
    written: number[],
  ): Promise<void> {
    if (indexes.length === 0) return; // all written by the try that failed
    if (indexes.length === 1) {
      rejected.push({ index: indexes[0] as number, reason: recordRejected, error: fault });
      return;
    }
    const mid = Math.ceil(indexes.length / 2);
    for (const half of [indexes.slice(0, mid), indexes.slice(mid)]) {
      const sending = new Map([[topic, half]]);
      try {
        await this.send(this.probe, batch, sending, written);
      } catch (err) {
        await this.probe.reset();
        const f = this.faults.record(err);
        if (!f) throw this.clusterError(err, written, topic);
        await this.halve(batch, topic, sending.get(topic) ?? [], rejected, f, written);
      }
    }
  }

  /**
   * Every value schema of the batch given its id before anything is sent: a registry that cannot
   * be reached fails the write (retried, nothing acked); one that refuses a schema rejects its
   * records (dead-lettered with the registry's words).
   */
  private async registerSchemas(batch: readonly KafkaRecord[]): Promise<Map<ValueEncoder, string> | undefined> {
    let todo: Set<ValueEncoder> | undefined;
    for (const r of batch) if (r.schema && !r.schema.header) (todo ??= new Set()).add(r.schema);
    if (!todo) return undefined;
    const registry = this.options.schemaRegistry;
    if (!registry) throw new SinkError(this.name, 'a record has a value schema but kafka.schemaRegistry is not configured');
    let refused: Map<ValueEncoder, string> | undefined;
    for (const schema of todo) {
      const r = await registry.ensure(schema);
      if (r.ok) {
        this.log.info({ subject: schema.subject, format: schema.format, id: schema.header?.readUInt32BE(1) }, 'value schema registered');
        continue;
      }
      if (!r.permanent) throw new SinkError(this.name, r.error);
      (refused ??= new Map()).set(schema, r.error);
    }
    return refused;
  }

  /**
   * Sends these records of the batch, adding them to `written`. When the send fails, what Kafka
   * answered as written is added, and taken out of `byTopic` (a topic all written, out of it), so
   * that only the rest is tried again.
   */
  private async send(via: ProducerSession, batch: readonly KafkaRecord[], byTopic: Map<string, number[]>, written: number[]): Promise<void> {
    const batches: TopicBatch[] = [];
    for (const [topic, indexes] of byTopic) {
      const records: KafkaRecord[] = [];
      for (const i of indexes) pushWireRecords(batch[i] as KafkaRecord, records);
      batches.push({ topic, records });
    }
    try {
      await via.send(batches);
    } catch (err) {
      const records = writtenBy(err);
      if (records) this.leaveOut(records, batch, byTopic, batches, written);
      throw err;
    }
    for (const indexes of byTopic.values()) for (const i of indexes) written.push(i);
  }

  /** Takes the records written out of `byTopic`: an item only when all its wire records were written (a fanned-out message is one item). */
  private leaveOut(
    records: ReadonlySet<KafkaRecord>,
    batch: readonly KafkaRecord[],
    byTopic: Map<string, number[]>,
    batches: readonly TopicBatch[],
    written: number[],
  ): void {
    const before = written.length;
    for (const { topic, records: wire } of batches) {
      const left: number[] = [];
      let w = 0;
      for (const i of byTopic.get(topic) ?? []) {
        const n = wireRecordCount(batch[i] as KafkaRecord);
        let all = true;
        for (let k = w; k < w + n; k++) if (!records.has(wire[k] as KafkaRecord)) all = false;
        w += n;
        if (all) written.push(i);
        else left.push(i);
      }
      if (left.length > 0) byTopic.set(topic, left);
      else byTopic.delete(topic);
    }
    this.log.debug({ written: written.length - before }, 'records a failed produce wrote are not sent again');
  }

  /** A record's place in this write: rejected (its topic missing), deferred, or with its topic's records. */
  private place(batch: readonly KafkaRecord[], i: number, s: TopicState, rejected: ItemRejection[], deferred: number[], byTopic: Map<string, number[]>): void {
    const r = batch[i] as KafkaRecord;
    if (s.state === 'missing') rejected.push({ index: i, reason: 'kafka-topic-missing', error: s.reason });
    // a newer record of a topic whose older records wait is deferred behind them (order per partition)
    else if (s.state === 'pending' || (this.options.isolate && this.failing.behind(r))) deferred.push(i);
    else {
      let list = byTopic.get(r.topic);
      if (!list) byTopic.set(r.topic, (list = []));
      list.push(i);
    }
  }

  private clusterError(err: unknown, written: readonly number[], topic?: string): SinkError {
    if (!this.client.answered(err)) this.connected = false; // reconnect before the retry
    return new SinkError(this.name, `${topic ? `topic ${topic}: ` : ''}${this.client.reason(err)}`, { cause: err, written });
  }

  private async connect(): Promise<void> {
    if (this.connected) return;
    try {
      await this.admin.connect();
      await this.main.connect();
      await this.probe.connect();
      this.topics.load();
    } catch (err) {
      // a connect that failed half way (a broker frozen mid-handshake) left kafkajs' clients
      // "not connected" for good: tear them down so the next attempt starts clean
      await Promise.allSettled([this.main.reset(false), this.probe.reset(false), this.admin.disconnect()]);
      throw err;
    }
    this.connected = true;
  }
}

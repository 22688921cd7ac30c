// The dead-letter sink: what the rules or a sink refused goes to one Kafka topic, with the
// original payload and the reasons in headers, so nothing is silent and nothing is lost. It
// writes through a producer of its own (a route's topic in trouble never holds it up). A dead
// letter must always fit: one Kafka refuses is written again smaller, step by step (without
// the payload, then without the headers past a budget), always keeping the reason, the MQTT
// topic, the sizes and the payload's SHA-256. Only if even that is refused is it rejected, and
// the pipeline then holds the message's ack: never "acknowledged and lost".
import { createHash } from 'node:crypto';
import type { Refusal } from '../../outcome.ts';
import { recordRejected } from '../kafka/kafka-faults.ts';
import { mqttHeaders } from '../kafka/kafka-headers.ts';
import type { KafkaHeaderValue, KafkaRecord } from '../kafka/kafka-record.ts';
import type { KafkaSink } from '../kafka/kafka-sink.ts';
import { type DeadLetterItem, type ItemRejection, type Sink, SinkError, type WriteResult } from '../sink.ts';

/** How far a dead letter was shrunk to fit. */
export type Shrink = 'none' | 'payload' | 'headers';

const headerBudgetBytes = 4096;

export class DeadLetterSink implements Sink<DeadLetterItem> {
  readonly name = 'dead-letter';
  readonly topic: string;
  private readonly kafka: KafkaSink;

  constructor(kafka: KafkaSink, topic: string) {
    this.kafka = kafka;
    this.topic = topic;
  }

  /** Connects and makes sure the dead-letter topic exists (or creates it when allowed). */
  async start(): Promise<void> {
    await this.kafka.start();
    const has = await this.kafka.hasTopic(this.topic);
    if (!has.ok) throw new Error(`the dead-letter topic "${this.topic}" is not usable (${has.reason}): create it, or set kafka.createTopics.enabled`);
  }

  sizeOf(item: DeadLetterItem): number {
    return item.message.payload.length + item.message.topic.length + 512;
  }

  async write(batch: readonly DeadLetterItem[]): Promise<WriteResult> {
    let indexes = batch.map((_, i) => i);
    let rejected: readonly ItemRejection[] = [];
    // the batch's items in the topic already (a failure says so: the queue settles them and
    // retries the rest); a pass writes the records the one before had refused
    const written: number[] = [];
    for (const shrink of ['none', 'payload', 'headers'] as const) {
      const records = indexes.map((i) => deadLetterRecord(this.topic, batch[i] as DeadLetterItem, shrink));
      let result: WriteResult;
      try {
        result = await this.kafka.write(records);
      } catch (err) {
        if (!(err instanceof SinkError) || (written.length === 0 && !err.written)) throw err;
        // the Kafka sink names this pass's records: the queue needs the batch's items
        const these = (err.written ?? []).map((k) => indexes[k] as number);
        throw new SinkError(this.name, err.message, {
          cause: err.cause,
          retryAfterMs: err.retryAfterMs,
          retriable: err.retriable,
          written: [...written, ...these],
        });
      }
      const notWritten = new Set([...result.rejected.map((r) => r.index), ...(result.deferred ?? [])]);
      for (let k = 0; k < indexes.length; k++) if (!notWritten.has(k)) written.push(indexes[k] as number);
      if (result.deferred && result.deferred.length > 0) {
        // the dead letter has nowhere else to go: hold (the queue retries), never defer or drop
        throw new SinkError(this.name, `the dead-letter topic ${this.topic} is not writable now: ${this.kafka.giveUp(records[0] as KafkaRecord)}`, { written });
      }
      if (result.rejected.length === 0) return { rejected: [] };
      const notTheRecord = result.rejected.find((r) => r.reason !== recordRejected);
      if (notTheRecord) {
        // the topic, not the record (deleted, creation off): shrinking cannot help; hold and retry
        throw new SinkError(this.name, `the dead-letter topic ${this.topic} is not writable now: ${notTheRecord.error}`, { written });
      }
      rejected = result.rejected.map((r) => ({ ...r, index: indexes[r.index] as number }));
      indexes = rejected.map((r) => r.index);
    }
    return {
      rejected: rejected.map((r) => ({
        index: r.index,
        reason: 'dead-letter-refused',
        error: `the dead-letter topic refused even a shrunk record: ${r.error}`,
      })),
    };
  }

  problems(): readonly string[] {
    return this.kafka.problems();
  }

  async close(): Promise<void> {
    await this.kafka.close();
  }
}

/** The dead-letter record: the original payload, the reasons in headers (docs/rules.md). */
export function deadLetterRecord(topic: string, item: DeadLetterItem, shrink: Shrink = 'none'): KafkaRecord {
  const { message, refusals } = item;
  const first = refusals[0] as Refusal;
  let headers: Record<string, KafkaHeaderValue> = mqttHeaders(message);
  if (shrink === 'headers') headers = withinBudget(headers);
  headers['sluice-reason'] = first.reason;
  headers['sluice-stage'] = first.stage;
  headers['sluice-error'] = refusals
    .map((n) => n.error)
    .join('; ')
    .slice(0, shrink === 'none' ? 2000 : 500);
  headers['sluice-received-at'] = new Date(message.receivedAt).toISOString();
  if (first.route) headers['sluice-route'] = first.route;
  if (first.sink) headers['sluice-sink'] = first.sink;
  if (shrink !== 'none') {
    headers['sluice-payload-dropped'] = `${message.payload.length} bytes refused by the dead-letter topic`;
    headers['sluice-payload-bytes'] = String(message.payload.length);
    headers['sluice-payload-sha256'] = createHash('sha256').update(message.payload).digest('hex');
  }
  return {
    topic,
    key: message.topic,
    value: shrink === 'none' ? message.payload : Buffer.alloc(0),
    headers,
    timestamp: message.receivedAt,
  };
}

/** sluice's own mqtt-* headers stay; user properties and the rest go once past the budget, counted. */
function withinBudget(headers: Record<string, KafkaHeaderValue>): Record<string, KafkaHeaderValue> {
  const kept: Record<string, KafkaHeaderValue> = {};
  let bytes = 0;
  let dropped = 0;
  let droppedBytes = 0;
  for (const [name, value] of Object.entries(headers)) {
    const size = name.length + headerBytes(value);
    if (name === 'mqtt-topic' || name === 'mqtt-qos' || bytes + size <= headerBudgetBytes) {
      kept[name] = value;
      bytes += size;
    } else {
      dropped++;
      droppedBytes += size;
    }
  }
  if (dropped > 0) kept['sluice-headers-dropped'] = `${dropped} headers, ${droppedBytes} bytes`;
  return kept;
}

function headerBytes(v: KafkaHeaderValue): number {
  if (Array.isArray(v)) return v.reduce((n, x) => n + Buffer.byteLength(x), 0);
  return Buffer.byteLength(v);
}

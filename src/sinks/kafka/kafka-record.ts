// A Kafka record as the Kafka sink writes it: plain data, built by the route compiler
// (kafka-route.ts) or by the dead-letter sink.

import type { ValueEncoder } from './schema-registry/value-encoder.ts';

export type KafkaHeaderValue = string | Buffer | Array<string | Buffer>;

export interface KafkaRecord {
  readonly topic: string;
  readonly key: string | null;
  readonly value: Buffer;
  readonly headers: Record<string, KafkaHeaderValue>;
  /** The record's timestamp, epoch milliseconds (the payload's time per route, else the receive time). */
  readonly timestamp: number;
  /** The route's topic template, when it names levels: its kafka.maxTopics budget (topic-admin.ts). */
  readonly template?: string | undefined;
  /** `value` is a body encoded with this schema: the sink prefixes the wire-format header (the registry's id) before it writes. */
  readonly schema?: ValueEncoder | undefined;
  /**
   * Array fan-out (kafka.each): this record is the message's first element, and these are the
   * others, each its own Kafka record with the same topic and key. They are one item for the
   * sink: written in the same request, rejected or deferred together, never half a message.
   */
  readonly more?: readonly KafkaElement[] | undefined;
}

/** One more element of a fanned-out message: its own value, time and headers. */
export interface KafkaElement {
  readonly value: Buffer;
  readonly timestamp: number;
  readonly headers: Record<string, KafkaHeaderValue>;
}

export const kafkaTopicRe = /^[A-Za-z0-9._-]{1,249}$/;

/** Bytes a record adds to a batch, for the batch limits. */
export function recordSize(record: KafkaRecord): number {
  const one = (record.schema ? 16 : 0) + (record.key?.length ?? 0) + 64;
  let size = record.value.length + one;
  if (record.more) for (const e of record.more) size += e.value.length + one;
  return size;
}

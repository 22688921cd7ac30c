// What a sparkplug route hands its outputs as the payload: the topic's parts and the decoded
// payload, its metrics named from their births.
import type { SparkplugMetric, SparkplugPayload, SparkplugValue } from './sparkplug-payload.ts';
import type { SparkplugTopic } from './sparkplug-topic.ts';

export interface SparkplugMessage {
  readonly topic: SparkplugTopic;
  readonly payload: SparkplugPayload;
}

export function isSparkplugMessage(v: unknown): v is SparkplugMessage {
  return v !== null && typeof v === 'object' && 'topic' in v && 'payload' in v && typeof (v as SparkplugMessage).topic === 'object';
}

/** The message as JSON for a Kafka value: names resolved, 64-bit integers written with all their digits. */
export function sparkplugJson(m: SparkplugMessage): string {
  return JSON.stringify({
    group: m.topic.group,
    messageType: m.topic.messageType,
    edgeNode: m.topic.edgeNode,
    ...(m.topic.device === '' ? {} : { device: m.topic.device }),
    timestamp: m.payload.timestamp,
    seq: m.payload.seq,
    metrics: m.payload.metrics.map(metricJson),
  });
}

function metricJson(m: SparkplugMetric): Record<string, unknown> {
  return {
    name: m.name,
    ...(m.alias === undefined ? {} : { alias: jsonValue(m.alias) }),
    type: m.type,
    value: jsonValue(m.value),
    ...(m.timestamp === undefined ? {} : { timestamp: m.timestamp }),
    ...(m.isHistorical ? { historical: true } : {}),
  };
}

const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;

function jsonValue(v: SparkplugValue): unknown {
  if (typeof v === 'bigint') return rawJSON(v.toString());
  if (Buffer.isBuffer(v)) return { base64: v.toString('base64') };
  if (v !== null && typeof v === 'object') {
    if ('columns' in v) return { columns: v.columns, types: v.types, rows: v.rows.map((r) => r.map(jsonValue)) };
    return { templateRef: v.templateRef, isDefinition: v.isDefinition, metrics: v.metrics.map(metricJson) };
  }
  return v;
}

// What a sparkplug route hands its outputs as the payload: the topic's parts and the decoded
// payload, its metrics named from their births.
import type { SparkplugMetric, SparkplugPayload, SparkplugValue } from './sparkplug-payload.ts';
import type { SparkplugTopic } from './sparkplug-topic.ts';

export interface SparkplugMessage {
  readonly topic: SparkplugTopic;
  readonly payload: SparkplugPayload;
}

/**
 * The message as JSON for a Kafka value: names resolved, 64-bit integers written with all their
 * digits. Written as text directly: JSON.stringify with JSON.rawJSON for the bigints was a tenth
 * of the CPU of a Sparkplug drain.
 */
export function sparkplugJson(m: SparkplugMessage): string {
  const t = m.topic;
  let out = `{"group":${JSON.stringify(t.group)},"messageType":"${t.messageType}","edgeNode":${JSON.stringify(t.edgeNode)}`;
  if (t.device !== '') out += `,"device":${JSON.stringify(t.device)}`;
  if (m.payload.timestamp !== undefined) out += `,"timestamp":${m.payload.timestamp}`;
  if (m.payload.seq !== undefined) out += `,"seq":${m.payload.seq}`;
  return `${out},"metrics":${metricsJson(m.payload.metrics)}}`;
}

function metricsJson(metrics: readonly SparkplugMetric[]): string {
  let out = '[';
  for (let i = 0; i < metrics.length; i++) {
    const m = metrics[i] as SparkplugMetric;
    if (i > 0) out += ',';
    out += `{"name":${m.name === undefined ? 'null' : JSON.stringify(m.name)}`;
    if (m.alias !== undefined) out += `,"alias":${m.alias}`;
    out += `,"type":"${m.type}","value":${valueJson(m.value)}`;
    if (m.timestamp !== undefined) out += `,"timestamp":${m.timestamp}`;
    if (m.isHistorical) out += ',"historical":true';
    if (m.isTransient) out += ',"transient":true';
    out += '}';
  }
  return `${out}]`;
}

function valueJson(v: SparkplugValue): string {
  switch (typeof v) {
    case 'number':
      return Number.isFinite(v) ? String(v) : JSON.stringify(String(v)); // NaN, Infinity: JSON has none
    case 'bigint':
      return v.toString();
    case 'boolean':
      return v ? 'true' : 'false';
    case 'string':
      return JSON.stringify(v);
    default:
  }
  if (v === null) return 'null';
  if (Buffer.isBuffer(v)) return `{"base64":"${v.toString('base64')}"}`;
  if ('columns' in v)
    return `{"columns":${JSON.stringify(v.columns)},"types":${JSON.stringify(v.types)},"rows":[${v.rows.map((r) => `[${r.map(valueJson).join(',')}]`).join(',')}]}`;
  return `{"templateRef":${v.templateRef === undefined ? 'null' : JSON.stringify(v.templateRef)},"isDefinition":${v.isDefinition},"metrics":${metricsJson(v.metrics)}}`;
}

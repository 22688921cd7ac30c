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
 * of the CPU of a Sparkplug drain. Its pieces are joined once at the end: a text built with +=
 * is a rope that allocates a node per piece.
 */
export function sparkplugJson(m: SparkplugMessage): string {
  const t = m.topic;
  pieces = 0;
  put('{"group":', JSON.stringify(t.group));
  put(',"messageType":"', t.messageType);
  put('","edgeNode":', JSON.stringify(t.edgeNode));
  if (t.device !== '') put(',"device":', JSON.stringify(t.device));
  if (m.payload.timestamp !== undefined) put(',"timestamp":', String(m.payload.timestamp));
  if (m.payload.seq !== undefined) put(',"seq":', String(m.payload.seq));
  put(',"metrics":', '');
  metricsJson(m.payload.metrics);
  put('}', '');
  jsonParts.length = pieces;
  return jsonParts.join('');
}

/** The text's pieces, reused by every message (the encoding is synchronous), and how many this one has. */
const jsonParts: string[] = [];
let pieces = 0;

function put(a: string, b: string): void {
  jsonParts[pieces++] = a;
  jsonParts[pieces++] = b;
}

function metricsJson(metrics: readonly SparkplugMetric[]): void {
  put('[', '');
  for (let i = 0; i < metrics.length; i++) {
    const m = metrics[i] as SparkplugMetric;
    put(i > 0 ? ',{"name":' : '{"name":', m.name === undefined ? 'null' : quoted(m.name));
    if (m.alias !== undefined) put(',"alias":', String(m.alias));
    put(',"type":"', m.type);
    put('","value":', '');
    valueJson(m.value);
    if (m.timestamp !== undefined) put(',"timestamp":', String(m.timestamp));
    if (m.isHistorical) put(',"historical":true', '');
    if (m.isTransient) put(',"transient":true', '');
    put('}', '');
  }
  put(']', '');
}

/** A string as JSON: most metric names have nothing to escape and are quoted without JSON.stringify's walk. */
function quoted(s: string): string {
  return needsEscape.test(s) ? JSON.stringify(s) : `"${s}"`;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what JSON escapes
const needsEscape = /["\\\x00-\x1f\ud800-\udfff]/;

/** A metric's value, written as its pieces (a Template's members as metrics). */
function valueJson(v: SparkplugValue): void {
  if (v !== null && typeof v === 'object' && !Buffer.isBuffer(v) && !('columns' in v)) {
    put('{"templateRef":', v.templateRef === undefined ? 'null' : JSON.stringify(v.templateRef));
    put(',"isDefinition":', String(v.isDefinition));
    put(',"metrics":', '');
    metricsJson(v.metrics);
    put('}', '');
    return;
  }
  put(scalarJson(v), '');
}

function scalarJson(v: SparkplugValue): string {
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
    return `{"columns":${JSON.stringify(v.columns)},"types":${JSON.stringify(v.types)},"rows":[${v.rows.map((r) => `[${r.map(scalarJson).join(',')}]`).join(',')}]}`;
  throw new Error('a Template value is written by valueJson');
}

// A Sparkplug message's InfluxDB lines and Kafka JSON are written as text directly, without the
// client's Point or JSON.stringify of the whole: they must be byte for byte what a Point per
// series and time writes (tags and fields sorted by name, escaped by the client's escapers, a
// field set twice with its last value) and what the message's JSON was, on generated messages
// of every datatype, awkward names and per-metric times (pure code).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Message } from '../../src/message.ts';
import { Point } from '../../src/sinks/influx/influx-client.ts';
import { InfluxSparkplugMapping } from '../../src/sinks/influx/influx-sparkplug.ts';
import { type SparkplugMessage, sparkplugJson } from '../../src/sparkplug/sparkplug-message.ts';
import type { SparkplugMetric, SparkplugValue } from '../../src/sparkplug/sparkplug-payload.ts';

/** A deterministic generator (a run fails the same way every time). */
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0;
    return s % n;
  };
}

const names = [
  'Temperature',
  'Motor/Amps',
  'a b',
  'x,y',
  'k=v',
  'back\\slash',
  'é工🚚',
  'Temperature',
  'constructor',
  '10',
  '2',
  'Node Control/Rebirth',
  'bdSeq',
  'quote"d',
];
const strings = ['ok', 'say "hi"', 'back\\slash', 'tab\there', 'é工🚚', ''];

function metricOf(r: (n: number) => number, times: readonly number[]): SparkplugMetric {
  const kinds: Array<[string, () => SparkplugValue]> = [
    ['Int8', () => r(256) - 128],
    ['Int32', () => r(2 ** 31) - 2 ** 30],
    ['UInt32', () => r(2 ** 32)],
    ['DateTime', () => 1_700_000_000_000 + r(1_000_000)],
    ['Int64', () => BigInt(r(2 ** 30)) * 2n ** 33n - 2n ** 62n],
    ['UInt64', () => BigInt(r(2 ** 30)) * 2n ** 32n],
    ['Float', () => (r(2_000_001) - 1_000_000) / 1024],
    ['Double', () => [0.1, -0, 1e21, 123456789.125, 5e-324, -2.5][r(6)] as number],
    ['Boolean', () => r(2) === 0],
    ['String', () => strings[r(strings.length)] as string],
  ];
  const [type, value] = kinds[r(kinds.length)] as [string, () => SparkplugValue];
  return {
    name: names[r(names.length)],
    alias: r(3) === 0 ? BigInt(r(100)) : undefined,
    type: type as SparkplugMetric['type'],
    value: value(),
    timestamp: r(3) === 0 ? times[r(times.length)] : undefined,
    isNull: false,
    isHistorical: r(8) === 0,
    isTransient: r(10) === 0,
    raw: {} as SparkplugMetric['raw'],
  };
}

function messageOf(r: (n: number) => number): SparkplugMessage {
  const times = [0, 1_700_000_000_000, 1_700_000_000_001, 2 ** 53 + 2];
  const metrics = Array.from({ length: 1 + r(8) }, () => metricOf(r, times));
  if (r(6) === 0) {
    const members = Array.from({ length: 1 + r(3) }, () => metricOf(r, times));
    metrics.push({
      ...metricOf(r, times),
      name: 'Motor',
      type: 'Template',
      value: { templateRef: 'MotorType', isDefinition: false, metrics: members } as SparkplugValue,
    });
  }
  return {
    topic: { group: 'plant 1', messageType: 'DDATA', edgeNode: ['gw-1', 'gw,2', 'gw=3'][r(3)] as string, device: ['press', '', 'a b'][r(3)] as string },
    payload: { timestamp: r(4) === 0 ? undefined : 1_700_000_000_000 + r(5), seq: r(256), metrics } as SparkplugMessage['payload'],
  };
}

/** What a Point per series and time wrote for the default mapping: measurement {group}, tags edgeNode and device, a field per metric. */
function pointLines(m: SparkplugMessage, receivedAt: number): string | undefined {
  const points = new Map<number, Point>();
  const flat: Array<[string, SparkplugMetric]> = [];
  const flatten = (name: string, metric: SparkplugMetric) => {
    const v = metric.value as { metrics?: SparkplugMetric[]; isDefinition?: boolean } | null;
    if (metric.type === 'Template' && v !== null && typeof v === 'object' && v.metrics) {
      if (!v.isDefinition) for (const member of v.metrics) flatten(`${name}/${member.name ?? ''}`, member);
      return;
    }
    flat.push([name, metric]);
  };
  for (const metric of m.payload.metrics) flatten(metric.name ?? '', metric);
  for (const [name, metric] of flat) {
    if (metric.isTransient || metric.value === null || name === 'bdSeq' || name.startsWith('Node Control/')) continue;
    const timeMs = metric.timestamp ?? m.payload.timestamp ?? receivedAt;
    let point = points.get(timeMs);
    if (!point) {
      point = new Point(m.topic.group).tag('edgeNode', m.topic.edgeNode).tag('device', m.topic.device);
      point.timestamp(`${BigInt(timeMs) * 1_000_000n}`);
      points.set(timeMs, point);
    }
    const v = metric.value;
    if (typeof v === 'bigint') point.fields[name] = `${v}i`;
    else if (metric.type === 'Float' || metric.type === 'Double') point.floatField(name, v as number);
    else if (metric.type === 'Boolean') point.booleanField(name, v as boolean);
    else if (metric.type === 'String') point.stringField(name, v as string);
    else point.intField(name, v as number);
  }
  if (points.size === 0) return undefined;
  return [...points.values()].map((p) => p.toLineProtocol()).join('\n');
}

/** The message's JSON as it was written before: one string grown piece by piece. */
function referenceJson(m: SparkplugMessage): string {
  const value = (v: SparkplugValue): string => {
    if (typeof v === 'number') return Number.isFinite(v) ? String(v) : JSON.stringify(String(v));
    if (typeof v === 'bigint') return v.toString();
    if (typeof v === 'boolean') return v ? 'true' : 'false';
    if (typeof v === 'string') return JSON.stringify(v);
    const t = v as { templateRef?: string; isDefinition: boolean; metrics: SparkplugMetric[] };
    return `{"templateRef":${t.templateRef === undefined ? 'null' : JSON.stringify(t.templateRef)},"isDefinition":${t.isDefinition},"metrics":${list(t.metrics)}}`;
  };
  const list = (metrics: readonly SparkplugMetric[]): string =>
    `[${metrics
      .map(
        (x) =>
          `{"name":${x.name === undefined ? 'null' : JSON.stringify(x.name)}${x.alias !== undefined ? `,"alias":${x.alias}` : ''},"type":"${x.type}","value":${value(x.value)}` +
          `${x.timestamp !== undefined ? `,"timestamp":${x.timestamp}` : ''}${x.isHistorical ? ',"historical":true' : ''}${x.isTransient ? ',"transient":true' : ''}}`,
      )
      .join(',')}]`;
  const t = m.topic;
  return (
    `{"group":${JSON.stringify(t.group)},"messageType":"${t.messageType}","edgeNode":${JSON.stringify(t.edgeNode)}` +
    `${t.device !== '' ? `,"device":${JSON.stringify(t.device)}` : ''}${m.payload.timestamp !== undefined ? `,"timestamp":${m.payload.timestamp}` : ''}` +
    `${m.payload.seq !== undefined ? `,"seq":${m.payload.seq}` : ''},"metrics":${list(m.payload.metrics)}}`
  );
}

const mapping = new InfluxSparkplugMapping(
  { measurement: '{group}', tags: ['edgeNode', 'device'], skipMetrics: ['bdSeq', 'Node Control/*'] },
  { route: 'r', levels: ['group', 'messageType', 'edgeNode', 'device'], payload: 'sparkplug', path: ['routes', 0, 'influx'], baseDir: '.' },
);

test('20,000 generated Sparkplug messages: the lines a Point per series and time writes, and the JSON as it was', () => {
  const r = rng(2112);
  const receivedAt = 1_700_000_000_999;
  const message: Message = { topic: 't', payload: Buffer.alloc(0), qos: 1, retain: false, properties: {}, receivedAt };
  let points = 0;
  let several = 0;
  let templates = 0;
  for (let n = 0; n < 20_000; n++) {
    const m = messageOf(r);
    const levels = { group: m.topic.group, messageType: m.topic.messageType, edgeNode: m.topic.edgeNode, device: m.topic.device };
    const encoded = mapping.encode({ message, route: 'r', levels, payload: m, clientId: 'c', annotations: undefined });
    const expected = pointLines(m, receivedAt);
    if (expected === undefined) {
      assert.deepEqual(encoded, { skip: true });
    } else {
      assert.ok('item' in encoded, JSON.stringify(encoded));
      assert.equal(encoded.item, expected, `message ${n}`);
      points++;
      if (expected.includes('\n')) several++;
    }
    if (m.payload.metrics.some((x) => x.type === 'Template')) templates++;
    assert.equal(sparkplugJson(m), referenceJson(m), `message ${n}`);
  }
  // the comparison reaches points, several points per message and templates often
  assert.ok(points > 15_000 && several > 2_000 && templates > 2_000, `${points} with points, ${several} with several, ${templates} with templates`);
});

test('a metric named __proto__ is a field like any other (a Point dropped it)', () => {
  const m = messageOf(rng(1));
  m.payload.metrics.length = 0;
  m.payload.metrics.push({
    name: '__proto__',
    alias: undefined,
    type: 'Int32',
    value: 5,
    timestamp: undefined,
    isNull: false,
    isHistorical: false,
    isTransient: false,
    raw: {} as SparkplugMetric['raw'],
  });
  const levels = { group: 'g', messageType: 'DDATA', edgeNode: 'n', device: '' };
  const message: Message = { topic: 't', payload: Buffer.alloc(0), qos: 1, retain: false, properties: {}, receivedAt: 1 };
  const encoded = mapping.encode({ message, route: 'r', levels, payload: m, clientId: 'c', annotations: undefined });
  assert.deepEqual('item' in encoded && encoded.item, `g,edgeNode=n __proto__=5i ${BigInt(m.payload.timestamp ?? 1) * 1_000_000n}`);
});

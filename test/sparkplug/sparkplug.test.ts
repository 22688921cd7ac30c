// Sparkplug B routing without a broker: births name alias-only data (int64 exact), deaths and
// rebirths change what is known, an unknown alias is refused with its reason, seq gaps are
// counted, the state comes back from its file, and what line protocol cannot hold is refused
// with the metric's name.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import sparkplug from 'sparkplug-payload';
import { compileRules } from '../../src/config/load.ts';
import { rulesFile } from '../../src/config/rules-schema.ts';
import type { RuleError } from '../../src/mapping/rule-error.ts';
import type { Message } from '../../src/message.ts';
import { encodeAll } from '../../src/pipeline/encode.ts';
import type { RuleSet } from '../../src/router/rule-set.ts';
import type { KafkaRecord } from '../../src/sinks/kafka/kafka-record.ts';
import { SparkplugState } from '../../src/sparkplug/sparkplug-state.ts';
import { smallTmpfs } from '../support/tmpfs.ts';

const spb = sparkplug.get('spBv1.0') as { encodePayload(p: unknown): Uint8Array };

const rulesSpec = {
  subscriptions: [{ filter: 'spBv1.0/#', qos: 1 }],
  routes: [
    {
      name: 'plant',
      match: 'spBv1.0/#',
      payload: 'sparkplug',
      influx: { measurement: '{group}', tags: ['edgeNode', 'device'] },
      kafka: { topic: 'sparkplug.{group}' },
    },
  ],
};

function route(rules: RuleSet, topic: string, payload: unknown, state: SparkplugState, receivedAt = 1_700_000_000_000) {
  const message: Message = { topic, payload: Buffer.from(spb.encodePayload(payload)), qos: 1, retain: false, properties: {}, receivedAt };
  const { outputs, refusals } = encodeAll(rules.route(message, receivedAt, { sparkplug: state }), message, 'w');
  return {
    influx: outputs.filter((o) => o.sink === 'influx').map((o) => o.item as string),
    kafka: outputs.filter((o) => o.sink === 'kafka').map((o) => o.item as { key: string; value: Buffer; timestamp: number }),
    refusals,
  };
}

const t0 = 1_700_000_000_000;
const nbirth = (bdSeq: number, seq = 0) => ({
  timestamp: t0,
  seq,
  metrics: [
    { name: 'bdSeq', type: 'UInt64', value: bdSeq },
    { name: 'Node Control/Rebirth', type: 'Boolean', value: false },
    { name: 'Uptime', alias: 1, type: 'Int64', value: 5 },
  ],
});
const dbirth = (seq: number) => ({
  timestamp: t0 + 1,
  seq,
  metrics: [
    { name: 'Temperature', alias: 10, type: 'Double', value: 20.5 },
    { name: 'Count', alias: 11, type: 'Int64', value: 1 },
    { name: 'Serial', alias: 12, type: 'UInt64', value: 7 },
    { name: 'Running', alias: 13, type: 'Boolean', value: true },
    { name: 'Mode', alias: 14, type: 'String', value: 'auto' },
    { name: 'Level', alias: 15, type: 'Int16', value: -3 },
  ],
});

test('alias-only DDATA is named from its DBIRTH, with int64 written with all its digits', () => {
  const rules = compileRules(rulesFile.parse(rulesSpec));
  const state = new SparkplugState();
  const birth = route(rules, 'spBv1.0/plant1/NBIRTH/gw1', nbirth(0), state);
  assert.deepEqual(birth.refusals, []);
  assert.deepEqual(birth.influx, ['plant1,edgeNode=gw1 Uptime=5i 1700000000000000000'], 'bdSeq and Node Control are skipped by default');
  route(rules, 'spBv1.0/plant1/DBIRTH/gw1/press', dbirth(1), state);
  const data = route(
    rules,
    'spBv1.0/plant1/DDATA/gw1/press',
    {
      timestamp: t0 + 5,
      seq: 2,
      metrics: [
        { alias: 10, type: 'Double', value: 21.25 },
        { alias: 11, type: 'Int64', value: '9007199254740993' },
        { alias: 12, type: 'UInt64', value: '9223372036854775807' },
        { alias: 13, type: 'Boolean', value: false },
        { alias: 14, type: 'String', value: 'manual "x"' },
        { alias: 15, type: 'Int16', value: -7 },
        { alias: 1, type: 'Int64', value: '-9223372036854775808' },
      ],
    },
    state,
  );
  assert.deepEqual(data.refusals, []);
  assert.deepEqual(data.influx, [
    'plant1,device=press,edgeNode=gw1 Count=9007199254740993i,Level=-7i,Mode="manual \\"x\\"",Running=F,Serial=9223372036854775807i,Temperature=21.25,Uptime=-9223372036854775808i 1700000000005000000',
  ]);
  const record = data.kafka[0] as { key: string; value: Buffer; timestamp: number };
  assert.equal(record.key, 'plant1/gw1');
  assert.equal(record.timestamp, t0 + 5);
  const json = record.value.toString();
  assert.match(json, /"name":"Count","alias":11,"type":"Int64","value":9007199254740993\b/, 'the JSON value keeps every digit');
  assert.equal(JSON.parse(json).device, 'press');
});

test('an unknown alias is refused with its reason; a rebirth defines it; a death forgets', () => {
  const rules = compileRules(rulesFile.parse(rulesSpec));
  const state = new SparkplugState();
  const ddata = { timestamp: t0 + 5, seq: 2, metrics: [{ alias: 10, type: 'Double', value: 1 }] };
  const before = route(rules, 'spBv1.0/plant1/DDATA/gw1/press', ddata, state);
  assert.deepEqual(before.influx, []);
  assert.deepEqual(
    before.refusals.map((r) => [r.reason, r.error]),
    [['sparkplug-unknown-alias', 'alias 10 not defined by a birth of device plant1/gw1/press (no DBIRTH on record)']],
  );
  route(rules, 'spBv1.0/plant1/NBIRTH/gw1', nbirth(3), state);
  route(rules, 'spBv1.0/plant1/DBIRTH/gw1/press', dbirth(1), state);
  assert.deepEqual(route(rules, 'spBv1.0/plant1/DDATA/gw1/press', ddata, state).influx, ['plant1,device=press,edgeNode=gw1 Temperature=1 1700000000005000000']);
  // a stale will (an older bdSeq) must not erase the new birth
  route(rules, 'spBv1.0/plant1/NDEATH/gw1', { timestamp: t0 + 6, metrics: [{ name: 'bdSeq', type: 'UInt64', value: 2 }] }, state);
  assert.deepEqual(route(rules, 'spBv1.0/plant1/DDATA/gw1/press', ddata, state).refusals, []);
  const death = route(rules, 'spBv1.0/plant1/NDEATH/gw1', { timestamp: t0 + 7, metrics: [{ name: 'bdSeq', type: 'UInt64', value: 3 }] }, state);
  assert.deepEqual(death.refusals, []);
  assert.deepEqual(death.influx, [], 'a death with only bdSeq writes no point, and is not dead-lettered');
  // data published after the death name nothing; data published before it still have their birth
  assert.equal(route(rules, 'spBv1.0/plant1/DDATA/gw1/press', { ...ddata, timestamp: t0 + 9 }, state).refusals[0]?.reason, 'sparkplug-unknown-alias');
  assert.deepEqual(route(rules, 'spBv1.0/plant1/DDATA/gw1/press', ddata, state).refusals, []);
});

test("the same NBIRTH twice (the feed's copy and the share group's) keeps the devices born between", () => {
  const rules = compileRules(rulesFile.parse(rulesSpec));
  const state = new SparkplugState();
  route(rules, 'spBv1.0/plant1/NBIRTH/gw1', nbirth(0), state);
  route(rules, 'spBv1.0/plant1/DBIRTH/gw1/press', dbirth(1), state);
  route(rules, 'spBv1.0/plant1/NBIRTH/gw1', nbirth(0), state);
  const data = route(rules, 'spBv1.0/plant1/DDATA/gw1/press', { timestamp: t0 + 5, seq: 2, metrics: [{ alias: 10, type: 'Double', value: 1 }] }, state);
  assert.deepEqual(data.refusals, []);
  route(rules, 'spBv1.0/plant1/NBIRTH/gw1', { ...nbirth(1), timestamp: t0 + 10 }, state);
  assert.equal(
    route(rules, 'spBv1.0/plant1/DDATA/gw1/press', { timestamp: t0 + 11, seq: 1, metrics: [{ alias: 10, type: 'Double', value: 1 }] }, state).refusals[0]
      ?.reason,
    'sparkplug-unknown-alias',
    'a new birth (new bdSeq) forgets the devices: they must be born again',
  );
});

test("STATE (a host's) is no edge node data: the route does not take it; NCMD writes no point but goes to Kafka", () => {
  const rules = compileRules(rulesFile.parse({ ...rulesSpec, unmatched: 'drop' }));
  const state = new SparkplugState();
  const message: Message = {
    topic: 'spBv1.0/STATE/scada-1',
    payload: Buffer.from('{"online":true,"timestamp":1}'),
    qos: 1,
    retain: true,
    properties: {},
    receivedAt: t0,
  };
  assert.equal(rules.route(message, t0, { sparkplug: state }).outcome, 'unmatched-dropped');
  const cmd = route(rules, 'spBv1.0/plant1/NCMD/gw1', { timestamp: t0, metrics: [{ name: 'Setpoint', type: 'Double', value: 5 }] }, state);
  assert.deepEqual(cmd.refusals, []);
  assert.deepEqual(cmd.influx, []);
  assert.equal(cmd.kafka.length, 1);
});

test('a transient metric is not historized in InfluxDB; Kafka has it, marked', () => {
  const rules = compileRules(rulesFile.parse(rulesSpec));
  const r = route(
    rules,
    'spBv1.0/g/NDATA/n',
    {
      timestamp: t0,
      seq: 1,
      metrics: [
        { name: 'Kept', type: 'Double', value: 1 },
        { name: 'Live', type: 'Double', value: 2, isTransient: true },
      ],
    },
    new SparkplugState(),
  );
  assert.deepEqual(r.influx, ['g,edgeNode=n Kept=1 1700000000000000000']);
  assert.match(r.kafka[0]!.value.toString(), /"name":"Live","type":"Double","value":2,"transient":true/);
});

test("a metric name is the device's: one that would break the line (a trailing backslash, a control character) is refused", () => {
  const rules = compileRules(rulesFile.parse(rulesSpec));
  const errors = (name: string) =>
    route(rules, 'spBv1.0/g/NDATA/n', { timestamp: t0, seq: 1, metrics: [{ name, type: 'Double', value: 1 }] }, new SparkplugState()).refusals.map(
      (r) => r.error,
    );
  assert.deepEqual(errors('Temp\\'), ['metric "Temp\\\\": field name "Temp\\\\" is empty or unsafe']);
  assert.deepEqual(errors('a\nb'), ['metric "a\\nb": field name "a\\nb" is empty or unsafe']);
  assert.deepEqual(errors('ok name, = too'), []);
});

test('data published before a rebirth but routed after it (the feed ran ahead) are named from the birth they were published under', () => {
  const rules = compileRules(rulesFile.parse(rulesSpec));
  const state = new SparkplugState();
  route(rules, 'spBv1.0/plant1/NBIRTH/gw1', nbirth(0), state);
  route(rules, 'spBv1.0/plant1/DBIRTH/gw1/press', dbirth(1), state); // alias 10: Temperature
  const old = { timestamp: t0 + 5, seq: 2, metrics: [{ alias: 10, type: 'Double', value: 1.5 }] };
  // the rebirth, taken in first: a new bdSeq, the device not born again yet
  route(rules, 'spBv1.0/plant1/NDEATH/gw1', { timestamp: t0 + 8, metrics: [{ name: 'bdSeq', type: 'UInt64', value: 0 }] }, state);
  assert.deepEqual(
    route(rules, 'spBv1.0/plant1/DDATA/gw1/press', old, state).influx,
    ['plant1,device=press,edgeNode=gw1 Temperature=1.5 1700000000005000000'],
    'after the death',
  );
  route(rules, 'spBv1.0/plant1/NBIRTH/gw1', { ...nbirth(1), timestamp: t0 + 10 }, state);
  assert.deepEqual(
    route(rules, 'spBv1.0/plant1/DDATA/gw1/press', old, state).influx,
    ['plant1,device=press,edgeNode=gw1 Temperature=1.5 1700000000005000000'],
    'after the new NBIRTH',
  );
  // the device born again with alias 10 meaning another metric: old data keep their old name, new data take the new one
  route(rules, 'spBv1.0/plant1/DBIRTH/gw1/press', { timestamp: t0 + 11, seq: 1, metrics: [{ name: 'Pressure', alias: 10, type: 'Double', value: 0 }] }, state);
  assert.deepEqual(route(rules, 'spBv1.0/plant1/DDATA/gw1/press', old, state).influx, ['plant1,device=press,edgeNode=gw1 Temperature=1.5 1700000000005000000']);
  assert.deepEqual(
    route(rules, 'spBv1.0/plant1/DDATA/gw1/press', { timestamp: t0 + 12, seq: 2, metrics: [{ alias: 10, type: 'Double', value: 2 }] }, state).influx,
    ['plant1,device=press,edgeNode=gw1 Pressure=2 1700000000012000000'],
  );
});

test("a device's data published before its DDEATH but routed after it are named from its last birth; later data and a stale death are not", () => {
  const rules = compileRules(rulesFile.parse(rulesSpec));
  const state = new SparkplugState();
  route(rules, 'spBv1.0/plant1/NBIRTH/gw1', nbirth(0), state);
  route(rules, 'spBv1.0/plant1/DBIRTH/gw1/press', dbirth(1), state); // alias 10: Temperature
  const late = { timestamp: t0 + 5, seq: 2, metrics: [{ alias: 10, type: 'Double', value: 1.5 }] };
  route(rules, 'spBv1.0/plant1/DDEATH/gw1/press', { timestamp: t0 + 8, seq: 3, metrics: [] }, state);
  assert.deepEqual(
    route(rules, 'spBv1.0/plant1/DDATA/gw1/press', late, state).influx,
    ['plant1,device=press,edgeNode=gw1 Temperature=1.5 1700000000005000000'],
    'published before the death',
  );
  const after = route(rules, 'spBv1.0/plant1/DDATA/gw1/press', { timestamp: t0 + 9, seq: 4, metrics: [{ alias: 10, type: 'Double', value: 2 }] }, state);
  assert.deepEqual(
    after.refusals.map((r) => r.reason),
    ['sparkplug-unknown-alias'],
    'published after the death',
  );
  // born again with alias 10 moved: late data keep the old name, new data take the new one
  route(rules, 'spBv1.0/plant1/DBIRTH/gw1/press', { timestamp: t0 + 10, seq: 5, metrics: [{ name: 'Pressure', alias: 10, type: 'Double', value: 0 }] }, state);
  assert.deepEqual(route(rules, 'spBv1.0/plant1/DDATA/gw1/press', late, state).influx, [
    'plant1,device=press,edgeNode=gw1 Temperature=1.5 1700000000005000000',
  ]);
  // the old session's death, arriving after the new birth, does not erase it
  route(rules, 'spBv1.0/plant1/DDEATH/gw1/press', { timestamp: t0 + 8, seq: 3, metrics: [] }, state);
  assert.deepEqual(
    route(rules, 'spBv1.0/plant1/DDATA/gw1/press', { timestamp: t0 + 12, seq: 6, metrics: [{ alias: 10, type: 'Double', value: 3 }] }, state).influx,
    ['plant1,device=press,edgeNode=gw1 Pressure=3 1700000000012000000'],
  );
});

test('seq gaps are counted per edge node, across the 255 -> 0 wrap', () => {
  const rules = compileRules(rulesFile.parse(rulesSpec));
  const gaps: Array<[number, number]> = [];
  const state = new SparkplugState({ onGap: (_t, expected, got) => gaps.push([expected, got]) });
  route(rules, 'spBv1.0/g/NBIRTH/n', nbirth(0, 254), state);
  for (const seq of [255, 0, 1, 3]) route(rules, 'spBv1.0/g/NDATA/n', { timestamp: t0, seq, metrics: [{ alias: 1, type: 'Int64', value: 1 }] }, state);
  assert.deepEqual(gaps, [[2, 3]]);
});

test('the alias state comes back from its file after a restart', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-spb-'));
  try {
    const rules = compileRules(rulesFile.parse(rulesSpec));
    const file = join(dir, 'state.json');
    const first = new SparkplugState({ file });
    route(rules, 'spBv1.0/plant1/NBIRTH/gw1', nbirth(0), first);
    route(rules, 'spBv1.0/plant1/DBIRTH/gw1/press', dbirth(1), first);
    first.flush();
    const second = new SparkplugState({ file });
    assert.equal(second.nodeCount, 1);
    const data = route(rules, 'spBv1.0/plant1/DDATA/gw1/press', { timestamp: t0 + 5, seq: 2, metrics: [{ alias: 11, value: '42', type: 'Int64' }] }, second);
    assert.deepEqual(data.influx, ['plant1,device=press,edgeNode=gw1 Count=42i 1700000000005000000']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('templates become fields per member; a DataSet or bytes are refused naming the metric; bad bytes are invalid', () => {
  const rules = compileRules(rulesFile.parse(rulesSpec));
  const state = new SparkplugState();
  const template = route(
    rules,
    'spBv1.0/g/NDATA/n',
    {
      timestamp: t0,
      seq: 1,
      metrics: [
        {
          name: 'Motor',
          type: 'Template',
          value: {
            templateRef: 'MotorType',
            isDefinition: false,
            metrics: [
              { name: 'Speed', type: 'Float', value: 1.5 },
              { name: 'Amps', type: 'Int32', value: -2 },
            ],
          },
        },
      ],
    },
    state,
  );
  assert.deepEqual(template.refusals, []);
  assert.deepEqual(template.influx, ['g,edgeNode=n Motor/Amps=-2i,Motor/Speed=1.5 1700000000000000000']);
  const dataset = route(
    rules,
    'spBv1.0/g/NDATA/n',
    { timestamp: t0, seq: 2, metrics: [{ name: 'Table', type: 'DataSet', value: { numOfColumns: 1, columns: ['a'], types: ['String'], rows: [['x']] } }] },
    state,
  );
  assert.deepEqual(
    dataset.refusals.map((r) => [r.reason, r.error]),
    [['sparkplug-unsupported-type', 'metric "Table" (DataSet): a DataSet has no line-protocol field type (send it to Kafka, or add it to skipMetrics)']],
  );
  assert.match(dataset.kafka[0]!.value.toString(), /"columns":\["a"\],"types":\["String"\],"rows":\[\["x"\]\]/, 'Kafka still gets the DataSet as JSON');
  const message: Message = { topic: 'spBv1.0/g/NDATA/n', payload: Buffer.from([0xff, 0xff, 0xff]), qos: 1, retain: false, properties: {}, receivedAt: t0 };
  const bad = encodeAll(rules.route(message, t0, { sparkplug: state }), message, 'w');
  assert.equal(bad.refusals[0]?.reason, 'sparkplug-invalid');
  assert.deepEqual(bad.outputs, []);
});

test('metricLevels split a metric name into levels for measurement, tags and field', () => {
  const rules = compileRules(
    rulesFile.parse({
      ...rulesSpec,
      routes: [
        {
          name: 'lines',
          match: 'spBv1.0/#',
          payload: 'sparkplug',
          influx: { measurement: '{area}', tags: { line: '{line}', node: '{edgeNode}' }, metricLevels: ['area', 'line'] },
        },
      ],
    }),
  );
  const r = route(
    rules,
    'spBv1.0/g/NDATA/n',
    {
      timestamp: t0,
      seq: 1,
      metrics: [
        { name: 'Press/L1/Temp', type: 'Double', value: 1 },
        { name: 'Press/L2/Temp', type: 'Double', value: 2 },
        { name: 'Press/L1/Motor/Amps', type: 'Int32', value: 3 },
      ],
    },
    new SparkplugState(),
  );
  assert.deepEqual(r.influx, ['Press,line=L1,node=n Motor/Amps=3i,Temp=1 1700000000000000000\nPress,line=L2,node=n Temp=2 1700000000000000000']);
});

test('array fan-out: one point per element, each with its own time; $$ reads the whole payload', () => {
  const rules = compileRules(
    rulesFile.parse({
      subscriptions: [{ filter: '#', qos: 1 }],
      routes: [
        {
          name: 'batch',
          match: 'b/{deviceId}',
          influx: {
            measurement: 'reading',
            tags: { deviceId: '{deviceId}', site: '$$.site', sensor: '$.sensor' },
            each: '$.readings[*]',
            fields: { v: '$.v', n: { path: '$.n', type: 'integer' }, fw: '$$.fw' },
            time: '$.t',
            timeUnit: 'ms',
          },
        },
      ],
    }),
  );
  const message = (payload: string): Message => ({ topic: 'b/d1', payload: Buffer.from(payload), qos: 1, retain: false, properties: {}, receivedAt: t0 });
  const run = (payload: string) => {
    const m = message(payload);
    return encodeAll(rules.route(m, t0), m, 'w');
  };
  const r = run('{"site":"s1","fw":"1.2","readings":[{"sensor":"a","v":1.5,"t":1700000000001,"n":9007199254740993},{"sensor":"b","v":2,"t":1700000000002}]}');
  assert.deepEqual(r.refusals, []);
  assert.deepEqual(
    r.outputs.map((o) => o.item),
    [
      'reading,deviceId=d1,sensor=a,site=s1 fw="1.2",n=9007199254740993i,v=1.5 1700000000001000000\nreading,deviceId=d1,sensor=b,site=s1 fw="1.2",v=2 1700000000002000000',
    ],
  );
  assert.deepEqual(run('{"readings":[]}').outputs, [], 'an empty array writes nothing');
  assert.deepEqual(run('{"readings":[]}').refusals, [], '...and is not dead-lettered');
  assert.deepEqual(
    run('{"readings":{}}').refusals.map((x) => x.error),
    ['each $.readings[*]: not an array'],
  );
  assert.deepEqual(
    run('{"readings":[{"v":1,"t":1},{"v":2,"t":"soon"}]}').refusals.map((x) => x.error),
    ['element 1 of $.readings: time $.t: "soon" is not a timestamp'],
  );
});

test('array fan-out into Kafka: one record per element, the element as it was written, all in one item', () => {
  const rules = compileRules(
    rulesFile.parse({
      subscriptions: [{ filter: '#', qos: 1 }],
      routes: [{ name: 'batch', match: 'b/{deviceId}', kafka: { topic: 'readings', each: '$.readings[*]', timestamp: '$.t', timestampUnit: 'ms' } }],
    }),
  );
  const message = (payload: Buffer): Message => ({ topic: 'b/d1', payload, qos: 1, retain: false, properties: {}, receivedAt: t0 });
  const run = (payload: string | Buffer) => {
    const m = message(Buffer.isBuffer(payload) ? payload : Buffer.from(payload));
    return encodeAll(rules.route(m, t0), m, 'w');
  };
  const records = (r: ReturnType<typeof run>) =>
    r.outputs.flatMap((o) => {
      const k = o.item as KafkaRecord;
      return [k, ...(k.more ?? [])].map((e) => ({
        key: k.key,
        topic: k.topic,
        value: e.value.toString(),
        timestamp: e.timestamp,
        element: e.headers['sluice-element'],
        time: e.headers['sluice-timestamp'],
      }));
    });
  // the int64 and the 1.50 keep the payload's digits; a BOM is dropped as the router drops it
  const r = run(
    Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"readings":[{"n":9007199254740993,"v":1.50,"t":1700000000001},{"v":"x","t":"soon"},3]}')]),
  );
  assert.deepEqual(r.refusals, []);
  assert.equal(r.outputs.length, 1, 'one item: the records are written together or not at all');
  assert.deepEqual(records(r), [
    { key: 'd1', topic: 'readings', value: '{"n":9007199254740993,"v":1.50,"t":1700000000001}', timestamp: 1700000000001, element: '0', time: 'payload' },
    { key: 'd1', topic: 'readings', value: '{"v":"x","t":"soon"}', timestamp: t0, element: '1', time: 'received' },
    { key: 'd1', topic: 'readings', value: '3', timestamp: t0, element: '2', time: 'received' },
  ]);
  assert.deepEqual(run('{"readings":[]}').outputs, [], 'an empty array writes nothing');
  assert.deepEqual(run('{"readings":[]}').refusals, [], '...and is not dead-lettered');
  assert.deepEqual(
    run('{"other":1}').refusals.map((x) => [x.reason, x.error]),
    [['mapping', 'each $.readings[*]: not in the payload']],
  );
  // $$ reads the whole payload; and without each it is refused at load, naming the key
  const outer = compileRules(
    rulesFile.parse({
      subscriptions: [{ filter: '#', qos: 1 }],
      routes: [{ name: 'batch', match: 'b/{deviceId}', kafka: { topic: 'readings', each: '$[*]', timestamp: '$$[0].t' } }],
    }),
  );
  const m = message(Buffer.from('[{"t":1700000000009},{"t":5}]'));
  assert.deepEqual(
    encodeAll(outer.route(m, t0), m, 'w').outputs.map((o) => [
      (o.item as KafkaRecord).timestamp,
      ...((o.item as KafkaRecord).more ?? []).map((e) => e.timestamp),
    ]),
    [[1700000000009, 1700000000009]],
  );
  assert.throws(
    () =>
      compileRules(
        rulesFile.parse({
          subscriptions: [{ filter: '#', qos: 1 }],
          routes: [{ name: 'batch', match: 'b/{deviceId}', kafka: { topic: 'readings', timestamp: '$$.t' } }],
        }),
      ),
    (err: RuleError) => err.path.join('.') === 'routes.0.kafka.timestamp' && /"\$\$\." reads the whole payload under each/.test(err.message),
  );
  assert.throws(
    () =>
      compileRules(
        rulesFile.parse({
          subscriptions: [{ filter: '#', qos: 1 }],
          routes: [{ name: 'raw', match: 'b/{deviceId}', payload: 'raw', kafka: { topic: 'readings', each: '$.r[*]' } }],
        }),
      ),
    (err: RuleError) => err.path.join('.') === 'routes.0.kafka.each' && /needs payload: json/.test(err.message),
  );
  // with a value schema each element is encoded alone; one that does not fit refuses the message
  const dir = mkdtempSync(join(tmpdir(), 'sluice-fan-'));
  try {
    writeFileSync(join(dir, 'r.avsc'), JSON.stringify({ type: 'record', name: 'R', fields: [{ name: 'v', type: 'double' }] }));
    const avro = compileRules(
      rulesFile.parse({
        subscriptions: [{ filter: '#', qos: 1 }],
        routes: [{ name: 'batch', match: 'b/{deviceId}', kafka: { topic: 'readings', each: '$.r[*]', value: { format: 'avro', schema: 'r.avsc' } } }],
      }),
      dir,
    );
    const a = message(Buffer.from('{"r":[{"v":1.5},{"v":2}]}'));
    const k = encodeAll(avro.route(a, t0), a, 'w').outputs[0]?.item as KafkaRecord;
    assert.deepEqual([k.value, ...(k.more ?? []).map((e) => e.value)], [Buffer.from([0, 0, 0, 0, 0, 0, 248, 63]), Buffer.from([0, 0, 0, 0, 0, 0, 0, 64])]);
    const bad = message(Buffer.from('{"r":[{"v":1.5},{"v":"x"}]}'));
    assert.deepEqual(
      encodeAll(avro.route(bad, t0), bad, 'w').refusals.map((x) => [x.reason, x.error]),
      [['schema-mismatch', 'element 1 of $.r: does not fit Avro schema R (readings-value): v: "x" is not a double']],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the state file on a full disk (a real tmpfs): the last file stays whole, no half-written copy holds space, the failure is reported; written again once there is room', async (t) => {
  const dir = smallTmpfs(t, '64k', 'sluice-spstate-');
  if (dir === undefined) return;
  const file = join(dir, 'sparkplug-w.json');
  const errors: string[] = [];
  let written = 0;
  const state = new SparkplugState({
    file,
    saveDelayMs: 5,
    onFileError: (err, action) => errors.push(`${action}: ${(err as NodeJS.ErrnoException).code}`),
    onFileWritten: () => written++,
  });
  const rules = compileRules(rulesFile.parse(rulesSpec));
  const saved = async () => new Promise((r) => setTimeout(r, 50));
  route(rules, 'spBv1.0/plant1/NBIRTH/gw1', nbirth(0), state);
  await saved();
  assert.equal(written, 1);
  const before = readFileSync(file, 'utf8');
  // the rest of the disk taken
  try {
    writeFileSync(join(dir, 'filler'), Buffer.alloc(64 * 1024));
  } catch {
    // ENOSPC: full, as wanted
  }
  route(rules, 'spBv1.0/plant1/NBIRTH/gw2', nbirth(0), state);
  await saved();
  assert.deepEqual(errors, ['write: ENOSPC']);
  assert.equal(readFileSync(file, 'utf8'), before, 'the last file whole');
  assert.equal(existsSync(`${file}.tmp`), false, 'no half-written copy left');
  assert.equal(written, 1);

  rmSync(join(dir, 'filler'));
  route(rules, 'spBv1.0/plant1/DBIRTH/gw2/press', dbirth(1), state);
  await saved();
  assert.equal(written, 2, 'written at the next change');
  const restored = new SparkplugState({ file });
  assert.equal(restored.nodeCount, 2, 'both edge nodes on file');
});

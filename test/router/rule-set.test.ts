// The routing table: topics and payloads in, exact Kafka records and line-protocol points out
// (the router's match, encoded by each sink's compiled part), including escaping and everything
// that must be dead-lettered rather than written.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rulesFile } from '../../src/config/rules-schema.ts';
import { toNanos } from '../../src/mapping/timestamp.ts';
import type { Message, MqttProperties } from '../../src/message.ts';
import { encodeAll } from '../../src/pipeline/encode.ts';
import { RuleSet, type RulesSpec } from '../../src/router/rule-set.ts';
import { sinkPlugins } from '../../src/sinks/registry.ts';

const compilers = sinkPlugins.flatMap((p) => (p.route ? [p.route.compiler] : []));

/** What the rules make of a message, per sink, as the pipeline would queue it. */
class Rules {
  readonly set: RuleSet;
  constructor(raw: unknown) {
    this.set = new RuleSet(rulesFile.parse(raw) as RulesSpec, compilers);
  }
  get usesAudit(): boolean {
    return this.set.uses('audit');
  }
  route(m: Message, now = Date.now()) {
    const routed = this.set.route(m, now);
    const { outputs, refusals } = encodeAll(routed, m, 'w');
    const of = (sink: string) => outputs.filter((o) => o.sink === sink);
    const audit = of('audit')[0];
    return {
      outcome: routed.outcome,
      routes: routed.matches.map((x) => x.route),
      kafka: of('kafka').map((o) => ({ route: o.route, record: o.item })) as Array<{ route: string; record: { topic: string; key: string | null } }>,
      influx: of('influx').map((o) => ({ route: o.route, line: o.item as string })),
      deadLetters: refusals,
      audit: audit && { route: audit.route, levels: (audit.item as { levels: unknown }).levels },
    };
  }
}

const rules = (raw: unknown): Rules => new Rules(raw);
const subscriptions = [{ filter: '#', qos: 1 }];

function msg(topic: string, payload: unknown, properties: MqttProperties = {}, receivedAt = 1_700_000_000_000): Message {
  const bytes = Buffer.isBuffer(payload) ? payload : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload));
  return { topic, payload: bytes, qos: 1, retain: false, properties, receivedAt };
}

const telemetry = rules({
  subscriptions,
  routes: [
    {
      name: 'telemetry',
      match: '{org}/{site}/{zone}/{deviceType}/{deviceId}/telemetry',
      kafka: { topic: 'telemetry.{site}', headers: { zone: '{zone}' } },
      influx: {
        measurement: '{deviceType}',
        tags: ['site', 'deviceId'],
        fields: { temperature: '$.temperature', ok: '$.ok', note: '$.note', count: { path: '$.n', type: 'integer' } },
        time: '$.ts',
      },
    },
  ],
});

test('a telemetry message becomes one Kafka record and one point', () => {
  const m = msg(
    'acme/malta-factory/floor-03/temperature-sensor/ts-4427/telemetry',
    { temperature: 21.5, ok: true, note: 'fine', n: 3, ts: 1_700_000_000_123 },
    { userProperties: { firmware: '1.2', 'mqtt-topic': 'spoofed' }, contentType: 'application/json', correlationData: Buffer.from([1, 2]) },
  );
  const r = telemetry.route(m, m.receivedAt);
  assert.equal(r.outcome, 'routed');
  assert.deepEqual(r.deadLetters, []);
  assert.deepEqual(r.kafka, [
    {
      route: 'telemetry',
      record: {
        topic: 'telemetry.malta-factory',
        key: 'ts-4427', // default key: the deviceId level
        value: m.payload,
        headers: {
          firmware: '1.2', // user properties travel on; a device cannot set sluice's own mqtt-* headers
          zone: 'floor-03',
          'mqtt-topic': 'acme/malta-factory/floor-03/temperature-sensor/ts-4427/telemetry',
          'mqtt-qos': '1',
          'mqtt-content-type': 'application/json',
          'mqtt-correlation-data': Buffer.from([1, 2]),
        },
        timestamp: 1_700_000_000_000,
        template: 'telemetry.{site}', // a templated topic: its kafka.maxTopics budget
      },
    },
  ]);
  assert.deepEqual(r.influx, [
    {
      route: 'telemetry',
      line: 'temperature-sensor,deviceId=ts-4427,site=malta-factory count=3i,note="fine",ok=T,temperature=21.5 1700000000123000000',
    },
  ]);
});

test('line protocol escaping: levels and strings cannot add a point, tag or field', () => {
  const m = msg('acme/site one,x=1/z/type a/dev"1/telemetry', { temperature: 1, note: 'say "hi" \\ bye' });
  const r = telemetry.route(m, m.receivedAt);
  assert.equal(r.influx.length, 1);
  assert.equal(r.influx[0]?.line, 'type\\ a,deviceId=dev"1,site=site\\ one\\,x\\=1 note="say \\"hi\\" \\\\ bye",temperature=1 1700000000000000000');
  assert.equal(r.influx[0]?.line.split('\n').length, 1);
  // a site with a comma and = is no legal Kafka topic: dead-lettered, not written
  assert.deepEqual(r.kafka, []);
  assert.equal(r.deadLetters[0]?.reason, 'invalid-kafka-topic');
});

test('a Kafka topic is checked once when it has no {levels}, per message when it has', () => {
  for (const topic of ['.', '..', 'has space', 'x'.repeat(250)]) {
    assert.throws(() => rules({ subscriptions, routes: [{ name: 'r', match: '{site}/d', kafka: { topic } }] }), /not a legal Kafka topic name/, topic);
  }
  const templated = rules({ subscriptions, routes: [{ name: 'r', match: '{site}/d', kafka: { topic: '{site}' } }] });
  assert.equal(templated.route(msg('../d', {})).deadLetters[0]?.reason, 'invalid-kafka-topic');
  assert.equal(templated.route(msg('plant.7/d', {})).kafka[0]?.record.topic, 'plant.7');
});

test('unsafe values are dead-lettered instead of written', () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['acme/s/z/t/back\\/telemetry', { temperature: 1 }, /trailing backslash/], // would escape the separator
    ['acme/s/z/t/d\x01/telemetry', { temperature: 1 }, /control character/],
    ['acme/s/z/t\x7f/d/telemetry', { temperature: 1 }, /empty or unsafe/], // the measurement
    ['acme/s/z/t/d/telemetry', { temperature: 1, note: 'two\nlines' }, /line break/],
    ['acme/s/z/t/d/telemetry', { temperature: 1, n: 1.5 }, /not an integer/],
    ['acme/s/z/t/d/telemetry', { humidity: 1 }, /none of the fields/],
    ['acme/s/z/t/d/telemetry', { temperature: { nested: 1 } }, /object or array/],
    ['acme/s/z/t/d/telemetry', { temperature: 1, ts: 'yesterday' }, /not a timestamp/],
  ];
  for (const [topic, payload, why] of cases) {
    const r = telemetry.route(msg(topic, payload));
    assert.equal(r.influx.length, 0, topic);
    const note = r.deadLetters.find((d) => d.sink === 'influx');
    assert.ok(note, `${JSON.stringify(payload)} dead-lettered`);
    assert.equal(note.reason, 'mapping');
    assert.match(note.error, why);
  }
  // {temperature: "hot"} is no mapping error: the type is inferred (string); InfluxDB rejects the
  // type conflict at write time and that point is dead-lettered there (sinks/influx).
});

test('decode failures: invalid UTF-8 and invalid JSON go to the dead-letter topic', () => {
  const bad = telemetry.route(msg('acme/s/z/t/d/telemetry', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])));
  assert.deepEqual(
    bad.deadLetters.map((d) => d.reason),
    ['invalid-utf8'],
  );
  assert.deepEqual([bad.kafka.length, bad.influx.length], [0, 0]);
  const notJson = telemetry.route(msg('acme/s/z/t/d/telemetry', '{"temperature": 1'));
  assert.deepEqual(
    notJson.deadLetters.map((d) => d.reason),
    ['invalid-json'],
  );
});

test('a route that only forwards the bytes checks its payload is JSON without parsing it, and refuses as a parsing route does', () => {
  const forwarding = rules({ subscriptions, routes: [{ name: 'raw-json', match: '{site}/{deviceId}/telemetry', kafka: { topic: 'telemetry' } }] });
  const ok = forwarding.set.route(msg('s/d/telemetry', '\ufeff {"t": 1.5, "s": "é"} '));
  assert.equal(ok.matches[0]?.problem, undefined);
  assert.equal(ok.matches[0]?.payload, undefined, 'no value built: the Kafka output forwards the bytes');
  const record = forwarding.route(msg('s/d/telemetry', '{"t": 1}')).kafka[0]?.record as unknown as { value: Buffer };
  assert.equal(record.value.toString(), '{"t": 1}');
  // the same refusals, reasons and words as a route that parses
  for (const bad of [Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), Buffer.from('{"temperature": 1'), Buffer.from('{"a":1,}'), Buffer.from('')]) {
    const parsing = telemetry.route(msg('acme/s/z/t/d/telemetry', bad)).deadLetters;
    const checking = forwarding.route(msg('s/d/telemetry', bad)).deadLetters;
    assert.deepEqual(
      checking.map((d) => [d.reason, d.error]),
      parsing.map((d) => [d.reason, d.error]),
      bad.toString('latin1'),
    );
    assert.equal(checking.length, 1);
  }
  // an output that reads the value (a payload timestamp) parses; a later route that only forwards reuses that parse
  const both = rules({
    subscriptions,
    routes: [
      { name: 'timed', match: '{site}/{deviceId}/telemetry', continue: true, kafka: { topic: 'timed', timestamp: '$.ts' } },
      { name: 'plain', match: '{site}/{deviceId}/telemetry', kafka: { topic: 'plain' } },
    ],
  });
  const routed = both.set.route(msg('s/d/telemetry', { ts: 1_700_000_000_123 }));
  assert.deepEqual(
    routed.matches.map((m) => [m.route, m.payload]),
    [
      ['timed', { ts: 1_700_000_000_123 }],
      ['plain', { ts: 1_700_000_000_123 }],
    ],
  );
});

test('a route whose outputs read only members of the payload builds only those, and writes what a route that parses it whole writes', () => {
  const influx = {
    measurement: '{deviceType}',
    tags: { site: '{site}', deviceId: '{deviceId}', line: '$.line', cell: '$.meta.cell' },
    fields: { temperature: '$.temperature', ok: "$['ok']", note: '$.note', count: { path: '$.n', type: 'integer' }, first: '$.data.values[0]' },
    time: '$.ts',
  };
  const match = '{org}/{site}/{zone}/{deviceType}/{deviceId}/telemetry';
  const picking = rules({ subscriptions, routes: [{ name: 'r', match, kafka: { topic: 't', timestamp: '$.ts' }, influx }] });
  // a path that reads the payload itself, not within a member: the whole payload is parsed
  const parsing = rules({
    subscriptions,
    routes: [{ name: 'r', match, kafka: { topic: 't', timestamp: '$.ts' }, influx: { ...influx, tags: { ...influx.tags, whole: '$[0]' } } }],
  });
  const topic = 'acme/s1/z/sensor/d-1/telemetry';
  const m = msg(topic, { temperature: 21.5, fw: '2.4.1', note: 'ok', n: 3, ts: 1_700_000_000_123, x: { z: 1 }, meta: { cell: 'c2' }, pad: 'x'.repeat(60) });
  assert.deepEqual(picking.set.route(m).matches[0]?.payload, { temperature: 21.5, note: 'ok', n: 3, ts: 1_700_000_000_123, meta: { cell: 'c2' } });
  assert.equal((parsing.set.route(m).matches[0]?.payload as { fw: string } | undefined)?.fw, '2.4.1', 'parsed whole');
  // the same records, lines and refusals, payload for payload
  const payloads = [
    '{"temperature":21.5,"ok":true,"note":"a \\"quoted\\" é","n":7,"ts":1700000000123}',
    '\ufeff { "temperature" : -0.0 , "ts" : "2026-01-01T00:00:00Z" , "line" : "L 1,=" } ',
    '{"temperature":1e400}',
    '{"temperature":"21.5","n":"9007199254740993","ts":1700000000123456789}',
    '{"n":12345678901234567890}',
    '{"temperature":{"v":1}}',
    '{"temperature":1,"meta":{"cell":"c 2,=","other":[1,2]},"data":{"values":[2.5,3]}}',
    '{"data":{"values":[{"v":1}]},"meta":{"cell":{"x":1}}}',
    '{"data":{"values":"1"},"meta":[1],"temperature":1}',
    '{"data":null,"meta":{"cell":"\\ud800"},"temperature":1}',
    '{"temperature":[1]}',
    '{"line":{"a":1},"temperature":1}',
    '{"temperature":1,"temperature":2}',
    '{"note":"line\\nbreak"}',
    '{"note":"\\ud800"}',
    '{"t\\u0065mperature":5}',
    '{"ok":false,"ok":null,"note":null}',
    '{"other":1}',
    '{}',
    '[1,2]',
    '7',
    '"text"',
    'null',
    '{"temperature":1,}',
    '{"temperature":1',
    '',
  ];
  for (const p of payloads) {
    const a = picking.route(msg(topic, p));
    const b = parsing.route(msg(topic, p));
    assert.deepEqual(a.influx, b.influx, p);
    assert.deepEqual(a.kafka, b.kafka, p);
    assert.deepEqual(
      a.deadLetters.map((d) => [d.reason, d.error]),
      b.deadLetters.map((d) => [d.reason, d.error]),
      p,
    );
  }
  // a later route that only checks the payload takes the earlier route's answer
  const both = rules({
    subscriptions,
    routes: [
      { name: 'timed', match: '{site}/{deviceId}/telemetry', continue: true, kafka: { topic: 'timed', timestamp: '$.ts' } },
      { name: 'plain', match: '{site}/{deviceId}/telemetry', kafka: { topic: 'plain' } },
    ],
  });
  const routed = both.set.route(msg('s/d/telemetry', { ts: 1_700_000_000_123, other: 1 }));
  assert.deepEqual(
    routed.matches.map((x) => [x.route, x.payload, x.problem]),
    [
      ['timed', { ts: 1_700_000_000_123 }, undefined],
      ['plain', { ts: 1_700_000_000_123 }, undefined],
    ],
  );
});

test('empty levels, unknown topics and expired messages', () => {
  assert.equal(telemetry.route(msg('acme/s//t/d/telemetry', { temperature: 1 })).deadLetters[0]?.reason, 'empty-level');
  const unknown = telemetry.route(msg('acme/s/z/t/d/other', {}));
  assert.deepEqual(
    unknown.deadLetters.map((d) => d.reason),
    ['unmatched'],
  );
  const deep = telemetry.route(msg(Array.from({ length: 20 }, (_, i) => `l${i}`).join('/'), {}));
  assert.deepEqual(
    deep.deadLetters.map((d) => d.reason),
    ['unmatched'],
  );
  const dropping = rules({ subscriptions, unmatched: 'drop', routes: [{ name: 'x', match: 'x', kafka: { topic: 't' } }] });
  assert.equal(dropping.route(msg('y', {})).outcome, 'unmatched-dropped');
  const m = msg('acme/s/z/t/d/telemetry', { temperature: 1 }, { messageExpiryInterval: 5 }, 1_000_000);
  assert.equal(telemetry.route(m, 1_004_000).outcome, 'routed');
  assert.equal(telemetry.route(m, 1_006_000).outcome, 'expired');
});

/** Alarms fan out to a catch-all; the route after the catch-all is never reached. */
const fanOutRules = () =>
  rules({
    subscriptions,
    routes: [
      { name: 'alarms', match: '{org}/+/+/+/{deviceId}/alarm', continue: true, payload: 'raw', kafka: { topic: 'alarms' } },
      { name: 'everything', match: '{org}/#', payload: 'raw', kafka: { topic: 'all.{org}' } },
      { name: 'never', match: 'acme/#', payload: 'raw', kafka: { topic: 'never' } },
    ],
  });

test('first match by default, fan-out with continue: true', () => {
  const set = fanOutRules();
  const r = set.route(msg('acme/s/z/t/d/alarm', Buffer.from([0xff])));
  assert.deepEqual(r.routes, ['alarms', 'everything']);
  assert.deepEqual(
    r.kafka.map((k) => [k.record.topic, k.record.key]),
    [
      ['alarms', 'd'],
      ['all.acme', null],
    ],
  );
  assert.deepEqual(r.deadLetters, [], 'raw payloads are not decoded');
});

test("a topic's routes and levels are found once and kept: routed again, past the topics kept, each message still gets its own outputs", () => {
  const set = fanOutRules();
  const route = (topic: string) => set.route(msg(topic, Buffer.from('x')));
  const first = route('acme/s/z/t/d1/alarm');
  const again = route('acme/s/z/t/d1/alarm');
  assert.deepEqual(again, first, 'the same topic, the same routes and records');
  assert.deepEqual(
    route('other/s/z/t/d2/alarm').kafka.map((k) => [k.record.topic, k.record.key]),
    [
      ['alarms', 'd2'],
      ['all.other', null],
    ],
  );
  assert.deepEqual(route('acme/s/z/t/d1/status').routes, ['everything'], 'a sibling topic is found on its own');
  assert.equal(route('/s/z/t/d1/alarm').deadLetters[0]?.reason, 'empty-level', 'an empty level stays refused when seen again');
  assert.equal(route('/s/z/t/d1/alarm').deadLetters[0]?.reason, 'empty-level');
  // more topics than a rule set keeps (10,000): each still routed by its own levels
  for (let i = 0; i < 10_050; i++) assert.equal(route(`org${i}/s/z/t/d${i}/alarm`).kafka[0]?.record.key, `d${i}`);
  assert.deepEqual(route('acme/s/z/t/d1/alarm'), first);
  // the first topics seen stay kept; one past the bound is matched per message, not kept in
  // place of another (a map emptied to make room would keep nothing for a larger fleet)
  const levelsOf = (topic: string) => set.set.route(msg(topic, Buffer.from('x'))).matches[0]?.levels;
  assert.equal(levelsOf('acme/s/z/t/d1/alarm'), levelsOf('acme/s/z/t/d1/alarm'), 'a topic seen first is still kept');
  assert.notEqual(levelsOf('org10049/s/z/t/d10049/alarm'), levelsOf('org10049/s/z/t/d10049/alarm'), 'a topic past the bound is not kept');
  assert.equal(Object.isFrozen(levelsOf('org10049/s/z/t/d10049/alarm')), false, 'nor are its levels shared');
  // nor is a topic longer than 256 characters (MQTT allows 65,535 bytes), in a rule set with room
  const roomy = fanOutRules();
  const levelsIn = (topic: string) => roomy.set.route(msg(topic, Buffer.from('x'))).matches[0]?.levels;
  const long = `acme/s/z/t/${'d'.repeat(240)}/alarm`;
  assert.equal(long.length, 257);
  assert.notEqual(levelsIn(long), levelsIn(long), 'a topic of 257 characters is not kept');
  assert.equal(levelsIn(long)?.deviceId, 'd'.repeat(240), 'but routed by its own levels');
  const longest = long.replace('/d', '/');
  assert.equal(levelsIn(longest), levelsIn(longest), 'one of 256 is');
  // the levels a match shares with the other messages of its topic cannot be changed by an output
  const levels = set.set.route(msg('acme/s/z/t/d1/alarm', Buffer.from('x'))).matches[0]?.levels as Record<string, string>;
  assert.throws(() => {
    levels.deviceId = 'changed';
  }, TypeError);
  assert.equal(route('acme/s/z/t/d1/alarm').kafka[0]?.record.key, 'd1');
});

test('timestamps: s, ms, us, ns, ISO-8601', () => {
  assert.equal(toNanos(1_700_000_000, 'auto'), 1_700_000_000_000_000_000n);
  assert.equal(toNanos(1_700_000_000.5, 's'), 1_700_000_000_500_000_000n);
  assert.equal(toNanos(1_700_000_000_123, 'auto'), 1_700_000_000_123_000_000n);
  assert.equal(toNanos(1_700_000_000_123_456, 'auto'), 1_700_000_000_123_456_000n);
  assert.equal(toNanos('1700000000123456789', 'auto'), 1_700_000_000_123_456_789n);
  assert.equal(toNanos('2023-11-14T22:13:20.123Z', 'auto'), 1_700_000_000_123_000_000n);
  assert.equal(toNanos(5, 'ms'), 5_000_000n);
  assert.equal(toNanos(-1, 'auto'), undefined);
  assert.equal(toNanos('not a date', 'auto'), undefined);
});

test('an audit route records every message it matches, whatever its payload; its other outputs follow the usual rules', () => {
  const commands = rules({
    subscriptions: [{ filter: 'acme/+/+/+/+/command', qos: 2 }],
    routes: [
      { name: 'commands', match: '{org}/{site}/{zone}/{deviceType}/{deviceId}/command', audit: true, kafka: { topic: 'commands' } },
      { name: 'audit-only', match: 'ops/{deviceId}/command', audit: true },
    ],
  });
  assert.equal(commands.usesAudit, true);
  const bad = commands.route(msg('acme/s/z/valve/v-1/command', Buffer.from([0xff, 0x00])));
  assert.deepEqual(bad.audit, { route: 'commands', levels: { org: 'acme', site: 's', zone: 'z', deviceType: 'valve', deviceId: 'v-1' } });
  assert.deepEqual(bad.kafka, [], 'not JSON: no Kafka record from a json route');
  assert.equal(bad.deadLetters[0]?.reason, 'invalid-utf8', 'dead-lettered for Kafka, recorded all the same');
  const only = commands.route(msg('ops/d-9/command', 'anything'));
  assert.deepEqual(only.audit, { route: 'audit-only', levels: { deviceId: 'd-9' } });
  assert.deepEqual([only.kafka, only.influx, only.deadLetters], [[], [], []]);
  assert.equal(telemetry.usesAudit, false);
  assert.equal(telemetry.route(msg('acme/s/z/t/d/telemetry', { temperature: 1 })).audit, undefined);
});

test("a Kafka record's timestamp from the payload per route; missing or not a timestamp: the receive time, and the header says which", () => {
  const r = rules({
    subscriptions,
    routes: [
      { name: 't', match: '{deviceId}/t', kafka: { topic: 't', timestamp: '$.ts' } },
      { name: 'u', match: '{deviceId}/u', kafka: { topic: 'u', timestamp: '$.at', timestampUnit: 's' } },
    ],
  });
  const record = (topic: string, payload: unknown) =>
    r.route(msg(topic, payload)).kafka[0]?.record as unknown as { timestamp: number; headers: Record<string, string> };
  assert.deepEqual(
    [record('d/t', { ts: 1_700_000_000_123 }).timestamp, record('d/t', { ts: 1_700_000_000_123 }).headers['sluice-timestamp']],
    [1_700_000_000_123, 'payload'],
  );
  assert.equal(record('d/t', { ts: '2026-11-30T08:00:00.250Z' }).timestamp, Date.parse('2026-11-30T08:00:00.250Z'), 'ISO-8601');
  assert.equal(record('d/u', { at: 1_700_000_000 }).timestamp, 1_700_000_000_000, 'seconds, as the route says');
  for (const payload of [{}, { ts: 'soon' }, { ts: -5 }]) {
    const x = record('d/t', payload);
    assert.deepEqual([x.timestamp, x.headers['sluice-timestamp']], [1_700_000_000_000, 'received'], JSON.stringify(payload));
  }
  assert.throws(
    () => rules({ subscriptions, routes: [{ name: 'raw', match: '#', payload: 'raw', kafka: { topic: 'r', timestamp: '$.ts' } }] }),
    /a payload timestamp needs payload: json/,
  );
});

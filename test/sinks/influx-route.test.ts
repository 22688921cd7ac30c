// Values from payloads into line protocol, the hard cases: an integer beyond 2^53 is written
// with the payload's own digits or dead-lettered with them; a number out of range is called
// that; a lone UTF-16 surrogate in a tag or a string field is dead-lettered, never written as
// U+FFFD.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileRules } from '../../src/config/load.ts';
import { rulesFile } from '../../src/config/rules-schema.ts';
import { toNanos } from '../../src/mapping/timestamp.ts';
import type { Message } from '../../src/message.ts';
import { encodeAll } from '../../src/pipeline/encode.ts';

const rules = compileRules(
  rulesFile.parse({
    subscriptions: [{ filter: '#', qos: 1 }],
    routes: [
      {
        name: 'meters',
        match: 'm/{deviceId}',
        influx: {
          measurement: 'meter',
          tags: { deviceId: '{deviceId}', label: '$.label' },
          fields: { count: { path: '$.count', type: 'integer' }, v: { path: '$.v', type: 'float' }, note: '$.note' },
          time: '$.ts',
        },
      },
    ],
  }),
);

function route(payload: string) {
  const message: Message = { topic: 'm/d-1', payload: Buffer.from(payload), qos: 1, retain: false, properties: {}, receivedAt: 1_700_000_000_000 };
  return encodeAll(rules.route(message, message.receivedAt), message, 'w');
}

test("an integer beyond 2^53 is written with the payload's own digits", () => {
  const r = route('{"count": 9007199254740993, "ts": 1700000000000}');
  assert.deepEqual(r.refusals, []);
  assert.equal(r.outputs[0]?.item, 'meter,deviceId=d-1 count=9007199254740993i 1700000000000000000');
  assert.equal(
    route('{"count": "-9223372036854775808", "ts": 1700000000000}').outputs[0]?.item,
    'meter,deviceId=d-1 count=-9223372036854775808i 1700000000000000000',
  );
  // a payload led by a byte order mark parses in the router, so its digits are read back too
  // (they were not: the double's 9007199254740992 was written)
  assert.equal(
    route('\ufeff{"count": 9007199254740993, "ts": 1700000000000}').outputs[0]?.item,
    'meter,deviceId=d-1 count=9007199254740993i 1700000000000000000',
  );
});

test('an integer that cannot be written exactly is dead-lettered with its digits, and out of range is called that', () => {
  const errors = (payload: string) => route(payload).refusals.map((x) => x.error);
  assert.deepEqual(errors('{"count": 9223372036854775808}'), ['field count: 9223372036854775808 is out of range for an integer field (int64)']);
  assert.deepEqual(errors('{"count": 1e20}'), ['field count: 1e20 is beyond 2^53 and not written as plain digits, so it cannot be written exactly']);
  assert.deepEqual(errors('{"count": 1.5}'), ['field count: 1.5 is not an integer']);
  assert.deepEqual(errors('{"v": 1e400}'), ['field v: 1e400 is out of range for a float field']);
  assert.deepEqual(errors('{"v": "1e400"}'), ['field v: "1e400" is out of range for a float field']);
});

test('a lone UTF-16 surrogate in a tag or a string field is dead-lettered, never turned into U+FFFD', () => {
  const errors = (payload: string) => route(payload).refusals.map((x) => [x.reason, x.sink, x.error]);
  assert.deepEqual(errors('{"count": 1, "label": "a\\ud800b"}'), [
    ['mapping', 'influx', 'tag label: "a\\ud800b" has a lone UTF-16 surrogate (it would be written as U+FFFD)'],
  ]);
  assert.deepEqual(errors('{"count": 1, "note": "x\\udfff"}'), [
    ['mapping', 'influx', 'field note: "x\\udfff" has a lone UTF-16 surrogate (it would be written as U+FFFD)'],
  ]);
  assert.equal(route('{"count": 1, "note": "\\ud83d\\ude00"}').outputs.length, 1, 'a well-formed pair is fine');
});

test("each line is what the client's Point writes for the same point: tags and fields sorted, names and values escaped", async () => {
  const { Point } = await import('@influxdata/influxdb-client');
  const wide = compileRules(
    rulesFile.parse({
      subscriptions: [{ filter: '#', qos: 1 }],
      routes: [
        {
          name: 'wide',
          match: 'w/{site}/{deviceId}',
          influx: {
            measurement: 'm {site},x',
            tags: { zeta: '$.z', 'a b': '{site}', 'c=d': '$.t', deviceId: '{deviceId}' },
            fields: { z: '$.f', 'x,y': '$.s', b: '$.b', 'a=b': { path: '$.i', type: 'integer' }, q: '$.q' },
            time: '$.ts',
          },
        },
      ],
    }),
  );
  const cases = [
    { site: 'malta', device: 'd-1', payload: { z: 'zz', t: 'T', f: 1.5, s: 'plain', b: true, i: 7, q: 'x', ts: 1_700_000_000_000 } },
    { site: 'a,b c', device: 'x=y', payload: { z: 'a b,c=d', t: '', f: -0.25, s: 'say "hi" \\ there', b: false, i: -3, ts: 1_700_000_000_001 } },
    { site: 'ü', device: 'd"2', payload: { f: 1e21, s: 'tab\tin', ts: 1_700_000_000_002 } },
    { site: 'plain', device: 'back\\slash', payload: { z: 'a\\b', f: 2, ts: 1_700_000_000_003 } },
  ];
  for (const c of cases) {
    const message: Message = {
      topic: `w/${c.site}/${c.device}`,
      payload: Buffer.from(JSON.stringify(c.payload)),
      qos: 1,
      retain: false,
      properties: {},
      receivedAt: 1,
    };
    const written = encodeAll(wide.route(message, 1), message, 'w');
    assert.deepEqual(written.refusals, []);
    const p = c.payload as Record<string, unknown>;
    const point = new Point(`m ${c.site},x`);
    for (const [name, value] of [
      ['zeta', p.z],
      ['a b', c.site],
      ['c=d', p.t],
      ['deviceId', c.device],
    ] as const)
      if (value) point.tag(name, String(value));
    if (p.f !== undefined) point.floatField('z', p.f as number);
    if (p.s !== undefined) point.stringField('x,y', p.s as string);
    if (p.b !== undefined) point.booleanField('b', p.b as boolean);
    if (p.i !== undefined) point.intField('a=b', p.i as number);
    if (p.q !== undefined) point.stringField('q', p.q as string);
    point.timestamp(`${p.ts as number}000000`);
    assert.equal(written.outputs[0]?.item, point.toLineProtocol());
  }
});

test('a whole-number time is the same point time and event time as toNanos gives, in every unit, and the receive time without one', () => {
  const units = ['auto', 's', 'ms', 'us', 'ns'] as const;
  const values = [
    1,
    7,
    99_999_999_999,
    1e11,
    1_700_000_000,
    1_700_000_000_123,
    1e14 - 1,
    1e14,
    1_700_000_000_123_456,
    1e17,
    1_700_000_000_123_456_000 / 1000,
    2 ** 53 - 1,
  ];
  let seed = 11;
  for (let i = 0; i < 300; i++) {
    seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
    values.push(Math.floor((seed / 2 ** 32) * 10 ** (1 + (i % 16))) + 1);
  }
  for (const unit of units) {
    const timed = compileRules(
      rulesFile.parse({
        subscriptions: [{ filter: '#', qos: 1 }],
        routes: [{ name: 't', match: 't/{deviceId}', influx: { measurement: 'm', fields: { v: '$.v' }, time: '$.ts', timeUnit: unit } }],
      }),
    );
    for (const ts of values) {
      const message: Message = {
        topic: 't/d',
        payload: Buffer.from(JSON.stringify({ v: 1, ts })),
        qos: 1,
        retain: false,
        properties: {},
        receivedAt: 1_700_000_000_000,
      };
      const match = timed.route(message, message.receivedAt).matches[0];
      const encoded = match?.outputs[0]?.encode({ message, route: 't', levels: match.levels, payload: match.payload, clientId: 'w', annotations: undefined });
      const nanos = toNanos(ts, unit) as bigint;
      assert.deepEqual(encoded, { item: `m v=1 ${nanos}`, eventTimeMs: Number(nanos / 1_000_000n) }, `${ts} ${unit}`);
    }
  }
  // the point time without a payload time is the receive time, in nanoseconds
  assert.equal(route('{"v": 2}').outputs[0]?.item, 'meter,deviceId=d-1 v=2 1700000000000000000');
});

test("a topic's measurement and tags are built once when the topic alone gives them; a tag from the payload, per message", () => {
  const byTopic = compileRules(
    rulesFile.parse({
      subscriptions: [{ filter: '#', qos: 1 }],
      routes: [{ name: 'r', match: '{site}/{deviceId}', influx: { measurement: 'm_{site}', tags: ['deviceId', 'site'], fields: { v: '$.v' } } }],
    }),
  );
  const line = (set: typeof rules, topic: string, payload: string) => {
    const message: Message = { topic, payload: Buffer.from(payload), qos: 1, retain: false, properties: {}, receivedAt: 1_700_000_000_000 };
    const r = encodeAll(set.route(message, message.receivedAt), message, 'w');
    return r.outputs[0]?.item ?? r.refusals[0]?.error;
  };
  assert.equal(line(byTopic, 'north/d 1', '{"v": 1}'), 'm_north,deviceId=d\\ 1,site=north v=1 1700000000000000000');
  assert.equal(line(byTopic, 'north/d 1', '{"v": 2}'), 'm_north,deviceId=d\\ 1,site=north v=2 1700000000000000000');
  assert.equal(line(byTopic, 'south/d 1', '{"v": 2}'), 'm_south,deviceId=d\\ 1,site=south v=2 1700000000000000000');
  // a refused series is refused every time, never kept
  for (let i = 0; i < 2; i++) assert.match(line(byTopic, 'north/bad\u0001', '{"v": 1}') as string, /tag deviceId has a control character/);
  // past the topics a route keeps (10,000): each line still from its own topic, the first ones' too
  for (let i = 0; i < 10_050; i++) assert.equal(line(byTopic, `s${i}/d${i}`, '{"v": 3}'), `m_s${i},deviceId=d${i},site=s${i} v=3 1700000000000000000`);
  assert.equal(line(byTopic, 'north/d 1', '{"v": 4}'), 'm_north,deviceId=d\\ 1,site=north v=4 1700000000000000000');
  assert.equal(line(rules, 'm/d-1', '{"v": 1, "label": "a"}'), 'meter,deviceId=d-1,label=a v=1 1700000000000000000');
  assert.equal(line(rules, 'm/d-1', '{"v": 1, "label": "b"}'), 'meter,deviceId=d-1,label=b v=1 1700000000000000000');
});

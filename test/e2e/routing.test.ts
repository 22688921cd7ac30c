// Routing end to end: topics and payloads in, exact Kafka records and points read back from
// InfluxDB and VictoriaMetrics out; bad input dead-lettered with its reason while good
// messages keep flowing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type KafkaRecordSeen, readTopic, waitFor } from '../support/e2e-helpers.ts';
import { sluiceFor } from '../support/sluice-process.ts';
import { endpoints, influxQuery, mqttClient, printLogsOnFailure, unique } from '../support/stack.ts';

function rulesFor(prefix: string, measurement: string) {
  return {
    subscriptions: [{ filter: `${prefix}/#`, qos: 1 }],
    unmatched: 'dead-letter',
    routes: [
      {
        name: 'telemetry',
        match: `${prefix}/{site}/{zone}/{deviceType}/{deviceId}/telemetry`,
        kafka: { topic: `${prefix}.telemetry.{site}`, headers: { zone: '{zone}' } },
        influx: {
          measurement,
          tags: ['site', 'deviceId'],
          fields: { temperature: '$.temperature', ok: '$.ok' },
          time: '$.ts',
        },
      },
      { name: 'raw-blobs', match: `${prefix}/{site}/blob`, payload: 'raw', kafka: { topic: `${prefix}.blobs`, key: '{site}' } },
    ],
  };
}

const byHeader = (records: readonly KafkaRecordSeen[], name: string, value: string) => records.find((r) => r.headers[name] === value);

test('routing table: exact Kafka records and InfluxDB points; bad input dead-lettered, good input still flows', { timeout: 120_000 }, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('route');
  const measurement = prefix.replace('-', '_');
  const sluice = sluiceFor(t, { rules: rulesFor(prefix, measurement) });
  await sluice.start();
  const pub = await mqttClient(t);
  const ts = Date.now() - 60_000;
  const good = (_device: string, i: number) => JSON.stringify({ temperature: 20.5 + i, ok: true, ts: ts + i });

  await pub.publishAsync(`${prefix}/malta/floor-3/sensor/ts-1/telemetry`, good('ts-1', 0), {
    qos: 1,
    properties: { userProperties: { firmware: '1.2.3' }, contentType: 'application/json', correlationData: Buffer.from('c-1'), responseTopic: 'reply/here' },
  });
  const bad: Array<[string, string | Buffer, string]> = [
    [`${prefix}/malta/floor-3/sensor/ts-2/telemetry`, '{"temperature": 1', 'invalid-json'],
    [`${prefix}/malta/floor-3/sensor/ts-2/telemetry`, Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), 'invalid-utf8'],
    [`${prefix}/malta/floor-3/sensor/ts-2/telemetry`, '{"temperature": {"c": 1}}', 'mapping'],
    [`${prefix}/malta/floor-3/sensor/ts-2/telemetry`, '{"temperature": 1, "ts": "not a time"}', 'mapping'],
    [`${prefix}/malta//sensor/ts-2/telemetry`, good('x', 1), 'empty-level'],
    [`${prefix}/${Array.from({ length: 20 }, (_, i) => `l${i}`).join('/')}`, good('x', 1), 'unmatched'],
    [`${prefix}/malta/floor-3/sensor/ts-2/unknown-kind`, good('x', 1), 'unmatched'],
    [`${prefix}/site with space/floor-3/sensor/ts-2/telemetry`, good('x', 1), 'invalid-kafka-topic'],
  ];
  for (const [topic, payload] of bad) await pub.publishAsync(topic, payload, { qos: 1 });
  const big = Buffer.alloc(256 * 1024, 0xab); // a 256 KiB binary payload on a raw route
  await pub.publishAsync(`${prefix}/malta/blob`, big, { qos: 1 });
  for (let i = 1; i <= 5; i++) await pub.publishAsync(`${prefix}/malta/floor-3/sensor/ts-1/telemetry`, good('ts-1', i), { qos: 1 });

  // the two "mapping" messages are valid JSON: their Kafka delivery stands, only their
  // InfluxDB delivery is dead-lettered
  const read = await readTopic(t, `${prefix}.telemetry.malta`, (r) => r.length >= 8);
  // At least once: a produce request that fails for one topic (here: one just created, whose
  // leader the broker does not know yet, NOT_LEADER_OR_FOLLOWER) is sent again per topic on a new
  // session, so the records of a topic written by the failed request can arrive twice. Copies
  // are counted, never new content.
  const seen = new Set<string>();
  const all = read.filter((r) => {
    const id = `${r.key}\0${r.headers['mqtt-topic']}\0${r.value.toString('base64')}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
  if (read.length > all.length) t.diagnostic(`${read.length - all.length} records arrived twice (a produce retried after another topic's fault)`);
  assert.equal(all.length, 8, 'the good messages and the two whose Influx mapping failed, nothing else');
  const telemetry = all.filter((r) => r.key === 'ts-1');
  assert.deepEqual(
    all.filter((r) => r.key === 'ts-2').map((r) => r.value.toString()),
    ['{"temperature": {"c": 1}}', '{"temperature": 1, "ts": "not a time"}'],
  );
  const first = telemetry[0] as KafkaRecordSeen;
  assert.equal(first.key, 'ts-1');
  assert.deepEqual(JSON.parse(first.value.toString()), { temperature: 20.5, ok: true, ts });
  assert.deepEqual(first.headers, {
    firmware: '1.2.3',
    zone: 'floor-3',
    'mqtt-topic': `${prefix}/malta/floor-3/sensor/ts-1/telemetry`,
    'mqtt-qos': '1',
    'mqtt-content-type': 'application/json',
    'mqtt-correlation-data': 'c-1',
    'mqtt-response-topic': 'reply/here',
  });
  assert.deepEqual(
    telemetry.map((r) => (JSON.parse(r.value.toString()) as { ts: number }).ts - ts),
    [0, 1, 2, 3, 4, 5],
    'one device, one partition, in order',
  );

  const blobs = await readTopic(t, `${prefix}.blobs`, (r) => r.length >= 1);
  assert.equal(blobs.length, 1);
  assert.ok(blobs[0]?.value.equals(big), '256 KiB forwarded byte for byte');

  const dead = await readTopic(t, sluice.deadLetterTopic, (r) => r.length >= bad.length);
  assert.equal(dead.length, bad.length, 'each bad message dead-lettered once');
  for (const [topic, payload, reason] of bad) {
    const r = dead.find((d) => d.headers['mqtt-topic'] === topic && d.value.equals(Buffer.isBuffer(payload) ? payload : Buffer.from(payload)));
    assert.ok(r, `${reason}: ${topic} is in the dead-letter topic with its original payload`);
    assert.equal(r.headers['sluice-reason'], reason);
    if (reason === 'mapping') assert.equal(r.headers['sluice-sink'], 'influx');
    assert.ok(r.headers['sluice-error'], 'with the error');
    assert.ok(r.headers['sluice-stage']);
  }
  assert.equal(byHeader(dead, 'sluice-reason', 'invalid-json')?.headers['sluice-route'], 'telemetry');

  let rows: unknown[][] = [];
  await waitFor('points in InfluxDB', async () => {
    rows = await influxQuery(`SELECT "temperature", "ok", "site", "deviceId" FROM "${measurement}"`);
    return rows.length >= 7;
  });
  assert.deepEqual(
    rows.filter((r) => r[4] === 'ts-1').map((r) => r.slice(1)),
    [0, 1, 2, 3, 4, 5].map((i) => [20.5 + i, true, 'malta', 'ts-1']),
  );
  // its Kafka topic was illegal (dead-lettered), but the point is legal: the tag is escaped, not split
  assert.deepEqual(
    rows.filter((r) => r[4] === 'ts-2').map((r) => r.slice(1)),
    [[21.5, true, 'site with space', 'ts-2']],
  );
  // InfluxDB writes RFC 3339 without trailing zeros (.29Z): compare instants, not strings
  assert.equal(Date.parse(String(rows[0]?.[0])), ts, 'time from the payload');

  const m = await sluice.metrics();
  assert.equal(m.get('sluice_dead_letters_total{reason="unmatched"}'), 2);
  assert.equal(m.get('sluice_dead_letters_total{reason="mapping"}'), 2);
  assert.equal(m.get('sluice_messages_acked_total'), 1 + bad.length + 1 + 5);
  assert.equal((await sluice.ready()).status, 200, 'the worker stayed up and ready');
});

test('a point InfluxDB refuses (field type conflict) is dead-lettered; the rest of its batch is written', { timeout: 60_000 }, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('conflict');
  const measurement = prefix.replace('-', '_');
  const sluice = sluiceFor(t, { rules: rulesFor(prefix, measurement), config: { influx: { batch: { lingerMs: 500 } } } });
  await sluice.start();
  const pub = await mqttClient(t);
  const ts = Date.now() - 30_000;
  const topic = `${prefix}/malta/floor-3/sensor/ts-9/telemetry`;
  await pub.publishAsync(topic, JSON.stringify({ temperature: 1.5, ts }), { qos: 1 });
  await sleep(1_000); // the float point is written first
  for (let i = 1; i <= 6; i++) {
    const temperature = i === 3 ? 'hot' : 1.5 + i; // a string where InfluxDB has a float
    await pub.publishAsync(topic, JSON.stringify({ temperature, ts: ts + i }), { qos: 1 });
  }
  const dead = await readTopic(t, sluice.deadLetterTopic, (r) => r.length >= 1);
  assert.equal(dead.length, 1);
  assert.equal(dead[0]?.headers['sluice-reason'], 'rejected-by-influx');
  assert.equal(dead[0]?.headers['sluice-stage'], 'write');
  assert.match(dead[0]?.headers['sluice-error'] ?? '', /HTTP 400/);
  assert.equal(JSON.parse(dead[0]?.value.toString() ?? '{}').temperature, 'hot');
  let rows: unknown[][] = [];
  await waitFor('six points', async () => (rows = await influxQuery(`SELECT "temperature" FROM "${measurement}"`)).length >= 6);
  assert.deepEqual(
    rows.map((r) => r[1]),
    [1.5, 2.5, 3.5, 5.5, 6.5, 7.5],
  );
});

test('the same rules write to VictoriaMetrics through /api/v2/write', { timeout: 60_000 }, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('vm');
  const measurement = prefix.replace('-', '_');
  const sluice = sluiceFor(t, { rules: rulesFor(prefix, measurement), config: { influx: { url: endpoints.victoriaMetrics, bucket: 'sluice' } } });
  await sluice.start();
  const pub = await mqttClient(t);
  const ts = Date.now() - 60_000;
  for (let i = 0; i < 3; i++) {
    await pub.publishAsync(`${prefix}/malta/floor-3/sensor/ts-${i}/telemetry`, JSON.stringify({ temperature: 10 + i, ok: true, ts }), { qos: 1 });
  }
  const url = `${endpoints.victoriaMetrics}/api/v1/export?${new URLSearchParams({ 'match[]': `{__name__="${measurement}_temperature"}` })}`;
  let series: Array<{ metric: Record<string, string>; values: number[] }> = [];
  await waitFor('three series in VictoriaMetrics', async () => {
    await fetch(`${endpoints.victoriaMetrics}/internal/force_flush`);
    series = (await (await fetch(url)).text())
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    return series.length >= 3;
  });
  assert.deepEqual(series.map((s) => [s.metric.deviceId, s.metric.site, s.values]).sort(), [
    ['ts-0', 'malta', [10]],
    ['ts-1', 'malta', [11]],
    ['ts-2', 'malta', [12]],
  ]);
});

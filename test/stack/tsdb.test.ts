// Smoke test of the two TSDBs behind the v2 write API: a point written with
// @influxdata/influxdb-client is read back from InfluxDB and from VictoriaMetrics.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Point } from '@influxdata/influxdb-client';
import { endpoints, influxQuery, influxWriteApi, printLogsOnFailure, unique } from '../support/stack.ts';

const at = new Date(Date.now() - 60_000);
at.setMilliseconds(0);

function point(measurement: string): Point {
  return new Point(measurement)
    .tag('site', 'malta factory') // a space, escaped by the client
    .tag('deviceId', 'ts-4427')
    .floatField('temperature', 21.5)
    .booleanField('ok', true)
    .timestamp(at);
}

test('a point written to InfluxDB /api/v2/write is read back', async (t) => {
  printLogsOnFailure(t);
  const measurement = unique('smoke').replace('-', '_');
  const writer = influxWriteApi(endpoints.influxdb);
  writer.writePoint(point(measurement));
  await writer.close(); // flushes; rejects if the server refused the write

  const rows = await influxQuery(`SELECT "temperature", "ok", "site", "deviceId" FROM "${measurement}"`);
  assert.deepEqual(rows, [[at.toISOString().replace('.000Z', 'Z'), 21.5, true, 'malta factory', 'ts-4427']]);
});

test('a point written to VictoriaMetrics /api/v2/write is read back', async (t) => {
  printLogsOnFailure(t);
  const measurement = unique('smoke').replace('-', '_');
  const writer = influxWriteApi(endpoints.victoriaMetrics);
  writer.writePoint(point(measurement));
  await writer.close();

  // VictoriaMetrics names the series <measurement>_<field>; force_flush makes fresh samples searchable.
  await fetch(`${endpoints.victoriaMetrics}/internal/force_flush`);
  const url = `${endpoints.victoriaMetrics}/api/v1/export?${new URLSearchParams({
    'match[]': `{__name__="${measurement}_temperature"}`,
  })}`;
  let lines: string[] = [];
  for (let i = 0; i < 40 && lines.length === 0; i++) {
    if (i > 0) await sleep(250);
    lines = (await (await fetch(url)).text()).split('\n').filter(Boolean);
  }
  assert.equal(lines.length, 1, 'one series');
  const series = JSON.parse(lines[0] ?? '{}') as { metric: Record<string, string>; values: number[]; timestamps: number[] };
  assert.deepEqual(series.metric, { __name__: `${measurement}_temperature`, site: 'malta factory', deviceId: 'ts-4427' });
  assert.deepEqual(series.values, [21.5]);
  assert.deepEqual(series.timestamps, [at.getTime()]);
});

// The InfluxDB sink against both servers of the v2 write API on the local stack, InfluxDB 1.8
// and VictoriaMetrics: the conformance suite (conformance.ts).
import { setTimeout as sleep } from 'node:timers/promises';
import { runningPid } from '../../deploy/local/daemon.ts';
import { InfluxSink } from '../../src/sinks/influx/influx-sink.ts';
import { endpoints, influxQuery, stack, unique } from '../support/stack.ts';
import { conformance, freeze } from './conformance.ts';

const base = Date.now() - 3_600_000;

function sinkFor(url: string) {
  return new InfluxSink({ url, token: 'sluice:sluice', org: '', bucket: endpoints.influxBucket, timeoutMs: 1_000 });
}

function lines(measurement: () => string) {
  return (n: number, from = 0) => Array.from({ length: n }, (_, i) => `${measurement()},device=d-${from + i} n=${from + i}i ${(base + from + i) * 1_000_000}`);
}

const numberOf = (line: string) => Number(/ n=(\d+)i /.exec(line)?.[1]);

let influxMeasurement = '';
conformance<string>({
  name: 'influx (InfluxDB 1.8)',
  async create() {
    influxMeasurement = unique('conf').replace('-', '_');
    return sinkFor(endpoints.influxdb);
  },
  good: lines(() => influxMeasurement),
  async readBack(items) {
    const rows = await influxQuery(`SELECT "n" FROM "${influxMeasurement}"`);
    const wanted = new Set(items.map(numberOf));
    return rows.filter((r) => wanted.has(Number(r[1]))).length;
  },
  // a field type conflict: n is an integer in this measurement. InfluxDB knows a field's type per
  // shard (a week, from Monday 00:00 UTC), so the bad point has the time of the batch's first
  // good one (good(4, 100)): 16 minutes later, as it was, it fell into the next week's shard
  // whenever the test ran in the 17 minutes before 01:00 on a Monday, and was written.
  bad: { item: () => `${influxMeasurement},device=bad n="text" ${(base + 100) * 1_000_000}`, reason: 'rejected-by-influx' },
  unreachable: { sink: async () => sinkFor('http://127.0.0.1:1') },
  fatal: { none: 'InfluxDB has no fatal failure: 5xx, 429 and network errors are retried; 400/422 reject the point' },
  outage: freeze(() => runningPid(stack.server('influxdb').files)),
});

let vmMeasurement = '';
conformance<string>({
  name: 'influx (VictoriaMetrics)',
  async create() {
    vmMeasurement = unique('conf').replace('-', '_');
    return sinkFor(endpoints.victoriaMetrics);
  },
  good: lines(() => vmMeasurement),
  async readBack(items) {
    // VictoriaMetrics names the series <measurement>_<field>; force_flush makes fresh samples searchable
    const wanted = new Set(items.map(numberOf));
    const url = `${endpoints.victoriaMetrics}/api/v1/export?${new URLSearchParams({ 'match[]': `{__name__="${vmMeasurement}_n"}`, start: String(Math.floor(base / 1000) - 60) })}`;
    let found = 0;
    for (let i = 0; i < 40; i++) {
      await fetch(`${endpoints.victoriaMetrics}/internal/force_flush`);
      const series = (await (await fetch(url)).text())
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { values: number[] });
      found = new Set(series.flatMap((s) => s.values).filter((v) => wanted.has(v))).size;
      if (found >= wanted.size) break;
      await sleep(250);
    }
    return found;
  },
  bad: {
    none: 'VictoriaMetrics accepts any well-formed line (no field types) and drops what it cannot parse with a 204; a 400 from it is handled as for InfluxDB',
  },
  unreachable: { sink: async () => sinkFor('http://127.0.0.1:1') },
  fatal: { none: 'the v2 write API has no fatal failure: every server failure is retried' },
  outage: freeze(() => runningPid(stack.server('victoria-metrics').files)),
});

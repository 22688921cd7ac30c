// Sparkplug B end to end: a fleet's alias-only DDATA lands in InfluxDB with the names and types
// of its births (int64 exact) across a worker killed and restarted and across a rebirth that
// moves the aliases; births reach every worker of a share group through the state feed; an
// unknown alias is dead-lettered with its reason (and a rebirth asked for) and nothing is lost;
// and array fan-out writes one point per element.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MqttClient } from 'mqtt';
import sparkplug from 'sparkplug-payload';
import type { Samples } from '../../scripts/prometheus-text.ts';
import { readTopic, waitFor } from '../support/e2e-helpers.ts';
import { jsonLines } from '../support/log-lines.ts';
import { sluiceFor } from '../support/sluice-process.ts';
import { endpoints, mqttClient, printLogsOnFailure, config as stackConfig, unique } from '../support/stack.ts';

const spb = sparkplug.get('spBv1.0') as {
  encodePayload(p: unknown): Uint8Array;
  decodePayload(b: Uint8Array): { metrics?: Array<{ name?: string; value?: unknown }> };
};

function rules(group: string, topic: string) {
  return {
    subscriptions: [{ filter: `spBv1.0/${group}/+/#`, qos: 1 }],
    routes: [
      {
        name: 'sparkplug',
        match: `spBv1.0/${group}/#`,
        payload: 'sparkplug',
        influx: { measurement: '{group}', tags: ['edgeNode', 'device'] },
        kafka: { topic },
      },
    ],
  };
}

/** InfluxQL rows with integers read from the response's own digits (JSON.parse would round past 2^53). */
async function rows(q: string): Promise<Array<Record<string, unknown>>> {
  const url = `${endpoints.influxdb}/query?${new URLSearchParams({ db: stackConfig.influxdb.database, q })}`;
  const text = await (await fetch(url)).text();
  const reviver = (_k: string, v: unknown, c?: { source?: string }) =>
    typeof v === 'number' && !Number.isSafeInteger(v) && Number.isInteger(v) && c?.source ? BigInt(c.source) : v;
  const body = JSON.parse(text, reviver as (k: string, v: unknown) => unknown) as {
    results: Array<{ series?: Array<{ columns: string[]; values: unknown[][] }>; error?: string }>;
  };
  if (body.results[0]?.error) throw new Error(body.results[0].error);
  const s = body.results[0]?.series?.[0];
  return (s?.values ?? []).map((v) => Object.fromEntries(s!.columns.map((c, i) => [c, v[i]])));
}

class EdgeNode {
  seq = 0;
  readonly client: MqttClient;
  readonly group: string;
  readonly name: string;
  constructor(client: MqttClient, group: string, name: string) {
    this.client = client;
    this.group = group;
    this.name = name;
  }
  async publish(type: string, device: string | undefined, metrics: unknown[], timestamp: number): Promise<void> {
    const seq = type === 'NBIRTH' ? (this.seq = 0) : (this.seq = (this.seq + 1) % 256);
    const topic = `spBv1.0/${this.group}/${type}/${this.name}${device ? `/${device}` : ''}`;
    await this.client.publishAsync(topic, Buffer.from(spb.encodePayload({ timestamp, seq, metrics })), { qos: 1 });
  }
  birth(bdSeq: number, at: number) {
    return this.publish(
      'NBIRTH',
      undefined,
      [
        { name: 'bdSeq', type: 'UInt64', value: bdSeq },
        { name: 'Node Control/Rebirth', type: 'Boolean', value: false },
      ],
      at,
    );
  }
}

/** A metric's value summed over its labels (0 when absent). */
function total(m: Samples, name: string): number {
  let sum = 0;
  for (const [k, v] of m) if (k === name || k.startsWith(`${name}{`)) sum += v;
  return sum;
}

const base = 2n ** 53n;
const t0 = Date.now() - 600_000;

async function edgeNode(t: TestContext, group: string, name: string): Promise<EdgeNode> {
  return new EdgeNode(await mqttClient(t, { protocolVersion: 5 }), group, name);
}

test("alias-only DDATA lands with its births' names and types, int64 exact, across a SIGKILL restart and a rebirth", { timeout: 120_000 }, async (t) => {
  printLogsOnFailure(t);
  const group = unique('spb');
  const topic = `${group}.records`;
  const sluice = sluiceFor(t, { rules: rules(group, topic), config: { sparkplug: { aliasWaitMs: 300 } } });
  await sluice.start();
  const node = await edgeNode(t, group, 'gw1');
  await node.birth(0, t0);
  // first life: alias 1 is Count (Int64), alias 2 is Temperature (Double)
  await node.publish(
    'DBIRTH',
    'press',
    [
      { name: 'Count', alias: 1, type: 'Int64', value: base.toString() },
      { name: 'Temperature', alias: 2, type: 'Double', value: 20 },
    ],
    t0 + 1,
  );
  const data = (from: number, n: number, at: number) =>
    (async () => {
      for (let i = from; i < from + n; i++) {
        await node.publish(
          'DDATA',
          'press',
          [
            { alias: 1, type: 'Int64', value: (base + BigInt(i)).toString() },
            { alias: 2, type: 'Double', value: i / 4 },
          ],
          at + i,
        );
      }
    })();
  await data(1, 20, t0 + 1000);
  await waitFor('the first 20 points', async () => (await rows(`SELECT count("Count") FROM "${group}"`))[0]?.count === 21);
  assert.equal(await sluice.stop('SIGKILL'), null);
  // while it is down: more alias-only data, queued by the broker in the worker's session
  await data(21, 20, t0 + 1000);
  await sluice.start();
  await waitFor('40 data points after the restart', async () => (await rows(`SELECT count("Count") FROM "${group}"`))[0]?.count === 41, 60_000);
  // a rebirth (new bdSeq) that swaps the aliases: 1 is now Temperature, 2 is Count
  await node.publish('NDEATH', undefined, [{ name: 'bdSeq', type: 'UInt64', value: 0 }], t0 + 5000);
  await node.birth(1, t0 + 6000);
  await node.publish(
    'DBIRTH',
    'press',
    [
      { name: 'Temperature', alias: 1, type: 'Double', value: 30 },
      { name: 'Count', alias: 2, type: 'Int64', value: (base + 100n).toString() },
    ],
    t0 + 6001,
  );
  for (let i = 101; i <= 110; i++) {
    await node.publish(
      'DDATA',
      'press',
      [
        { alias: 1, type: 'Double', value: i / 4 },
        { alias: 2, type: 'Int64', value: (base + BigInt(i)).toString() },
      ],
      t0 + 7000 + i,
    );
  }
  let all: Array<Record<string, unknown>> = [];
  await waitFor('every point', async () => (all = await rows(`SELECT "Count", "Temperature", "edgeNode", "device" FROM "${group}"`)).length === 52, 30_000);
  const counts = all.map((r) => r.Count);
  for (const c of counts) assert.equal(typeof c, 'bigint', `Count is an integer field (${String(c)})`);
  const expected = [0n, ...Array.from({ length: 40 }, (_, i) => BigInt(i + 1)), 100n, ...Array.from({ length: 10 }, (_, i) => BigInt(101 + i))].map(
    (x) => base + x,
  );
  assert.deepEqual(counts, expected, 'every Count exact past 2^53, named right after the rebirth moved the aliases');
  assert.deepEqual(
    all.slice(-10).map((r) => r.Temperature),
    Array.from({ length: 10 }, (_, i) => (101 + i) / 4),
  );
  assert.ok(all.every((r) => r.edgeNode === 'gw1'));
  const metrics = await sluice.metrics();
  assert.equal(total(metrics, 'sluice_dead_letters_total'), 0, 'nothing dead-lettered');
  assert.equal(total(metrics, 'sluice_sparkplug_seq_gaps_total'), 0, 'no seq gap on the whole stream');
  const records = await readTopic(t, topic, (r) => r.length >= 55);
  const last = JSON.parse(records.at(-1)!.value.toString()) as { metrics: Array<{ name: string; value: unknown }> };
  assert.deepEqual(
    last.metrics.map((m) => m.name),
    ['Temperature', 'Count'],
    'the Kafka record names the metrics too',
  );
});

test('births reach every worker of the share group through the state feed: no data goes unnamed', { timeout: 90_000 }, async (t) => {
  printLogsOnFailure(t);
  const group = unique('spbshare');
  const topic = `${group}.records`;
  const shareGroup = unique('g');
  // the data of one edge node reach a worker on its share connection, the birth on its feed: the
  // default aliasWaitMs (1 s) covers the race between the two connections
  const a = sluiceFor(t, { group: shareGroup, rules: rules(group, topic) });
  const b = sluiceFor(t, { group: shareGroup, rules: rules(group, topic) });
  await a.start();
  await b.start();
  await sleep(500); // both state feeds subscribed
  const nodes = await Promise.all(['gw1', 'gw2', 'gw3'].map((n) => edgeNode(t, group, n)));
  for (const n of nodes) {
    await n.birth(0, t0);
    await n.publish('DBIRTH', 'd1', [{ name: 'Level', alias: 7, type: 'Int32', value: 0 }], t0 + 1);
  }
  for (let i = 1; i <= 50; i++) {
    for (const n of nodes) await n.publish('DDATA', 'd1', [{ alias: 7, type: 'Int32', value: i }], t0 + 10 + i);
    if (i % 10 === 0) await sleep(100);
  }
  const dead = (m: Samples) => total(m, 'sluice_dead_letters_total');
  await waitFor(
    '153 points',
    async () => (await rows(`SELECT count("Level") FROM "${group}"`))[0]?.count === 153 || dead(await a.metrics()) + dead(await b.metrics()) > 0,
    30_000,
  );
  // a point is in InfluxDB before its message is acknowledged (the Kafka write may still be on its way)
  const acked = async (w: typeof a) => total(await w.metrics(), 'sluice_messages_acked_total');
  await waitFor('both workers to acknowledge data', async () => (await acked(a)) > 0 && (await acked(b)) > 0, 10_000).catch(() => {});
  const [ma, mb] = [await a.metrics(), await b.metrics()];
  assert.equal(dead(ma) + dead(mb), 0, 'no sparkplug-unknown-alias on either worker');
  assert.equal((await rows(`SELECT count("Level") FROM "${group}"`))[0]?.count, 153);
  assert.ok(total(ma, 'sluice_messages_acked_total') > 0 && total(mb, 'sluice_messages_acked_total') > 0, 'both workers took data');
  assert.equal(total(ma, 'sluice_sparkplug_edge_nodes'), 3);
  assert.equal(total(mb, 'sluice_sparkplug_edge_nodes'), 3);
  assert.equal(total(ma, 'sluice_sparkplug_seq_gaps_total') + total(mb, 'sluice_sparkplug_seq_gaps_total'), 0, 'the feed sees the whole stream');
});

test('an unknown alias is dead-lettered with its reason, a rebirth is asked for (and at start, for saved edge nodes), and nothing is lost', {
  timeout: 90_000,
}, async (t) => {
  printLogsOnFailure(t);
  const group = unique('spbunknown');
  const topic = `${group}.records`;
  const sluice = sluiceFor(t, { rules: rules(group, topic), config: { sparkplug: { aliasWaitMs: 200, rebirth: true } } });
  await sluice.start();
  const node = await edgeNode(t, group, 'gw9');
  const commands: string[] = [];
  await node.client.subscribeAsync(`spBv1.0/${group}/NCMD/gw9`, { qos: 0 });
  node.client.on('message', (topic, payload) => {
    const m = spb.decodePayload(payload).metrics?.find((x) => x.name === 'Node Control/Rebirth');
    if (m?.value === true) commands.push(topic);
  });
  // data from an edge node sluice never saw born (it came up before sluice did)
  for (let i = 0; i < 5; i++) await node.publish('NDATA', undefined, [{ alias: 42, type: 'Double', value: i }], t0 + i);
  const dead = await readTopic(t, sluice.deadLetterTopic, (r) => r.length >= 5);
  assert.equal(dead.length, 5, 'each message is in the dead-letter topic, once');
  for (const r of dead) {
    assert.equal(r.headers['sluice-reason'], 'sparkplug-unknown-alias');
    assert.match(r.headers['sluice-error'] ?? '', /alias 42 not defined by a birth of edge node .*\/gw9 \(no NBIRTH on record\)/);
  }
  // a message the state feed had not passed yet waited a little: the order of dead letters may differ
  assert.deepEqual(dead.map((r) => spb.decodePayload(r.value).metrics?.[0]?.value).sort(), [0, 1, 2, 3, 4], 'with its original payload');
  await waitFor('a rebirth request', () => commands.length >= 1, 10_000);
  assert.equal(commands.length, 1, 'one request per edge node per rebirthIntervalMs');
  // the worker's own rebirth request (QoS 0) comes back through its spBv1.0/<group>/+/# subscription:
  // read once everything received is settled, so it is either counted on both sides or on neither
  let metrics = await sluice.metrics();
  await waitFor(
    'everything received settled',
    async () => total((metrics = await sluice.metrics()), 'sluice_messages_acked_total') === total(metrics, 'sluice_messages_received_total'),
    10_000,
  );
  assert.equal(total(metrics, 'sluice_sparkplug_rebirth_requests_total'), 1);
  assert.ok(total(metrics, 'sluice_sparkplug_alias_waits_total') <= 5, 'data the state feed has passed are not held');
  // the five data messages, beside that request
  assert.equal(total(metrics, 'sluice_messages_acked_total') - (metrics.get('sluice_messages_received_total{qos="0"}') ?? 0), 5);
  // born now; a worker restarted later asks again at start: it may have been born again meanwhile
  await node.birth(1, t0 + 100);
  await waitFor('the birth on record', async () => total(await sluice.metrics(), 'sluice_sparkplug_edge_nodes') === 1, 10_000);
  // two messages lost on the way: counted, and the warning names the edge node (the metric cannot)
  node.seq += 2;
  await node.publish('NDATA', undefined, [{ name: 'Uptime', type: 'Int64', value: 7 }], t0 + 101);
  await waitFor('a seq gap', async () => total(await sluice.metrics(), 'sluice_sparkplug_seq_gaps_total') === 1, 10_000);
  const warning = jsonLines(sluice.logs).find((l) => String(l.msg).startsWith('Sparkplug seq gap'));
  assert.deepEqual(warning && [warning.group, warning.edgeNode, warning.expected, warning.got, warning.gaps], [group, 'gw9', 1, 3, 1], 'the gap named');
  await sluice.stop('SIGTERM');
  await sluice.start();
  await waitFor('a rebirth request at start', () => commands.length >= 2, 10_000);
});

test('array fan-out: one JSON message with N readings writes N points and N Kafka records, each at its own time', { timeout: 60_000 }, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('fan');
  const topic = `${prefix}.readings`;
  const sluice = sluiceFor(t, {
    rules: {
      subscriptions: [{ filter: `${prefix}/+/batch`, qos: 1 }],
      routes: [
        {
          name: 'batch',
          match: `${prefix}/{deviceId}/batch`,
          influx: {
            measurement: prefix,
            tags: { deviceId: '{deviceId}', site: '$$.site' },
            each: '$.readings[*]',
            fields: { v: '$.v' },
            time: '$.t',
          },
          kafka: { topic, each: '$.readings[*]', timestamp: '$.t' },
        },
      ],
    },
  });
  await sluice.start();
  const pub = await mqttClient(t);
  const readings = Array.from({ length: 25 }, (_, i) => ({ v: i, t: t0 + i * 1000 }));
  // each element carries an int64 past 2^53, written as digits a double cannot hold
  const text = (r: { v: number; t: number }) => `{"v":${r.v},"t":${r.t},"n":900719925474099${r.v % 10}}`;
  await pub.publishAsync(`${prefix}/d7/batch`, `{"site":"s1","readings":[${readings.map(text).join(',')}]}`, { qos: 1 });
  // a second message: its records come after the first's, in the same partition (key d7)
  await pub.publishAsync(`${prefix}/d7/batch`, `{"site":"s1","readings":[${text({ v: 99, t: t0 + 99_000 })}]}`, { qos: 1 });
  let got: Array<Record<string, unknown>> = [];
  await waitFor('26 points', async () => (got = await rows(`SELECT "v", "site", "deviceId" FROM "${prefix}"`)).length === 26, 30_000);
  assert.deepEqual(
    got.map((r) => r.v),
    [...readings.map((r) => r.v), 99],
  );
  assert.deepEqual(
    got.map((r) => Date.parse(r.time as string)),
    [...readings.map((r) => r.t), t0 + 99_000],
    "each point at its element's time",
  );
  assert.ok(got.every((r) => r.site === 's1' && r.deviceId === 'd7'));
  const records = await readTopic(t, topic, (r) => r.length >= 26, 45_000, 10_000);
  assert.equal(records.length, 26, 'one record per element, none twice');
  assert.equal(new Set(records.map((r) => r.partition)).size, 1, 'one key, one partition');
  assert.deepEqual(
    records.map((r) => r.value.toString()),
    [...readings, { v: 99, t: t0 + 99_000 }].map(text),
    'the elements in order, digits exact',
  );
  assert.deepEqual(
    records.map((r) => r.headers['sluice-element']),
    [...readings.map((_, i) => String(i)), '0'],
  );
  assert.deepEqual(
    records.map((r) => Number(r.timestamp)),
    [...readings.map((r) => r.t), t0 + 99_000],
    "each record at its element's time",
  );
  assert.ok(records.every((r) => r.key === 'd7' && r.headers['mqtt-topic'] === `${prefix}/d7/batch`));
});

test('sluice simulate --sparkplug: births, alias-only data past seq 255, a gateway restarting; all named, no gap', { timeout: 90_000 }, async (t) => {
  printLogsOnFailure(t);
  const group = unique('spbsim');
  const sluice = sluiceFor(t, { rules: rules(group, `${group}.records`) });
  await sluice.start();
  await sleep(300); // the state feed subscribed
  const root = join(import.meta.dirname, '../..');
  const sim = spawn(
    join(root, 'scripts/node'),
    [
      join(root, 'src/cli.ts'),
      'simulate',
      '--sparkplug',
      '--url',
      endpoints.mqtt,
      '--group',
      group,
      '--edge-nodes',
      '2',
      '--devices',
      '3',
      '--rate',
      '200',
      '--rebirth-every',
      '3',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let simLog = '';
  sim.stderr.on('data', (c: Buffer) => (simLog += c.toString()));
  t.after(() => sim.kill('SIGKILL'));
  await sleep(8_000);
  sim.kill('SIGTERM');
  await new Promise((r) => sim.once('exit', r));
  const stats = JSON.parse(/simulate: stopped (.*)/.exec(simLog)?.[1] ?? '{}') as { births: number; data: number; deaths: number };
  assert.ok(stats.data > 2 * 256, `more than 256 DDATA per edge node: seq wrapped (${simLog.trim()})`);
  assert.ok(stats.deaths >= 2, 'gateways restarted (and stopped) with an NDEATH');
  const published = stats.births + stats.data + stats.deaths;
  await waitFor('every message acked', async () => total(await sluice.metrics(), 'sluice_messages_acked_total') >= published, 30_000);
  const m = await sluice.metrics();
  assert.equal(total(m, 'sluice_messages_acked_total'), published);
  const deadByReason = [...m]
    .filter(([k, v]) => k.startsWith('sluice_dead_letters_total') && v > 0)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  assert.equal(
    total(m, 'sluice_dead_letters_total'),
    0,
    `every alias named, across the restarts (${deadByReason}; alias waits ${total(m, 'sluice_sparkplug_alias_waits_total')})`,
  );
  assert.equal(total(m, 'sluice_sparkplug_seq_gaps_total'), 0);
  // a point per DDATA and DBIRTH, fewer when two of one device share a millisecond (the same point)
  const points = Number((await rows(`SELECT count("Counters/Cycles") FROM "${group}"`))[0]?.count ?? 0);
  assert.ok(points > stats.data / 2 && points <= stats.data + stats.births, `${points} points for ${stats.data} DDATA`);
});

// The third promise: a slow or dead sink never takes the broker down with it, and loses
// nothing. Real servers are stopped and slowed; sluice must ride it out with at most Receive
// Maximum in flight, no MQTT reconnect loop, bounded memory, and every message delivered.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runningPid } from '../../deploy/local/daemon.ts';
import { influxPoints, publishNumbered, readTopic, seqCounts, telemetryToInflux, telemetryToKafka, waitFor } from '../support/e2e-helpers.ts';
import { type SluiceProcess, sluiceFor } from '../support/sluice-process.ts';
import { mqttClient, printLogsOnFailure, stack, unique } from '../support/stack.ts';

const receiveMaximum = 200;

async function report(t: { diagnostic(s: string): void }, sluice: SluiceProcess, label: string) {
  const m = await sluice.metrics();
  const line =
    `${label}: peak RSS ${sluice.peakRssMiB().toFixed(0)} MiB, in-flight max ${m.get('sluice_inflight_messages_max')}, ` +
    `stalls ${m.get('sluice_pump_stalls_total')}, keepalive pings while held ${m.get('sluice_keepalive_pings_during_stall_total')}, ` +
    `reconnects ${m.get('sluice_mqtt_reconnects_total')}, sink write errors kafka ${m.get('sluice_sink_write_errors_total{sink="kafka"}') ?? 0} influx ${m.get('sluice_sink_write_errors_total{sink="influx"}') ?? 0}`;
  t.diagnostic(line);
  return m;
}

test('Kafka stopped for 20 s mid-stream: 0 lost, not ready meanwhile, resumes by itself', { timeout: 180_000 }, async (t) => {
  printLogsOnFailure(t);
  t.after(() => stack.up(['kafka'])); // whatever happens, the next test has its Kafka
  const prefix = unique('kdown');
  const topic = `${prefix}.telemetry`;
  const sluice = sluiceFor(t, {
    rules: telemetryToKafka(prefix, topic),
    config: { mqtt: { receiveMaximum } },
  });
  await sluice.start();
  const total = 12_000;
  const publisher = await mqttClient(t);
  // 30 s of traffic at 400 msg/s: it keeps arriving before, during and after the outage
  const publishing = publishNumbered(publisher, total, (seq) => `${prefix}/s/z/sensor/dev-${seq % 50}/telemetry`, { ratePerSecond: 400 });

  await sleep(3_000);
  await stack.down(['kafka']);
  const outageStarted = Date.now();
  await sleep(20_000);
  const during = await sluice.metrics();
  await stack.up(['kafka']);
  t.diagnostic(`Kafka down for ${((Date.now() - outageStarted) / 1000).toFixed(0)} s`);
  assert.ok((during.get('sluice_inflight_messages') ?? 0) <= receiveMaximum);
  assert.equal((await sluice.ready()).status, 503, 'not ready while Kafka is down');
  await publishing;

  const records = await readTopic(t, topic, (r) => seqCounts(r).size === total, 120_000);
  const counts = seqCounts(records);
  const m = await report(t, sluice, 'Kafka outage');
  assert.equal(counts.size, total, `${total - counts.size} messages lost`);
  assert.ok((m.get('sluice_inflight_messages_max') ?? Infinity) <= receiveMaximum, 'in flight never above Receive Maximum');
  assert.equal(m.get('sluice_mqtt_reconnects_total'), 0, 'the MQTT connection survived the outage');
  assert.ok(sluice.peakRssMiB() < 300, 'peak RSS bounded');
  await waitFor('ready again', async () => (await sluice.ready()).status === 200, 30_000);
});

test('sink outage longer than twice the keepalive while the broker over-sends: no reconnect loop, 0 lost', { timeout: 180_000 }, async (t) => {
  // The trap (docs/operations.md, Per broker; src/source/README.md): once a backlog has queued, Mosquitto sends past Receive Maximum; the
  // held pump then leaves the broker's PINGRESP unread behind those PUBLISHes, and MQTT.js
  // would declare the connection dead every 1.5 keepalives. Shape: Kafka frozen (a backlog
  // queues at the broker), a short thaw (acks free the window, the broker over-sends into the
  // held socket), frozen again for 4 keepalives.
  printLogsOnFailure(t);
  const kafkaPid = runningPid(stack.server('kafka').files);
  assert.ok(kafkaPid, 'kafka runs');
  t.after(() => process.kill(kafkaPid, 'SIGCONT'));
  const prefix = unique('ka');
  const topic = `${prefix}.telemetry`;
  const keepalive = 3;
  const sluice = sluiceFor(t, {
    rules: telemetryToKafka(prefix, topic),
    config: { mqtt: { receiveMaximum: 50, keepalive } },
  });
  await sluice.start();
  const total = 12_000;
  const publisher = await mqttClient(t);
  const publishing = publishNumbered(publisher, total, (seq) => `${prefix}/s/z/sensor/dev-${seq % 50}/telemetry`, { ratePerSecond: 600 });
  await sleep(1_000);
  // frozen long enough for a backlog at the broker; thawed just long enough for one batch to be
  // acknowledged, whose PUBACKs set off the over-send; frozen again for 4 keepalives
  for (let i = 0; i < 3; i++) {
    process.kill(kafkaPid, 'SIGSTOP');
    await sleep(i === 0 ? 4_000 : 4 * keepalive * 1000);
    process.kill(kafkaPid, 'SIGCONT');
    await sleep(40);
  }
  await publishing;

  const records = await readTopic(t, topic, (r) => seqCounts(r).size === total, 120_000);
  const m = await report(t, sluice, 'frozen Kafka, short keepalive');
  assert.equal(seqCounts(records).size, total, 'nothing lost');
  assert.equal(m.get('sluice_mqtt_reconnects_total'), 0, 'no reconnect');
  assert.ok((m.get('sluice_keepalive_pings_during_stall_total') ?? 0) > 0, 'the held-socket keepalive path was taken');
  assert.ok((m.get('sluice_inflight_messages_max') ?? Infinity) <= 50);
});

test('InfluxDB stopped for 20 s mid-stream: 0 points lost, sluice resumes by itself', { timeout: 180_000 }, async (t) => {
  printLogsOnFailure(t);
  t.after(() => stack.up(['influxdb']));
  const prefix = unique('idown');
  const measurement = prefix.replace('-', '_');
  const sluice = sluiceFor(t, {
    rules: telemetryToInflux(prefix, measurement),
    config: { mqtt: { receiveMaximum } },
  });
  await sluice.start();
  const total = 8_000;
  const publisher = await mqttClient(t);
  const publishing = publishNumbered(publisher, total, (seq) => `${prefix}/s/z/sensor/dev-${seq % 20}/telemetry`, { ratePerSecond: 300 });
  await sleep(3_000);
  await stack.down(['influxdb']);
  await sleep(20_000);
  await stack.up(['influxdb']);
  await publishing;

  const count = await influxPoints(measurement, total);
  const m = await report(t, sluice, 'InfluxDB outage');
  assert.equal(count, total, `${total - count} points lost`);
  assert.ok((m.get('sluice_sink_write_errors_total{sink="influx"}') ?? 0) > 0, 'the outage was seen');
  assert.ok((m.get('sluice_inflight_messages_max') ?? Infinity) <= receiveMaximum);
  assert.ok(sluice.peakRssMiB() < 300, 'peak RSS bounded');
});

test('backpressure: Kafka slowed on purpose, in flight never above Receive Maximum, the broker holds the backlog', { timeout: 180_000 }, async (t) => {
  printLogsOnFailure(t);
  const kafkaFiles = stack.server('kafka').files;
  const kafkaPid = runningPid(kafkaFiles);
  assert.ok(kafkaPid, 'kafka runs');
  t.after(() => process.kill(kafkaPid, 'SIGCONT'));
  const prefix = unique('slow');
  const topic = `${prefix}.telemetry`;
  const small = 100;
  const sluice = sluiceFor(t, {
    rules: telemetryToKafka(prefix, topic),
    config: { mqtt: { receiveMaximum: small } },
  });
  await sluice.start();
  const total = 20_000;
  const publisher = await mqttClient(t);
  const publishing = publishNumbered(publisher, total, (seq) => `${prefix}/s/z/sensor/dev-${seq % 50}/telemetry`);

  // Kafka runs 50 ms out of every 300 ms for 10 s: a sink far slower than the publisher
  const rss: number[] = [];
  for (let i = 0; i < 33; i++) {
    process.kill(kafkaPid, 'SIGSTOP');
    await sleep(250);
    process.kill(kafkaPid, 'SIGCONT');
    await sleep(50);
    if (i % 5 === 0) rss.push(sluice.peakRssMiB());
  }
  await publishing;
  const records = await readTopic(t, topic, (r) => seqCounts(r).size === total, 120_000);
  const m = await report(t, sluice, 'slow Kafka');
  t.diagnostic(`peak RSS samples during the slowdown (MiB): ${rss.map((r) => r.toFixed(0)).join(' ')}`);
  assert.equal(seqCounts(records).size, total, 'nothing lost');
  assert.ok((m.get('sluice_inflight_messages_max') ?? Infinity) <= small, `in-flight max ${m.get('sluice_inflight_messages_max')} > ${small}`);
  assert.ok((m.get('sluice_pump_stalls_total') ?? 0) > 0, 'the window filled and the socket was held');
  assert.ok(sluice.peakRssMiB() < 300, 'peak RSS bounded');
});

// The hook into MQTT.js internals (mqtt pinned at 5.16.0), against the real Mosquitto: PUBACKs
// wait for settle() and leave in arrival order; at most Receive Maximum messages are taken;
// no ack of a dropped connection is ever sent on the next one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt, { type IPublishPacket } from 'mqtt';
import { AckWindow, type AckSlot } from '../../src/source/ack-window.ts';
import { installDeferredAcks } from '../../src/source/mqtt-deferred-acks.ts';
import { endpoints, mqttClient, printLogsOnFailure, unique } from '../support/stack.ts';

test('mqtt is the version the hook was written and tested for', async () => {
  const pkg = await import('mqtt/package.json', { with: { type: 'json' } });
  assert.equal(pkg.default.version, '5.16.0', 'the ack hook touches MQTT.js internals: re-run these tests and review it before upgrading');
});

async function hookedClient(t: import('node:test').TestContext, receiveMaximum: number, clientId = unique('hooked')) {
  const taken: Array<{ packet: IPublishPacket; slot: AckSlot }> = [];
  const pubacks: number[] = [];
  let sendAck: (a: unknown) => void = () => {};
  const window = new AckWindow(receiveMaximum, { release: (a) => sendAck(a) });
  const client = mqtt.connect(endpoints.mqtt, {
    protocolVersion: 5, clientId, clean: false, manualConnect: true, reconnectPeriod: 100,
    properties: { receiveMaximum, sessionExpiryInterval: 60 },
  });
  sendAck = installDeferredAcks(client, window, { accepting: () => true, onMessage: (packet, slot) => taken.push({ packet, slot }) }).sendAck;
  client.on('packetsend', (p) => {
    if (p.cmd === 'puback') pubacks.push(p.messageId as number);
  });
  client.connect();
  t.after(() => client.endAsync(true));
  await new Promise((r) => client.once('connect', r));
  return { client, window, taken, pubacks };
}

test('PUBACKs wait for settle() and leave in arrival order', async (t) => {
  printLogsOnFailure(t);
  const topic = unique('hook');
  const { client, taken, pubacks } = await hookedClient(t, 100);
  await client.subscribeAsync(topic, { qos: 1 });
  const publisher = await mqttClient(t);
  const published = Promise.all(Array.from({ length: 10 }, (_, i) => publisher.publishAsync(topic, `m${i}`, { qos: 1 })));
  await published;
  for (let i = 0; i < 50 && taken.length < 10; i++) await sleep(20);
  assert.equal(taken.length, 10, 'pipelined: all ten taken before any is acked');
  assert.deepEqual(pubacks, [], 'no PUBACK before the sinks are done');
  const ids = taken.map((x) => x.packet.messageId);
  for (const x of [...taken].reverse()) x.slot.settle(); // sinks finish in reverse order
  await sleep(50);
  assert.deepEqual(pubacks, ids, 'PUBACKs in arrival order');
});

test('never more than Receive Maximum taken while nothing settles', async (t) => {
  printLogsOnFailure(t);
  const topic = unique('bound');
  const { client, taken, window } = await hookedClient(t, 5);
  await client.subscribeAsync(topic, { qos: 1 });
  const publisher = await mqttClient(t);
  for (let i = 0; i < 100; i++) void publisher.publishAsync(topic, `m${i}`, { qos: 1 });
  await sleep(1_000);
  assert.equal(taken.length, 5);
  assert.equal(window.highWater, 5);
  for (const x of taken.splice(0)) x.slot.settle();
  await sleep(300);
  assert.ok(taken.length > 0 && taken.length <= 5, 'room given, and again no more than 5');
});

test('after a dropped connection, the old acks are never sent; the broker redelivers', async (t) => {
  printLogsOnFailure(t);
  const topic = unique('drop');
  const { client, taken, pubacks } = await hookedClient(t, 10);
  await client.subscribeAsync(topic, { qos: 1 });
  const publisher = await mqttClient(t);
  await publisher.publishAsync(topic, 'first', { qos: 1 });
  for (let i = 0; i < 50 && taken.length < 1; i++) await sleep(20);
  const stale = taken.shift();
  assert.ok(stale);
  // drop the TCP connection under MQTT.js; it reconnects and resumes the session
  (client as unknown as { stream: { destroy(): void } }).stream.destroy();
  await new Promise((r) => client.once('connect', r));
  stale.slot.settle(); // durable now, but its connection is gone: no PUBACK may go out for it
  for (let i = 0; i < 100 && taken.length < 1; i++) await sleep(20);
  assert.equal(taken[0]?.packet.payload.toString(), 'first', 'redelivered on the resumed session');
  assert.equal(taken[0]?.packet.dup, true);
  assert.deepEqual(pubacks, [], 'the stale ack was dropped');
  taken[0]?.slot.settle();
  await sleep(50);
  assert.deepEqual(pubacks, [taken[0]?.packet.messageId]);
});

// The hook into MQTT.js internals (mqtt pinned at 5.16.0), against the real Mosquitto: PUBACKs
// wait for settle() and leave in arrival order; at most Receive Maximum messages are taken;
// no ack of a dropped connection is ever sent on the next one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt, { type IPublishPacket } from 'mqtt';
import { type AckSlot, AckWindow } from '../../src/source/ack-window.ts';
import { fastPublishCount, installDeferredAcks } from '../../src/source/mqtt/deferred-acks.ts';
import { endpoints, mqttClient, printLogsOnFailure, unique } from '../support/stack.ts';

test('mqtt is the version the hook was written and tested for', async () => {
  const pkg = await import('mqtt/package.json', { with: { type: 'json' } });
  assert.equal(pkg.default.version, '5.16.0', 'the ack hook touches MQTT.js internals: re-run these tests and review it before upgrading');
});

async function hookedClient(
  t: import('node:test').TestContext,
  receiveMaximum: number,
  clientId = unique('hooked'),
  onRelease?: (messageId: number) => Promise<void>,
  maxInFlightBytes = Infinity,
  accepting: () => boolean = () => true,
) {
  const taken: Array<{ packet: IPublishPacket; slot: AckSlot }> = [];
  const pubacks: number[] = [];
  const pubrecs: number[] = [];
  const pubcomps: number[] = [];
  const closes: number[] = [];
  let sendAck: (a: unknown) => void = () => {};
  const window = new AckWindow(receiveMaximum, { release: (a) => sendAck(a) }, maxInFlightBytes);
  const client = mqtt.connect(endpoints.mqtt, {
    protocolVersion: 5,
    clientId,
    clean: false,
    manualConnect: true,
    reconnectPeriod: 100,
    properties: { receiveMaximum, sessionExpiryInterval: 60 },
  });
  const acks = installDeferredAcks(client, window, {
    accepting,
    onMessage: (packet, slot) => taken.push({ packet, slot }),
    ...(onRelease ? { onRelease } : {}),
  });
  sendAck = acks.sendAck;
  client.on('packetsend', (p) => {
    if (p.cmd === 'puback') pubacks.push(p.messageId as number);
    if (p.cmd === 'pubrec') pubrecs.push(p.messageId as number);
    if (p.cmd === 'pubcomp') pubcomps.push(p.messageId as number);
  });
  client.on('close', () => closes.push(Date.now()));
  client.connect();
  t.after(() => client.endAsync(true));
  await new Promise((r) => client.once('connect', r));
  return { client, window, acks, taken, pubacks, pubrecs, pubcomps, closes };
}

test('PUBACKs wait for settle() and leave in arrival order', async (t) => {
  printLogsOnFailure(t);
  const topic = unique('hook');
  const { client, taken, pubacks } = await hookedClient(t, 100);
  const events: string[] = [];
  client.on('message', (_topic, payload) => events.push(payload.toString()));
  await client.subscribeAsync(topic, { qos: 1 });
  const publisher = await mqttClient(t);
  const fastBefore = fastPublishCount();
  const published = Promise.all(Array.from({ length: 10 }, (_, i) => publisher.publishAsync(topic, `m${i}`, { qos: 1 })));
  await published;
  for (let i = 0; i < 50 && taken.length < 10; i++) await sleep(20);
  assert.equal(taken.length, 10, 'pipelined: all ten taken before any is acked');
  assert.equal(fastPublishCount() - fastBefore, 10, "all ten came by the PUBLISH fast path, not MQTT.js's handlePublish");
  assert.deepEqual(
    events,
    taken.map((x) => x.packet.payload.toString()),
    "MQTT.js's 'message' event still fires for each",
  );
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

test('large payloads: the bytes in flight stay under maxInFlightBytes (but for the message that crosses it), none lost', async (t) => {
  printLogsOnFailure(t);
  const topic = unique('bytes');
  // 30 payloads of 100 KB with room for 1,000 messages but 350 KB: four taken at a time
  const { client, taken, window } = await hookedClient(t, 1000, unique('hooked'), undefined, 350_000);
  await client.subscribeAsync(topic, { qos: 1 });
  const publisher = await mqttClient(t);
  const payload = Buffer.alloc(100_000, 0x61);
  for (let i = 0; i < 30; i++) void publisher.publishAsync(topic, Buffer.concat([Buffer.from(`${i};`), payload]), { qos: 1 });
  await sleep(1_000);
  assert.equal(taken.length, 4, 'held once 350 KB are in flight: the fourth crossed it');
  assert.ok(window.inFlightBytes > 350_000 && window.inFlightBytes < 450_000, `${window.inFlightBytes} bytes in flight`);
  const seen: number[] = [];
  let mostBytes = 0;
  for (let i = 0; i < 200 && seen.length < 30; i++) {
    mostBytes = Math.max(mostBytes, window.inFlightBytes);
    for (const x of taken.splice(0)) {
      seen.push(Number(x.packet.payload.toString('latin1', 0, 8).split(';')[0]));
      x.slot.settle();
    }
    await sleep(20);
  }
  assert.deepEqual(
    seen,
    Array.from({ length: 30 }, (_, i) => i),
    'every message, once, in order',
  );
  assert.ok(mostBytes < 450_000, `at most ${mostBytes} bytes in flight`);
  assert.equal(window.inFlightBytes, 0);
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

test('the PUBACKs released together leave in one socket write, which the broker takes; a batch whose connection dropped is not written', async (t) => {
  printLogsOnFailure(t);
  const topic = unique('batch');
  const { client, taken, pubacks } = await hookedClient(t, 100);
  await client.subscribeAsync(topic, { qos: 1 });
  const publisher = await mqttClient(t);
  await Promise.all(Array.from({ length: 20 }, (_, i) => publisher.publishAsync(topic, `m${i}`, { qos: 1 })));
  for (let i = 0; i < 50 && taken.length < 20; i++) await sleep(20);
  assert.equal(taken.length, 20);
  const socket = (client as unknown as { stream: { write(chunk: Buffer): boolean; destroy(): void } }).stream;
  const writes: Buffer[] = [];
  const write = socket.write.bind(socket);
  socket.write = (chunk: Buffer) => {
    writes.push(Buffer.from(chunk));
    return write(chunk);
  };

  const first = taken.splice(0, 10);
  for (const x of first) x.slot.settle();
  await sleep(50);
  const ids = first.map((x) => x.packet.messageId as number);
  assert.deepEqual(
    writes,
    [Buffer.concat(ids.map((id) => Buffer.from([0x40, 2, id >> 8, id & 0xff])))],
    'ten PUBACKs in one write, as mqtt-packet encodes them',
  );
  assert.deepEqual(pubacks, ids, 'packetsend for each, in arrival order');

  // the other ten are released, and their connection drops before the batch's tick
  const rest = taken.splice(0);
  for (const x of rest) x.slot.settle();
  socket.destroy();
  await new Promise((r) => client.once('connect', r));
  for (let i = 0; i < 100 && taken.length < 10; i++) await sleep(20);
  assert.equal(writes.length, 1, 'nothing written for the dropped batch');
  assert.deepEqual(pubacks, ids);
  assert.deepEqual(
    taken.map((x) => `${x.packet.payload}${x.packet.dup ? ' (dup)' : ''}`),
    rest.map((x) => `${x.packet.payload} (dup)`),
    'the broker resends the ten whose acks were dropped, and only those: it took the batched PUBACKs',
  );
  for (const x of taken) x.slot.settle();
  await sleep(50);
  assert.equal(pubacks.length, 20);
});

test('QoS 2: taken at PUBLISH, PUBREC waits for settle() in arrival order, PUBCOMP waits for the durable release, those released together in one write', async (t) => {
  printLogsOnFailure(t);
  const topic = unique('qos2');
  const releases = new Map<number, () => void>();
  const { client, taken, pubrecs, pubcomps } = await hookedClient(t, 100, unique('hooked'), (id) => new Promise((r) => releases.set(id, r)));
  await client.subscribeAsync(topic, { qos: 2 });
  const publisher = await mqttClient(t);
  const fastBefore = fastPublishCount();
  const published = Promise.all(Array.from({ length: 5 }, (_, i) => publisher.publishAsync(topic, `c${i}`, { qos: 2 })));
  for (let i = 0; i < 50 && taken.length < 5; i++) await sleep(20);
  assert.equal(taken.length, 5, 'pipelined: all five taken at PUBLISH, before any PUBREL');
  assert.deepEqual(
    taken.map((x) => x.packet.payload.toString()),
    ['c0', 'c1', 'c2', 'c3', 'c4'],
  );
  assert.deepEqual(pubrecs, [], 'no PUBREC before the message is durable');
  const ids = taken.map((x) => x.packet.messageId as number);
  for (const x of [...taken].reverse()) x.slot.settle();
  for (let i = 0; i < 50 && releases.size < 5; i++) await sleep(20);
  assert.deepEqual(pubrecs, ids, 'PUBRECs in arrival order');
  assert.equal(releases.size, 5, 'every PUBREL reported');
  assert.deepEqual(pubcomps, [], 'no PUBCOMP before the release is durable');
  const socket = (client as unknown as { stream: { write(chunk: Buffer): boolean } }).stream;
  const writes: Buffer[] = [];
  const write = socket.write.bind(socket);
  socket.write = (chunk: Buffer) => {
    writes.push(Buffer.from(chunk));
    return write(chunk);
  };
  for (const id of [...ids].reverse()) releases.get(id)?.();
  await published;
  for (let i = 0; i < 50 && pubcomps.length < 5; i++) await sleep(20);
  assert.deepEqual(pubcomps, ids, 'PUBCOMPs in PUBREL order, each once durable');
  assert.deepEqual(
    writes,
    [Buffer.concat(ids.map((id) => Buffer.from([0x70, 2, id >> 8, id & 0xff])))],
    'the five released together in one write, as mqtt-packet encodes them',
  );
  assert.equal(taken.length, 5, 'delivered once: nothing handed on again at PUBREL');
  assert.equal(fastPublishCount() - fastBefore, 0, "QoS 2 takes MQTT.js's own way");
});

/** Whether `p` is still pending after `ms`. */
async function pendingAfter(p: Promise<unknown>, ms: number): Promise<boolean> {
  return (await Promise.race([p.then(() => false), sleep(ms).then(() => true)])) as boolean;
}

test('QoS 2 at a stop: releasesSettled waits for the PUBRELs of what was PUBRECed and for each release to be durable', async (t) => {
  printLogsOnFailure(t);
  const topic = unique('qos2-stop');
  const releases = new Map<number, () => void>();
  const { client, acks, taken, pubcomps } = await hookedClient(t, 100, unique('hooked'), (id) => new Promise((r) => releases.set(id, r)));
  await client.subscribeAsync(topic, { qos: 2 });
  const publisher = await mqttClient(t);
  const published = Promise.all(Array.from({ length: 5 }, (_, i) => publisher.publishAsync(topic, `c${i}`, { qos: 2 })));
  for (let i = 0; i < 50 && taken.length < 5; i++) await sleep(20);
  assert.equal(await acks.releasesSettled(AbortSignal.timeout(1_000)), 0, 'nothing PUBRECed yet: nothing open');
  for (const x of taken) x.slot.settle();
  const settled = acks.releasesSettled(AbortSignal.timeout(10_000));
  assert.equal(await pendingAfter(settled, 300), true, 'waits while the releases are not durable');
  assert.equal(releases.size, 5);
  assert.equal(await acks.releasesSettled(AbortSignal.abort()), 5, 'an aborted wait says how many are open');
  for (const release of releases.values()) release();
  assert.equal(await settled, 0, 'every exchange completed');
  assert.equal(pubcomps.length, 5, 'the PUBCOMPs written when it resolves');
  await published;
});

test('QoS 2 at a stop: a PUBLISH held while stopping ends the wait, the PUBRELs behind it counted as open, no PUBCOMP sent', async (t) => {
  printLogsOnFailure(t);
  const topic = unique('qos2-held');
  let accepting = true;
  const { client, acks, taken, pubrecs, pubcomps } = await hookedClient(
    t,
    100,
    unique('hooked'),
    async () => {},
    Infinity,
    () => accepting,
  );
  await client.subscribeAsync(topic, { qos: 2 });
  const publisher = await mqttClient(t);
  const first = Promise.all(Array.from({ length: 3 }, (_, i) => publisher.publishAsync(topic, `c${i}`, { qos: 2 })));
  for (let i = 0; i < 50 && taken.length < 3; i++) await sleep(20);
  assert.equal(taken.length, 3);
  accepting = false; // stopping: the next PUBLISH holds the pump
  void publisher.publishAsync(topic, 'late', { qos: 2 }).catch(() => {});
  await sleep(200);
  for (const x of taken) x.slot.settle(); // PUBRECs go; the broker's PUBRELs queue behind 'late'
  for (let i = 0; i < 50 && pubrecs.length < 3; i++) await sleep(20);
  const started = Date.now();
  const open = await acks.releasesSettled(AbortSignal.timeout(10_000));
  assert.ok(Date.now() - started < 1_000, 'no wait for PUBRELs that cannot be read');
  assert.equal(open, 3, 'the three exchanges behind the held PUBLISH are open');
  assert.equal(taken.length, 3, "'late' was not taken");
  assert.deepEqual(pubcomps, []);
  void first.catch(() => {});
});

test('QoS 2 at a stop: a PUBLISH waiting for room in the closed window ends the wait too, the PUBRELs behind it counted as open', async (t) => {
  printLogsOnFailure(t);
  const topic = unique('qos2-full');
  const clientId = unique('hooked');
  const first = await hookedClient(t, 2, clientId, async () => {});
  await first.client.subscribeAsync(topic, { qos: 2 });
  await first.client.endAsync(); // the session stays: a backlog queues, which the broker over-sends
  const publisher = await mqttClient(t);
  await Promise.all(Array.from({ length: 10 }, (_, i) => publisher.publishAsync(topic, `c${i}`, { qos: 2 })));
  let accepting = true;
  const { window, acks, taken, pubrecs, pubcomps } = await hookedClient(
    t,
    2,
    clientId,
    async () => {},
    Infinity,
    () => accepting,
  );
  for (let i = 0; i < 50 && taken.length < 2; i++) await sleep(20);
  for (const x of taken.slice(0, 2)) x.slot.settle(); // the broker sends more once it has PUBRECs
  for (let i = 0; i < 50 && !window.stalled; i++) await sleep(20);
  assert.equal(taken.length, 4);
  assert.equal(window.stalled, true, 'the fifth waits for room');
  accepting = false; // a stop: no more room is given
  window.close();
  for (const x of taken.slice(2)) x.slot.settle(); // PUBRECs go; the broker's PUBRELs queue behind the fifth
  for (let i = 0; i < 50 && pubrecs.length < 4; i++) await sleep(20);
  const started = Date.now();
  const open = await acks.releasesSettled(AbortSignal.timeout(10_000));
  assert.ok(Date.now() - started < 1_000, 'no wait for PUBRELs that cannot be read');
  assert.ok(open >= 2, `the two PUBRECed last are open (${open} open)`);
  assert.equal(open + pubcomps.length, 4, 'every exchange PUBRECed is either completed or counted open');
  assert.equal(taken.length, 4);
});

test('QoS 2 over-sent by Mosquitto past Receive Maximum: no disconnect, at most R taken, all delivered once', { timeout: 60_000 }, async (t) => {
  // The QoS 2 trap (src/source/README.md, QoS 2): with a queue at the broker, Mosquitto 2.0.11 sends QoS 2 past
  // Receive Maximum; stock MQTT.js then drops the connection. Here the hook must hold the
  // socket instead, and the PUBRELs queued behind the over-sent PUBLISHes must not deadlock it.
  printLogsOnFailure(t);
  const topic = unique('qos2-over');
  const clientId = unique('hooked');
  const first = await hookedClient(t, 5, clientId, async () => {});
  await first.client.subscribeAsync(topic, { qos: 2 });
  await first.client.endAsync(); // the session stays; messages queue at the broker
  const publisher = await mqttClient(t);
  const total = 300;
  // Mosquitto takes at most 20 QoS 2 in flight from one publisher (more: "Quota exceeded")
  for (let i = 0; i < total; i += 10) {
    await Promise.all(Array.from({ length: 10 }, (_, j) => publisher.publishAsync(topic, `c${i + j}`, { qos: 2 })));
  }
  const { client, taken, window, closes, pubcomps } = await hookedClient(t, 5, clientId, async () => {});
  // QoS 2 exchanges the broker had open with us (PUBLISH handled, PUBCOMP not sent): stock
  // MQTT.js disconnects when this passes Receive Maximum
  let open = 0;
  let mostOpen = 0;
  client.on('packetreceive', (p) => {
    if (p.cmd === 'publish') mostOpen = Math.max(mostOpen, ++open);
  });
  client.on('packetsend', (p) => {
    if (p.cmd === 'pubcomp') open--;
  });
  // a slow sink: each message settles 5 ms after it was taken
  const settler = setInterval(
    () =>
      taken
        .filter((x) => !(x as { done?: boolean }).done)
        .slice(0, 1)
        .forEach((x) => {
          (x as { done?: boolean }).done = true;
          x.slot.settle();
        }),
    5,
  );
  t.after(() => clearInterval(settler));
  for (let i = 0; i < 400 && pubcomps.length < total; i++) await sleep(50);
  assert.deepEqual(closes, [], 'the connection was never dropped');
  assert.equal(taken.length, total, 'each message taken exactly once');
  assert.deepEqual(
    taken.map((x) => x.packet.payload.toString()),
    Array.from({ length: total }, (_, i) => `c${i}`),
    'in order',
  );
  assert.ok(window.highWater <= 5, `in flight ${window.highWater} > 5`);
  assert.equal(pubcomps.length, total, 'every exchange completed');
  t.diagnostic(`most QoS 2 exchanges open at once: ${mostOpen} (Receive Maximum 5)`);
  assert.ok(mostOpen > 5, 'the broker over-sent: the trap was exercised');
});

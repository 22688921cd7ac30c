// The Session port's MQTT.js adapter against the real Mosquitto: messages come with their ack
// slots through a $share subscription; pause() takes nothing new while what is in flight still
// settles and is acked; resume() goes on where it stopped; stop() drains and reports 0.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { Message } from '../../../src/message.ts';
import { createMetrics } from '../../../src/observability/metrics.ts';
import type { AckSlot } from '../../../src/source/ack-window.ts';
import { MqttSession } from '../../../src/source/mqtt/mqtt-session.ts';
import { endpoints, mqttClient, printLogsOnFailure, unique } from '../../support/stack.ts';

test('MqttSession: messages with ack slots; pause takes nothing new, resume goes on; stop drains', { timeout: 60_000 }, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('session');
  const session = new MqttSession(
    {
      url: endpoints.mqtt,
      clientId: unique('session'),
      group: unique('g'),
      subscriptions: [{ filter: `${prefix}/#`, qos: 1 }],
      sessionExpiryInterval: 60,
      receiveMaximum: 50,
      keepalive: 10,
      connectTimeoutMs: 5_000,
      reconnect: { fastMs: 100, fastForMs: 10_000, minMs: 100, maxMs: 1_000 },
    },
    pino({ level: 'silent' }),
    createMetrics(new Registry(), { defaultMetrics: false }),
  );
  const taken: Array<{ message: Message; slot: AckSlot }> = [];
  session.start((message, slot) => taken.push({ message, slot }));
  t.after(() => session.stop(1_000));
  for (let i = 0; i < 100 && !session.connected; i++) await sleep(50);
  await sleep(300); // the SUBACK
  const pub = await mqttClient(t);
  const publish = (from: number, n: number) => Promise.all(Array.from({ length: n }, (_, i) => pub.publishAsync(`${prefix}/d`, `m${from + i}`, { qos: 1 })));

  await publish(0, 10);
  for (let i = 0; i < 50 && taken.length < 10; i++) await sleep(20);
  assert.equal(taken.length, 10);
  assert.equal(session.window.inFlight, 10, 'nothing acked before its slot settles');

  session.pause();
  await publish(10, 10);
  await sleep(300);
  assert.equal(taken.length, 10, 'paused: nothing new taken');
  for (const x of taken) x.slot.settle();
  await sleep(100);
  assert.equal(session.window.inFlight, 0, 'what was in flight still settled and was acked');

  session.resume();
  for (let i = 0; i < 50 && taken.length < 20; i++) await sleep(20);
  assert.deepEqual(
    taken.map((x) => x.message.payload.toString()),
    Array.from({ length: 20 }, (_, i) => `m${i}`),
    'all of them, once, in order',
  );
  for (const x of taken.slice(10)) x.slot.settle();
  assert.equal(await session.stop(2_000), 0);
});

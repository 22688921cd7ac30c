// Smoke test of the stack's Mosquitto: MQTT 5 QoS 1 through a plain and a shared subscription,
// and the mTLS listener accepting the stack's client certificate and refusing no certificate.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import mqtt from 'mqtt';
import { tlsFiles } from '../../deploy/local/tls.ts';
import { config, endpoints, mqttClient, printLogsOnFailure, unique } from '../support/stack.ts';

test('MQTT 5 QoS 1 reaches a plain subscriber and is split across a $share group', async (t) => {
  printLogsOnFailure(t);
  const base = unique('smoke');
  const group = unique('g');
  const received = { plain: [] as string[], a: [] as string[], b: [] as string[] };
  const count = 40;
  const done = Promise.withResolvers<void>();
  const seen = () => {
    if (received.plain.length === count && received.a.length + received.b.length === count) done.resolve();
  };

  const plain = await mqttClient(t);
  const a = await mqttClient(t);
  const b = await mqttClient(t);
  plain.on('message', (_topic, payload) => {
    received.plain.push(payload.toString());
    seen();
  });
  a.on('message', (_topic, payload) => {
    received.a.push(payload.toString());
    seen();
  });
  b.on('message', (_topic, payload) => {
    received.b.push(payload.toString());
    seen();
  });
  await plain.subscribeAsync(`${base}/#`, { qos: 1 });
  await a.subscribeAsync(`$share/${group}/${base}/#`, { qos: 1 });
  await b.subscribeAsync(`$share/${group}/${base}/#`, { qos: 1 });

  const publisher = await mqttClient(t);
  const sent = Array.from({ length: count }, (_, i) => `m${i}`);
  for (const [i, body] of sent.entries()) {
    const packet = await publisher.publishAsync(`${base}/device-${i % 4}/telemetry`, body, { qos: 1 });
    assert.ok(packet, 'a QoS 1 publish resolves with its PUBACK');
  }

  const timer = setTimeout(
    () =>
      done.reject(
        new Error(
          `timed out: ${JSON.stringify({
            plain: received.plain.length,
            a: received.a.length,
            b: received.b.length,
          })}`,
        ),
      ),
    10_000,
  );
  await done.promise.finally(() => clearTimeout(timer));

  assert.deepEqual(received.plain, sent, 'the plain subscriber gets every message, in order');
  assert.deepEqual([...received.a, ...received.b].sort(), [...sent].sort(), 'the share group gets each message once');
  assert.ok(received.a.length > 0 && received.b.length > 0, 'both group members get a share');
});

test('the mTLS listener accepts the stack client certificate and refuses a client without one', async (t) => {
  printLogsOnFailure(t);
  const tls = tlsFiles(config.runDir);
  const client = await mqtt.connectAsync(endpoints.mqtts, {
    protocolVersion: 5,
    clientId: unique('mtls'),
    reconnectPeriod: 0,
    ca: readFileSync(tls.ca),
    cert: readFileSync(tls.clientCert),
    key: readFileSync(tls.clientKey),
  });
  t.after(() => client.endAsync(true));
  assert.equal(client.connected, true);

  await assert.rejects(
    mqtt.connectAsync(endpoints.mqtts, {
      protocolVersion: 5,
      clientId: unique('no-cert'),
      reconnectPeriod: 0,
      connectTimeout: 3_000,
      ca: readFileSync(tls.ca),
    }),
    'a TLS client without a certificate is refused',
  );
});

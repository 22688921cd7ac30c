// sluice against the broker's authenticated listeners: mTLS with a client certificate, and
// username/password with the password from the environment. A wrong password keeps the
// worker unready and retrying, and the password never appears in its logs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { tlsFiles } from '../../deploy/local/tls.ts';
import { readTopic } from '../support/e2e-helpers.ts';
import { sluiceFor } from '../support/sluice-process.ts';
import { config, endpoints, mqttClient, printLogsOnFailure, unique } from '../support/stack.ts';

function rules(prefix: string) {
  return {
    subscriptions: [{ filter: `${prefix}/+/telemetry`, qos: 1 }],
    routes: [{ name: 'telemetry', match: `${prefix}/{deviceId}/telemetry`, kafka: { topic: `${prefix}.telemetry` } }],
  };
}

test('sluice over mTLS: client certificate from files', { timeout: 60_000 }, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('mtls');
  const tls = tlsFiles(config.runDir);
  const sluice = sluiceFor(t, {
    rules: rules(prefix),
    config: { mqtt: { url: endpoints.mqtts, tls: { ca: tls.ca, cert: tls.clientCert, key: tls.clientKey } } },
  });
  await sluice.start();
  const pub = await mqttClient(t);
  await pub.publishAsync(`${prefix}/d1/telemetry`, JSON.stringify({ seq: 1 }), { qos: 1 });
  const records = await readTopic(t, `${prefix}.telemetry`, (r) => r.length >= 1, 30_000);
  assert.equal(records.length, 1);
});

test('sluice with username and password from the environment; a wrong one is retried, unready, never logged', { timeout: 60_000 }, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('auth');
  const good = sluiceFor(t, {
    rules: rules(prefix),
    config: { mqtt: { url: endpoints.mqttAuth, username: config.mqtt.username, password: { env: 'SLUICE_TEST_MQTT_PASSWORD' } } },
    env: { SLUICE_TEST_MQTT_PASSWORD: config.mqtt.password },
  });
  await good.start();
  const pub = await mqttClient(t);
  await pub.publishAsync(`${prefix}/d1/telemetry`, JSON.stringify({ seq: 1 }), { qos: 1 });
  assert.equal((await readTopic(t, `${prefix}.telemetry`, (r) => r.length >= 1, 30_000)).length, 1);
  assert.ok(!good.logs.includes(config.mqtt.password), 'the password is not in the log');

  const wrongPassword = 'not-the-password-4711';
  const bad = sluiceFor(t, {
    rules: rules(unique('auth-bad')),
    config: { mqtt: { url: endpoints.mqttAuth, username: config.mqtt.username, password: { env: 'SLUICE_TEST_MQTT_PASSWORD' } } },
    env: { SLUICE_TEST_MQTT_PASSWORD: wrongPassword },
  });
  await assert.rejects(bad.start(4_000), /not connected/);
  await sleep(1_000);
  assert.equal((await bad.ready()).status, 503);
  assert.match((await bad.ready()).body, /mqtt: not connected/);
  assert.ok(!bad.logs.includes(wrongPassword), 'the password is not in the log');
  assert.match(bad.logs, /mqtt error/, 'the refusal is logged');
});

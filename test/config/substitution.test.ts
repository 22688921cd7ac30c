// ${VAR} and ${VAR:-default} in the service config and the rules file: substituted in values
// (typed again when unquoted), not in keys or comments; an unset variable without a default is
// an error at its file:line that never shows a value.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { z } from 'zod';
import { loadConfig } from '../../src/config/load.ts';
import { parseYaml } from '../../src/config/yaml-file.ts';

const schema = z.object({ url: z.string(), port: z.int(), quoted: z.string(), flag: z.boolean(), list: z.array(z.string()), literal: z.string() }).strict();

test('values are substituted, plain ones typed again, quoted ones kept strings; $${VAR} is literal; comments untouched', () => {
  const env = { HOST: 'broker.example', PORT: '1883', ON: 'true', TOPIC: 'site-a' };
  const { value } = parseYaml(
    'x.yaml',
    [
      'url: mqtt://${HOST}:${PORT}   # ${NOT_SET} in a comment is left alone',
      'port: ${PORT}',
      'quoted: "${PORT}"',
      'flag: ${ON}',
      'list: [ "${TOPIC}/#", "${MISSING:-fallback}/#" ]',
      'literal: $${HOST}',
    ].join('\n'),
    schema,
    env,
  );
  assert.deepEqual(value, { url: 'mqtt://broker.example:1883', port: 1883, quoted: '1883', flag: true, list: ['site-a/#', 'fallback/#'], literal: '${HOST}' });
});

test('an unset variable without a default names the file and line, and no value', () => {
  assert.throws(
    () => parseYaml('cfg.yaml', 'url: a\nport: ${PORT}\n', schema, {}),
    (err: Error) => {
      assert.equal(err.message, 'cfg.yaml:2: ${PORT} is not set and has no default (write ${PORT:-default})');
      return true;
    },
  );
  // set but empty counts as unset (as in a shell's :-)
  assert.throws(() => parseYaml('cfg.yaml', 'url: ${URL}\n', schema, { URL: '' }), /cfg\.yaml:1: \$\{URL\} is not set/);
});

test('a real service config and rules file: substituted end to end, a secret stays an env/file reference', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-subst-'));
  writeFileSync(
    join(dir, 'sluice.yaml'),
    [
      'rules: ${RULES_FILE:-rules.yaml}',
      'mqtt:',
      '  url: mqtt://127.0.0.1:${SUBST_TEST_PORT:-21883}',
      '  group: ${SUBST_TEST_GROUP}',
      '  password: { env: MQTT_PASSWORD }',
      'kafka: { brokers: ["${SUBST_TEST_KAFKA:-127.0.0.1:29092}"] }',
      'http: { port: ${SUBST_TEST_HTTP_PORT} }',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'rules.yaml'),
    [
      'subscriptions: [{ filter: "${SUBST_TEST_ORG}/+/+/+/+/telemetry", qos: 1 }]',
      'routes:',
      '  - name: telemetry',
      '    match: "${SUBST_TEST_ORG}/{site}/{zone}/{deviceType}/{deviceId}/telemetry"',
      '    kafka: { topic: "${SUBST_TEST_ORG}.telemetry" }',
    ].join('\n'),
  );
  const env = { SUBST_TEST_GROUP: 'plant-7', SUBST_TEST_HTTP_PORT: '9999', SUBST_TEST_ORG: 'acme', MQTT_PASSWORD: 'not-in-the-file' };
  const loaded = loadConfig(join(dir, 'sluice.yaml'), { env });
  const s = loaded.service as unknown as { mqtt: { url: string; group: string; password: unknown }; http: { port: number }; kafka: { brokers: string[] } };
  assert.equal(s.mqtt.url, 'mqtt://127.0.0.1:21883');
  assert.equal(s.mqtt.group, 'plant-7');
  assert.equal(s.http.port, 9999);
  assert.deepEqual(s.kafka.brokers, ['127.0.0.1:29092']);
  assert.deepEqual(s.mqtt.password, { env: 'MQTT_PASSWORD' }, 'a secret stays a reference, resolved at start');
  assert.deepEqual(
    loaded.rules.subscriptions.map((x) => x.filter),
    ['acme/+/+/+/+/telemetry'],
  );
  // the rules file's variable unset: its own file and line
  assert.throws(() => loadConfig(join(dir, 'sluice.yaml'), { env: { ...env, SUBST_TEST_ORG: undefined } }), /rules\.yaml:1: \$\{SUBST_TEST_ORG\} is not set/);
});

test('a substituted value in a secret field is refused without showing it (secrets stay { env } / { file })', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-subst-'));
  writeFileSync(join(dir, 'sluice.yaml'), 'mqtt:\n  password: ${SUBST_SECRET}\n');
  writeFileSync(join(dir, 'rules.yaml'), 'subscriptions: [{ filter: "a/#", qos: 1 }]\nroutes: [{ name: r, match: "a/{x}", file: false }]\n');
  assert.throws(
    () => loadConfig(join(dir, 'sluice.yaml'), { env: { SUBST_SECRET: 'hunter2-secret' } }),
    (err: Error) => {
      assert.match(err.message, /sluice\.yaml:2: mqtt\.password/);
      assert.doesNotMatch(err.message, /hunter2/);
      return true;
    },
  );
});

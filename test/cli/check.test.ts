// sluice check and sluice config print: the config and its rules validated together offline
// (no secret read), the warnings, and --connect against the real local stack: each server in
// one line, a server that is not there or refuses the credentials a failure (exit 3), nothing
// written and no share group joined.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { endpoints, kafkaTopic, config as stackConfig, unique } from '../support/stack.ts';

const root = join(import.meta.dirname, '../..');
const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(join(root, 'scripts/node'), [join(root, 'src/cli.ts'), ...args], {
    encoding: 'utf8',
    cwd: root,
    env: { ...process.env, SLUICE_RULES: '', SLUICE_CONFIG: '', ...env },
  });

function dirWith(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-check-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

const rules = (prefix: string) => `subscriptions: [{ filter: "${prefix}/+/+", qos: 1 }]
routes:
  - { name: telemetry, match: "${prefix}/{device}/telemetry", kafka: { topic: "${prefix}.telemetry" }, influx: { measurement: "m", tags: { device: "{device}" }, fields: { v: "$.v" } } }
  - { name: all, match: "${prefix}/#", file: true }
  - { name: shadowed, match: "${prefix}/{device}/status", file: true }
  - { name: lost, match: "elsewhere/{device}", file: true }
`;

test('check CONFIG RULES: both files, secrets not read, warnings for shadowed and uncovered routes, --strict fails on them', () => {
  const dir = dirWith({
    'rules.yaml': rules('plant'),
    'prod.yaml':
      'rules: rules.yaml\nfile: { path: out.jsonl }\nmqtt:\n  url: mqtts://broker.example:8883\n  username: sluice\n  password: { file: /run/secrets/not-here }\ninflux: { url: "http://influx.example:8086", bucket: b, token: { env: SLUICE_TEST_NO_TOKEN } }\n',
  });
  const r = cli(['check', join(dir, 'prod.yaml'), join(dir, 'rules.yaml')]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^rules {3}.*rules\.yaml: 4 route\(s\) \(telemetry, all, shadowed, lost\), 1 subscription\(s\)$/m);
  assert.match(r.stdout, /^sinks {3}kafka, influx, file, dead letter \(kafka topic sluice\.dead-letter\)$/m);
  assert.match(r.stdout, /^ok, 2 warning\(s\)$/m);
  assert.deepEqual(r.stderr.trim().split('\n'), [
    'warning: route "lost" (match elsewhere/{device}) is covered by no subscription: it never receives a message (subscriptions: plant/+/+)',
    'warning: route "shadowed" (match plant/{device}/status) is shadowed by route "all" before it, which takes every topic it matches (continue: false): it never receives a message',
  ]);
  assert.equal(cli(['check', join(dir, 'prod.yaml'), join(dir, 'rules.yaml'), '--strict']).status, 1);
  const bad = cli(['check', join(dir, 'prod.yaml'), join(dir, 'missing.yaml')]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /missing\.yaml/);
  assert.equal(cli(['check', join(dir, 'prod.yaml'), '--config', join(dir, 'prod.yaml')]).status, 2, 'the config named twice');
});

test('check --strict passes on the example config; config print shows every default, secrets as references', () => {
  assert.equal(cli(['check', '--strict']).status, 0, 'config/sluice.yaml and its rules have no warning');
  const dir = dirWith({
    'rules.yaml': 'subscriptions: [{ filter: "a/#", qos: 1 }]\nroutes:\n  - { name: r, match: "a/{x}", file: true }\n',
    'sluice.yaml':
      'rules: rules.yaml\nfile: { path: data/out.jsonl }\ndeadLetter: { to: file, path: data/dead.jsonl }\nmqtt: { username: u, password: { env: SLUICE_TEST_SECRET } }\n',
  });
  const r = cli(['config', 'print', join(dir, 'sluice.yaml')], { SLUICE_TEST_SECRET: 'hunter2-secret-value' });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(!r.stdout.includes('hunter2'), 'no secret value');
  const printed = parse(r.stdout) as Record<string, Record<string, unknown>>;
  assert.deepEqual(printed.mqtt?.password, { env: 'SLUICE_TEST_SECRET' });
  assert.equal(printed.mqtt?.receiveMaximum, 1000, 'a default filled in');
  assert.equal(printed.deadLetter?.path, join(dir, 'data/dead.jsonl'), 'a path resolved against the config');
  assert.equal(printed.rules, join(dir, 'rules.yaml'));
});

test('check --connect: broker, Kafka, InfluxDB and the dead letter each in one line on the real stack; one that is not there fails (exit 3)', {
  timeout: 60_000,
}, async (t) => {
  const prefix = unique('check');
  const deadLetterTopic = await kafkaTopic(t, 1);
  const good = dirWith({
    'rules.yaml': rules(prefix),
    'sluice.yaml': `rules: rules.yaml
mqtt: { url: "${endpoints.mqttAuth}", username: "${stackConfig.mqtt.username}", password: { env: SLUICE_TEST_MQTT_PASSWORD } }
kafka: { brokers: ["${endpoints.kafka}"], createTopics: { enabled: false } }
deadLetter: { topic: ${deadLetterTopic} }
influx: { url: "${endpoints.influxdb}", bucket: "${endpoints.influxBucket}" }
file: { path: out/telemetry.jsonl }
`,
  });
  const env = { SLUICE_TEST_MQTT_PASSWORD: stackConfig.mqtt.password };
  const r = cli(['check', '--connect', '--config', join(good, 'sluice.yaml')], env);
  const lines = (name: string) => r.stdout.split('\n').find((l) => l.startsWith(`${name} `)) ?? '';
  assert.match(
    lines('mqtt'),
    new RegExp(`^mqtt +ok +${endpoints.mqttAuth}: connected as .*-check \\(a clean session outside the share group\\); may subscribe to ${prefix}/\\+/\\+$`),
  );
  assert.match(
    lines('kafka'),
    new RegExp(`^kafka +FAIL +${endpoints.kafka}: connected, \\d+ topic\\(s\\); ${prefix}\\.telemetry ABSENT \\(createTopics off: create it\\)$`),
  );
  assert.match(lines('influx'), /^influx +ok +http:\/\/.* bucket .*: writable$/);
  assert.match(lines('file'), /^file +ok +.*out\/telemetry\.jsonl: .*out absent, made at start/);
  assert.match(lines('dead-letter'), new RegExp(`^dead-letter +ok +to: kafka .*; ${deadLetterTopic} present$`));
  assert.equal(r.status, 3, 'a topic the rules write to is missing and will not be created');
  assert.ok(!r.stdout.includes(stackConfig.mqtt.password) && !r.stderr.includes(stackConfig.mqtt.password), 'the password is never printed');

  const bad = dirWith({
    'rules.yaml': rules(prefix),
    'sluice.yaml': `rules: rules.yaml
mqtt: { url: "${endpoints.mqttAuth}", username: "${stackConfig.mqtt.username}", password: { env: SLUICE_TEST_MQTT_PASSWORD } }
kafka: { brokers: ["127.0.0.1:1"], connectTimeoutMs: 500 }
influx: { url: "${endpoints.influxdb}", bucket: "no-such-db/autogen" }
file: { path: out/telemetry.jsonl }
deadLetter: { to: file, path: /dev/null/dead.jsonl }
`,
  });
  const b = cli(['check', '--connect', '--timeout', '5000', '--config', join(bad, 'sluice.yaml')], { SLUICE_TEST_MQTT_PASSWORD: 'wrong-password-0815' });
  const bl = (name: string) => b.stdout.split('\n').find((l) => l.startsWith(`${name} `)) ?? '';
  assert.equal(b.status, 3, b.stdout + b.stderr);
  assert.match(bl('mqtt'), /^mqtt +FAIL +.*(Not authorized|Bad User Name or Password)/i);
  assert.match(bl('kafka'), /^kafka +FAIL +127\.0\.0\.1:1: /);
  assert.match(bl('influx'), /^influx +FAIL +HTTP 404 from .* bucket no-such-db\/autogen: .*database not found/);
  assert.match(bl('dead-letter'), /^dead-letter +FAIL +to: file \/dev\/null\/dead\.jsonl: \/dev\/null: \/dev\/null is not a directory$/);
  assert.match(b.stdout, /^FAIL: 4 server\(s\) not usable, 2 warning\(s\)$/m);
  assert.ok(!b.stdout.includes('wrong-password-0815'));
});

// Config errors name the file, the line and what is wrong; secrets never appear in them.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig, loadRules } from '../../src/config/load.ts';
import { ConfigError } from '../../src/config/yaml-file.ts';

function files(entries: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-config-'));
  for (const [name, text] of Object.entries(entries)) writeFileSync(join(dir, name), text);
  return dir;
}

const goodRules = `subscriptions:
  - { filter: "acme/+/+/+/+/telemetry", qos: 1 }
routes:
  - name: telemetry
    match: "{org}/{site}/{zone}/{deviceType}/{deviceId}/telemetry"
    kafka:
      topic: "telemetry.{site}"
      key: "{deviceId}"
`;

test('an unknown level in a template names file, line and the known levels', () => {
  const dir = files({ 'rules.yaml': goodRules.replace('key: "{deviceId}"', 'key: "{devId}"') });
  assert.throws(
    () => loadRules(join(dir, 'rules.yaml')),
    (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.message, `${join(dir, 'rules.yaml')}:8: routes[0].kafka.key: unknown level {devId}; known: org, site, zone, deviceType, deviceId`);
      return true;
    },
  );
});

test('schema errors point at the offending line, unknown keys too', () => {
  const dir = files({
    'bad-qos.yaml': goodRules.replace('qos: 1', 'qos: 3'),
    'unknown-key.yaml': goodRules.replace('    kafka:\n', '    kafak: {}\n    kafka:\n'),
    'syntax.yaml': 'routes:\n  - name: [unclosed\n',
    'pattern.yaml': goodRules.replace('{deviceId}/telemetry"', '#/telemetry"'),
    'filter.yaml': goodRules.replace('acme/+/+/+/+/telemetry', 'acme/#/telemetry'),
  });
  assert.throws(() => loadRules(join(dir, 'bad-qos.yaml')), /bad-qos\.yaml:2: subscriptions\[0\]\.qos: /);
  assert.throws(() => loadRules(join(dir, 'unknown-key.yaml')), /unknown-key\.yaml:6: routes\[0\]\.kafak: unknown key/);
  assert.throws(() => loadRules(join(dir, 'syntax.yaml')), /syntax\.yaml:\d+: /);
  assert.throws(() => loadRules(join(dir, 'pattern.yaml')), /pattern\.yaml:5: routes\[0\]\.match: "#" must be the last level/);
  assert.throws(() => loadRules(join(dir, 'missing.yaml')), /missing\.yaml: cannot read: ENOENT/);
  assert.throws(() => loadRules(join(dir, 'filter.yaml')), /filter\.yaml:2: subscriptions\[0\]\.filter: "#" must be the last level/);
});

test('secrets come from env or files, are checked at load, and never show in errors', () => {
  const dir = files({
    'rules.yaml': goodRules,
    'inline.yaml': 'mqtt:\n  password: hunter2\n',
    'env.yaml': 'mqtt:\n  username: u\n  password: { env: SLUICE_TEST_PW }\n',
  });
  assert.throws(
    () => loadConfig(join(dir, 'inline.yaml')),
    (err: Error) => {
      assert.match(err.message, /inline\.yaml:2: mqtt\.password: /);
      assert.doesNotMatch(err.message, /hunter2/);
      return true;
    },
  );
  assert.throws(() => loadConfig(join(dir, 'env.yaml'), { env: {} }), /mqtt\.password: environment variable SLUICE_TEST_PW is not set/);
  const ok = loadConfig(join(dir, 'env.yaml'), { env: { SLUICE_TEST_PW: 'hunter2', SLUICE_CLIENT_ID: 'w1' } });
  assert.equal(ok.clientId, 'w1');
  assert.equal(ok.service.mqtt.receiveMaximum, 1000);
});

test('the example config and rules in config/ load', () => {
  const loaded = loadConfig(join(import.meta.dirname, '../../config/sluice.yaml'), { env: {} });
  assert.deepEqual(loaded.rules.routeNames, ['telemetry', 'commands', 'sparkplug']);
  assert.equal(loaded.service.sparkplug.stateDir, join(import.meta.dirname, '../../.stack/sparkplug'), 'relative to the config file');
});

test('a value schema is read relative to the rules file, and needs kafka.schemaRegistry, naming the route', () => {
  const schemaRules = goodRules.replace(
    '      key: "{deviceId}"\n',
    '      key: "{deviceId}"\n      value: { format: avro, schema: r.avsc, subject: telemetry-value }\n',
  );
  const avsc = JSON.stringify({ type: 'record', name: 'R', fields: [{ name: 'v', type: 'double' }] });
  const dir = files({ 'rules.yaml': schemaRules, 'sluice.yaml': 'rules: rules.yaml\nkafka:\n  brokers: ["127.0.0.1:1"]\n' });
  assert.throws(
    () => loadRules(join(dir, 'rules.yaml')),
    /rules\.yaml:9: routes\[0\]\.kafka\.value\.schema: cannot read the schema file .*r\.avsc \(ENOENT\)$/,
  );
  writeFileSync(join(dir, 'r.avsc'), avsc);
  assert.throws(
    () => loadConfig(join(dir, 'sluice.yaml'), { env: {} }),
    /sluice\.yaml:2: kafka: route "telemetry" in .*rules\.yaml needs kafka\.schemaRegistry in this file/,
  );
  writeFileSync(
    join(dir, 'sluice.yaml'),
    'rules: rules.yaml\nkafka:\n  brokers: ["127.0.0.1:1"]\n  schemaRegistry: { url: "http://127.0.0.1:1/apis/ccompat/v7" }\n',
  );
  assert.deepEqual(loadConfig(join(dir, 'sluice.yaml'), { env: {} }).rules.routeNames, ['telemetry']);
  writeFileSync(join(dir, 'r.avsc'), '{"type": "record"');
  assert.throws(() => loadRules(join(dir, 'rules.yaml')), /rules\.yaml:9: .*r\.avsc: .*JSON/);
});

test('an audit route without an audit section is refused, naming both files; audit.dir is relative to the config', () => {
  const auditRules = goodRules.replace('    kafka:\n', '    audit: true\n    kafka:\n');
  const dir = files({ 'rules.yaml': auditRules, 'sluice.yaml': 'rules: rules.yaml\n' });
  assert.throws(
    () => loadConfig(join(dir, 'sluice.yaml')),
    /sluice\.yaml:1: route "telemetry" in .*rules\.yaml has audit: true but this file has no audit section/,
  );
  writeFileSync(join(dir, 'sluice.yaml'), 'rules: rules.yaml\naudit:\n  dir: data/audit\n  signing:\n    privateKey: { env: SLUICE_TEST_NO_SUCH_KEY }\n');
  assert.throws(() => loadConfig(join(dir, 'sluice.yaml'), { env: {} }), /audit\.signing\.privateKey: environment variable SLUICE_TEST_NO_SUCH_KEY is not set/);
  writeFileSync(join(dir, 'sluice.yaml'), 'rules: rules.yaml\naudit:\n  dir: data/audit\n');
  assert.equal((loadConfig(join(dir, 'sluice.yaml')).service.audit as { dir: string }).dir, join(dir, 'data/audit'));
});

test('audit.anchors: needs signing and a witness; its file is relative to the config', () => {
  const dir = files({ 'rules.yaml': goodRules, 'sluice.yaml': 'rules: rules.yaml\naudit:\n  dir: a\n  anchors: { file: w/anchors.jsonl }\n' });
  assert.throws(() => loadConfig(join(dir, 'sluice.yaml')), /sluice\.yaml:4: audit\.anchors: anchors are the signed checkpoints: set audit\.signing too/);
  const signing = '  signing: { privateKey: { env: KEY } }\n';
  writeFileSync(join(dir, 'sluice.yaml'), `rules: rules.yaml\naudit:\n  dir: a\n${signing}  anchors: { timeoutMs: 500 }\n`);
  assert.throws(() => loadConfig(join(dir, 'sluice.yaml'), { env: { KEY: 'k' } }), /audit\.anchors: anchors needs a witness: file, url or kafkaTopic/);
  writeFileSync(
    join(dir, 'sluice.yaml'),
    `rules: rules.yaml\naudit:\n  dir: a\n${signing}  anchors: { file: w/anchors.jsonl, url: "https://witness.example/a" }\n`,
  );
  const anchors = (loadConfig(join(dir, 'sluice.yaml'), { env: { KEY: 'k' } }).service.audit as { anchors: { file: string; url: string } }).anchors;
  assert.equal(anchors.file, join(dir, 'w/anchors.jsonl'));
  assert.equal(anchors.url, 'https://witness.example/a');
});

test('addresses are checked at load, each a file:line error with the exact reason', () => {
  const dir = files({
    'rules.yaml': goodRules,
    'mqtt.yaml': 'mqtt:\n  url: mqtt://127.0.0.1:notaport\n',
    'scheme.yaml': 'mqtt:\n  url: http://broker:1883\n',
    'brokers.yaml': 'kafka:\n  brokers:\n    - 127.0.0.1:29092\n    - "kafka-2:port"\n',
    'influx.yaml': 'influx:\n  url: influx:8086\n  bucket: b\n',
  });
  const message = (file: string) => {
    try {
      loadConfig(join(dir, file), { env: {} });
    } catch (err) {
      return (err as Error).message.replace(dir, 'DIR');
    }
    return 'loaded';
  };
  assert.equal(
    message('mqtt.yaml'),
    'DIR/mqtt.yaml:2: mqtt.url: "mqtt://127.0.0.1:notaport" is not a URL (mqtt://host:port, mqtts://host:port, ws://host:port, wss://host:port)',
  );
  assert.equal(
    message('scheme.yaml'),
    'DIR/scheme.yaml:2: mqtt.url: "http://broker:1883": the scheme must be mqtt, mqtts, ws, wss (mqtt://host:port, mqtts://host:port, ws://host:port, wss://host:port)',
  );
  assert.equal(message('brokers.yaml'), 'DIR/brokers.yaml:4: kafka.brokers[1]: "kafka-2:port" is not host:port with a port 1-65535');
  assert.equal(message('influx.yaml'), 'DIR/influx.yaml:2: influx.url: "influx:8086": the scheme must be http, https (http://host:port, https://host:port)');
});

test('a YAML alias bomb and an oversized file are one line naming the file, not a stack trace', () => {
  const lol = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (const [name, prev] of [
    ['b', 'a'],
    ['c', 'b'],
    ['d', 'c'],
    ['e', 'd'],
    ['f', 'e'],
  ])
    lol.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(',')}]`);
  const dir = files({ 'bomb.yaml': `${lol.join('\n')}\n`, 'huge.yaml': `# ${'x'.repeat(5 * 1024 * 1024)}\n` });
  assert.throws(
    () => loadRules(join(dir, 'bomb.yaml')),
    (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.message, `${join(dir, 'bomb.yaml')}: the YAML expands too many aliases (more than 1000; an alias bomb?): refused`);
      return true;
    },
  );
  assert.throws(
    () => loadRules(join(dir, 'huge.yaml')),
    (err: Error) => {
      assert.equal(err.message, `${join(dir, 'huge.yaml')}: 5242883 bytes is more than a config file may be (4194304 bytes)`);
      return true;
    },
  );
});

test('errors users meet first say what to write: qos, an inline secret, an empty file, the route that needs a section', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-errors-'));
  const write = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  const rules = write('r.yaml', 'subscriptions: [{ filter: "a/#", qos: 1 }]\nroutes:\n  - { name: cmdroute, match: "a/{x}", audit: true }\n');
  const message = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      return (err as Error).message;
    }
    return 'no error';
  };
  assert.match(
    message(() => loadRules(write('q.yaml', 'subscriptions: [{ filter: "a/#", qos: "x" }]\nroutes:\n  - { name: r, match: "a/{x}", file: true }\n'))),
    /q\.yaml:1: subscriptions\[0\]\.qos: qos is 0, 1 or 2$/,
  );
  assert.equal(
    message(() => loadRules(write('empty.yaml', ''))),
    `${join(dir, 'empty.yaml')}:1: the file is empty`,
  );
  const inline = message(() => loadConfig(write('inline.yaml', 'rules: r.yaml\naudit: { dir: a }\nmqtt: { password: hunter2 }\n')));
  assert.match(inline, /inline\.yaml:3: mqtt\.password: a secret is never written in the file: give \{ env: VARIABLE \} or \{ file: PATH \}/);
  assert.doesNotMatch(inline, /hunter2/, 'the value is never repeated');
  assert.match(
    message(() => loadConfig(write('noaudit.yaml', 'rules: r.yaml\n'))),
    /route "cmdroute" in .*r\.yaml has audit: true but this file has no audit section/,
  );
  assert.ok(rules);
});

test('a missing secret names its file and line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-secret-line-'));
  writeFileSync(join(dir, 'r.yaml'), 'subscriptions: [{ filter: "a/#", qos: 1 }]\nroutes:\n  - { name: r, match: "a/{x}", file: true }\n');
  writeFileSync(
    join(dir, 'c.yaml'),
    'rules: r.yaml\nfile: { path: out.jsonl }\nmqtt:\n  url: mqtt://127.0.0.1:1883\n  password: { env: SLUICE_TEST_UNSET_PW }\n',
  );
  assert.throws(
    () => loadConfig(join(dir, 'c.yaml'), { env: {} }),
    (err: Error) => err.message === `${join(dir, 'c.yaml')}:5: mqtt.password: environment variable SLUICE_TEST_UNSET_PW is not set`,
  );
});

test('deadLetter: to file needs a path (relative to the config), a path is for to: file only, kafka by default', () => {
  const dir = files({ 'rules.yaml': goodRules, 'sluice.yaml': 'rules: rules.yaml\ndeadLetter:\n  to: file\n' });
  assert.throws(() => loadConfig(join(dir, 'sluice.yaml')), /sluice\.yaml:2: deadLetter\.path: to: file needs a path/);
  writeFileSync(join(dir, 'sluice.yaml'), 'rules: rules.yaml\ndeadLetter:\n  to: hold\n  path: x.jsonl\n');
  assert.throws(() => loadConfig(join(dir, 'sluice.yaml')), /deadLetter\.path: path is for to: file \(to is hold\)/);
  writeFileSync(join(dir, 'sluice.yaml'), 'rules: rules.yaml\ndeadLetter:\n  to: file\n  path: dead/letters.jsonl\n');
  assert.equal((loadConfig(join(dir, 'sluice.yaml')).service.deadLetter as { path: string }).path, join(dir, 'dead/letters.jsonl'));
  writeFileSync(join(dir, 'sluice.yaml'), 'rules: rules.yaml\n');
  assert.equal((loadConfig(join(dir, 'sluice.yaml')).service.deadLetter as { to: string }).to, 'kafka');
  assert.equal((loadConfig(join(dir, 'sluice.yaml')).service.deadLetter as { topic: string }).topic, 'sluice.dead-letter');
});

test('a key that moved says where it went, at its line: kafka.deadLetterTopic is deadLetter.topic now', () => {
  const dir = files({ 'rules.yaml': goodRules, 'sluice.yaml': 'rules: rules.yaml\nkafka:\n  brokers: ["127.0.0.1:9092"]\n  deadLetterTopic: dlq\n' });
  assert.throws(
    () => loadConfig(join(dir, 'sluice.yaml')),
    (err: Error) => err.message === `${join(dir, 'sluice.yaml')}:4: kafka.deadLetterTopic: moved to deadLetter.topic (same meaning): write it there`,
  );
  writeFileSync(join(dir, 'sluice.yaml'), 'rules: rules.yaml\nkafka:\n  brokers: ["127.0.0.1:9092"]\n  typo: 1\n  deadLetterTopic: dlq\n');
  assert.throws(() => loadConfig(join(dir, 'sluice.yaml')), /sluice\.yaml:5: kafka\.deadLetterTopic: moved to deadLetter\.topic/);
  writeFileSync(join(dir, 'sluice.yaml'), 'rules: rules.yaml\ndeadLetter: { topic: dlq }\n');
  assert.equal((loadConfig(join(dir, 'sluice.yaml')).service.deadLetter as { topic: string }).topic, 'dlq');
});

test('mqtt.failover: URLs of the url scheme, each checked; a mismatch or a bad URL is refused at its line', () => {
  const dir = files({
    'rules.yaml': goodRules,
    'good.yaml': 'mqtt:\n  url: mqtt://a.internal:1883\n  failover: [mqtt://b.internal:1883, "mqtt://[::1]:1884"]\n',
    'scheme.yaml': 'mqtt:\n  url: mqtt://a.internal:1883\n  failover: [mqtts://b.internal:8883]\n',
    'bad.yaml': 'mqtt:\n  url: mqtt://a.internal:1883\n  failover:\n    - mqtt://b.internal:1883\n    - http://c.internal\n',
  });
  assert.deepEqual(loadConfig(join(dir, 'good.yaml'), { env: {} }).service.mqtt.failover, ['mqtt://b.internal:1883', 'mqtt://[::1]:1884']);
  assert.throws(() => loadConfig(join(dir, 'scheme.yaml'), { env: {} }), /scheme\.yaml:\d+: mqtt\.failover: failover URLs take the scheme of url/);
  assert.throws(
    () => loadConfig(join(dir, 'bad.yaml'), { env: {} }),
    /bad\.yaml:5: mqtt\.failover\[1\]: "http:\/\/c\.internal": the scheme must be mqtt, mqtts/,
  );
});

test('mqttServers: url first, then the failover URLs, with default ports and IPv6 unbracketed', async () => {
  const { mqttServers } = await import('../../src/addresses.ts');
  assert.deepEqual(mqttServers('mqtts://a.internal', ['mqtts://[::1]:8884']), [
    { host: 'a.internal', port: 8883, protocol: 'mqtts' },
    { host: '::1', port: 8884, protocol: 'mqtts' },
  ]);
});

// The command line: a file per command, each with its own options and help; an option a
// command does not take is an error (exit 2) that names the command and the option, never
// silently ignored.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import sparkplug from 'sparkplug-payload';

const root = join(import.meta.dirname, '../..');
const cli = (...args: string[]) => spawnSync(join(root, 'scripts/node'), [join(root, 'src/cli.ts'), ...args], { encoding: 'utf8', cwd: root });

test('an option that does not belong to the command is an error naming both', () => {
  const r = cli('audit', 'verify', '/tmp', '--kafka', 'x');
  assert.equal(r.status, 2);
  assert.equal(r.stderr.trim(), 'sluice: "sluice audit verify" does not take --kafka (sluice audit verify --help lists its options)\ntry sluice --help');
  const run = cli('run', '--devices', '10');
  assert.equal(run.status, 2);
  assert.match(run.stderr, /"sluice run" does not take --devices/);
});

test('each command has its own help; the top-level help lists every command', () => {
  const verify = cli('audit', 'verify', '--help');
  assert.equal(verify.status, 0);
  assert.match(verify.stdout, /^usage: sluice audit verify DIR \[options\]/);
  assert.match(verify.stdout, /--public-key FILE/);
  assert.doesNotMatch(verify.stdout, /--brokers/, 'only its own options');
  const top = cli('--help');
  assert.equal(top.status, 0);
  for (const c of ['run', 'rules check', 'rules test', 'rules schema', 'simulate', 'config schema', 'audit verify', 'audit replay', 'audit keygen']) {
    assert.match(top.stdout, new RegExp(`^  ${c}\\b`, 'm'), c);
  }
  const unknown = cli('frobnicate');
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
});

test('rules test shows what each sink would write, and the dead letters', () => {
  const r = cli('rules', 'test', 'acme/malta-factory/floor-03/temperature-sensor/ts-4427/telemetry', '{"temperature":21.5,"ts":1700000000000}', '--config', 'config/sluice.yaml');
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { routes: string[]; outputs: Array<{ sink: string; item: unknown }>; deadLetters: unknown[] };
  assert.deepEqual(out.routes, ['telemetry']);
  assert.deepEqual(out.outputs.map((o) => o.sink), ['kafka', 'influx']);
  assert.equal(out.outputs[1]?.item, 'temperature-sensor,deviceId=ts-4427,site=malta-factory,zone=floor-03 temperature=21.5 1700000000000000000');
  const bad = JSON.parse(cli('rules', 'test', 'acme/s/z/t/d/telemetry', '{"temperature":', '--qos', '1').stdout) as { deadLetters: Array<{ reason: string }> };
  assert.deepEqual(bad.deadLetters.map((d) => d.reason), ['invalid-json']);
  assert.equal(cli('rules', 'test', 'a/b', '{}', '--qos', '7').status, 2);
});

test('rules test takes a base64 Sparkplug payload, and births that name its aliases', () => {
  const spb = sparkplug.get('spBv1.0') as { encodePayload(p: unknown): Uint8Array };
  const b64 = (p: unknown) => Buffer.from(spb.encodePayload(p)).toString('base64');
  const birth = b64({ timestamp: 1700000000000, seq: 1, metrics: [{ name: 'Counters/Cycles', alias: 7, type: 'Int64', value: '9007199254740993' }] });
  const data = b64({ timestamp: 1700000000005, seq: 2, metrics: [{ alias: 7, type: 'Int64', value: '9007199254740995' }] });
  const topic = 'spBv1.0/plant-1/DDATA/gw-01/press-01';
  const named = cli('rules', 'test', '--config', 'config/sluice.yaml', '--base64', '--birth', `spBv1.0/plant-1/DBIRTH/gw-01/press-01=${birth}`, topic, data);
  assert.equal(named.status, 0, named.stderr);
  const out = JSON.parse(named.stdout) as { routes: string[]; outputs: Array<{ sink: string; item: unknown }>; deadLetters: unknown[] };
  assert.deepEqual(out.routes, ['sparkplug']);
  assert.deepEqual(out.deadLetters, []);
  assert.equal(out.outputs.find((o) => o.sink === 'influx')?.item, 'plant-1,device=press-01,edgeNode=gw-01 Counters/Cycles=9007199254740995i 1700000000005000000');
  const unnamed = JSON.parse(cli('rules', 'test', '--config', 'config/sluice.yaml', '--base64', topic, data).stdout) as { deadLetters: Array<{ reason: string; error: string }> };
  assert.deepEqual(unnamed.deadLetters.map((d) => d.reason), ['sparkplug-unknown-alias']);
  assert.equal(cli('rules', 'test', '--base64', topic, 'not base64!').status, 2);
});

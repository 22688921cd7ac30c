// The command line: a file per command, each with its own options and help; an option a
// command does not take is an error (exit 2) that names the command and the option, never
// silently ignored.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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
  assert.match(verify.stdout, /^usage: sluice audit verify DIR \[DIR\.\.\.\] \[options\]/);
  assert.match(verify.stdout, /--public-key FILE/);
  assert.doesNotMatch(verify.stdout, /--brokers/, 'only its own options');
  const top = cli('--help');
  assert.equal(top.status, 0);
  for (const c of [
    'run',
    'check',
    'config print',
    'rules check',
    'rules test',
    'rules schema',
    'simulate',
    'config schema',
    'audit verify',
    'audit replay',
    'audit prove',
    'audit check-proof',
    'audit keygen',
  ]) {
    assert.match(top.stdout, new RegExp(`^  ${c}\\b`, 'm'), c);
  }
  const unknown = cli('frobnicate');
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
});

test('rules test shows what each sink would write, and the dead letters', () => {
  const r = cli(
    'rules',
    'test',
    'acme/malta-factory/floor-03/temperature-sensor/ts-4427/telemetry',
    '{"temperature":21.5,"ts":1700000000000}',
    '--config',
    'config/sluice.yaml',
  );
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { routes: string[]; outputs: Array<{ sink: string; item: unknown }>; deadLetters: unknown[] };
  assert.deepEqual(out.routes, ['telemetry']);
  assert.deepEqual(
    out.outputs.map((o) => o.sink),
    ['kafka', 'influx'],
  );
  assert.equal(out.outputs[1]?.item, 'temperature-sensor,deviceId=ts-4427,site=malta-factory,zone=floor-03 temperature=21.5 1700000000000000000');
  const bad = JSON.parse(cli('rules', 'test', 'acme/s/z/t/d/telemetry', '{"temperature":', '--qos', '1').stdout) as { deadLetters: Array<{ reason: string }> };
  assert.deepEqual(
    bad.deadLetters.map((d) => d.reason),
    ['invalid-json'],
  );
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
  assert.equal(
    out.outputs.find((o) => o.sink === 'influx')?.item,
    'plant-1,device=press-01,edgeNode=gw-01 Counters/Cycles=9007199254740995i 1700000000005000000',
  );
  const unnamed = JSON.parse(cli('rules', 'test', '--config', 'config/sluice.yaml', '--base64', topic, data).stdout) as {
    deadLetters: Array<{ reason: string; error: string }>;
  };
  assert.deepEqual(
    unnamed.deadLetters.map((d) => d.reason),
    ['sparkplug-unknown-alias'],
  );
  assert.equal(cli('rules', 'test', '--base64', topic, 'not base64!').status, 2);
});

test('rules check FILE checks that file: a missing one is an error naming it, a good one is named by its routes', () => {
  const missing = cli('rules', 'check', '/does/not/exist.yaml');
  assert.notEqual(missing.status, 0, 'never "ok" for a file that is not there');
  assert.match(missing.stderr, /\/does\/not\/exist\.yaml/);
  assert.doesNotMatch(missing.stderr, /\n\s+at /, 'one line, no stack trace');
  const dir = mkdtempSync(join(tmpdir(), 'sluice-rules-'));
  const file = join(dir, 'one.yaml');
  writeFileSync(file, 'subscriptions: [{ filter: "a/#", qos: 1 }]\nroutes:\n  - { name: only-this, match: "a/{x}", file: true }\n');
  const ok = cli('rules', 'check', file);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /^ok: 1 route\(s\) \(only-this\)/);
  assert.equal(cli('rules', 'check', file, file).status, 2, 'one file at most');
  assert.equal(cli('rules', 'check', file, '--rules', file).status, 2, 'the argument or --rules, not both');
});

test('audit keygen never replaces a key pair; audit verify of no log is a failure, never "ok: 0 records"', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-keys-'));
  assert.equal(cli('audit', 'keygen', dir).status, 0);
  const key = readFileSync(join(dir, 'audit-signing.key'), 'utf8');
  const again = cli('audit', 'keygen', dir);
  assert.equal(again.status, 2);
  assert.match(again.stderr, /audit-signing\.key exists: refusing to replace a signing key pair/);
  assert.equal(readFileSync(join(dir, 'audit-signing.key'), 'utf8'), key, 'the private key is untouched');
  const empty = mkdtempSync(join(tmpdir(), 'sluice-empty-'));
  for (const [where, why] of [
    [empty, /holds no audit log segments/],
    [join(empty, 'nope'), /does not exist/],
  ] as const) {
    const r = cli('audit', 'verify', where, '--public-key', join(dir, 'audit-signing.pub'));
    assert.equal(r.status, 7, `${where}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, why);
    assert.doesNotMatch(r.stdout, /ok|signatures valid/);
  }
  const file = cli('audit', 'verify', join(dir, 'audit-signing.key'));
  assert.equal(file.status, 2);
  assert.match(file.stderr, /is not a directory/);
  const noKey = cli('audit', 'verify', empty, '--public-key', join(empty, 'missing.pub'));
  assert.equal(noKey.status, 2);
  assert.match(noKey.stderr, /--public-key .*missing\.pub: cannot read it \(ENOENT\)/);
  assert.doesNotMatch(noKey.stderr, /\n\s+at /, 'one line, no stack trace');
});

test('rules test says what happens in one word, warns when no subscription covers the topic, and exits 1 unless the message is written', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-rules-'));
  const file = join(dir, 'rules.yaml');
  writeFileSync(
    file,
    [
      'subscriptions: [{ filter: "t/+", qos: 1 }, { filter: "c/+", qos: 2 }]',
      'unmatched: dead-letter',
      'routes:',
      '  - { name: t, match: "t/{id}", kafka: { topic: "t" } }',
      '  - { name: other, match: "elsewhere/{id}", kafka: { topic: "e" } }',
      '  - { name: cmd, match: "c/{id}", payload: raw, audit: true }',
      '',
    ].join('\n'),
  );
  const run = (...args: string[]) => {
    const r = cli('rules', 'test', '--rules', file, ...args);
    return { status: r.status, out: JSON.parse(r.stdout) as { outcome: string; warning?: string; outputs: Array<{ item: Record<string, unknown> }> } };
  };
  const ok = run('t/1', '{"v":1}');
  assert.deepEqual([ok.status, ok.out.outcome, ok.out.warning], [0, 'routed', undefined]);
  const bad = run('t/1', '{"v":');
  assert.deepEqual([bad.status, bad.out.outcome], [1, 'dead-lettered']);
  const unmatched = run('t/1/2', '{}');
  assert.deepEqual([unmatched.status, unmatched.out.outcome], [1, 'unmatched-dead-lettered']);
  const unsubscribed = run('elsewhere/1', '{"v":1}');
  assert.equal(unsubscribed.status, 1, 'routed, but sluice never receives it');
  assert.match(unsubscribed.out.warning ?? '', /no subscription covers elsewhere\/1: sluice would never receive it \(subscriptions: t\/\+, c\/\+\)/);
  const command = run('c/1', 'open valve', '--qos', '2');
  assert.equal(command.status, 0);
  assert.equal(command.out.outputs[0]?.item.payload, 'open valve', "the audit item's payload as text, not a Buffer spelled out");
});

test("-V prints the version; help COMMAND and a group's word with --help show what users expect", () => {
  assert.match(cli('-V').stdout, /^\d+\.\d+\.\d+\n$/);
  const help = cli('help', 'rules', 'check');
  assert.equal(help.status, 0);
  assert.match(help.stdout, /^usage: sluice rules check \[RULES_FILE\] \[options\]/);
  for (const group of ['audit', 'rules']) {
    const r = cli(group, '--help');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^usage: sluice ${group} COMMAND`));
    assert.match(r.stdout, new RegExp(`^  ${group} \\w+`, 'm'));
  }
  assert.equal(cli('rules').status, 2, 'the word alone lists the commands, as a usage error');
  const unknown = cli('rules', 'frob');
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown command "rules frob" \(sluice rules --help lists them\)/);
});

test('a broker that is not there, or a URL of another scheme, is one line, not a stack trace', () => {
  const scheme = cli('simulate', '--url', 'http://x');
  assert.equal(scheme.status, 2);
  assert.match(scheme.stderr, /^sluice: --url http:\/\/x: an mqtt:\/\/, mqtts:\/\/, ws:\/\/ or wss:\/\/ URL of the broker/);
  const refused = cli('simulate', '--url', 'mqtt://127.0.0.1:1');
  assert.equal(refused.status, 1);
  assert.equal(refused.stderr.trim(), 'sluice: cannot connect: 127.0.0.1:1: ECONNREFUSED');
});

test('rules check --config lints a production config without its secrets: their shape is checked, their values not read', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-lint-'));
  writeFileSync(join(dir, 'rules.yaml'), 'subscriptions: [{ filter: "a/#", qos: 1 }]\nroutes:\n  - { name: r, match: "a/{x}", file: true }\n');
  writeFileSync(
    join(dir, 'prod.yaml'),
    'rules: rules.yaml\nfile: { path: out.jsonl }\nmqtt:\n  url: mqtts://broker.example:8883\n  password: { file: /run/secrets/does-not-exist-here }\n',
  );
  const ok = spawnSync(join(root, 'scripts/node'), [join(root, 'src/cli.ts'), 'rules', 'check', '--config', join(dir, 'prod.yaml')], {
    encoding: 'utf8',
    env: { ...process.env, SLUICE_RULES: '' },
  });
  assert.equal(ok.status, 0, ok.stderr);
  writeFileSync(join(dir, 'inline.yaml'), 'rules: rules.yaml\nfile: { path: out.jsonl }\nmqtt:\n  password: hunter2\n');
  const inline = cli('rules', 'check', '--config', join(dir, 'inline.yaml'));
  assert.equal(inline.status, 1);
  assert.match(inline.stderr, /inline\.yaml:4: mqtt\.password: a secret is never written in the file/);
});

test('rules check warns about a route no subscription covers; --strict makes it fail', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-uncovered-'));
  const file = join(dir, 'rules.yaml');
  writeFileSync(
    file,
    'subscriptions: [{ filter: "t/+", qos: 1 }]\nroutes:\n  - { name: t, match: "t/{id}", file: true }\n  - { name: lost, match: "elsewhere/{id}", file: true }\n',
  );
  const r = cli('rules', 'check', file);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /^ok: 2 route\(s\) \(t, lost\), 1 subscription\(s\), 1 warning\(s\)/);
  assert.equal(r.stderr.trim(), 'warning: route "lost" (match elsewhere/{id}) is covered by no subscription: it never receives a message (subscriptions: t/+)');
  assert.equal(cli('rules', 'check', file, '--strict').status, 1);
  assert.equal(cli('rules', 'check', '--strict', '--rules', join(root, 'config/rules.yaml')).status, 0, 'the example rules have no warning');
});

test('audit verify --metrics-file of a directory with no log writes a failed check (kind no-log), never nothing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-nolog-'));
  const file = join(dir, 'check.prom');
  const r = cli('audit', 'verify', dir, '--metrics-file', file);
  assert.equal(r.status, 7);
  const text = readFileSync(file, 'utf8');
  assert.match(text, /^sluice_audit_check_ok\{command="verify",dir="[^"]+"\} 0$/m);
  assert.match(text, /^sluice_audit_check_problem\{command="verify",dir="[^"]+",kind="no-log"\} 1$/m);
});

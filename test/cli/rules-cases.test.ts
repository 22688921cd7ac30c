// sluice rules test --cases: the example rules' own test file passes (CI runs it here), a case
// that does not hold fails with a line per difference, and a malformed case file is one
// file:line error.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { differences } from '../../src/cli/rules-cases.ts';

const root = join(import.meta.dirname, '../..');
const cli = (...args: string[]) =>
  spawnSync(join(root, 'scripts/node'), [join(root, 'src/cli.ts'), ...args], {
    encoding: 'utf8',
    cwd: root,
    env: { ...process.env, SLUICE_RULES: '', SLUICE_CONFIG: '' },
  });

test('the example rules pass their test file, config/rules.test.yaml', () => {
  const r = cli('rules', 'test', '--cases', 'config/rules.test.yaml');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^(\d+) case\(s\): \1 passed, 0 failed$/m);
  assert.doesNotMatch(r.stdout, /^FAIL/m);
});

test('a case that does not hold fails with each difference on its own line; a malformed file is one file:line error', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cases-'));
  const file = join(dir, 'cases.yaml');
  writeFileSync(
    file,
    `cases:
  - name: wrong key and a missing InfluxDB point
    topic: acme/malta/floor-03/temperature-sensor/ts-4427/telemetry
    payload: '{"temperature": 21.5, "ts": 1767225600000}'
    expect:
      outcome: routed
      kafka: [{ topic: telemetry.malta, key: ts-9999 }]
  - name: a topic no subscription covers
    topic: acme/malta/floor-03/temperature-sensor/ts-4427/status
    payload: 'x'
    expect: { outcome: routed }
  - name: right
    topic: acme/malta/floor-03/temperature-sensor/ts-4427/telemetry
    payload: 'not json'
    expect: { outcome: dead-lettered, deadLetter: { reason: invalid-json, error: "/^Unexpected token/" } }
`,
  );
  const r = cli('rules', 'test', '--cases', file, '--config', 'config/sluice.yaml');
  assert.equal(r.status, 1);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines[0], `FAIL  wrong key and a missing InfluxDB point  (${file}:2)`);
  assert.ok(lines.includes('        kafka[0].key: expected "ts-9999", got "ts-4427"'), r.stdout);
  assert.ok(
    lines.some((l) => l.startsWith('        influx: expected 0 item(s), got 1: "temperature-sensor,deviceId=ts-4427')),
    r.stdout,
  );
  assert.ok(
    lines.some((l) => l.startsWith(`FAIL  a topic no subscription covers  (${file}:8)`)),
    r.stdout,
  );
  assert.ok(
    lines.some((l) => /^ {8}warning: no subscription covers acme\/malta\/floor-03\/temperature-sensor\/ts-4427\/status/.test(l)),
    r.stdout,
  );
  assert.ok(lines.includes(`ok    right  (${file}:12)`), r.stdout);
  assert.equal(lines.at(-1), '3 case(s): 1 passed, 2 failed');

  writeFileSync(file, 'cases:\n  - name: no payload\n    topic: a/b\n    expect: {}\n');
  const bad = cli('rules', 'test', '--cases', file);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, new RegExp(`^sluice: ${file}:2: cases\\[0\\]: give payload or payloadBase64`));
  assert.equal(cli('rules', 'test', 'a/b', 'x', '--cases', file).status, 2, 'a case file or a message, not both');
});

test('differences: only the expected keys, "/re/" as a pattern, arrays whole', () => {
  assert.deepEqual(differences({ a: 1, b: { c: 'x' } }, { a: 1, b: { c: 'x', d: 2 }, e: 3 }, 'it'), []);
  assert.deepEqual(differences({ a: 2 }, { a: 1 }, 'it'), ['it.a: expected 2, got 1']);
  assert.deepEqual(differences('/^ab+c$/', 'abbbc', 'it'), []);
  assert.deepEqual(differences('/^x/', 'abc', 'it'), ['it: expected to match /^x/, got "abc"']);
  assert.deepEqual(differences([1, 2], [1, 2, 3], 'it'), ['it: expected [1,2], got [1,2,3]']);
  assert.deepEqual(differences({ a: 1 }, undefined, 'it'), ['it: expected {"a":1}, got nothing']);
});

// Several workers' logs as one: verified each, merged in receive order, and what only that view
// shows reported (a command recorded by two workers, an idempotency key in two logs).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AuditLog } from '../../src/audit/log/audit-log.ts';
import { type NewCommand, segmentFiles } from '../../src/audit/log/format.ts';
import { testCommand } from './commands.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = (...args: string[]) => spawnSync(join(root, 'scripts/node'), [join(root, 'src/cli.ts'), 'audit', ...args], { encoding: 'utf8' });

/** A command of `worker`, received `at` ms after the fixed time, all on one topic. */
const command = (worker: string, at: number, body: string, key?: string) =>
  testCommand(at, {
    topic: 'acme/malta/floor-3/valve/v-1/command',
    worker,
    properties: {},
    payload: Buffer.from(body).toString('base64'),
    ...(key === undefined ? {} : { idempotencyKey: key }),
  });

async function logOf(dir: string, commands: readonly NewCommand[]): Promise<void> {
  const log = await AuditLog.open(dir);
  for (const c of commands) await log.append(c);
  await log.close();
}

test("two workers' logs verify each and as one, replay merged in receive order with each record's worker and seq; a command both recorded is reported", async () => {
  const base = mkdtempSync(join(tmpdir(), 'sluice-merge-'));
  const a = join(base, 'worker-a');
  const b = join(base, 'worker-b');
  await logOf(a, [
    command('a-commands', 0, '{"set":1}'),
    command('a-commands', 20, '{"set":3}'),
    command('a-commands', 40, '{"open":true}'), // a retry the broker handed to b as well
    command('a-commands', 60, '{"set":5}', 'op-42'),
  ]);
  await logOf(b, [
    command('b-commands', 10, '{"set":2}'),
    command('b-commands', 30, '{"set":4}'),
    command('b-commands', 45, '{"open":true}'),
    command('b-commands', 70, '{"set":6}', 'op-42'),
  ]);

  const v = cli('verify', a, b);
  assert.equal(v.status, 0, v.stdout + v.stderr);
  assert.match(v.stdout, new RegExp(`^${a}: ok: 4 records`, 'm'));
  assert.match(v.stdout, new RegExp(`^${b}: ok: 4 records`, 'm'));
  assert.match(
    v.stdout,
    /^ok: 2 logs, 8 commands read as one in receive order; 1 command\(s\) recorded by two workers within 60 s, 1 idempotency key\(s\) in two logs:$/m,
  );
  assert.match(v.stdout, /the same command recorded by two workers: a-commands seq 3 .* and b-commands seq 3 /);
  assert.match(v.stdout, /an idempotency key recorded in two logs: a-commands seq 4 .* and b-commands seq 4 /);

  const r = cli('replay', a, b);
  assert.equal(r.status, 0, r.stderr);
  const replayed = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { worker: string; seq: number; payload: string });
  assert.deepEqual(
    replayed.map((x) => `${x.worker}#${x.seq}`),
    ['a-commands#1', 'b-commands#1', 'a-commands#2', 'b-commands#2', 'a-commands#3', 'b-commands#3', 'a-commands#4', 'b-commands#4'],
  );
  assert.match(r.stderr, /replayed 8 commands from 2 logs in receive order to stdout/);
  assert.match(r.stderr, /1 command\(s\) recorded by two workers within 60 s, 1 idempotency key\(s\) in two logs/);
  assert.equal(cli('replay', a, b, '--from', '2').status, 2, 'a seq bound belongs to one log');
  assert.equal(cli('replay', a, b, '--from', new Date(1_700_000_000_025).toISOString()).stdout.trim().split('\n').length, 5);

  // one log damaged: its line says so, and the exit code is its
  const segment = join(b, segmentFiles(b)[0] as string);
  const bytes = readFileSync(segment);
  bytes.writeUInt8(bytes.readUInt8(bytes.length - 5) ^ 0xff, bytes.length - 5);
  writeFileSync(segment, bytes);
  const bad = cli('verify', a, b);
  assert.equal(bad.status, 4, bad.stdout);
  assert.match(bad.stdout, new RegExp(`^${a}: ok`, 'm'));
  assert.match(bad.stdout, new RegExp(`^${b}: FAIL corrupt`, 'm'));
  assert.match(bad.stdout, /^FAIL: 2 logs/m);
  assert.equal(cli('replay', a, b).status, 4, 'refused: one log fails');
});

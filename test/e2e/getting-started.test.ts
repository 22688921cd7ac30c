// docs/getting-started.md, followed as a new user would on the local stack: its two files taken
// from the page as written, then `sluice check`, `sluice check --connect`, `sluice tap` and
// `sluice run` until the worker is ready and a message reaches Kafka.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { sluiceNodeFlags } from '../../scripts/sluice-node-flags.ts';
import { readTopic, waitFor } from '../support/e2e-helpers.ts';
import { mqttClient, printLogsOnFailure, unique } from '../support/stack.ts';

const root = join(import.meta.dirname, '../..');
const sluice = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(join(root, 'scripts/node'), [join(root, 'src/cli.ts'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, SLUICE_RULES: '', SLUICE_CONFIG: '', ...env },
  });

/** The page's files: each yaml block whose first line is `# my-sluice/<name>`. */
function filesOfThePage(): Record<string, string> {
  const page = readFileSync(join(root, 'docs/getting-started.md'), 'utf8');
  const files: Record<string, string> = {};
  for (const [, body] of page.matchAll(/```yaml\n([\s\S]*?)```/g)) {
    const name = /^# my-sluice\/(\S+)\n/.exec(body as string)?.[1];
    if (name) files[name] = body as string;
  }
  return files;
}

test("getting-started: the page's two files pass check and check --connect; tap shows live traffic; run gets ready and writes to Kafka", {
  timeout: 120_000,
}, async (t) => {
  printLogsOnFailure(t);
  const files = filesOfThePage();
  assert.deepEqual(Object.keys(files).sort(), ['rules.yaml', 'sluice.yaml'], 'the page shows both files');
  const dir = join(mkdtempSync(join(tmpdir(), 'sluice-start-')), 'my-sluice');
  mkdirSync(dir);
  // the page's files as written, but for the share group: the demo's workers (group sluice,
  // persistent sessions) may still be members on this broker, and would take a share
  const group = unique('group');
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text.replace(/^( {2}group: )sluice\b/m, `$1${group}`));
  assert.ok(readFileSync(join(dir, 'sluice.yaml'), 'utf8').includes(`group: ${group}`));
  const config = join(dir, 'sluice.yaml');

  const check = sluice(['check', '--config', config]);
  assert.equal(check.status, 0, check.stdout + check.stderr);
  assert.match(check.stdout, /^rules .*1 route\(s\) \(telemetry\), 1 subscription\(s\)$/m);
  assert.equal(check.stdout.trim().split('\n').at(-1), 'ok');
  const connect = sluice(['check', '--connect', '--config', config]);
  assert.equal(connect.status, 0, connect.stdout + connect.stderr);
  assert.match(connect.stdout, /^mqtt +ok /m);
  assert.match(connect.stdout, /^kafka +ok /m);
  assert.match(connect.stdout, /^dead-letter +ok /m);

  const site = unique('site');
  const topic = `acme/${site}/floor-03/temperature-sensor/ts-4427/telemetry`;
  const pub = await mqttClient(t);
  const tap = spawn(join(root, 'scripts/node'), [join(root, 'src/cli.ts'), 'tap', '--config', config, '--limit', '1', '--json', '--filter', `acme/${site}/#`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => tap.kill('SIGKILL'));
  let tapOut = '';
  let tapErr = '';
  tap.stdout.on('data', (c: Buffer) => (tapOut += c.toString()));
  tap.stderr.on('data', (c: Buffer) => (tapErr += c.toString()));
  const tapExit = new Promise((resolve) => tap.on('exit', resolve));
  await waitFor('tap to watch', () => tapErr.includes('tap: watching'), 20_000);
  await pub.publishAsync(topic, '{"temperature": 21.5}', { qos: 1 });
  assert.equal(await tapExit, 0, tapErr);
  const tapped = JSON.parse(tapOut.trim()) as { outcome: string; outputs: Array<{ sink: string; item: { topic: string; key: string } }> };
  assert.equal(tapped.outcome, 'routed');
  assert.deepEqual(
    tapped.outputs.map((o) => [o.sink, o.item.topic, o.item.key]),
    [['kafka', `telemetry.${site}`, 'ts-4427']],
  );

  const run = spawn(join(root, 'scripts/node'), [...sluiceNodeFlags, join(root, 'src/cli.ts'), 'run', '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SLUICE_CLIENT_ID: unique('sluice'), SLUICE_RULES: '', SLUICE_CONFIG: '' },
  });
  t.after(() => run.kill('SIGKILL'));
  let runLog = '';
  run.stdout.on('data', (c: Buffer) => (runLog += c.toString()));
  run.stderr.on('data', (c: Buffer) => (runLog += c.toString()));
  const runExit = new Promise((resolve) => run.on('exit', resolve));
  t.after(() => {
    if (!(t as typeof t & { readonly passed: boolean }).passed) process.stderr.write(`--- sluice run ---\n${runLog.slice(-4000)}\n`);
  });
  await waitFor('/readyz to answer 200', async () => (await fetch('http://127.0.0.1:9464/readyz').catch(() => undefined))?.status === 200, 60_000);
  await pub.publishAsync(topic, '{"temperature": 22.5}', { qos: 1 });
  const records = await readTopic(t, `telemetry.${site}`, (r) => r.length >= 1, 30_000, 10_000);
  assert.equal(records[0]?.key, 'ts-4427');
  assert.equal(records[0]?.value.toString(), '{"temperature": 22.5}');
  run.kill('SIGTERM');
  assert.equal(await runExit, 0, 'SIGTERM drains and exits 0');
});

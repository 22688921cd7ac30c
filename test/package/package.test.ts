// The installable package for real: `npm pack` builds dist/ (compiled JavaScript with source
// maps: Node does not strip types under node_modules), the tarball is installed globally into
// a temporary prefix, and its `sluice` command answers --version, rules check and rules test.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../../deploy/local/stack-config.ts';
import { sluiceNodeFlags } from '../../scripts/sluice-node-flags.ts';

test('npm pack → npm install -g from the tarball → sluice --version, rules check, rules test', { timeout: 300_000 }, (t) => {
  const work = mkdtempSync(join(tmpdir(), 'sluice-pack-'));
  t.after(() => rmSync(work, { recursive: true, force: true })); // the installed package: ~600 MB
  // the Node running the tests (24) first on PATH: npm, and the installed command's shebang, use it
  const env = {
    ...process.env,
    PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`,
    npm_config_fund: 'false',
    npm_config_audit: 'false',
    npm_config_update_notifier: 'false',
  };
  const npm = 'npm'; // the machine's npm (the Node 24 that scripts/node fetches is the binary alone)
  const run = (cmd: string, args: string[], cwd = repoRoot) => {
    const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 240_000 });
    assert.equal(r.status, 0, `${cmd} ${args.join(' ')} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  };
  const started = Date.now();
  const packed = JSON.parse(run(npm, ['pack', '--json', '--pack-destination', work])) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const files = packed[0]?.files.map((f) => f.path) ?? [];
  assert.ok(files.includes('dist/cli.js') && files.includes('dist/cli.js.map'), 'compiled JavaScript with source maps');
  assert.ok(files.includes('vendor/platformatic-kafka.js'), 'the Kafka client bundle');
  assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('test/')), 'no sources or tests in the tarball');
  const tarball = join(work, packed[0]?.filename as string);
  const prefix = join(work, 'prefix');
  run(npm, ['install', '--global', '--prefix', prefix, '--omit=dev', tarball]);
  const sluice = join(prefix, 'bin', 'sluice');
  const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
  assert.equal(run(sluice, ['--version'], work).trim(), version);
  const rules = join(prefix, 'lib', 'node_modules', 'sluice', 'config', 'rules.yaml');
  assert.match(run(sluice, ['rules', 'check', '--rules', rules], work), /^ok: 3 route\(s\) \(telemetry, commands, sparkplug\)/);
  const out = run(
    sluice,
    [
      'rules',
      'test',
      '--rules',
      rules,
      'acme/malta-factory/floor-03/temperature-sensor/ts-4427/telemetry',
      '{"temperature":21.5,"humidity":40,"ts":1700000000000}',
    ],
    work,
  );
  assert.match(out, /telemetry/);
  assert.match(out, /kafka/);
  // the compiled Sparkplug decoder (Tahu's generated protobuf code, imported by path) works from the tarball
  const ndata = 'CIDQlf+8MRIRCgRUZW1wIAppAAAAAAAANUAYAQ==';
  assert.match(
    run(sluice, ['rules', 'test', '--rules', rules, '--base64', 'spBv1.0/plant-1/NDATA/gw-01', ndata], work),
    /plant-1,edgeNode=gw-01 Temp=21 1700000000000000000/,
  );
  assert.ok(readdirSync(join(prefix, 'lib', 'node_modules', 'sluice', 'dist')).includes('cli.js'));
  const installedFirstLine = readFileSync(join(prefix, 'lib', 'node_modules', 'sluice', 'dist', 'cli.js'), 'utf8').split('\n', 1)[0];
  assert.equal(installedFirstLine, `#!/usr/bin/env -S node ${sluiceNodeFlags.join(' ')}`, "the installed command runs with sluice's node flags");
  // the installed adapter loads the bundle, whose native and lazily loaded modules resolve from the installed package
  const adapter = join(prefix, 'lib', 'node_modules', 'sluice', 'dist', 'sinks', 'kafka', 'client', 'platformatic-client.js');
  const loaded = run(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const { producerMessages } = await import(${JSON.stringify(adapter)}); const k = await import(${JSON.stringify(join(prefix, 'lib', 'node_modules', 'sluice', 'vendor', 'platformatic-kafka.js'))}); console.log(typeof producerMessages, typeof k.Producer, k.crc32c(Buffer.from('123456789')))`,
    ],
    work,
  );
  assert.equal(loaded.trim(), `function function ${0xe3069283}`, 'the bundle loads, with its CRC-32C');
  console.log(`# packed, installed and ran in ${((Date.now() - started) / 1000).toFixed(1)} s (${files.length} files in the tarball)`);
});

test('every launcher users run gives sluice the same node flags as the installed command (the young generation bounded)', () => {
  assert.ok(
    sluiceNodeFlags.some((f) => f.startsWith('--max-semi-space-size=')),
    `src/cli.ts's first line bounds the young generation: ${sluiceNodeFlags.join(' ')}`,
  );
  const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(readFileSync(join(repoRoot, 'Dockerfile'), 'utf8'))?.[1];
  assert.ok(entrypoint, 'the Dockerfile has an exec-form ENTRYPOINT');
  const argv = JSON.parse(entrypoint) as string[];
  for (const flag of sluiceNodeFlags) assert.ok(argv.includes(flag), `the image's ENTRYPOINT gives ${flag}: ${entrypoint}`);
  const scripts = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  for (const flag of sluiceNodeFlags) assert.ok(scripts.sluice?.split(' ').includes(flag), `npm run sluice gives ${flag}: ${scripts.sluice}`);
});

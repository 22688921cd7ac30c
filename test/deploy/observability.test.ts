// The dashboard and the alerts, proven: the alert rules pass `promtool check rules` and their
// unit tests (`promtool test rules`), the dashboard is a well-formed Grafana JSON model, and a
// real Prometheus (Debian's package) scrapes a running sluice that carries telemetry, commands
// and a dead letter: every dashboard query and every alert expression returns data, and the
// rules load healthy.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureDebianPackages, requireExecutable } from '../../deploy/local/prerequisites.ts';
import { repoRoot } from '../../deploy/local/stack-config.ts';
import { freePort } from '../support/broker.ts';
import { waitFor } from '../support/e2e-helpers.ts';
import { sluiceFor } from '../support/sluice-process.ts';
import { config, endpoints, mqttClient, printLogsOnFailure, unique } from '../support/stack.ts';

const alertsFile = join(repoRoot, 'deploy/prometheus/sluice-alerts.yaml');
const dashboardFile = join(repoRoot, 'deploy/grafana/sluice-dashboard.json');

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource: { type: string; uid: string };
  targets: Array<{ refId: string; expr: string }>;
}

function promtool(...args: string[]): string {
  ensureDebianPackages([
    { executable: 'promtool', pkg: 'prometheus' },
    { executable: 'prometheus', pkg: 'prometheus' },
  ]);
  const r = spawnSync(requireExecutable('promtool', '`apt-get install prometheus`'), args, { cwd: join(repoRoot, 'deploy/prometheus'), encoding: 'utf8' });
  assert.equal(r.status, 0, `promtool ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** The alert expressions, each without its final comparison (what must return data). */
function alertExpressions(): string[] {
  const exprs = [...readFileSync(alertsFile, 'utf8').matchAll(/^\s+expr: (.+)$/gm)].map((m) => (m[1] as string).trim());
  return exprs.map((e) => e.replace(/\s*(>|==|<|>=|<=)\s*[\d.]+$/, ''));
}

function dashboardExpressions(): string[] {
  const d = JSON.parse(readFileSync(dashboardFile, 'utf8')) as { panels: Panel[] };
  return d.panels.flatMap((p) => p.targets.map((t) => t.expr.replaceAll('$__rate_interval', '1m').replaceAll('$job', 'sluice').replaceAll('$instance', '.*')));
}

test('alert rules: promtool check rules and promtool test rules pass', () => {
  assert.match(promtool('check', 'rules', 'sluice-alerts.yaml'), /SUCCESS: 14 rules found/);
  assert.match(promtool('test', 'rules', 'sluice-alerts.test.yaml'), /SUCCESS/);
});

test('the dashboard is a well-formed Grafana JSON model', () => {
  const d = JSON.parse(readFileSync(dashboardFile, 'utf8')) as {
    uid: string;
    title: string;
    schemaVersion: number;
    panels: Panel[];
    templating: { list: Array<{ name: string; type: string }> };
  };
  assert.equal(typeof d.uid, 'string');
  assert.equal(d.title, 'sluice');
  assert.ok(Number.isInteger(d.schemaVersion) && d.schemaVersion >= 36);
  assert.ok(d.templating.list.some((v) => v.name === 'datasource' && v.type === 'datasource'));
  assert.ok(
    d.templating.list.some((v) => v.name === 'job' && v.type === 'query'),
    'a job variable',
  );
  assert.ok(
    d.templating.list.some((v) => v.name === 'instance' && v.type === 'query'),
    'an instance variable',
  );
  assert.equal(new Set(d.panels.map((p) => p.id)).size, d.panels.length, 'unique panel ids');
  for (const p of d.panels) {
    assert.ok(p.title && p.type === 'timeseries', `panel ${p.id}`);
    assert.ok(p.gridPos.w > 0 && p.gridPos.w <= 24 && p.gridPos.x + p.gridPos.w <= 24 && p.gridPos.h > 0, `panel ${p.id} grid`);
    assert.deepEqual(p.datasource, { type: 'prometheus', uid: '${datasource}' });
    assert.ok(p.targets.length > 0 && p.targets.every((t) => /^[A-Z]$/.test(t.refId) && t.expr.length > 0), `panel ${p.id} targets`);
    for (const t of p.targets) {
      for (const [, metric, selector] of t.expr.matchAll(/\b(sluice_[a-z0-9_]+)(\{[^}]*\})?/g)) {
        assert.equal(selector, '{job="$job", instance=~"$instance"}', `panel ${p.id}: ${metric} follows the job and instance variables`);
      }
    }
  }
});

test('a real Prometheus scrapes a running sluice: every dashboard query and alert expression returns data; the rules load healthy', {
  timeout: 120_000,
}, async (t) => {
  printLogsOnFailure(t);
  ensureDebianPackages([{ executable: 'prometheus', pkg: 'prometheus' }]);
  const prefix = unique('obs');
  const sluice = sluiceFor(t, {
    rules: {
      subscriptions: [
        { filter: `${prefix}/+/+/+/+/telemetry`, qos: 1 },
        { filter: `${prefix}/+/+/+/+/command`, qos: 2 },
      ],
      routes: [
        { name: 'telemetry', match: `${prefix}/{site}/{zone}/{deviceType}/{deviceId}/telemetry`, kafka: { topic: `${prefix}.telemetry` } },
        {
          name: 'commands',
          match: `${prefix}/{site}/{zone}/{deviceType}/{deviceId}/command`,
          audit: true,
          payload: 'raw',
          kafka: { topic: `${prefix}.commands` },
        },
      ],
    },
    // signed, with a witness and an archive: the anchors' and the archive's metrics and alerts have data too
    config: {
      audit: {
        dir: 'audit',
        signing: { privateKey: { file: signingKey(t) } },
        anchors: { file: 'witness/anchors.jsonl' },
        archive: {
          bucket: config.s3.bucket,
          prefix: unique('observability'),
          endpoint: endpoints.s3,
          accessKeyId: { env: 'ARCHIVE_KEY_ID' },
          secretAccessKey: { env: 'ARCHIVE_SECRET' },
        },
      },
    },
    env: { ARCHIVE_KEY_ID: config.s3.accessKeyId, ARCHIVE_SECRET: config.s3.secretAccessKey },
  });
  await sluice.start();
  const target = new URL(await sluice.healthUrl()).host;
  const dir = mkdtempSync(join(tmpdir(), 'sluice-prometheus-'));
  const port = await freePort();
  // node_exporter's textfile collector, as a scheduled `sluice audit verify --metrics-file` feeds it
  const textfile = join(dir, 'sluice-audit.prom');
  const textfileServer = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(existsSync(textfile) ? readFileSync(textfile) : '');
  });
  await new Promise<void>((resolve) => textfileServer.listen(0, config.host, resolve));
  t.after(() => textfileServer.close());
  const textfileTarget = `${config.host}:${(textfileServer.address() as AddressInfo).port}`;
  writeFileSync(
    join(dir, 'prometheus.yml'),
    [
      'global: { scrape_interval: 1s, evaluation_interval: 1s }',
      `rule_files: ["${alertsFile}"]`,
      'scrape_configs:',
      `  - job_name: sluice`,
      `    static_configs: [{ targets: ["${target}"] }]`,
      `  - job_name: node`,
      `    static_configs: [{ targets: ["${textfileTarget}"] }]`,
      '',
    ].join('\n'),
  );
  const prometheus = spawn(
    requireExecutable('prometheus', '`apt-get install prometheus`'),
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=${config.host}:${port}`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let promLog = '';
  prometheus.stderr.on('data', (b: Buffer) => {
    promLog += b.toString();
  });
  t.after(() => {
    prometheus.kill('SIGKILL');
  });
  const api = `http://${config.host}:${port}/api/v1`;
  await waitFor('Prometheus up', async () => (await fetch(`${api}/status/buildinfo`).catch(() => undefined))?.ok === true, 30_000);

  // traffic: telemetry, commands (audit fsyncs), and one dead letter
  const pub = await mqttClient(t);
  for (let round = 0; round < 6; round++) {
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        pub.publishAsync(`${prefix}/s/z/sensor/d-${i % 5}/telemetry`, JSON.stringify({ seq: round * 50 + i, v: i }), { qos: 1 }),
      ),
    );
    await pub.publishAsync(`${prefix}/s/z/valve/v-1/command`, `{"set":${round}}`, { qos: 2 });
    await pub.publishAsync(`${prefix}/s/z/sensor/d-1/telemetry`, 'not json', { qos: 1 });
    await sleep(1_000);
  }
  const verify = spawnSync(
    join(repoRoot, 'scripts/node'),
    [join(repoRoot, 'src/cli.ts'), 'audit', 'verify', join(sluice.dir, 'audit'), '--metrics-file', textfile],
    { encoding: 'utf8' },
  );
  assert.equal(verify.status, 0, verify.stdout + verify.stderr);
  const query = async (q: string) => {
    const body = (await (await fetch(`${api}/query?${new URLSearchParams({ query: q })}`)).json()) as {
      status: string;
      data?: { result: unknown[] };
      error?: string;
    };
    return body;
  };
  const empty: string[] = [];
  const all = [...new Set([...dashboardExpressions(), ...alertExpressions()])];
  await waitFor(
    'every expression returns data',
    async () => {
      empty.length = 0;
      for (const q of all) {
        const r = await query(q);
        assert.equal(r.status, 'success', `${q}: ${r.error}`);
        if ((r.data?.result.length ?? 0) === 0) empty.push(q);
      }
      return empty.length === 0;
    },
    30_000,
  ).catch(() => {});
  t.diagnostic(`${all.length} expressions queried; without data: ${empty.length}`);
  assert.deepEqual(empty, [], `expressions returning no data (Prometheus log: ${promLog.slice(-500)})`);
  const rules = (await (await fetch(`${api}/rules`)).json()) as {
    data: { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string }> }> };
  };
  const loaded = rules.data.groups.flatMap((g) => g.rules);
  assert.equal(loaded.length, 14);
  assert.deepEqual(
    loaded.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.health} ${r.lastError ?? ''}`),
    [],
  );
});

/** A fresh Ed25519 private key in a file (audit.signing.privateKey). */
function signingKey(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-key-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'audit-signing.key');
  writeFileSync(file, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return file;
}

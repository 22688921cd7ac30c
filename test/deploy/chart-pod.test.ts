// The chart's pod, run without a cluster: helm renders the chart, and sluice runs with exactly
// what the pod would get (the rendered args, environment, config and rules, secrets and extra
// volumes at their mount paths) under a temporary root, pointed at the local stack, until
// /readyz answers 200. Once with the default values (only the servers' addresses set), once with
// ci/all-features-values.yaml. Every path sluice writes must lie on a volume the pod can write
// (the root filesystem is read-only), and nothing may be written anywhere else.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { type TestContext, test } from 'node:test';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { ensureHelm } from '../../deploy/local/helm.ts';
import { renderChart } from '../../deploy/local/render-chart.ts';
import { repoRoot, stackConfig } from '../../deploy/local/stack-config.ts';
import { tlsFiles } from '../../deploy/local/tls.ts';
import { sluiceNodeFlags } from '../../scripts/sluice-node-flags.ts';
import { waitFor } from '../support/e2e-helpers.ts';
import { config, endpoints, kafkaTopic, printLogsOnFailure, unique } from '../support/stack.ts';

type Doc = { kind: string; metadata: { name: string }; spec?: any; data?: Record<string, string>; stringData?: Record<string, string> };
interface Volume {
  name: string;
  configMap?: { name: string };
  secret?: { secretName: string };
  emptyDir?: object;
}

/** Objects the chart refers to but does not make (made by the operator): name -> files. */
type External = Record<string, Record<string, string>>;

/** Every regular file under dir, relative to it. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)));
}

async function runPod(t: TestContext, rendered: string, external: External): Promise<{ root: string; writable: string[] }> {
  const docs = parseAllDocuments(rendered)
    .map((d) => d.toJS() as Doc)
    .filter((d) => d !== null);
  const sts = docs.find((d) => d.kind === 'StatefulSet') as Doc;
  const pod = sts.spec.template.spec;
  const container = pod.containers[0];
  const root = mkdtempSync(join(tmpdir(), 'sluice-pod-'));
  const byName = new Map<string, Volume>((pod.volumes as Volume[]).map((v) => [v.name, v]));
  const claims = new Set<string>((sts.spec.volumeClaimTemplates as Array<{ metadata: { name: string } }>).map((c) => c.metadata.name));
  const objectFiles = (kind: 'ConfigMap' | 'Secret', name: string): Record<string, string> => {
    const own = docs.find((d) => d.kind === kind && d.metadata.name === name);
    const files = own ? (kind === 'ConfigMap' ? own.data : own.stringData) : external[name];
    assert.ok(files, `${kind} ${name} is neither rendered by the chart nor made by the operator in this test`);
    return files;
  };
  const writable: string[] = [];
  const mounts = container.volumeMounts as Array<{ name: string; mountPath: string; readOnly?: boolean }>;
  for (const m of mounts) {
    const dir = join(root, m.mountPath);
    mkdirSync(dir, { recursive: true });
    if (claims.has(m.name)) {
      writable.push(m.mountPath);
      continue;
    }
    const v = byName.get(m.name);
    assert.ok(v, `volume ${m.name} of a mount is defined`);
    if (v.emptyDir) writable.push(m.mountPath);
    const files = v.configMap ? objectFiles('ConfigMap', v.configMap.name) : v.secret ? objectFiles('Secret', v.secret.secretName) : {};
    for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  }

  // the config as the pod reads it, with the mount paths under the temporary root, and its
  // HTTP server on loopback (servers in tests bind to loopback only)
  const byLength = mounts.map((m) => m.mountPath).sort((a, b) => b.length - a.length);
  const rooted = (text: string) =>
    text.replace(new RegExp(`(?<![\\w/.-])(${byLength.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})(?=[/"'\\s]|$)`, 'gm'), (p) =>
      join(root, p),
    );
  const configPath = container.args[container.args.indexOf('--config') + 1] as string;
  const configText = readFileSync(join(root, configPath), 'utf8');
  // every path sluice writes is on a writable volume: the pod's root filesystem is read-only
  const service = parseYaml(configText) as Record<string, any>;
  const written = [service.audit?.dir, service.sparkplug?.stateDir, service.file?.path, service.deadLetter?.path].filter(
    (p): p is string => typeof p === 'string',
  );
  for (const p of written)
    assert.ok(
      writable.some((w) => p === w || p.startsWith(`${w}/`)),
      `${p} is on a writable volume (${writable.join(', ')})`,
    );
  writeFileSync(join(root, configPath), rooted(configText).replace(/^(\s*)host: 0\.0\.0\.0$/m, '$1host: 127.0.0.1'));

  // read-only except the writable volumes (root ignores modes: the scan after the run checks it)
  const before = new Set(filesUnder(root));
  for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    if (!writable.some((w) => path === join(root, w) || path.startsWith(`${join(root, w)}/`))) chmodSync(path, entry.isDirectory() ? 0o555 : 0o444);
  }

  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME };
  for (const e of container.env as Array<{ name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name')
      env[e.name] = `${unique('pod')}-0`; // a fresh session: no earlier run's
    else assert.fail(`env ${e.name}: a source this test cannot give`);
  }
  for (const from of (container.envFrom ?? []) as Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>) {
    const files = from.configMapRef ? objectFiles('ConfigMap', from.configMapRef.name) : objectFiles('Secret', (from.secretRef as { name: string }).name);
    Object.assign(env, files);
  }
  const args = (container.args as string[]).map((a) => (a.startsWith('/') ? rooted(a) : a));
  const child = spawn(join(repoRoot, 'scripts/node'), [...sluiceNodeFlags, join(repoRoot, 'src/cli.ts'), ...args], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (c: Buffer) => (log += c.toString()));
  child.stderr.on('data', (c: Buffer) => (log += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  t.after(() => {
    child.kill('SIGKILL');
    if (!(t as TestContext & { readonly passed: boolean }).passed) process.stderr.write(`--- sluice (${t.name}) ---\n${log.slice(-5000)}\n`);
  });
  const port = (service.http?.port as number | undefined) ?? 9464;
  let last = '';
  await waitFor(
    '/readyz to answer 200',
    async () => {
      const r = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
      last = r ? `${r.status} ${await r.text()}` : 'no answer';
      return r?.status === 200;
    },
    60_000,
  ).catch((err: Error) => assert.fail(`${err.message}; last: ${last}`));
  child.kill('SIGTERM');
  assert.equal(await exited, 0, 'SIGTERM drains and exits 0');
  const outside = filesUnder(root).filter((f) => !before.has(f) && !writable.some((w) => `/${f}`.startsWith(`${w}/`)));
  assert.deepEqual(outside, [], 'nothing written outside the writable volumes');
  return { root, writable };
}

test("the chart's pod starts as shipped: default values, only the servers' addresses set, no secret", { timeout: 900_000 }, async (t) => {
  printLogsOnFailure(t);
  const helm = await ensureHelm(stackConfig().cacheDir);
  const deadLetterTopic = await kafkaTopic(t, 1); // createTopics is off by default: the operator makes it, as docs/operations.md says
  const rendered = renderChart(helm, [
    '--set',
    `config.mqtt.url=${endpoints.mqtt}`,
    '--set',
    `config.mqtt.group=${unique('group')}`,
    '--set',
    `config.kafka.brokers={${endpoints.kafka}}`,
    '--set',
    `config.deadLetter.topic=${deadLetterTopic}`,
    '--set',
    `config.influx.url=${endpoints.influxdb}`,
    '--set',
    `config.influx.bucket=${endpoints.influxBucket}`,
  ]);
  assert.doesNotMatch(rendered, /kind: Secret\b/, 'no Secret needed as shipped');
  const { root } = await runPod(t, rendered, {});
  assert.ok(statSync(join(root, 'var/lib/sluice/audit')).isDirectory(), 'the audit log on the data volume');
});

test("the chart's pod starts with every feature on (ci/all-features-values.yaml): secrets, mTLS files from an extra volume, envFrom, signing, file sink and dead letter on the volume", {
  timeout: 900_000,
}, async (t) => {
  printLogsOnFailure(t);
  const helm = await ensureHelm(stackConfig().cacheDir);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-chart-secrets-'));
  const key = join(dir, 'audit-signing.key');
  writeFileSync(key, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const password = join(dir, 'mqtt-password');
  writeFileSync(password, config.mqtt.password);
  const rendered = renderChart(helm, [
    '-f',
    join(repoRoot, 'deploy/helm/sluice/ci/all-features-values.yaml'),
    '--set-file',
    `secrets.data.audit-signing\\.key=${key}`,
    '--set-file',
    `secrets.data.mqtt-password=${password}`,
    '--set',
    `config.mqtt.url=${endpoints.mqttAuth}`,
    '--set',
    `config.mqtt.group=${unique('group')}`,
    '--set',
    `config.kafka.brokers={${endpoints.kafkaMtls}}`,
    '--set',
    `config.influx.url=${endpoints.influxdb}`,
    '--set',
    `config.influx.bucket=${endpoints.influxBucket}`,
  ]);
  const kinds = parseAllDocuments(rendered)
    .map((d) => (d.toJS() as Doc | null)?.kind)
    .filter(Boolean)
    .sort();
  assert.deepEqual(kinds, ['ConfigMap', 'PodDisruptionBudget', 'Secret', 'Service', 'ServiceAccount', 'ServiceMonitor', 'StatefulSet']);
  const tls = tlsFiles(config.runDir);
  const { root } = await runPod(t, rendered, {
    'kafka-client-tls': {
      'ca.crt': readFileSync(tls.ca, 'utf8'),
      'client.crt': readFileSync(tls.clientCert, 'utf8'),
      'client.key': readFileSync(tls.clientKey, 'utf8'),
    },
    'sluice-extra-env': { SLUICE_LOG_LEVEL: 'info' },
  });
  assert.ok(statSync(join(root, 'var/lib/sluice/audit')).isDirectory());
  assert.ok(statSync(dirname(join(root, 'var/lib/sluice/archive/telemetry.jsonl'))).isDirectory(), "the file sink's directory made on the volume");
});

// `sluice run` fails fast and in one line for what an operator can fix: an HTTP port in use is
// reported before anything connects (Kafka here is unreachable on purpose: it is never tried).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const root = join(import.meta.dirname, '../..');

test('an HTTP port in use is one line, before anything connects', async (t) => {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  t.after(() => server.close());
  const port = (server.address() as { port: number }).port;
  const dir = mkdtempSync(join(tmpdir(), 'sluice-run-'));
  writeFileSync(
    join(dir, 'rules.yaml'),
    'subscriptions: [{ filter: "a/#", qos: 1 }]\nroutes: [{ name: r, match: "a/#", payload: raw, kafka: { topic: t } }]\n',
  );
  writeFileSync(
    join(dir, 'sluice.yaml'),
    `kafka: { brokers: ["127.0.0.1:1"] }\nmqtt: { url: "mqtt://127.0.0.1:1" }\nhttp: { host: 127.0.0.1, port: ${port} }\n`,
  );
  const started = Date.now();
  const r = spawnSync(join(root, 'scripts/node'), [join(root, 'src/cli.ts'), 'run', '--config', join(dir, 'sluice.yaml')], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.status, 1);
  assert.equal(
    r.stderr.trim(),
    `sluice: ${join(dir, 'sluice.yaml')}: http.port ${port} on 127.0.0.1 is in use (another sluice?): stop it, or set http.port (0 picks a free port)`,
  );
  assert.doesNotMatch(r.stdout, /kafka|not usable/, 'nothing was tried before');
  t.diagnostic(`failed in ${Date.now() - started} ms`);
});

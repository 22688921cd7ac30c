// sluice tap on the real broker: it sees live messages through the rules and prints what each
// sink would write, while a share-group subscriber (a worker) still receives every message,
// and nothing is written anywhere.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { waitFor } from '../support/e2e-helpers.ts';
import { endpoints, mqttClient, unique } from '../support/stack.ts';

const root = join(import.meta.dirname, '../..');

test('tap prints where live messages go, from a session of its own: the share group still gets every message, nothing is written', {
  timeout: 60_000,
}, async (t) => {
  const prefix = unique('tap');
  const dir = mkdtempSync(join(tmpdir(), 'sluice-tap-'));
  writeFileSync(
    join(dir, 'rules.yaml'),
    `subscriptions: [{ filter: "${prefix}/+/telemetry", qos: 1 }]
routes:
  - { name: telemetry, match: "${prefix}/{device}/telemetry", file: true, kafka: { topic: "${prefix}.t", key: "{device}" } }
`,
  );
  writeFileSync(
    join(dir, 'sluice.yaml'),
    `rules: rules.yaml\nmqtt: { url: "${endpoints.mqtt}", group: g }\nkafka: { brokers: ["127.0.0.1:1"] }\nfile: { path: out/lines.jsonl }\n`,
  );

  // a worker of the share group, taking the same topics
  const worker = await mqttClient(t);
  const taken: string[] = [];
  worker.on('message', (topic) => taken.push(topic));
  await worker.subscribeAsync(`$share/${prefix}/${prefix}/+/telemetry`, { qos: 1 });

  const tap = spawn(join(root, 'scripts/node'), [join(root, 'src/cli.ts'), 'tap', '--config', join(dir, 'sluice.yaml'), '--json', '--limit', '3'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => tap.kill('SIGKILL'));
  let out = '';
  let err = '';
  tap.stdout.on('data', (c: Buffer) => (out += c.toString()));
  tap.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => tap.on('exit', resolve));
  await waitFor('tap to watch', () => err.includes('tap: watching'), 20_000);
  assert.match(
    err,
    new RegExp(`tap: watching ${prefix}/\\+/telemetry on ${endpoints.mqtt} as .*-tap-[0-9a-f]{6} \\(not in the share group; nothing is written\\)`),
  );

  const pub = await mqttClient(t);
  await pub.publishAsync(`${prefix}/d1/telemetry`, '{"v": 1}', { qos: 1 });
  await pub.publishAsync(`${prefix}/d2/telemetry`, '{"v": 2}', { qos: 1 });
  await pub.publishAsync(`${prefix}/d3/telemetry`, '{"v": ', { qos: 1 });
  assert.equal(await exited, 0, err);

  const seen = out
    .trim()
    .split('\n')
    .map(
      (l) =>
        JSON.parse(l) as {
          topic: string;
          qos: number;
          outcome: string;
          outputs: Array<{ sink: string; item: Record<string, unknown> | string }>;
          deadLetters: Array<{ reason: string }>;
        },
    );
  assert.deepEqual(
    seen.map((s) => [s.topic, s.qos, s.outcome]),
    [
      [`${prefix}/d1/telemetry`, 1, 'routed'],
      [`${prefix}/d2/telemetry`, 1, 'routed'],
      [`${prefix}/d3/telemetry`, 1, 'dead-lettered'],
    ],
  );
  assert.deepEqual(
    seen[0]?.outputs.map((o) => o.sink),
    ['kafka', 'file'],
  );
  assert.equal((seen[0]?.outputs[0]?.item as Record<string, unknown> | undefined)?.key, 'd1');
  assert.equal(seen[2]?.deadLetters[0]?.reason, 'invalid-json');
  assert.match(err, /tap: 3 message\(s\)/);

  await waitFor('the share group to get every message', () => taken.length >= 3, 10_000);
  assert.deepEqual(taken.sort(), [`${prefix}/d1/telemetry`, `${prefix}/d2/telemetry`, `${prefix}/d3/telemetry`], 'tap took nothing from the share group');
  assert.ok(!existsSync(join(dir, 'out')), 'nothing written');
});

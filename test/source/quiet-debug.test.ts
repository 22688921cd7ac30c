// mqtt-packet gets a debug that costs nothing where a namespace is off, and the real one where
// DEBUG enables it: the CLI's import order puts it in place before mqtt-packet loads.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../../deploy/local/stack-config.ts';
import { quietDebug } from '../../src/source/mqtt/quiet-debug.ts';

test('a namespace that is off gets a function of its own that logs nothing; one that is on gets the real debug', () => {
  const made: string[] = [];
  const real = Object.assign(
    (namespace: string) => {
      made.push(namespace);
      return Object.assign(() => {}, { namespace, enabled: namespace.startsWith('on:'), log: 'the-log' });
    },
    { enable: () => {}, names: [] as unknown[] },
  );
  const create = quietDebug(real as unknown as Parameters<typeof quietDebug>[0]);
  const off = create('off:parser');
  assert.equal(off.enabled, false);
  assert.equal(off.namespace, 'off:parser');
  assert.equal(off.log, 'the-log');
  assert.equal(off('%O', {}), undefined);
  assert.equal((off.extend as (s: string) => { namespace: string })('more').namespace, 'off:parser:more');
  const on = create('on:parser');
  assert.equal(on.enabled, true, 'the real one');
  assert.equal(create.enable, real.enable, "the factory keeps debug's own functions");
  assert.deepEqual(made, ['off:parser', 'off:parser:more', 'on:parser']);
});

/** Loads the quiet module, then mqtt-packet, in a fresh process, and parses one PUBLISH. */
function probe(debug: string): { quiet: boolean; stderr: string } {
  const script = `
    const { mqttPacketDebugPath } = await import(${JSON.stringify(join(repoRoot, 'src/source/mqtt/quiet-debug.ts'))});
    const { createRequire } = await import('node:module');
    const require = createRequire(${JSON.stringify(join(repoRoot, 'package.json'))});
    const mqttPacket = createRequire(require.resolve('mqtt'))('mqtt-packet');
    const options = { protocolVersion: 5 };
    mqttPacket.parser(options).parse(mqttPacket.generate({ cmd: 'publish', topic: 'a/b', payload: 'x', qos: 1, messageId: 1 }, options));
    process.stdout.write(JSON.stringify({ quiet: require.cache[mqttPacketDebugPath()].exports.quiet === true }));`;
  const run = spawnSync(join(repoRoot, 'scripts/node'), ['--input-type=module', '-e', script], {
    env: { ...process.env, DEBUG: debug, DEBUG_COLORS: '0' },
    encoding: 'utf8',
  });
  assert.equal(run.status, 0, run.stderr);
  return { ...(JSON.parse(run.stdout) as { quiet: boolean }), stderr: run.stderr };
}

test("loaded first, it replaces the debug mqtt-packet requires; DEBUG=mqtt-packet:* still prints the parser's lines", () => {
  const off = probe('');
  assert.equal(off.quiet, true, 'mqtt-packet got the quiet factory');
  assert.doesNotMatch(off.stderr, /mqtt-packet:parser/);
  const on = probe('mqtt-packet:parser');
  assert.match(on.stderr, /mqtt-packet:parser _parseString: result: a\/b/, 'an enabled namespace logs as before');
});

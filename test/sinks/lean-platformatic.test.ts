// @platformatic/kafka loaded through lean-platformatic.ts: its option schemas are not compiled at
// import, and a client made with `strict: true` still checks its options with the same words.
// No server is needed: the checks fail before a connection is tried.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { lazyAjvCounts } from '../../src/sinks/kafka/client/lazy-ajv.ts';
import { leanPlatformatic, leanRecordsResolved, leanRequestModules } from '../../src/sinks/kafka/client/lean-platformatic.ts';

test('the library is loaded with no option schema compiled, and a strict client checks its options as before', async () => {
  leanPlatformatic();
  const { Producer, UserError } = await import('@platformatic/kafka');
  assert.deepEqual(lazyAjvCounts(), { instances: 1, compiled: 0 }, "the library's utils module got the lazy Ajv2020 and compiled nothing");

  // sluice's own producers are not strict: making one compiles nothing either
  const plain = new Producer({ clientId: 'sluice-test', bootstrapBrokers: ['127.0.0.1:1'] });
  await plain.close();
  assert.equal(lazyAjvCounts().compiled, 0);

  // the messages are the real ajv's, as the library formats them
  assert.throws(
    () => new Producer({ clientId: 1 as unknown as string, bootstrapBrokers: ['127.0.0.1:1'], strict: true }),
    (err: Error) => {
      assert.ok(err instanceof UserError);
      assert.equal(err.message, '/options/clientId must be string.');
      return true;
    },
  );
  const strict = new Producer({ clientId: 'sluice-test', bootstrapBrokers: ['127.0.0.1:1'], retries: false, strict: true });
  try {
    await assert.rejects(strict.send({ acks: 'x' as unknown as -1, messages: [{ topic: 1 as unknown as string, value: Buffer.from('v') }] }), {
      message:
        '/options/messages/0/topic must be string, /options/acks must be number, /options/acks should be one of -1 (ALL), 0 (NO_RESPONSE) or 1 (LEADER).',
    });
  } finally {
    await strict.close();
  }
  const { compiled } = lazyAjvCounts();
  assert.ok(compiled >= 2 && compiled <= 6, `only the schemas used were compiled (${compiled})`);
});

test("the library's produce requests encode their records with lean-records.ts", async () => {
  leanPlatformatic();
  // imported after the hook, as the worker does: a static import would load the library first
  const { leanRecordsCounts } = await import('../../src/sinks/kafka/client/lean-records.ts');
  const { produceV9, produceV11 } = await import('@platformatic/kafka');
  const before = leanRecordsCounts();
  const message = () => ({
    topic: 't',
    partition: 0,
    key: Buffer.from('k'),
    value: Buffer.from('{"v":1}'),
    headers: new Map([[Buffer.from('h'), Buffer.from('1')]]),
  });
  produceV11.createRequest(-1, 1000, [message(), message()], { producerId: 1n, producerEpoch: 0 });
  produceV9.createRequest(-1, 1000, [message()], {});
  await produceV11.createRequestAsync(-1, 1000, [message()], { compression: 'gzip' });
  // what the adapter hands over once they do: keys and header values as strings, number timestamps
  assert.equal(leanRecordsResolved(), true);
  const { producerMessages } = await import('../../src/sinks/kafka/client/platformatic-client.ts');
  const records = [{ topic: 't', key: 'ts-1', value: Buffer.from('{}'), headers: { 'mqtt-qos': '1', u: ['a', 'b'] }, timestamp: 1_764_000_000_000 }];
  const lean = producerMessages([{ topic: 't', records }], true).map((m) => ({ ...m, partition: 0 }));
  assert.equal(typeof lean[0]?.key, 'string');
  produceV11.createRequest(-1, 1000, lean as never, { producerId: 1n, producerEpoch: 0 });
  const after = leanRecordsCounts();
  assert.deepEqual({ lean: after.lean - before.lean, library: after.library - before.library }, { lean: 4, library: 0 });
  // every produce request module of the library that imports the encoder was redirected: none left on the library's
  const dir = fileURLToPath(new URL('./apis/producer/', import.meta.resolve('@platformatic/kafka')));
  const importers = readdirSync(dir).filter(
    (f) => f.endsWith('.js') && /from ["']\.\.\/\.\.\/protocol\/records\.js["']/.test(readFileSync(join(dir, f), 'utf8')),
  );
  assert.ok(importers.length >= 5, `${importers.length} produce modules import records.js`);
  assert.equal(leanRequestModules(), importers.length, importers.join(', '));
});

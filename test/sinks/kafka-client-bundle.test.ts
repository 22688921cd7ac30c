// @platformatic/kafka as the worker loads it, bundled by scripts/bundle-kafka-client.ts (the
// tests' global setup makes the bundle from the sources): its option schemas are not compiled at
// import, and a client made with `strict: true` still checks its options with the same words; its
// own schema registry loads ajv and avsc only when made and used; its produce requests encode
// with lean-records.ts. No Kafka is needed: the checks fail before a connection is tried (the
// registry gets a loopback server of the test's own).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { BundleManifest } from '../../scripts/bundle-kafka-client.ts';
import { kafkaClientBundleUrl, loadKafkaClientBundle } from '../../src/sinks/kafka/client/platformatic-bundle.ts';

const manifest = JSON.parse(readFileSync(new URL('./platformatic-kafka.json', kafkaClientBundleUrl), 'utf8')) as BundleManifest;

/** Which of the library's schema libraries its require has loaded so far. */
function loadedByLibrary(): string[] {
  const cache = createRequire(import.meta.resolve('@platformatic/kafka')).cache;
  return ['avsc', 'ajv-draft-04'].filter((name) => Object.keys(cache).some((file) => file.includes(`/node_modules/${name}/`)));
}

test("the library's own schema registry loads ajv and avsc when one is made and used, not at import, and works as before", async () => {
  const { ConfluentSchemaRegistry, lazyRegistryAjvLoads, lazyAvscLoads } = await loadKafkaClientBundle();
  assert.deepEqual(loadedByLibrary(), [], 'importing the library loads neither avsc nor ajv-draft-04');
  assert.equal(lazyRegistryAjvLoads(), 0);
  // a registry of the library's, against a loopback server that answers two schema ids
  const schemas: Record<string, object> = {
    '/schemas/ids/1': { schema: JSON.stringify({ type: 'record', name: 'Reading', fields: [{ name: 'v', type: 'double' }] }) },
    '/schemas/ids/2': {
      schemaType: 'JSON',
      schema: JSON.stringify({ $schema: 'http://json-schema.org/draft-04/schema#', type: 'object', required: ['v'], properties: { v: { type: 'number' } } }),
    },
  };
  const server = createServer((req, res) => {
    const body = schemas[req.url ?? ''];
    res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(body ?? {}));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const registry = new ConfluentSchemaRegistry({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
    assert.equal(lazyRegistryAjvLoads(), 3, 'its three Ajv instances are real ones, made with the registry');
    const fetched = (id: number) => new Promise<void>((resolve, reject) => registry.fetchSchema(id, (err?: Error | null) => (err ? reject(err) : resolve())));
    await fetched(1);
    await fetched(2);
    const avro = registry.get(1)?.schema as { toBuffer(v: unknown): Buffer; fromBuffer(b: Buffer): unknown };
    assert.deepEqual({ ...(avro.fromBuffer(avro.toBuffer({ v: 1.5 })) as object) }, { v: 1.5 }, 'the Avro schema is a real avsc type');
    assert.ok(lazyAvscLoads() >= 1);
    const validate = registry.get(2)?.schema as (v: unknown) => boolean;
    assert.equal(validate({ v: 1 }), true, 'the draft-04 schema was compiled by the real ajv-draft-04');
    assert.equal(validate({ v: 'x' }), false);
    assert.deepEqual(loadedByLibrary(), ['avsc', 'ajv-draft-04']);
  } finally {
    server.close();
  }
});

test('the library is loaded with no option schema compiled, and a strict client checks its options as before', async () => {
  const { Producer, UserError, lazyAjvCounts } = await loadKafkaClientBundle();
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
  const { produceV9, produceV11, leanRecordsCounts } = await loadKafkaClientBundle();
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
  // what the adapter hands over: keys and header values as strings, number timestamps
  const { producerMessages } = await import('../../src/sinks/kafka/client/platformatic-client.ts');
  const records = [{ topic: 't', key: 'ts-1', value: Buffer.from('{}'), headers: { 'mqtt-qos': '1', u: ['a', 'b'] }, timestamp: 1_764_000_000_000 }];
  const lean = producerMessages([{ topic: 't', records }], true).map((m) => ({ ...m, partition: 0 }));
  assert.equal(typeof lean[0]?.key, 'string');
  produceV11.createRequest(-1, 1000, lean as never, { producerId: 1n, producerEpoch: 0 });
  const after = leanRecordsCounts();
  assert.deepEqual({ lean: after.lean - before.lean, library: after.library - before.library }, { lean: 4, library: 0 });
  // every produce request module of the library that imports the encoder got lean-records.ts: none left on the library's
  const dir = fileURLToPath(new URL('./apis/producer/', import.meta.resolve('@platformatic/kafka')));
  const importers = readdirSync(dir).filter(
    (f) => f.endsWith('.js') && /from ["']\.\.\/\.\.\/protocol\/records\.js["']/.test(readFileSync(join(dir, f), 'utf8')),
  );
  assert.ok(importers.length >= 5, `${importers.length} produce modules import records.js`);
  const replaced = Object.entries(manifest.replaced)
    .filter(([, specifiers]) => specifiers['../../protocol/records.js'] === 'lean-records.ts')
    .map(([file]) => file)
    .sort();
  assert.deepEqual(replaced, importers.map((f) => `dist/apis/producer/${f}`).sort());
});

test("the bundle is of the installed library, with the option and registry schemas made lazy, the connection's in-flight Map renewed and header lists passed on", () => {
  const installed = (
    JSON.parse(readFileSync(join(fileURLToPath(import.meta.resolve('@platformatic/kafka')), '../../package.json'), 'utf8')) as { version: string }
  ).version;
  assert.equal(manifest.library, `@platformatic/kafka ${installed}`);
  assert.deepEqual(manifest.replaced['dist/utils.js'], { 'ajv/dist/2020.js': 'lazy-ajv.ts' });
  assert.deepEqual(manifest.replaced['dist/registries/confluent-schema-registry.js'], {
    ajv: 'lazy-registry-ajv.ts',
    'ajv-draft-04': 'lazy-registry-ajv.ts',
    'ajv/dist/2020.js': 'lazy-registry-ajv.ts',
    avsc: 'lazy-avsc.ts',
  });
  // a connection's in-flight Map, emptied, is replaced by a young one (the build fails if the library's deletes change)
  assert.deepEqual(manifest.replaced['dist/network/connection.js'], { '#inflightRequests.delete': 'a new Map when the last request is deleted' });
  // the producer's send passes a list of headers on to the encoder as it is (the build fails if the send changes)
  assert.deepEqual(manifest.replaced['dist/clients/producer/producer.js'], {
    'headers = new Map(); serializedHeaders = new Map()': 'a list of headers passed on as it is',
  });
});

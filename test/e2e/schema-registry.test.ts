// Kafka values through a schema registry (Apicurio Registry 3's Confluent-compatible API):
// Avro, Protobuf and JSON Schema values written in the Confluent wire format and read back by
// registry-aware deserializers that know only the record and the registry; a payload that does
// not fit its schema is dead-lettered with the validator's words and nothing else is lost.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import protobuf from 'protobufjs';
import { type KafkaRecordSeen, readTopic } from '../support/e2e-helpers.ts';
import { sluiceFor } from '../support/sluice-process.ts';
import { endpoints, mqttClient, printLogsOnFailure, unique } from '../support/stack.ts';

const avroSchema = {
  type: 'record',
  name: 'Reading',
  namespace: 'sluice.test',
  fields: [
    { name: 'deviceId', type: 'string' },
    { name: 'temperature', type: 'double' },
    { name: 'count', type: 'long' },
  ],
};
// Reading is the second message: its Confluent message indexes are [1], not the single 0 byte
const protoSchema = `syntax = "proto3";
package sluice.test;
message Envelope { string note = 1; }
message Reading { string deviceId = 1; double temperature = 2; int64 count = 3; }
`;
const jsonSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  type: 'object',
  required: ['deviceId', 'temperature'],
  properties: { deviceId: { type: 'string' }, temperature: { type: 'number' }, count: { type: 'integer' } },
};

/** A Protobuf deserializer from the wire format alone: id -> the registry's schema -> message indexes -> the message. */
async function decodeProtobuf(value: Buffer): Promise<Record<string, unknown>> {
  assert.equal(value[0], 0, 'magic byte');
  const id = value.readUInt32BE(1);
  const res = await fetch(`${endpoints.registry}/schemas/ids/${id}`);
  const { schema } = (await res.json()) as { schema: string };
  const root = protobuf.parse(schema, { keepCase: true }).root;
  const reader = protobuf.Reader.create(value.subarray(5));
  const count = reader.sint32();
  const indexes = count === 0 ? [0] : Array.from({ length: count }, () => reader.sint32());
  let ns: protobuf.NamespaceBase = root.lookup('sluice.test') as protobuf.Namespace;
  let type: protobuf.Type | undefined;
  for (const i of indexes) {
    type = ns.nestedArray.filter((n): n is protobuf.Type => n instanceof protobuf.Type)[i];
    ns = type as protobuf.Type;
  }
  return type!.toObject(type!.decode(value.subarray(5 + reader.pos)), { longs: Number, defaults: true }) as Record<string, unknown>;
}

test('Avro, Protobuf and JSON Schema values round-trip through the registry; a value that breaks its schema is dead-lettered', {
  timeout: 120_000,
}, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('sr');
  const route = (format: string, schema: string, extra: Record<string, unknown> = {}) => ({
    name: format,
    match: `${prefix}/{deviceId}/${format}`,
    kafka: { topic: `${prefix}.${format}`, value: { format, schema, ...extra } },
  });
  const sluice = sluiceFor(t, {
    rules: {
      subscriptions: [{ filter: `${prefix}/+/+`, qos: 1 }],
      routes: [
        route('avro', 'reading.avsc'),
        route('protobuf', 'reading.proto', { message: 'sluice.test.Reading' }),
        route('json-schema', 'reading.schema.json'),
      ],
    },
    config: { kafka: { schemaRegistry: { url: endpoints.registry } } },
  });
  writeFileSync(join(sluice.dir, 'reading.avsc'), JSON.stringify(avroSchema));
  writeFileSync(join(sluice.dir, 'reading.proto'), protoSchema);
  writeFileSync(join(sluice.dir, 'reading.schema.json'), JSON.stringify(jsonSchema));
  await sluice.start();
  const pub = await mqttClient(t);
  const good = Array.from({ length: 10 }, (_, i) => ({ deviceId: `d${i}`, temperature: 20 + i / 2, count: i * 1000 }));
  const bad = [
    { deviceId: 'd-bad', temperature: 'hot', count: 1 },
    { deviceId: 7, temperature: 1 },
  ];
  for (const format of ['avro', 'protobuf', 'json-schema']) {
    for (const [i, v] of [...good.slice(0, 5), bad[0], ...good.slice(5), bad[1]].entries()) {
      await pub.publishAsync(`${prefix}/d${i}/${format}`, JSON.stringify(v), { qos: 1 });
    }
  }
  const registry = new SchemaRegistry({ host: endpoints.registry });
  const read = (format: string) => readTopic(t, `${prefix}.${format}`, (r) => r.length >= 10);
  const [avroRecords, protoRecords, jsonRecords] = [await read('avro'), await read('protobuf'), await read('json-schema')];
  // records are keyed by device, over 3 partitions: compare in device order
  const values = async (records: KafkaRecordSeen[], decode: (b: Buffer) => Promise<unknown>) =>
    (await Promise.all(records.map((r) => decode(r.value)))).sort((a, b) =>
      String((a as { deviceId: string }).deviceId).localeCompare(String((b as { deviceId: string }).deviceId)),
    );
  assert.deepEqual(await values(avroRecords, (b) => registry.decode(b).then((v) => ({ ...(v as object) }))), good, 'Avro read back by id from the registry');
  assert.deepEqual(await values(protoRecords, decodeProtobuf), good, 'Protobuf read back with its message indexes');
  assert.deepEqual(await values(jsonRecords, (b) => registry.decode(b)), good, 'JSON Schema read back by id');
  for (const r of protoRecords) assert.deepEqual(r.value.subarray(5, 7), Buffer.from([2, 2]), 'message indexes [1]: count 1, index 1, zigzag');
  const subjects = (await (await fetch(`${endpoints.registry}/subjects`)).json()) as string[];
  for (const f of ['avro', 'protobuf', 'json-schema']) assert.ok(subjects.includes(`${prefix}.${f}-value`), `subject ${prefix}.${f}-value registered`);

  const dead = await readTopic(t, sluice.deadLetterTopic, (r) => r.length >= 6);
  assert.equal(dead.length, 6, 'two per format, once each');
  for (const r of dead) assert.equal(r.headers['sluice-reason'], 'schema-mismatch');
  const errors = dead.map((r) => r.headers['sluice-error']);
  assert.ok(
    errors.some((e) => /Avro schema sluice\.test\.Reading .*temperature: "hot" is not a double/.test(e ?? '')),
    errors.join('\n'),
  );
  assert.ok(
    errors.some((e) => /Protobuf message sluice\.test\.Reading .*temperature: number expected/.test(e ?? '')),
    errors.join('\n'),
  );
  assert.ok(
    errors.some((e) => /JSON Schema .*\$\/deviceId must be string/.test(e ?? '')),
    errors.join('\n'),
  );
  assert.deepEqual(
    dead.map((r) => JSON.parse(r.value.toString())).sort((a, b) => String(a.deviceId).localeCompare(String(b.deviceId))),
    [bad[1], bad[1], bad[1], bad[0], bad[0], bad[0]],
    'the dead letters hold the original payloads',
  );
});

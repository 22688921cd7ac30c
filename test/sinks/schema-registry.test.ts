// Value schemas and the registry client: the payload checked and encoded per format, the
// Confluent framing (Protobuf message indexes included), and what the registry's answers mean
// against the stack's Apicurio Registry: the same schema twice is one id, an unknown subject
// with register: false refuses for good, an unreachable registry is retried (not a refusal).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import protobuf from 'protobufjs';
import { SchemaRegistryClient } from '../../src/sinks/kafka/schema-registry/registry.ts';
import { messageIndexes, ValueEncoder, type ValueFormat } from '../../src/sinks/kafka/schema-registry/value-encoder.ts';
import { endpoints, unique } from '../support/stack.ts';

function schemaFile(t: { after(fn: () => void): void }, name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-schema-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, name), text);
  return join(dir, name);
}

const avsc = JSON.stringify({
  type: 'record',
  name: 'R',
  namespace: 'n',
  fields: [
    { name: 'v', type: 'double' },
    { name: 'tag', type: ['null', 'string'], default: null },
  ],
});

test('Protobuf message indexes: [0] is one zero byte, others are zigzag varints after their count', () => {
  const root = protobuf.parse('syntax = "proto3"; package p; message A { message B {} message C { message D {} } } message E {}').root;
  const bytes = (name: string) => [...messageIndexes(root.lookupType(name))];
  assert.deepEqual(bytes('p.A'), [0]);
  assert.deepEqual(bytes('p.E'), [2, 2]);
  assert.deepEqual(bytes('p.A.C'), [4, 0, 2]);
  assert.deepEqual(bytes('p.A.C.D'), [6, 0, 2, 0]);
});

test("a value is checked against its schema: the validator's words, or the body", (t) => {
  const make = (format: ValueFormat, name: string, text: string, message?: string) =>
    new ValueEncoder({ format, file: schemaFile(t, name, text), subject: 's-value', message });
  const avro = make('avro', 'r.avsc', avsc);
  assert.deepEqual(avro.encode({ v: 1.5, tag: 'x' }, Buffer.alloc(0)), { body: Buffer.from([0, 0, 0, 0, 0, 0, 248, 63, 2, 2, 120]) });
  assert.deepEqual(avro.encode({ v: 'x' }, Buffer.alloc(0)), { error: 'does not fit Avro schema n.R (s-value): v: "x" is not a double' });
  const proto = make('protobuf', 'r.proto', 'syntax = "proto3"; message R { double v = 1; }');
  assert.deepEqual(proto.encode({ v: 2 }, Buffer.alloc(0)), { body: Buffer.from([9, 0, 0, 0, 0, 0, 0, 0, 64]) });
  assert.deepEqual(proto.encode([1], Buffer.alloc(0)), { error: 'does not fit Protobuf message R: the payload is not an object' });
  const json = make('json-schema', 'r.json', JSON.stringify({ type: 'object', required: ['v'], properties: { v: { type: 'number' } } }));
  const raw = Buffer.from('{"v":1}');
  assert.equal((json.encode({ v: 1 }, raw) as { body: Buffer }).body, raw, "JSON Schema: the payload's own bytes");
  assert.deepEqual(json.encode({}, raw), { error: "does not fit JSON Schema (s-value): $ must have required property 'v'" });
});

test('the registry: one id for the same schema, a refusal for good when it must not register, a retry when unreachable', async (t) => {
  const subject = `${unique('subj')}-value`;
  const schema = () => new ValueEncoder({ format: 'avro', file: schemaFile(t, 'r.avsc', avsc), subject });
  const registering = new SchemaRegistryClient({ url: endpoints.registry, timeoutMs: 5000, register: true });
  const lookingUp = new SchemaRegistryClient({ url: endpoints.registry, timeoutMs: 5000, register: false });
  const first = schema();
  const unknown = await lookingUp.ensure(first);
  assert.equal(unknown.ok, false);
  assert.ok(!unknown.ok && unknown.permanent && /answered 404/.test(unknown.error), JSON.stringify(unknown));
  assert.deepEqual(await registering.ensure(first), { ok: true });
  const again = schema();
  assert.deepEqual(await lookingUp.ensure(again), { ok: true }, 'registered now: looked up');
  assert.deepEqual(again.header, first.header, 'the same id');
  assert.equal(first.header?.[0], 0, 'magic byte');
  const down = await new SchemaRegistryClient({ url: 'http://127.0.0.1:9/apis/ccompat/v7', timeoutMs: 2000, register: true }).ensure(schema());
  assert.ok(!down.ok && !down.permanent, 'unreachable: retried, never a refusal');
});

// A route's Kafka value encoded with a schema: Avro (avsc), Protobuf (protobufjs) or JSON Schema
// (ajv), compiled once at load from the schema file. encode() checks the payload against the
// schema and returns the body, or the validator's words (the message is dead-lettered with
// them). The Confluent wire format's header (magic byte 0, the schema id, and for Protobuf the
// message indexes) is added by the sink once the registry has given the id (registry.ts):
// neither JavaScript registry client writes Protobuf's message indexes, so we frame it here.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Ajv, ValidateFunction } from 'ajv';
import type avro from 'avsc';
import type protobuf from 'protobufjs';

// Each format's library is loaded when the first schema of that format is compiled: a worker
// whose routes name no value schema never loads avsc, protobufjs or ajv (~3 MiB of heap, about
// twice that of RSS).
const require = createRequire(import.meta.url);
let avroLibrary: typeof avro | undefined;
let protobufLibrary: typeof protobuf | undefined;
const avsc = () => (avroLibrary ??= require('avsc') as typeof avro);
const protobufjs = () => (protobufLibrary ??= require('protobufjs') as typeof protobuf);

/** The Ajv class for a JSON Schema's `$schema` (draft-07 and older: the default build). */
function ajvFor(schema: { $schema?: string }): new (options: object) => Ajv {
  if (schema.$schema?.includes('2020-12')) return (require('ajv/dist/2020.js') as typeof import('ajv/dist/2020.js')).Ajv2020;
  if (schema.$schema?.includes('2019-09')) return (require('ajv/dist/2019.js') as typeof import('ajv/dist/2019.js')).Ajv2019;
  return (require('ajv') as typeof import('ajv')).Ajv;
}

export const valueFormats = ['avro', 'protobuf', 'json-schema'] as const;
export type ValueFormat = (typeof valueFormats)[number];

export interface ValueSchemaSpec {
  readonly format: ValueFormat;
  /** The schema file (resolved). */
  readonly file: string;
  readonly subject: string;
  /** Protobuf: the message type; default the file's first message. */
  readonly message?: string | undefined;
}

export type Encoding = { readonly body: Buffer } | { readonly error: string };

export class ValueEncoder {
  readonly format: ValueFormat;
  readonly subject: string;
  /** The schema as registered (the file's text). */
  readonly text: string;
  /** What follows the schema id in the wire format (Protobuf's message indexes; empty otherwise). */
  readonly indexes: Buffer;
  /** Set once the registry has answered with an id: magic byte, id, indexes. */
  header: Buffer | undefined;
  private readonly encoder: (value: unknown, raw: Buffer) => Encoding;

  constructor(spec: ValueSchemaSpec) {
    this.format = spec.format;
    this.subject = spec.subject;
    this.text = readFileSync(spec.file, 'utf8');
    switch (spec.format) {
      case 'avro': {
        const type = avsc().Type.forSchema(JSON.parse(this.text) as avro.Schema);
        this.indexes = Buffer.alloc(0);
        this.encoder = (value) => {
          const problems: string[] = [];
          const ok = type.isValid(value, {
            errorHook: (path: string[], v: unknown, t: avro.Type) => {
              if (problems.length < 5) problems.push(`${path.length ? path.join('.') : '(the value)'}: ${shown(v)} is not ${describeAvro(t)}`);
            },
          });
          return ok ? { body: type.toBuffer(value) } : { error: `does not fit Avro schema ${type.name ?? ''} (${spec.subject}): ${problems.join('; ')}` };
        };
        break;
      }
      case 'protobuf': {
        const root = protobufjs().parse(this.text, { keepCase: true }).root;
        const type = spec.message ? root.lookupType(spec.message) : firstMessage(root);
        if (!type) throw new Error(`${spec.file}: no message type in it`);
        this.indexes = messageIndexes(type);
        this.encoder = (value) => {
          if (value === null || typeof value !== 'object' || Array.isArray(value))
            return { error: `does not fit Protobuf message ${type.fullName.slice(1)}: the payload is not an object` };
          const problem = type.verify(value as Record<string, unknown>);
          if (problem) return { error: `does not fit Protobuf message ${type.fullName.slice(1)} (${spec.subject}): ${problem}` };
          return { body: Buffer.from(type.encode(type.fromObject(value as Record<string, unknown>)).finish()) };
        };
        break;
      }
      case 'json-schema': {
        const schema = JSON.parse(this.text) as { $schema?: string };
        const options = { allErrors: true, strict: false };
        const ajv = new (ajvFor(schema))(options);
        const validate: ValidateFunction = ajv.compile(schema);
        this.indexes = Buffer.alloc(0);
        this.encoder = (value, raw) =>
          validate(value)
            ? { body: raw }
            : { error: `does not fit JSON Schema (${spec.subject}): ${ajv.errorsText(validate.errors?.slice(0, 5), { dataVar: '$' })}` };
        break;
      }
    }
  }

  /** The body for `value` (the decoded payload; `raw` its bytes), or why it does not fit. */
  encode(value: unknown, raw: Buffer): Encoding {
    try {
      return this.encoder(value, raw);
    } catch (err) {
      return { error: `does not fit the ${this.format} schema (${this.subject}): ${(err as Error).message}` };
    }
  }

  /** The registry's schemaType for it. */
  get schemaType(): 'AVRO' | 'PROTOBUF' | 'JSON' {
    return this.format === 'avro' ? 'AVRO' : this.format === 'protobuf' ? 'PROTOBUF' : 'JSON';
  }

  /** Remembers the id the registry gave: the header every record of this schema starts with. */
  registered(id: number): void {
    const header = Buffer.alloc(5 + this.indexes.length);
    header.writeUInt8(0, 0);
    header.writeUInt32BE(id, 1);
    this.indexes.copy(header, 5);
    this.header = header;
  }
}

function shown(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 60)}...` : s;
}

function describeAvro(t: avro.Type): string {
  const name = (t as unknown as { typeName?: string }).typeName ?? 'of its type';
  return t.name ? `a ${name} ${t.name}` : `a ${name}`;
}

function firstMessage(ns: protobuf.NamespaceBase): protobuf.Type | undefined {
  for (const n of ns.nestedArray) {
    if (n instanceof protobufjs().Type) return n;
    if (n instanceof protobufjs().Namespace) {
      const inner = firstMessage(n);
      if (inner) return inner;
    }
  }
  return undefined;
}

/**
 * The Confluent message indexes of a type: its position among the messages of its file, level by
 * level, each a zigzag varint after their count; the first message ([0]) is the single byte 0.
 */
export function messageIndexes(type: protobuf.Type): Buffer {
  const path: number[] = [];
  let node: protobuf.ReflectionObject = type;
  while (node.parent && node.parent instanceof protobufjs().Type) {
    path.unshift(messagesOf(node.parent).indexOf(node as protobuf.Type));
    node = node.parent;
  }
  // the top-level message, among the messages of its file's package
  path.unshift(messagesOf(node.parent as protobuf.NamespaceBase).indexOf(node as protobuf.Type));
  if (path.length === 1 && path[0] === 0) return Buffer.from([0]);
  const bytes: number[] = [];
  for (const n of [path.length, ...path]) zigzagVarint(n, bytes);
  return Buffer.from(bytes);
}

function messagesOf(ns: protobuf.NamespaceBase): protobuf.Type[] {
  return ns.nestedArray.filter((n): n is protobuf.Type => n instanceof protobufjs().Type);
}

function zigzagVarint(n: number, out: number[]): void {
  let v = (n << 1) ^ (n >> 31);
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
}

// lean-bl.ts reads mqtt-packet's BufferList in place: every value, view and error must be bl's own
// (pure code, no server; the MQTT suites run the parser with it against Mosquitto). This file
// imports neither mqtt-session.ts nor the CLI, so bl's own methods are measured first here.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import mqttPacket from 'mqtt-packet';
import { leanBufferList } from '../../src/source/mqtt/lean-bl.ts';

const require = createRequire(import.meta.url);
type List = { append(b: Buffer): void; consume(n: number): void; slice(): Buffer; length: number } & Record<string, (...args: unknown[]) => unknown>;
const bl = createRequire(createRequire(require.resolve('mqtt')).resolve('mqtt-packet'))('bl') as (() => List) & { prototype: object };

const methods = ['readUInt8', 'readUInt16BE', 'readUInt32BE', 'slice', 'toString', 'consume'] as const;
/** bl's methods that lean-bl.ts leaves to bl: each must see the list as bl's own consume left it. */
const others = ['get', 'indexOf', 'shallowSlice', 'readInt16LE', 'getBuffers', 'duplicate', 'copy', 'prepend', 'append'] as const;
type Method = (typeof methods)[number] | (typeof others)[number];

/** A list of these chunks, bytes consumed from the front as mqtt-packet does (one consume per number). */
function list(chunks: Buffer[], consumed: number[]): List {
  const l = bl();
  for (const c of chunks) l.append(c);
  for (const n of consumed) l.consume(n);
  return l;
}

function outcome(f: () => unknown): unknown {
  try {
    const v = f();
    if (Buffer.isBuffer(v)) return { buffer: v.toString('hex') };
    // a list (consume, duplicate, shallowSlice, append, prepend answer one): its bytes and length
    if (v !== null && typeof v === 'object' && '_bufs' in v) {
      const l = v as unknown as List;
      return { bytes: l.slice().toString('hex'), length: l.length };
    }
    if (Array.isArray(v)) return { buffers: (v as Buffer[]).map((b) => b.toString('hex')).join('') };
    return { value: v };
  } catch (err) {
    return { error: `${(err as Error).name}: ${(err as Error).message}` };
  }
}

/** Every call on every layout: [chunks, consumed, method, args (or what makes them, at the call)]. */
function cases(): Array<[Buffer[], number[], Method, unknown[] | (() => unknown[])]> {
  const bytes = Buffer.from(Array.from({ length: 40 }, (_, i) => (i * 37 + 11) & 0xff));
  const two = [bytes.subarray(0, 5), bytes.subarray(5)]; // a read may straddle the first two chunks
  const three = [bytes.subarray(0, 5), bytes.subarray(5, 6), bytes.subarray(6)];
  const layouts: Array<[Buffer[], number[]]> = [
    [[bytes], []],
    [[bytes], [3]],
    [[bytes], [1, 2, 7]], // consumed in steps, as a packet's header, length and body
    [[bytes], [39]],
    [[bytes], [40]], // the whole buffer: dropped
    [[bytes], [41]],
    [[bytes], [2.5, 1]], // bl truncates a fraction
    [[bytes], [0, -1, Number.NaN]],
    [two, []],
    [two, [2, 3]], // the first chunk ends exactly
    [two, [2, 4]], // a consume that crosses into the second
    [three, [2]],
    [three, [1, 1, 1, 1, 1, 1]],
    [[bytes.subarray(0, 1)], []],
    [[], []],
    [[], [1]],
  ];
  // integers only: bl itself answers a fractional offset that straddles chunks with bytes of
  // uninitialised memory (Buffer.allocUnsafe, partly copied), different from call to call
  const offsets = [undefined, 0, 1, 2, 3, 4, 5, 6, 35, 36, 37, 38, 39, 40, 41, -1, -3];
  const out: Array<[Buffer[], number[], Method, unknown[] | (() => unknown[])]> = [];
  for (const [chunks, consumed] of layouts) {
    for (const o of offsets) {
      for (const m of ['readUInt8', 'readUInt16BE', 'readUInt32BE', 'readInt16LE', 'get'] as const) out.push([chunks, consumed, m, o === undefined ? [] : [o]]);
      out.push([chunks, consumed, 'consume', [o]]);
      for (const e of [undefined, 0, 1, 4, 5, 6, 10, 37, 40, 45, -2]) {
        out.push([chunks, consumed, 'slice', [o, e]]);
        out.push([chunks, consumed, 'toString', ['utf8', o, e]]);
        out.push([chunks, consumed, 'toString', ['hex', o, e]]);
        out.push([chunks, consumed, 'shallowSlice', [o, e]]);
        out.push([chunks, consumed, 'copy', () => [Buffer.alloc(50), 0, o, e]]); // a new target for each call
      }
    }
    out.push([chunks, consumed, 'indexOf', [bytes.subarray(10, 12)]]);
    for (const m of ['getBuffers', 'duplicate'] as const) out.push([chunks, consumed, m, []]);
    for (const m of ['prepend', 'append'] as const) out.push([chunks, consumed, m, [Buffer.from('zz')]]);
    // a lean list given to another: its bytes from its head on
    out.push([chunks, consumed, 'append', () => [list(chunks, consumed)]]);
  }
  return out;
}

/** PUBLISH packets (MQTT 5: properties, user properties, an empty and a large payload), as one stream. */
function stream(): Buffer {
  const packets = [
    { cmd: 'publish', topic: 'acme/plant-1/zone-2/temperature-sensor/dev-17/telemetry', payload: Buffer.from('{"t":21.5}'), qos: 1, messageId: 7 },
    {
      cmd: 'publish',
      topic: 'a/ü/€',
      payload: Buffer.alloc(0),
      qos: 2,
      messageId: 65535,
      dup: true,
      properties: {
        payloadFormatIndicator: true,
        messageExpiryInterval: 4_000_000_000,
        contentType: 'application/json',
        userProperties: { site: 'x', k: ['1', '2'] },
        correlationData: Buffer.from([1, 2, 3]),
      },
    },
    { cmd: 'publish', topic: 't', payload: Buffer.alloc(70_000, 0x61), qos: 0, retain: true },
    { cmd: 'puback', messageId: 3, reasonCode: 0 },
    { cmd: 'pingresp' },
  ];
  return Buffer.concat(packets.map((p) => mqttPacket.generate(p as mqttPacket.Packet, { protocolVersion: 5 })));
}

/** The packets a parser makes of the stream cut into chunks of `size` bytes. */
function parsed(data: Buffer, size: number): unknown[] {
  const parser = mqttPacket.parser({ protocolVersion: 5 });
  const out: unknown[] = [];
  parser.on('packet', (p) => out.push(JSON.parse(JSON.stringify(p))));
  parser.on('error', (e) => out.push({ error: e.message }));
  for (let at = 0; at < data.length; at += size) parser.parse(data.subarray(at, at + size));
  return out;
}

test("bl's reads in place give bl's values, views and errors, and mqtt-packet parses the same packets at every chunk size", () => {
  const all = cases();
  const data = stream();
  const sizes = [1, 2, 3, 5, 7, 64, 1000, 65_536, data.length];
  const proto = bl.prototype as Record<string, unknown>;
  const own = methods.map((m) => proto[m]);
  const othersOwn = others.map((m) => proto[m]);

  // bl's own first
  const run = ([chunks, consumed, m, args]: (typeof all)[number]) =>
    outcome(() => (list(chunks, consumed)[m] as (...a: unknown[]) => unknown)(...(typeof args === 'function' ? args() : args)));
  const expected = all.map(run);
  const expectedPackets = sizes.map((n) => parsed(data, n));

  leanBufferList();
  leanBufferList(); // twice is once
  assert.ok(
    methods.every((m, i) => proto[m] !== own[i]),
    'the methods were replaced',
  );
  assert.ok(
    others.every((m, i) => proto[m] !== othersOwn[i]),
    'the others cut the list first',
  );
  const actual = all.map(run);
  for (let i = 0; i < all.length; i++) {
    const [chunks, consumed, m, args] = all[i] as (typeof all)[number];
    assert.deepEqual(
      actual[i],
      expected[i],
      `${m}(${(typeof args === 'function' ? args() : args).map(String).join(', ')}) on chunks of ${chunks.map((c) => c.length).join('+')} after consuming ${consumed.join(', ')}`,
    );
  }
  sizes.forEach((n, i) => {
    assert.deepEqual(parsed(data, n), expectedPackets[i], `packets parsed from chunks of ${n} bytes`);
  });
  assert.equal((expectedPackets[0] as unknown[]).length, 5);
});

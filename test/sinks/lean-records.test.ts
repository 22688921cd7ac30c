// lean-records.ts writes a RecordBatch v2 into one buffer: its bytes must be @platformatic/kafka's,
// exactly, for every shape of record and every option the producer passes (pure code, no server;
// the Kafka suites run it against the real broker).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRecordsBatch, createRecordsBatchAsync, type MessageRecord, NumericMap, Reader, readRecordsBatch } from '@platformatic/kafka';
import * as lean from '../../src/sinks/kafka/client/lean-records.ts';

const t0 = 1_764_000_000_000n;

/** A record as the producer may hand one over: key and headers absent, undefined or null. */
type Rec = Omit<MessageRecord, 'key' | 'headers' | 'timestamp'> & {
  key?: Buffer | null | undefined;
  headers?: Map<Buffer, Buffer> | null | undefined;
  timestamp?: bigint | undefined;
};

function clone(ms: Rec[]): MessageRecord[] {
  return ms.map((m) => ({ ...m, headers: m.headers instanceof Map ? new Map(m.headers) : m.headers })) as MessageRecord[];
}

/** The library's batch and ours for the same messages and options, byte for byte; the messages' timestamps settled alike. */
async function same(ms: Rec[], options: object, label: string): Promise<Buffer> {
  const theirs = clone(ms);
  const ours = clone(ms);
  const expected = createRecordsBatch(theirs, options as never).buffer;
  const actual = lean.createRecordsBatch(ours, options as never).buffer;
  assert.ok(actual.equals(expected), `${label}: sync bytes differ\n  library ${expected.toString('hex')}\n  lean    ${actual.toString('hex')}`);
  assert.deepEqual(
    ours.map((m) => m.timestamp),
    theirs.map((m) => m.timestamp),
    `${label}: timestamps`,
  );
  const expectedAsync = (await createRecordsBatchAsync(clone(ms), options as never)).buffer;
  const actualAsync = (await lean.createRecordsBatchAsync(clone(ms), options as never)).buffer;
  assert.ok(actualAsync.equals(expectedAsync), `${label}: async bytes differ`);
  return actual;
}

const b = (s: string) => Buffer.from(s);

test('every record shape gives the library bytes, and the library reads it back', async () => {
  const before = lean.leanRecordsCounts();
  const shapes: Array<[string, Rec[]]> = [
    ['one record, no key, no headers', [{ topic: 't', value: b('{"v":1}'), timestamp: t0 }]],
    [
      'key null and empty, value empty',
      [
        { topic: 't', key: null, value: b('x'), timestamp: t0 },
        { topic: 't', key: Buffer.alloc(0), value: Buffer.alloc(0), timestamp: t0 + 1n },
      ],
    ],
    [
      'headers: none, null, empty, several with empty values',
      [
        { topic: 't', key: b('k'), value: b('v'), headers: new Map(), timestamp: t0 },
        { topic: 't', key: b('k'), value: b('v'), headers: null, timestamp: t0 },
        {
          topic: 't',
          key: b('k'),
          value: b('v'),
          headers: new Map([
            [b('a'), b('1')],
            [b('sluice-topic'), Buffer.alloc(0)],
            [Buffer.alloc(0), b('z')],
          ]),
          timestamp: t0 + 5n,
        },
      ],
    ],
    [
      'timestamps going back (negative deltas) and far ahead',
      [
        { topic: 't', value: b('a'), timestamp: t0 },
        { topic: 't', value: b('b'), timestamp: t0 - 70_000n },
        { topic: 't', value: b('c'), timestamp: t0 + 2_000_000_000n },
        { topic: 't', value: b('d'), timestamp: t0 - 2_000_000_000n },
      ],
    ],
    // the varints' byte boundaries: zigzag doubles, so 63/64 and 8191/8192 change the width
    ...[0, 63, 64, 127, 128, 8191, 8192, 1_048_575, 1_048_576].map((n): [string, Rec[]] => [
      `a value of ${n} bytes`,
      [
        {
          topic: 't',
          key: Buffer.alloc(n % 200, 7),
          value: Buffer.alloc(n, 1),
          headers: new Map([[b('h'), Buffer.alloc(n % 100, 2)]]),
          timestamp: t0 + BigInt(n),
        },
      ],
    ]),
  ];
  for (const [label, ms] of shapes) {
    const batch = await same(ms, { producerId: 1000n, producerEpoch: 3 }, label);
    const read = readRecordsBatch(Reader.from(batch));
    assert.equal(read.records.length, ms.length, label);
    for (const [i, r] of read.records.entries()) assert.ok((r.value ?? Buffer.alloc(0)).equals(ms[i]?.value ?? Buffer.alloc(0)), `${label}: record ${i} value`);
  }
  const after = lean.leanRecordsCounts();
  assert.equal(after.lean - before.lean, shapes.length * 2, 'all of them were encoded here, none handed back');
});

test('the options the producer passes: producer id and epoch, sequences, transactions, leader epoch, each compression', async () => {
  const ms: MessageRecord[] = Array.from({ length: 1000 }, (_, i) => ({
    topic: 'plant.telemetry',
    partition: 2,
    key: b(`acme/plant-${i % 7}/line/sensor/dev-${i % 97}`),
    value: b(JSON.stringify({ ts: 1_764_000_000 + i, temp: 20 + (i % 13) / 10, seq: i })),
    headers: new Map([
      [b('sluice-topic'), b(`acme/plant-${i % 7}/line/sensor/dev-${i % 97}/telemetry`)],
      [b('sluice-qos'), b('1')],
    ]),
    timestamp: t0 + BigInt(i * 3),
  }));
  const sequences = new NumericMap();
  sequences.set('plant.telemetry:2', 41_000);
  const base = { producerId: 123_456_789n, producerEpoch: 7 };
  await same(ms, {}, 'no producer id (-1)');
  await same(ms, base, 'producer id');
  await same(ms, { ...base, sequences }, 'sequence from the map');
  await same(ms, { ...base, sequences: new NumericMap() }, 'sequence defaulted');
  await same(ms, { ...base, transactionalId: 'tx-1', partitionLeaderEpoch: 12 }, 'transactional, leader epoch');
  for (const compression of ['none', 'gzip', 'snappy', 'lz4', 'zstd']) {
    const batch = await same(ms, { ...base, compression }, `compression ${compression}`);
    const read = readRecordsBatch(Reader.from(batch));
    assert.equal(read.records.length, 1000, compression);
    assert.ok(read.records[999]?.value?.equals(ms[999]?.value as Buffer), `${compression}: the last record reads back`);
  }
  assert.throws(() => lean.createRecordsBatch(clone(ms), { compression: 'brotli' } as never), /Unsupported compression algorithm brotli/);
});

test('records without a timestamp get the same "now" as the library would give them', async (t) => {
  t.mock.method(Date, 'now', () => 1_764_000_123_456);
  await same(
    [
      { topic: 't', value: b('a') },
      { topic: 't', value: b('b'), timestamp: t0 },
      { topic: 't', value: b('c') },
    ],
    { producerId: 1n, producerEpoch: 0 },
    'timestamps missing',
  );
});

/** Each record's timestamp delta as Kafka reads it: a varlong, zigzag with `>> 63` (the batch uncompressed). */
function kafkaDeltas(batch: Buffer): bigint[] {
  const unsigned = (at: number): [bigint, number] => {
    let u = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const byte = batch[at++] as number;
      u |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return [u, at];
    }
  };
  const deltas: bigint[] = [];
  let at = 61;
  for (let n = batch.readInt32BE(57); n > 0; n--) {
    const [zl, afterLength] = unsigned(at);
    const length = Number((zl >> 1n) ^ -(zl & 1n));
    const [zd] = unsigned(afterLength + 1); // after the attributes byte
    deltas.push((zd >> 1n) ^ -(zd & 1n));
    at = afterLength + length;
  }
  assert.equal(at, batch.length);
  return deltas;
}

test("timestamp deltas past ±2^31 ms are Kafka's varlong (the library's put such records near the batch's first)", async () => {
  const day = 86_400_000n;
  const deltas = [0n, 5n, 2n ** 31n - 1n, 2n ** 31n, 2n ** 31n + 5n, -(2n ** 31n) - 5n, 40n * day, -300n * day, 2n ** 52n + 3n, -(2n ** 53n) - 7n, 2n ** 62n];
  const ms: Rec[] = deltas.map((d, i) => ({ topic: 't', key: b(`k${i}`), value: b(`v${i}`), headers: new Map([[b('h'), b('1')]]), timestamp: t0 + d }));
  const batch = lean.createRecordsBatch(clone(ms), { producerId: 1n, producerEpoch: 0 }).buffer;
  assert.deepEqual(kafkaDeltas(batch), deltas);
  assert.equal(batch.readBigInt64BE(21 + 14), t0 + 2n ** 62n, 'maxTimestamp');
  // the library's bytes for the same batch put 2^31 at -1 ms and 2^31 + 5 at -6 ms: what Kafka stored before
  const theirs = kafkaDeltas(createRecordsBatch(clone(ms.slice(0, 5)), { producerId: 1n, producerEpoch: 0 } as never).buffer);
  assert.deepEqual(theirs, [...deltas.slice(0, 3), -1n, -6n]);
  // below 2^31 the bytes are the library's
  await same(ms.slice(0, 3), { producerId: 1n, producerEpoch: 0 }, 'deltas up to 2^31 - 1');
});

/** The same messages with every string made Buffer and every number timestamp bigint: what the library's encoder takes. */
function asLibrary(ms: Array<Record<string, unknown>>): Rec[] {
  const bytes = (v: unknown) => (typeof v === 'string' ? Buffer.from(v) : v);
  return ms.map((m) => ({
    ...m,
    key: bytes(m.key),
    value: bytes(m.value),
    timestamp: typeof m.timestamp === 'number' ? BigInt(m.timestamp) : m.timestamp,
    headers: m.headers instanceof Map ? new Map([...m.headers].map(([k, v]) => [bytes(k), bytes(v)])) : m.headers,
  })) as Rec[];
}

test("strings and number timestamps are written in place: the library's bytes for the same records as Buffers and bigints", async () => {
  const before = lean.leanRecordsCounts();
  const t = Number(t0);
  // byte lengths around the varint widths (63/64, 8191/8192) reached with multi-byte characters
  const wide = [`${'é'.repeat(31)}x`, 'é'.repeat(32), '工'.repeat(21), '🚚'.repeat(16), 'x'.repeat(8191), 'ß'.repeat(4096)];
  const ms: Array<Record<string, unknown>> = [
    {
      topic: 't',
      key: 'ts-10001',
      value: b('{"v":1}'),
      headers: new Map<unknown, unknown>([
        ['mqtt-topic', 'stage/malta/ts-10001/telemetry'],
        ['mqtt-qos', '1'],
      ]),
      timestamp: t,
    },
    { topic: 't', key: '', value: 'text value', headers: new Map([[b('mqtt-correlation-data'), b('\u0000\u0001')]]), timestamp: t - 5 },
    {
      topic: 't',
      key: undefined,
      value: b('x'),
      headers: new Map([
        [b('u'), 'one'],
        [b('u'), 'two'],
      ]),
      timestamp: t + 70_000,
    },
    { topic: 't', key: 'Lager-Süd', value: b('y'), headers: new Map(), timestamp: t0 + 7n },
    ...wide.map((w, i) => ({ topic: 't', key: w, value: b(String(i)), headers: new Map([[w, w]]), timestamp: t + i })),
  ];
  const copy = () => ms.map((m) => ({ ...m })) as unknown as MessageRecord[];
  for (const compression of ['none', 'gzip', 'zstd']) {
    const options = { compression, producerId: 9n, producerEpoch: 1, sequences: new NumericMap(), partitionLeaderEpoch: 0 };
    const expected = createRecordsBatch(clone(asLibrary(ms)), options as never).buffer;
    const actual = lean.createRecordsBatch(copy(), options as never).buffer;
    assert.ok(actual.equals(expected), `${compression}: sync bytes differ\n  library ${expected.toString('hex')}\n  lean    ${actual.toString('hex')}`);
    const actualAsync = (await lean.createRecordsBatchAsync(copy(), options as never)).buffer;
    assert.ok(actualAsync.equals(expected), `${compression}: async bytes differ`);
    const read = readRecordsBatch(Reader.from(actual));
    assert.deepEqual(
      read.records.map((r) => [r.key?.toString(), r.headers.map(([k, v]) => [String(k), String(v)])]),
      ms.map((m) => [m.key === undefined ? undefined : String(m.key), [...(m.headers as Map<unknown, unknown>)].map(([k, v]) => [String(k), String(v)])]),
      `${compression}: keys and headers read back`,
    );
  }
  const after = lean.leanRecordsCounts();
  assert.equal(after.library - before.library, 0, 'none went to the library');
  assert.equal(after.lean - before.lean, 6);
});

test('what is not encoded here goes to the library, strings and number timestamps made its shapes first', () => {
  const before = lean.leanRecordsCounts();
  // shapes the library itself refuses: the same error from both
  for (const ms of [
    [{ topic: 't', key: 'k', value: [1] as unknown as Buffer, timestamp: Number(t0) }],
    [{ topic: 't', key: 'k', value: b('v'), headers: { a: b('1') } as unknown as Map<Buffer, Buffer>, timestamp: t0 }],
  ]) {
    assert.throws(
      () => createRecordsBatch(clone(asLibrary(ms as never)), {} as never),
      (err: Error) => {
        assert.throws(() => lean.createRecordsBatch(clone(ms as unknown as Rec[]), {}), { message: err.message });
        return true;
      },
    );
  }
  // a timestamp of a fraction of a millisecond: the library's encoder, with its whole milliseconds
  const fraction = { topic: 't', key: 'k', value: 'v', headers: new Map([['h', 'x']]), timestamp: Number(t0) + 0.5 };
  const expected = createRecordsBatch(clone(asLibrary([{ ...fraction, timestamp: Number(t0) }])), {} as never).buffer;
  assert.ok(lean.createRecordsBatch([fraction] as unknown as MessageRecord[], {}).buffer.equals(expected));
  const after = lean.leanRecordsCounts();
  assert.equal(after.lean - before.lean, 0);
  assert.equal(after.library - before.library, 3, 'each went to the library');
});

test('random batches: 300 of them, byte for byte', async () => {
  let seed = 7;
  const rnd = (n: number) => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed % n;
  };
  for (let round = 0; round < 300; round++) {
    const n = 1 + rnd(60);
    const ms: Rec[] = [];
    for (let i = 0; i < n; i++) {
      const headers = new Map<Buffer, Buffer>();
      for (let h = rnd(4); h > 0; h--) headers.set(Buffer.alloc(rnd(20), 65 + h), Buffer.alloc(rnd(300), rnd(256)));
      ms.push({
        topic: 't',
        key: rnd(5) === 0 ? undefined : Buffer.alloc(rnd(150), rnd(256)),
        value: Buffer.alloc(rnd(5) === 0 ? rnd(20_000) : rnd(400), rnd(256)),
        headers: rnd(6) === 0 ? undefined : headers,
        timestamp: t0 + BigInt(rnd(2_000_000) - 1_000_000),
      });
    }
    await same(ms, { producerId: BigInt(rnd(1_000_000)), producerEpoch: rnd(100), compression: rnd(3) === 0 ? 'lz4' : 'none' }, `random batch ${round}`);
  }
});

test('headers as a flat list [name, value, ...] give the bytes of the same headers as a Map; to the library, the list goes as a Map', () => {
  const t = Number(t0);
  const ms: Array<Record<string, unknown> & { headers: Map<unknown, unknown> }> = [
    {
      topic: 't',
      key: 'ts-1',
      value: b('{"v":1}'),
      headers: new Map<unknown, unknown>([
        [b('mqtt-topic'), 'stage/malta/ts-1/telemetry'],
        [b('mqtt-qos'), '1'],
      ]),
      timestamp: t,
    },
    { topic: 't', key: undefined, value: b('x'), headers: new Map(), timestamp: t + 1 },
    {
      topic: 't',
      key: 'k',
      value: 'v',
      headers: new Map<unknown, unknown>([
        [b('u'), 'one'],
        [b('u'), 'two'],
        ['Lager-Süd', '工厂'],
      ]),
      timestamp: t + 2,
    },
  ];
  const asList = () => ms.map((m) => ({ ...m, headers: [...m.headers].flat() })) as unknown as MessageRecord[];
  const before = lean.leanRecordsCounts();
  for (const compression of ['none', 'gzip']) {
    const options = { compression, producerId: 9n, producerEpoch: 1, sequences: new NumericMap(), partitionLeaderEpoch: 0 };
    const expected = createRecordsBatch(clone(asLibrary(ms)), options as never).buffer;
    const actual = lean.createRecordsBatch(asList(), options as never).buffer;
    assert.ok(actual.equals(expected), `${compression}: bytes differ\n  library ${expected.toString('hex')}\n  lean    ${actual.toString('hex')}`);
  }
  assert.equal(lean.leanRecordsCounts().lean - before.lean, 2);
  // a timestamp of a fraction of a millisecond goes to the library's encoder: the list made its Map
  const fraction = { topic: 't', key: 'k', value: 'v', headers: ['h', 'x', 'h', 'y'], timestamp: t + 0.5 };
  const expected = createRecordsBatch(
    clone(
      asLibrary([
        {
          ...fraction,
          headers: new Map([
            [b('h'), 'x'],
            [b('h'), 'y'],
          ]),
          timestamp: t,
        },
      ]),
    ),
    {} as never,
  ).buffer;
  assert.ok(lean.createRecordsBatch([fraction] as unknown as MessageRecord[], {}).buffer.equals(expected));
});

// @platformatic/kafka's RecordBatch v2 encoder, written into one buffer. The library builds each
// record from a Writer and a DynamicBuffer with a small Buffer per integer, varint, key, value and
// header (~15 per record), then concatenates the batch once for its CRC-32C and again for the
// request: ~4.8 KB allocated per ~200-byte record. This one measures the batch, allocates it once
// and writes every field in place, so a batch of 1,000 records is one allocation of its own size.
//
// The bytes are the library's (test/sinks/lean-records.test.ts compares them batch by batch,
// compressed and not) with one exception, a fix: a record's timestamp delta from the first record
// of its batch of 2^31 ms (24.8 days) or more. The library zigzags it with `>> 31n` where Kafka's
// varlong needs `>> 63`, and sizes it on 32 bits, so Kafka stored a record 2^31 + 5 ms after the
// first as 6 ms before it: one device with a clock weeks behind, first in a batch of payload-timed
// records, moved every other record of that batch to its time. Here every delta is Kafka's.
//
// Beside the library's shapes (Buffers, bigint timestamps) it takes what sluice's records are made
// of: a key, value, header name or header value given as a string is written as its UTF-8 bytes
// in place, and a timestamp may be a whole number of milliseconds, so the adapter makes no Buffer
// per key and header value and no BigInt per record. Anything else goes to the library's encoder,
// with strings and number timestamps first turned into the Buffers and bigints it takes: a field
// of another type, headers that are neither a Map nor a list. Headers may come as a flat list,
// [name, value, name, value, ...]: the library's producer passes a list on as it is (edited so in
// scripts/bundle-kafka-client.ts), where it makes two Maps of every record's headers.
// scripts/bundle-kafka-client.ts bundles the library's produce requests with this in place of its encoder.
import {
  type CreateRecordsBatchOptions,
  compressionsAlgorithms,
  crc32c,
  createRecordsBatch as libraryRecordsBatch,
  createRecordsBatchAsync as libraryRecordsBatchAsync,
  type MessageRecord,
  UnsupportedCompressionError,
  Writer,
} from '@platformatic/kafka';

type Options = Partial<CreateRecordsBatchOptions>;
type Algorithm = { bitmask: number; compressSync(data: Buffer): Buffer; compress?(data: Buffer): Promise<Buffer> };

/** firstOffset 8, length 4, partitionLeaderEpoch 4, magic 1, crc 4: what the CRC does not cover. */
const crcStart = 21;
/** ... then attributes 2, lastOffsetDelta 4, firstTimestamp 8, maxTimestamp 8, producerId 8, producerEpoch 2, firstSequence 4, records 4. */
const batchHead = crcStart + 40;
const magic = 2;
const isTransactional = 1 << 4;
/** Timestamp deltas written with number arithmetic; past them (±142,000 years) with bigint. */
const exactDelta = 2 ** 52;
/** Each record's length between the two passes, kept from batch to batch. */
let sizes = new Int32Array(1024);

/** Batches encoded here and handed to the library's encoder, since the process started. */
const counts = { lean: 0, library: 0 };
export function leanRecordsCounts(): { lean: number; library: number } {
  return { ...counts };
}

export function createRecordsBatch(messages: MessageRecord[], options: Options = {}): Writer {
  const records = encodeCounted(messages);
  if (records === undefined) return libraryRecordsBatch(libraryShapes(messages), options as CreateRecordsBatchOptions);
  const algorithm = algorithmOf(options.compression);
  return finish(messages, options, records, algorithm, algorithm?.compressSync(plain(records)));
}

export async function createRecordsBatchAsync(messages: MessageRecord[], options: Options = {}): Promise<Writer> {
  const records = encodeCounted(messages);
  if (records === undefined) return libraryRecordsBatchAsync(libraryShapes(messages), options as CreateRecordsBatchOptions);
  const algorithm = algorithmOf(options.compression);
  const body = algorithm && (algorithm.compress ? await algorithm.compress(plain(records)) : algorithm.compressSync(plain(records)));
  return finish(messages, options, records, algorithm, body);
}

/** encodeRecords, counted: encoded here, or left to the library's encoder (undefined). */
function encodeCounted(messages: MessageRecord[]): Encoded | undefined {
  const records = encodeRecords(messages);
  if (records === undefined) counts.library++;
  else counts.lean++;
  return records;
}

/** The messages as the library's encoder takes them: strings as Buffers, number timestamps as bigints (in place, as it settles them). */
function libraryShapes(messages: MessageRecord[]): MessageRecord[] {
  const bytes = (v: unknown) => (typeof v === 'string' ? Buffer.from(v) : v);
  for (const m of messages as unknown as Array<Record<string, unknown>>) {
    m.key = bytes(m.key);
    m.value = bytes(m.value);
    if (typeof m.timestamp === 'number') m.timestamp = BigInt(Math.trunc(m.timestamp));
    if (m.headers instanceof Map) {
      const headers = new Map();
      for (const [name, value] of m.headers) headers.set(bytes(name), bytes(value));
      m.headers = headers;
    } else if (Array.isArray(m.headers)) {
      const list = m.headers as unknown[];
      const headers = new Map();
      for (let h = 0; h < list.length; h += 2) headers.set(bytes(list[h]), bytes(list[h + 1]));
      m.headers = headers;
    }
  }
  return messages;
}

/** The records alone, what a compressed batch compresses. */
function plain(records: Encoded): Buffer {
  return records.buffer.subarray(batchHead);
}

interface Encoded {
  /** The batch's head (left blank) followed by its records. */
  buffer: Buffer;
  firstTimestamp: bigint;
  maxTimestamp: bigint;
}

/** The records of a batch after room for its head, or undefined when one is not of the shape encoded here. */
function encodeRecords(messages: MessageRecord[]): Encoded | undefined {
  const now = BigInt(Date.now());
  const firstTimestamp = timeOf(messages[0]?.timestamp ?? now);
  if (firstTimestamp === undefined) return undefined;
  const first = Number(firstTimestamp);
  // pass 1: every field checked and measured, nothing changed yet
  if (sizes.length < messages.length) sizes = new Int32Array(Math.max(messages.length, sizes.length * 2));
  stringCount = 0;
  let size = batchHead;
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as MessageRecord;
    const ts = timeOf(m.timestamp ?? now);
    if (ts === undefined) return undefined;
    const body = bodySize(m, deltaOf(ts, firstTimestamp, first), i);
    if (body < 0) return undefined;
    sizes[i] = body;
    size += varIntSize(body) + body;
  }
  // pass 2: written in place, the timestamps settled as the library settles them
  const buffer = Buffer.allocUnsafe(size);
  stringAt = 0;
  let maxTimestamp: bigint | number = firstTimestamp;
  let at = batchHead;
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as MessageRecord;
    const ts = (m.timestamp ?? now) as bigint | number;
    m.timestamp = ts as bigint;
    if (ts > maxTimestamp) maxTimestamp = ts;
    const delta = deltaOf(ts, firstTimestamp, first);
    at = writeVarInt(buffer, at, sizes[i] as number);
    buffer[at++] = 0; // attributes
    at = typeof delta === 'number' ? writeUnsigned(buffer, at, zigzag(delta)) : writeUnsigned64(buffer, at, zigzag64(delta));
    at = writeVarInt(buffer, at, i);
    at = writeBytes(buffer, at, m.key);
    at = writeBytes(buffer, at, m.value);
    const headers = m.headers as unknown;
    if (headers == null) {
      buffer[at++] = 0;
    } else if (Array.isArray(headers)) {
      at = writeVarInt(buffer, at, headers.length >> 1);
      for (let h = 0; h < headers.length; h++) at = writeBytes(buffer, at, headers[h] as Buffer | string);
    } else {
      at = writeVarInt(buffer, at, (headers as Map<unknown, unknown>).size);
      for (const [name, value] of headers as Map<Buffer | string, Buffer | string>) {
        at = writeBytes(buffer, at, name);
        at = writeBytes(buffer, at, value);
      }
    }
  }
  if (at !== size) throw new Error(`RecordBatch encoder wrote ${at} of ${size} bytes`);
  return { buffer, firstTimestamp: BigInt(firstTimestamp), maxTimestamp: BigInt(maxTimestamp) };
}

/** A timestamp as given (a bigint, or a whole number of milliseconds), or undefined for anything else. */
function timeOf(ts: unknown): bigint | number | undefined {
  return typeof ts === 'bigint' || (typeof ts === 'number' && Number.isInteger(ts)) ? ts : undefined;
}

/** A record's timestamp delta from the batch's first: a number where one is exact, else a bigint. */
function deltaOf(ts: bigint | number, firstTimestamp: bigint | number, first: number): number | bigint {
  const t = Number(ts);
  const d = t - first;
  return Number.isSafeInteger(t) && Number.isSafeInteger(first) && Math.abs(d) < exactDelta ? d : BigInt(ts) - BigInt(firstTimestamp);
}

/** A record's length after its own length prefix, or -1 when a field is not a Buffer (or absent). */
function bodySize(m: MessageRecord, delta: number | bigint, offsetDelta: number): number {
  const key = bytesSize(m.key);
  const value = bytesSize(m.value);
  if (key < 0 || value < 0) return -1;
  const deltaSize = typeof delta === 'number' ? unsignedSize(zigzag(delta)) : unsigned64Size(zigzag64(delta));
  let size = 1 + deltaSize + varIntSize(offsetDelta) + key + value;
  const headers = m.headers as unknown;
  if (headers == null) return size + 1;
  if (Array.isArray(headers)) {
    if (headers.length % 2 !== 0) return -1;
    size += varIntSize(headers.length >> 1);
    for (let h = 0; h < headers.length; h++) {
      const n = bytesSize(headers[h]);
      if (n < 0) return -1;
      size += n;
    }
    return size;
  }
  if (!(headers instanceof Map)) return -1;
  size += varIntSize(headers.size);
  for (const [name, value] of headers as Map<unknown, unknown>) {
    const n = bytesSize(name);
    const v = bytesSize(value);
    if (n < 0 || v < 0) return -1;
    size += n + v;
  }
  return size;
}

/**
 * The UTF-8 lengths of a batch's strings, in the order pass 1 met them, for pass 2: each string
 * is measured once. `stringAt` is the next one to read back.
 */
let stringSizes = new Int32Array(4096);
let stringCount = 0;
let stringAt = 0;
/** Strings up to this many characters are measured and, when ASCII, written by a loop here: cheaper than a call into Buffer's native code. */
const shortString = 24;

/** Length prefix plus bytes (a string's UTF-8); null and undefined are the length -1 alone. */
function bytesSize(b: unknown): number {
  if (b == null) return 1;
  let n: number;
  if (typeof b === 'string') {
    n = b.length <= shortString ? shortByteLength(b) : Buffer.byteLength(b);
    if (stringCount === stringSizes.length) {
      const grown = new Int32Array(stringSizes.length * 2);
      grown.set(stringSizes);
      stringSizes = grown;
    }
    stringSizes[stringCount++] = n;
  } else if (Buffer.isBuffer(b)) {
    n = b.length;
  } else {
    return -1;
  }
  return varIntSize(n) + n;
}

function shortByteLength(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s);
  return s.length;
}

function writeBytes(buffer: Buffer, at: number, b: Buffer | string | undefined | null): number {
  if (b == null) {
    buffer[at] = 1; // zigzag(-1)
    return at + 1;
  }
  if (typeof b === 'string') {
    const n = stringSizes[stringAt++] as number;
    at = writeVarInt(buffer, at, n);
    if (n === b.length && n <= shortString) {
      for (let i = 0; i < n; i++) buffer[at + i] = b.charCodeAt(i); // ASCII: one byte a character
      return at + n;
    }
    return at + buffer.write(b, at, n);
  }
  at = writeVarInt(buffer, at, b.length);
  if (b.length > 0) buffer.set(b, at);
  return at + b.length;
}

/** The head before the records, the CRC over attributes to the end, in one buffer. */
function finish(messages: MessageRecord[], options: Options, records: Encoded, algorithm: Algorithm | undefined, body: Buffer | undefined): Writer {
  let batch = records.buffer;
  if (body !== undefined) {
    batch = Buffer.allocUnsafe(batchHead + body.length);
    body.copy(batch, batchHead);
  }
  let attributes = options.transactionalId ? isTransactional : 0;
  if (algorithm) attributes |= algorithm.bitmask;
  let firstSequence = 0;
  if (options.sequences) {
    const m = messages[0] as MessageRecord;
    firstSequence = options.sequences.getWithDefault(`${m.topic}:${m.partition}`, 0);
  }
  batch.writeBigInt64BE(0n, 0); // firstOffset
  batch.writeInt32BE(batch.length - 12, 8);
  batch.writeInt32BE(options.partitionLeaderEpoch ?? 0, 12);
  batch.writeInt8(magic, 16);
  batch.writeInt16BE(attributes, crcStart);
  batch.writeInt32BE(messages.length - 1, crcStart + 2);
  batch.writeBigInt64BE(records.firstTimestamp, crcStart + 6);
  batch.writeBigInt64BE(records.maxTimestamp, crcStart + 14);
  batch.writeBigInt64BE(options.producerId ?? -1n, crcStart + 22);
  batch.writeInt16BE(options.producerEpoch ?? 0, crcStart + 30);
  batch.writeInt32BE(firstSequence, crcStart + 32);
  batch.writeInt32BE(messages.length, crcStart + 36);
  // the library's CRC-32C (native where it loads) reads a DynamicBuffer of one buffer without a copy
  batch.writeUInt32BE(crc32c(Writer.create().append(batch.subarray(crcStart)).dynamicBuffer), 17);
  return Writer.create().append(batch);
}

function algorithmOf(compression: string | undefined): Algorithm | undefined {
  if ((compression ?? 'none') === 'none') return undefined;
  const algorithm = (compressionsAlgorithms as unknown as Record<string, Algorithm | undefined>)[compression as string];
  if (!algorithm) throw new UnsupportedCompressionError(`Unsupported compression algorithm ${compression}`);
  return algorithm;
}

/** Kafka's signed varint: zigzag, then 7 bits a byte. */
function zigzag(n: number): number {
  return n >= 0 ? n * 2 : -n * 2 - 1;
}

function varIntSize(n: number): number {
  return unsignedSize(zigzag(n));
}

function unsignedSize(u: number): number {
  let bytes = 1;
  while (u >= 0x80) {
    u = Math.floor(u / 0x80);
    bytes++;
  }
  return bytes;
}

function writeVarInt(buffer: Buffer, at: number, n: number): number {
  return writeUnsigned(buffer, at, zigzag(n));
}

/** Kafka's varlong zigzag, for deltas past what a double holds exactly. */
function zigzag64(n: bigint): bigint {
  return BigInt.asUintN(64, (n << 1n) ^ (n >> 63n));
}

function unsigned64Size(u: bigint): number {
  let bytes = 1;
  while (u >= 0x80n) {
    u >>= 7n;
    bytes++;
  }
  return bytes;
}

function writeUnsigned64(buffer: Buffer, at: number, u: bigint): number {
  while (u >= 0x80n) {
    buffer[at++] = Number(u & 0x7fn) | 0x80;
    u >>= 7n;
  }
  buffer[at++] = Number(u);
  return at;
}

function writeUnsigned(buffer: Buffer, at: number, u: number): number {
  while (u >= 0x80) {
    buffer[at++] = (u & 0x7f) | 0x80;
    u = Math.floor(u / 0x80);
  }
  buffer[at++] = u;
  return at;
}

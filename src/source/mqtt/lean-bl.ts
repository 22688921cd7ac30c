// mqtt-packet's reads from its BufferList, without a Buffer made per read or per packet. bl 6
// reads an integer by slicing its bytes into a new Buffer and reading that (`this.slice(offset,
// offset + 1).readUInt8(0)`, through `copy` and an `_offset` array), and decodes a string or
// slices a payload the same way; and each `consume` (three a packet: its header byte, its length,
// the packet) slices what is left of the first buffer into a new Buffer. A PUBLISH made ~13
// throwaway Buffers that way. Here the list keeps how far into its first buffer it has consumed
// (`sluiceHead`), and a read that lies inside that buffer (nearly every one: a socket chunk holds
// many packets, and mqtt-packet consumes each packet from the front) reads it in place. Any other
// call first cuts the consumed bytes off the first buffer, as bl's consume would have, and then
// goes to bl's own method, so every value, view and error is bl's. Applied to the bl that
// mqtt-packet resolves, once, when the MQTT source loads (mqtt-session.ts).
import { createRequire } from 'node:module';

interface List {
  _bufs: Buffer[];
  length: number;
  /** Bytes of `_bufs[0]` already consumed (0 or absent: none). */
  sluiceHead?: number;
}
type Read = (this: List, offset?: number) => number;
type Slice = (this: List, start?: number, end?: number) => Buffer;
type Decode = (this: List, encoding?: BufferEncoding, start?: number, end?: number) => string;
type Consume = (this: List, bytes: number) => List;
interface Methods {
  readUInt8: Read;
  readUInt16BE: Read;
  readUInt32BE: Read;
  slice: Slice;
  toString: Decode;
  consume: Consume;
  sluiceLean?: true;
}

/** The methods replaced here; every other method of bl's is called with the list cut first. */
const leanMethods = new Set(['readUInt8', 'readUInt16BE', 'readUInt32BE', 'slice', 'toString', 'consume', 'constructor']);

/** bl's BufferListStream (what mqtt-packet's parser makes) and BufferList, as mqtt-packet resolves them. */
function mqttPacketBl(): { prototype: Methods; BufferList?: { prototype: Methods } } {
  const require = createRequire(import.meta.url);
  const mqttPacket = createRequire(require.resolve('mqtt')).resolve('mqtt-packet');
  return createRequire(mqttPacket)('bl');
}

/** True when [start, end) is a range of integers inside `first`, from `head` on (`start`, `end` counted from `head`). */
function inside(first: Buffer | undefined, head: number, start: unknown, end: number): first is Buffer {
  return (
    first !== undefined && typeof start === 'number' && (start | 0) === start && start >= 0 && (end | 0) === end && head + end <= first.length && start <= end
  );
}

/** Cuts the consumed bytes off the first buffer: the list as bl's own consume would have left it. */
function cut(list: List): void {
  const head = list.sluiceHead;
  if (head !== undefined && head > 0) {
    list._bufs[0] = (list._bufs[0] as Buffer).subarray(head);
    list.sluiceHead = 0;
  }
}

export function leanBufferList(): void {
  const bl = mqttPacketBl();
  // BufferListStream copied BufferList's methods when it loaded: both carry them
  for (const proto of new Set([bl.prototype, bl.BufferList?.prototype])) if (proto && !proto.sluiceLean) lean(proto);
}

function lean(proto: Methods): void {
  const { readUInt8, readUInt16BE, readUInt32BE, slice, toString: decode, consume } = proto;
  const methods = proto as unknown as Record<string, unknown>;
  for (const name of Object.getOwnPropertyNames(proto)) {
    const own = methods[name];
    if (leanMethods.has(name) || typeof own !== 'function') continue;
    // never on mqtt-packet's path: the list (and a list given as an argument) cut first
    methods[name] = function cutFirst(this: List, ...args: unknown[]): unknown {
      cut(this);
      for (const a of args) if (a !== null && typeof a === 'object' && 'sluiceHead' in a) cut(a as List);
      return (own as (...a: unknown[]) => unknown).apply(this, args);
    };
  }
  proto.readUInt8 = function readUInt8Lean(this: List, offset = 0): number {
    const first = this._bufs[0];
    const head = this.sluiceHead ?? 0;
    if (inside(first, head, offset, offset + 1)) return first[head + offset] as number;
    cut(this);
    return readUInt8.call(this, offset);
  };
  proto.readUInt16BE = function readUInt16BELean(this: List, offset = 0): number {
    const first = this._bufs[0];
    const head = this.sluiceHead ?? 0;
    if (inside(first, head, offset, offset + 2)) return ((first[head + offset] as number) << 8) | (first[head + offset + 1] as number);
    cut(this);
    return readUInt16BE.call(this, offset);
  };
  proto.readUInt32BE = function readUInt32BELean(this: List, offset = 0): number {
    const first = this._bufs[0];
    const head = this.sluiceHead ?? 0;
    if (inside(first, head, offset, offset + 4)) return first.readUInt32BE(head + offset);
    cut(this);
    return readUInt32BE.call(this, offset);
  };
  proto.slice = function sliceLean(this: List, start?: number, end?: number): Buffer {
    const first = this._bufs[0];
    const head = this.sluiceHead ?? 0;
    // bl's slice of a range inside one buffer is that buffer's view of it (a slice of the whole
    // first buffer, which bl may answer with the buffer itself, is left to bl)
    if (end !== undefined && inside(first, head, start, end) && !(head + (start as number) === 0 && end === first.length)) {
      return first.subarray(head + (start as number), head + end);
    }
    cut(this);
    return slice.call(this, start, end);
  };
  proto.toString = function toStringLean(this: List, encoding?: BufferEncoding, start?: number, end?: number): string {
    const first = this._bufs[0];
    const head = this.sluiceHead ?? 0;
    if (end !== undefined && inside(first, head, start, end)) return first.toString(encoding, head + (start as number), head + end);
    cut(this);
    return decode.call(this, encoding, start, end);
  };
  proto.consume = function consumeLean(this: List, bytes: number): List {
    const first = this._bufs[0];
    const head = this.sluiceHead ?? 0;
    // a whole number of bytes that ends inside the first buffer moves its head; one that ends
    // it drops it, as bl would
    if (first !== undefined && typeof bytes === 'number' && (bytes | 0) === bytes && bytes > 0 && head + bytes <= first.length) {
      this.length -= bytes;
      if (head + bytes === first.length) {
        this._bufs.shift();
        this.sluiceHead = 0;
      } else {
        this.sluiceHead = head + bytes;
      }
      return this;
    }
    cut(this);
    return consume.call(this, bytes);
  };
  proto.sluiceLean = true;
}

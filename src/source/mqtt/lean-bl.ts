// mqtt-packet's reads from its BufferList, without a Buffer made per read. bl 6 reads an integer
// by slicing its bytes into a new Buffer and reading that (`this.slice(offset, offset + 1)
// .readUInt8(0)`, through `copy` and an `_offset` array), and decodes a string or slices a
// payload the same way: a PUBLISH made ~10 throwaway Buffers that way. Here a read that lies
// inside the list's first buffer (nearly every one: a socket chunk holds many packets, and
// mqtt-packet consumes each packet from the front) reads that buffer in place; any other read
// goes to bl's own method, so every value, view and error is bl's. Applied to the bl that
// mqtt-packet resolves, once, when the MQTT source loads (mqtt-session.ts).
import { createRequire } from 'node:module';

interface List {
  _bufs: Buffer[];
}
type Read = (this: List, offset?: number) => number;
type Slice = (this: List, start?: number, end?: number) => Buffer;
type Decode = (this: List, encoding?: BufferEncoding, start?: number, end?: number) => string;
interface Methods {
  readUInt8: Read;
  readUInt16BE: Read;
  readUInt32BE: Read;
  slice: Slice;
  toString: Decode;
  sluiceLean?: true;
}

/** bl's BufferListStream (what mqtt-packet's parser makes) and BufferList, as mqtt-packet resolves them. */
function mqttPacketBl(): { prototype: Methods; BufferList?: { prototype: Methods } } {
  const require = createRequire(import.meta.url);
  const mqttPacket = createRequire(require.resolve('mqtt')).resolve('mqtt-packet');
  return createRequire(mqttPacket)('bl');
}

/** True when [start, end) is a range of integers inside `first`. */
function inside(first: Buffer | undefined, start: unknown, end: number): first is Buffer {
  return first !== undefined && typeof start === 'number' && (start | 0) === start && start >= 0 && (end | 0) === end && end <= first.length && start <= end;
}

export function leanBufferList(): void {
  const bl = mqttPacketBl();
  // BufferListStream copied BufferList's methods when it loaded: both carry them
  for (const proto of new Set([bl.prototype, bl.BufferList?.prototype])) if (proto && !proto.sluiceLean) lean(proto);
}

function lean(proto: Methods): void {
  const { readUInt8, readUInt16BE, readUInt32BE, slice, toString: decode } = proto;
  proto.readUInt8 = function readUInt8Lean(this: List, offset = 0): number {
    const first = this._bufs[0];
    return inside(first, offset, offset + 1) ? (first[offset] as number) : readUInt8.call(this, offset);
  };
  proto.readUInt16BE = function readUInt16BELean(this: List, offset = 0): number {
    const first = this._bufs[0];
    return inside(first, offset, offset + 2) ? ((first[offset] as number) << 8) | (first[offset + 1] as number) : readUInt16BE.call(this, offset);
  };
  proto.readUInt32BE = function readUInt32BELean(this: List, offset = 0): number {
    const first = this._bufs[0];
    return inside(first, offset, offset + 4) ? first.readUInt32BE(offset) : readUInt32BE.call(this, offset);
  };
  proto.slice = function sliceLean(this: List, start?: number, end?: number): Buffer {
    const first = this._bufs[0];
    // bl's slice of a range inside one buffer is that buffer's view of it (a full-list slice is
    // the buffer itself: left to bl)
    return end !== undefined && inside(first, start, end) && !(start === 0 && end === first.length) ? first.subarray(start, end) : slice.call(this, start, end);
  };
  proto.toString = function toStringLean(this: List, encoding?: BufferEncoding, start?: number, end?: number): string {
    const first = this._bufs[0];
    return end !== undefined && inside(first, start, end) ? first.toString(encoding, start, end) : decode.call(this, encoding, start, end);
  };
  proto.sluiceLean = true;
}

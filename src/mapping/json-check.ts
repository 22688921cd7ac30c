// Whether a payload's bytes are one JSON text, without building it. A route whose outputs only
// forward the payload (a Kafka output with no schema, payload timestamp or array fan-out) still
// refuses a payload that is not JSON, but it has no use for the parsed value: JSON.parse of a
// ~200-byte telemetry object costs ~1.2 µs and a few hundred bytes of objects and strings that
// are garbage at once; this reads the bytes once and allocates nothing.
//
// It answers for the router's own reading (payload-text.ts then JSON.parse): a leading byte
// order mark is skipped, whitespace is JSON's four, strings take any byte of 0x20 and above (the
// caller checks UTF-8 with Buffer's isUtf8) and JSON's escapes, numbers are JSON's grammar, any
// depth. Only a "yes" is trusted: the router sends every "no" to the real decode, which then
// either refuses the payload with JSON.parse's own words or, should the two ever disagree,
// parses it. test/mapping/json-check.test.ts compares it with JSON.parse on generated and
// mutated texts.
//
// A JsonProjection reads the same bytes for a route whose outputs read only some members of a
// top-level object (an InfluxDB output's `$.temperature`, `$.ts`): it checks the whole text as
// above and builds only those members, each as JSON.parse builds it, so the ~200-byte payload's
// other members (a firmware string, a status, a note) are never made into values. It answers for
// JSON.parse too: its object is JSON.parse's value with only those members, or undefined when it
// cannot say (not an object, a member name with an escape, not JSON), and the router then parses
// the whole payload. test/mapping/json-check.test.ts compares the two.

import { isUtf8 } from 'node:buffer';

/** Containers open at each depth: 1 an object, 2 an array. Grown when a payload nests deeper. */
let stack: Uint8Array = new Uint8Array(64);

const object = 1;
const array = 2;

/** True when the bytes (after an optional UTF-8 byte order mark) are exactly one JSON value with whitespace around it. */
export function isJsonText(b: Uint8Array): boolean {
  const n = b.length;
  const i = valueEnd(b, bomEnd(b), n);
  return i >= 0 && skipSpace(b, i, n) === n;
}

function bomEnd(b: Uint8Array): number {
  return b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? 3 : 0;
}

/** One JSON value, of any depth, at i (after optional whitespace): the index after it, or -1. */
function valueEnd(b: Uint8Array, i: number, n: number): number {
  let depth = 0;
  for (;;) {
    // a value at i
    i = skipSpace(b, i, n);
    if (i >= n) return -1;
    const c = b[i] as number;
    if (c === 0x7b) {
      i = skipSpace(b, i + 1, n);
      if (i < n && b[i] === 0x7d) {
        i++;
      } else {
        i = memberName(b, i, n);
        if (i < 0) return -1;
        if (depth === stack.length) stack = grown(stack);
        stack[depth++] = object;
        continue;
      }
    } else if (c === 0x5b) {
      i = skipSpace(b, i + 1, n);
      if (i < n && b[i] === 0x5d) {
        i++;
      } else {
        if (depth === stack.length) stack = grown(stack);
        stack[depth++] = array;
        continue;
      }
    } else if (c === 0x22) {
      i = stringEnd(b, i + 1, n);
    } else if (c === 0x74) {
      i = literal(b, i, n, 0x72, 0x75, 0x65); // true
    } else if (c === 0x66) {
      i = b[i + 1] === 0x61 ? literal(b, i + 1, n, 0x6c, 0x73, 0x65) : -1; // false
    } else if (c === 0x6e) {
      i = literal(b, i, n, 0x75, 0x6c, 0x6c); // null
    } else {
      i = numberEnd(b, i, n);
    }
    if (i < 0) return -1;
    // after a value: commas and closing brackets until the next value or the end
    for (;;) {
      if (depth === 0) return i;
      i = skipSpace(b, i, n);
      if (i >= n) return -1;
      const d = b[i] as number;
      const open = stack[depth - 1];
      if (d === 0x2c) {
        i++;
        if (open === object) {
          i = memberName(b, skipSpace(b, i, n), n);
          if (i < 0) return -1;
        }
        break;
      }
      if ((open === object && d === 0x7d) || (open === array && d === 0x5d)) {
        depth--;
        i++;
        continue;
      }
      return -1;
    }
  }
}

function grown(s: Uint8Array): Uint8Array {
  const g = new Uint8Array(s.length * 2);
  g.set(s);
  return g;
}

function skipSpace(b: Uint8Array, i: number, n: number): number {
  while (i < n) {
    const c = b[i] as number;
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

/** `"name"` then `:` at i: the index after the colon, or -1. */
function memberName(b: Uint8Array, i: number, n: number): number {
  if (i >= n || b[i] !== 0x22) return -1;
  i = stringEnd(b, i + 1, n);
  if (i < 0) return -1;
  i = skipSpace(b, i, n);
  return i < n && b[i] === 0x3a ? i + 1 : -1;
}

/** The index after the closing quote of a string whose contents start at i, or -1. */
function stringEnd(b: Uint8Array, i: number, n: number): number {
  for (;;) {
    while (i < n && plain[b[i] as number] === 1) i++;
    if (i >= n) return -1;
    const c = b[i] as number;
    if (c === 0x22) return i + 1;
    if (c !== 0x5c || i + 1 >= n) return -1; // a control character, or a backslash at the end
    const e = b[i + 1];
    if (e === 0x75) {
      if (i + 5 >= n || !hex(b[i + 2]) || !hex(b[i + 3]) || !hex(b[i + 4]) || !hex(b[i + 5])) return -1;
      i += 6;
    } else if (e === 0x22 || e === 0x5c || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
      i += 2; // \" \\ \/ \b \f \n \r \t
    } else {
      return -1;
    }
  }
}

/** Bytes that stand for themselves in a string: all but the quote, the backslash and controls. */
const plain = new Uint8Array(256).fill(1, 0x20);
plain[0x22] = 0;
plain[0x5c] = 0;

function hex(c: number | undefined): boolean {
  return c !== undefined && ((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46));
}

function digit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}

/** The first letter at i is checked by the caller; the next three must be these. */
function literal(b: Uint8Array, i: number, n: number, x: number, y: number, z: number): number {
  return i + 3 < n && b[i + 1] === x && b[i + 2] === y && b[i + 3] === z ? i + 4 : -1;
}

/** `-? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?` at i: the index after it, or -1. */
function numberEnd(b: Uint8Array, i: number, n: number): number {
  if (i < n && b[i] === 0x2d) i++;
  if (i >= n) return -1;
  if (b[i] === 0x30) i++;
  else if (digit(b[i])) i = digitsEnd(b, i + 1, n);
  else return -1;
  if (i < n && b[i] === 0x2e) {
    i++;
    if (i >= n || !digit(b[i])) return -1;
    i = digitsEnd(b, i + 1, n);
  }
  if (i < n && (b[i] === 0x65 || b[i] === 0x45)) {
    i++;
    if (i < n && (b[i] === 0x2b || b[i] === 0x2d)) i++;
    if (i >= n || !digit(b[i])) return -1;
    i = digitsEnd(b, i + 1, n);
  }
  return i;
}

function digitsEnd(b: Uint8Array, i: number, n: number): number {
  while (i < n && digit(b[i])) i++;
  return i;
}

/**
 * Picks the members named `keys` (decided when the rules load) of a payload that is one JSON
 * object. Not reentrant: one pick at a time (the router's, synchronous).
 */
export class JsonProjection {
  readonly keys: readonly string[];
  /** Each key's UTF-8 bytes, compared with a member name's bytes as written. */
  private readonly names: readonly Uint8Array[];
  /** Where the last member of each key starts and ends in the payload being read (-1: none yet). */
  private readonly starts: Int32Array;
  private readonly ends: Int32Array;

  /** Whether a member name can be picked: "__proto__" would set the object's prototype, not a member. */
  static takes(key: string): boolean {
    return key !== '__proto__';
  }

  constructor(keys: readonly string[]) {
    this.keys = [...new Set(keys)];
    for (const key of this.keys) if (!JsonProjection.takes(key)) throw new Error(`a projection cannot pick ${JSON.stringify(key)}`);
    this.names = this.keys.map((k) => Buffer.from(k, 'utf8'));
    this.starts = new Int32Array(this.keys.length);
    this.ends = new Int32Array(this.keys.length);
  }

  /**
   * The payload's members of these keys, as JSON.parse(payloadText(payload)) has them (a key it
   * lacks is absent), or undefined: the payload is not a JSON object this reads (the caller then
   * parses it, for the value or for JSON.parse's own refusal).
   */
  pick(payload: Buffer): Record<string, unknown> | undefined {
    const b = payload;
    const n = b.length;
    if (!isUtf8(b)) return undefined;
    let i = skipSpace(b, bomEnd(b), n);
    if (i >= n || b[i] !== 0x7b) return undefined;
    const starts = this.starts;
    const ends = this.ends;
    starts.fill(-1);
    i = skipSpace(b, i + 1, n);
    if (i < n && b[i] === 0x7d) {
      i++;
    } else {
      for (;;) {
        if (i >= n || b[i] !== 0x22) return undefined;
        const end = stringEnd(b, i + 1, n);
        if (end < 0) return undefined;
        const k = this.keyAt(b, i + 1, end - 1);
        if (k === escapedName) return undefined;
        i = skipSpace(b, end, n);
        if (i >= n || b[i] !== 0x3a) return undefined;
        const start = skipSpace(b, i + 1, n);
        i = valueEnd(b, start, n);
        if (i < 0) return undefined;
        // a name given twice: the last value, as JSON.parse keeps
        if (k >= 0) {
          starts[k] = start;
          ends[k] = i;
        }
        i = skipSpace(b, i, n);
        if (i >= n) return undefined;
        if (b[i] === 0x2c) {
          i = skipSpace(b, i + 1, n);
          continue;
        }
        if (b[i] !== 0x7d) return undefined;
        i++;
        break;
      }
    }
    if (skipSpace(b, i, n) !== n) return undefined;
    const picked: Record<string, unknown> = {};
    for (let k = 0; k < starts.length; k++) {
      const start = starts[k] as number;
      if (start >= 0) picked[this.keys[k] as string] = valueAt(b, start, ends[k] as number);
    }
    return picked;
  }

  /** Which key the member name between s and e (its contents) is: its index, -1 none, escapedName when it has an escape. */
  private keyAt(b: Uint8Array, s: number, e: number): number {
    for (let j = s; j < e; j++) if (b[j] === 0x5c) return escapedName;
    const length = e - s;
    for (let k = 0; k < this.names.length; k++) {
      const name = this.names[k] as Uint8Array;
      if (name.length !== length) continue;
      let j = 0;
      while (j < length && name[j] === b[s + j]) j++;
      if (j === length) return k;
    }
    return -1;
  }
}

/** A member name with an escape: what it names is not its bytes (the whole payload is parsed). */
const escapedName = -2;

/** Exact powers of ten for the fast number path. */
const powersOfTen = Array.from({ length: 16 }, (_, k) => 10 ** k);

/** The value of the checked JSON value between s and e, as JSON.parse makes it. */
function valueAt(b: Buffer, s: number, e: number): unknown {
  const c = b[s] as number;
  if (c === 0x22) {
    for (let j = s + 1; j < e - 1; j++) if (b[j] === 0x5c) return JSON.parse(b.toString('utf8', s, e));
    return b.toString('utf8', s + 1, e - 1);
  }
  if (c === 0x74) return true;
  if (c === 0x66) return false;
  if (c === 0x6e) return null;
  if (c === 0x7b || c === 0x5b) return JSON.parse(b.toString('utf8', s, e));
  return numberAt(b, s, e);
}

/**
 * A JSON number's value. Up to 15 digits without an exponent, the digits are an exact integer and
 * the point a division by an exact power of ten: one correctly rounded operation, so the same
 * double JSON.parse's correctly rounded conversion gives. Anything longer goes through Number().
 */
function numberAt(b: Buffer, s: number, e: number): number {
  let i = s;
  const negative = b[i] === 0x2d;
  if (negative) i++;
  let m = 0;
  let digits = 0;
  let point = -1;
  for (; i < e; i++) {
    const c = b[i] as number;
    if (c >= 0x30 && c <= 0x39) {
      m = m * 10 + (c - 0x30);
      digits++;
    } else if (c === 0x2e) {
      point = digits;
    } else {
      return Number(b.toString('latin1', s, e)); // an exponent
    }
  }
  if (digits > 15) return Number(b.toString('latin1', s, e));
  const v = point < 0 ? m : m / (powersOfTen[digits - point] as number);
  return negative ? -v : v;
}

/** True when the payload is strict UTF-8 holding one JSON text: JSON.parse of payloadText() would succeed. */
export function isJsonPayload(b: Uint8Array): boolean {
  return isUtf8(b) && isJsonText(b);
}

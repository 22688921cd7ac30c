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

import { isUtf8 } from 'node:buffer';

/** Containers open at each depth: 1 an object, 2 an array. Grown when a payload nests deeper. */
let stack: Uint8Array = new Uint8Array(64);

const object = 1;
const array = 2;

/** True when the bytes (after an optional UTF-8 byte order mark) are exactly one JSON value with whitespace around it. */
export function isJsonText(b: Uint8Array): boolean {
  const n = b.length;
  let i = n >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? 3 : 0;
  let depth = 0;
  for (;;) {
    // a value at i
    i = skipSpace(b, i, n);
    if (i >= n) return false;
    const c = b[i] as number;
    if (c === 0x7b) {
      i = skipSpace(b, i + 1, n);
      if (i < n && b[i] === 0x7d) {
        i++;
      } else {
        i = memberName(b, i, n);
        if (i < 0) return false;
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
    if (i < 0) return false;
    // after a value: commas and closing brackets until the next value or the end
    for (;;) {
      i = skipSpace(b, i, n);
      if (depth === 0) return i === n;
      if (i >= n) return false;
      const d = b[i] as number;
      const open = stack[depth - 1];
      if (d === 0x2c) {
        i++;
        if (open === object) {
          i = memberName(b, skipSpace(b, i, n), n);
          if (i < 0) return false;
        }
        break;
      }
      if ((open === object && d === 0x7d) || (open === array && d === 0x5d)) {
        depth--;
        i++;
        continue;
      }
      return false;
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

/** True when the payload is strict UTF-8 holding one JSON text: JSON.parse of payloadText() would succeed. */
export function isJsonPayload(b: Uint8Array): boolean {
  return isUtf8(b) && isJsonText(b);
}

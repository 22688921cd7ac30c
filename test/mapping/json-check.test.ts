// json-check.ts says whether a payload is JSON without parsing it: its answer must be JSON.parse's
// on the router's own reading (strict UTF-8, a leading byte order mark dropped), for valid texts
// of every shape and for texts one edit away from valid. Its projection picks members of a JSON
// object without parsing the rest: what it picks must be JSON.parse's members, value for value
// (pure code).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isJsonPayload, JsonProjection } from '../../src/mapping/json-check.ts';
import { payloadText } from '../../src/mapping/payload-text.ts';

function parses(b: Uint8Array): boolean {
  try {
    JSON.parse(payloadText(b));
    return true;
  } catch {
    return false;
  }
}

function agree(b: Uint8Array, label: string): void {
  const expected = parses(b);
  assert.equal(
    isJsonPayload(b),
    expected,
    `${label}: JSON.parse ${expected ? 'takes' : 'refuses'} ${JSON.stringify(Buffer.from(b).toString('latin1').slice(0, 200))}`,
  );
}

const bom = '\ufeff';

/** What JSON.parse makes of the payload's members of `keys`: undefined when it is no JSON object. */
function parsedMembers(b: Buffer, keys: readonly string[]): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(payloadText(b));
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const members: Record<string, unknown> = {};
  for (const key of keys) if (Object.hasOwn(value, key)) members[key] = (value as Record<string, unknown>)[key];
  return members;
}

/**
 * The projection's answer against JSON.parse's: a pick must be JSON.parse's members exactly (-0
 * and 0 apart); no pick is allowed only where JSON.parse gives no object or a member name has an
 * escape (the router then parses the whole). True when it picked.
 */
function projects(b: Buffer, keys: readonly string[], label: string): boolean {
  const picked = new JsonProjection(keys).pick(b);
  const expected = parsedMembers(b, keys);
  const shown = JSON.stringify(b.toString('latin1').slice(0, 200));
  if (picked === undefined) {
    assert.ok(expected === undefined || b.includes('\\'), `${label}: no pick from ${shown}, which JSON.parse reads as an object`);
    return false;
  }
  assert.notEqual(expected, undefined, `${label}: a pick from ${shown}, which JSON.parse refuses or reads as no object`);
  assert.deepStrictEqual(picked, expected, `${label}: keys ${JSON.stringify(keys)} of ${shown}`);
  return true;
}

test('hand-picked texts: the same answer as JSON.parse', () => {
  const texts = [
    ...[
      '',
      ' ',
      '\t\n\r ',
      '0',
      '-',
      '-0',
      '-01',
      '01',
      '1.',
      '.1',
      '1.5',
      '1e',
      '1e+',
      '1e-7',
      '1E5',
      '1.5e+300',
      '1e400',
      '-0.0e-0',
      '+1',
      '0x10',
      'NaN',
      'Infinity',
    ],
    ...[
      '""',
      '"',
      '"a',
      '"\\"',
      '"\\u12"',
      '"\\u12G4"',
      '"\\uabcg"',
      '"\\u00gf"',
      '"\\uG000"',
      '"\\uABCD"',
      '"\\uabcd"',
      '"\\ud800"',
      '"\\x"',
      '"\\/"',
      '"\\b\\f\\n\\r\\t"',
      '"a\tb"',
      '"a\nb"',
      '"\u0000"',
      '"\u001f"',
      '"\u007f"',
    ],
    ...['true', 'false', 'null', 'tru', 'truex', 'nul', 'nulll', 'falsey', 'fals', 'True', 'f', 'n', 't'],
    ...[
      '[]',
      '[ ]',
      '[1,]',
      '[,1]',
      '[1 2]',
      '[1,2]',
      '[[[]]]',
      '[[[]]',
      '[]]',
      '[] []',
      '{}',
      '{ }',
      '{"a":1}',
      '{"a":1,}',
      '{,}',
      '{"a" 1}',
      '{"a":}',
      '{1:2}',
      '{"a":1 "b":2}',
      '{"a":1,"a":2}',
      '{"__proto__":{}}',
    ],
    ...[
      `${bom}{}`,
      bom,
      `${bom}${bom}{}`,
      ` ${bom}{}`,
      `{}${bom}`,
      `"${bom}"`,
      '\u00a0{}',
      '{}\u00a0',
      '\v{}',
      '{}\f',
      '[1,\v2]',
      '\u2028',
      '"\u2028\u2029"',
      '"é工🚚"',
      '{"é":"ß"}',
      'é',
    ],
    ...['[1,{"a":[true,false,null,"x",-1.5e3,{}]},[]]', ' { "nested" : [ 1 , 2 ] } ', '{"a":[}', '{"a":{]}', '[{"a":1]}'],
  ];
  for (const t of texts) {
    agree(Buffer.from(t), 'text');
    projects(Buffer.from(t), ['a', 'é', 'nested', 'missing'], 'text');
  }
  // invalid UTF-8 is no JSON text: a lone continuation byte, an overlong, a surrogate, a truncated sequence
  for (const bytes of [
    [0x22, 0x80, 0x22],
    [0x22, 0xc0, 0xaf, 0x22],
    [0x22, 0xed, 0xa0, 0x80, 0x22],
    [0x22, 0xe2, 0x82, 0x22],
    [0xef, 0xbb],
  ])
    agree(Buffer.from(bytes), 'bytes');
  // any depth, as JSON.parse
  agree(Buffer.from(`${'['.repeat(100_000)}${']'.repeat(100_000)}`), 'deep arrays');
  agree(Buffer.from(`${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}`), 'deep objects');
  agree(Buffer.from(`${'['.repeat(1_000)}${']'.repeat(999)}`), 'one bracket short');
  // a view into a larger buffer reads only its own bytes
  const pool = Buffer.from('{"a":1}  ,{');
  agree(pool.subarray(0, 7), 'a view');
  agree(pool.subarray(0, 10), 'a view with more after');
});

/** A deterministic generator (a run fails the same way every time). */
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0;
    return s % n;
  };
}

function randomValue(r: (n: number) => number, depth: number): unknown {
  const k = r(depth > 4 ? 6 : 9);
  if (k === 0) return null;
  if (k === 1) return r(2) === 0;
  if (k === 2) return [0, -0, 1, -1, 1.5, -2.5e-8, 1e21, 123456789012345, 0.1, 2 ** 53 + 2][r(10)];
  if (k === 3 || k === 4) {
    const pieces = ['a', 'Z', ' ', '"', '\\', '/', '\n', '\t', '\u0001', '\u001f', 'é', '工', '🚚', '\u2028', '\ufeff', 'x'.repeat(70)];
    let s = '';
    for (let i = r(6); i > 0; i--) s += pieces[r(pieces.length)];
    return s;
  }
  if (k === 5) return `${r(100)}`;
  if (k <= 7) return Array.from({ length: r(5) }, () => randomValue(r, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = r(5); i > 0; i--) o[String(randomValue(r, 99))] = randomValue(r, depth + 1);
  return o;
}

/** JSON.stringify with whitespace of JSON's four put between tokens, some of the time. */
function spaced(text: string, r: (n: number) => number): string {
  const ws = [' ', '\n', '\r', '\t', '  '];
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    out += c;
    if (c === '"' && text[i - 1] !== '\\') inString = !inString;
    if (!inString && ',:[]{}'.includes(c) && r(3) === 0) out += ws[r(ws.length)];
  }
  return (r(4) === 0 ? ws[r(ws.length)] : '') + out + (r(4) === 0 ? ws[r(ws.length)] : '');
}

test('20,000 generated JSON texts are JSON; 100,000 texts one to three edits from them answer as JSON.parse does', () => {
  const r = rng(2026);
  const alphabet = [...Buffer.from('{}[]",:\\ \t\n\r\v\f0123456789-+.eEtrufalsnxuaAfFgG'), 0x00, 0x1f, 0x7f, 0x80, 0xbf, 0xc3, 0xa9, 0xef, 0xbb, 0xff];
  let accepted = 0;
  let refused = 0;
  let picked = 0;
  for (let n = 0; n < 20_000; n++) {
    const value = randomValue(r, 0);
    const text = (r(3) === 0 ? bom : '') + spaced(JSON.stringify(value), r);
    const valid = Buffer.from(text);
    assert.equal(isJsonPayload(valid), true, `generated: ${text}`);
    // some of an object's own member names (and one it lacks) to pick
    const keys =
      value !== null && typeof value === 'object' && !Array.isArray(value)
        ? [...Object.keys(value).filter((k) => JsonProjection.takes(k) && r(3) > 0), 'missing']
        : [];
    if (keys.length > 0 && projects(valid, keys, 'generated')) picked++;
    for (let m = 0; m < 5; m++) {
      const b = [...valid];
      for (let edits = 1 + r(3); edits > 0; edits--) {
        const at = r(b.length + 1);
        const op = r(4);
        if (op === 0 && b.length > 0) b.splice(Math.min(at, b.length - 1), 1);
        else if (op === 1) b.splice(at, 0, alphabet[r(alphabet.length)] as number);
        else if (op === 2 && b.length > 0) b[Math.min(at, b.length - 1)] = alphabet[r(alphabet.length)] as number;
        else b.length = Math.min(b.length, at);
      }
      const mutated = Buffer.from(b);
      agree(mutated, 'mutated');
      if (keys.length > 0) projects(mutated, keys, 'mutated');
      if (parses(mutated)) accepted++;
      else refused++;
    }
  }
  // the edits must reach both answers often, or the comparison proves little
  assert.ok(accepted > 5_000 && refused > 50_000, `mutated texts: ${accepted} JSON, ${refused} not`);
  // ~2,200 of the generated values are objects; those with a name that needs an escape are not picked
  assert.ok(picked > 1_500, `generated objects picked from: ${picked}`);
});

test('a projection reads numbers as JSON.parse does: 300,000 generated, and the edges of its fast path', () => {
  const r = rng(21);
  const digits = (count: number) => Array.from({ length: count }, () => r(10)).join('');
  const texts = [
    '0',
    '-0',
    '-0.0',
    '0.1',
    '0.3',
    '0.000000000000001',
    '0.0000000000000001',
    '99999999999999.9',
    '999999999999999',
    '9999999999999999',
    '123456789012345',
    '1234567890123456',
    '9007199254740993',
    '18446744073709551615',
    '1.7976931348623157e308',
    '1e400',
    '-1e-400',
    '5e-324',
    '2.2250738585072014e-308',
    '1765000000000',
    '1765000000000000000',
    '20.1',
    '97.5',
  ];
  for (let n = 0; n < 300_000; n++) {
    const int = r(4) === 0 ? '0' : `${1 + r(9)}${digits(r(18))}`;
    const fraction = r(2) === 0 ? '' : `.${digits(1 + r(18))}`;
    const exponent = r(8) === 0 ? `${['e', 'E'][r(2)]}${['', '+', '-'][r(3)]}${r(400)}` : '';
    texts.push(`${r(3) === 0 ? '-' : ''}${int}${fraction}${exponent}`);
  }
  for (const t of texts) {
    const b = Buffer.from(`{"v":${t},"w":[${t}]}`);
    assert.ok(projects(b, ['v'], 'number'), t);
    assert.ok(Object.is((new JsonProjection(['v']).pick(b) as { v: number }).v, JSON.parse(t)), t);
  }
});

test('a projection: the last of a name given twice, values of every kind, names it cannot read', () => {
  const pick = (text: string, keys: readonly string[]) => new JsonProjection(keys).pick(Buffer.from(text));
  assert.deepStrictEqual(pick('{"a":1,"b":2,"a":3}', ['a']), { a: 3 });
  assert.deepStrictEqual(pick('{"a":{"x":[1]},"a":"s"}', ['a', 'b']), { a: 's' });
  assert.deepStrictEqual(
    pick(`${bom} { "s" : "tab\\tq\\"é" , "t":true,"f":false,"n":null,"o":{"k":[1,{"m":"é"}]},"l":[],"u":"\\ud800" } `, [
      's',
      't',
      'f',
      'n',
      'o',
      'l',
      'u',
      'x',
    ]),
    { s: 'tab\tq"é', t: true, f: false, n: null, o: { k: [1, { m: 'é' }] }, l: [], u: '\ud800' },
  );
  // a member name with an escape could be any key: no pick, the whole payload is parsed
  assert.equal(pick('{"\\u0061":1}', ['a']), undefined);
  assert.equal(pick('{"a\\nb":1}', ['a\\nb']), undefined);
  // not an object, or not JSON
  for (const text of ['[1]', '1', '"a"', 'null', '{"a":1} x', '{"a":1', '{"a":01}', '']) assert.equal(pick(text, ['a']), undefined, text);
  assert.deepStrictEqual(pick('{}', ['a']), {});
  assert.throws(() => new JsonProjection(['__proto__']), /cannot pick "__proto__"/);
  // a view into a larger buffer reads only its own bytes
  assert.deepStrictEqual(new JsonProjection(['a']).pick(Buffer.from('{"a":12}3}').subarray(0, 8)), { a: 12 });
});

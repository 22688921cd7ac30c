// partitioner.ts: Kafka's murmur2 in 32-bit integer arithmetic must be the Java client's, byte for
// byte of the key, for Buffers and strings alike (pure code; kafka-options.test.ts checks the
// partitions a real broker got on each client).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { murmur2 as libraryMurmur2 } from '@platformatic/kafka';
import { murmur2, murmur2OfString, Partitioner } from '../../src/sinks/kafka/client/partitioner.ts';

test("murmur2 gives the Java client's hashes (Kafka's UtilsTest vectors)", () => {
  const java: Array<[string, number]> = [
    ['21', -973932308],
    ['foobar', -790332482],
    ['a-little-bit-long-string', -985981536],
    ['a-little-bit-longer-string', -1486304829],
    ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ['abc', 479470107],
  ];
  for (const [key, hash] of java) {
    assert.equal(murmur2(Buffer.from(key)), hash, key);
    assert.equal(murmur2OfString(key), hash, key);
  }
});

test("murmur2 is @platformatic/kafka's BigInt murmur2 on 20,000 random keys of 0-70 bytes, as Buffers and as strings", () => {
  for (let n = 0; n < 20_000; n++) {
    const bytes = randomBytes(n % 71);
    assert.equal(murmur2(bytes), libraryMurmur2(bytes), bytes.toString('hex'));
  }
  const alphabet = ['a', 'Z', '0', '/', '-', 'é', 'ß', '工', '🚚', '\u0000', '\u007f', '\u0080'];
  for (let n = 0; n < 5_000; n++) {
    let key = '';
    for (let i = 0; i < n % 40; i++) key += alphabet[(n * 31 + i * 7) % (i % 5 === 4 ? alphabet.length : 5)];
    assert.equal(murmur2OfString(key), libraryMurmur2(Buffer.from(key)), JSON.stringify(key));
  }
});

test('the partitioner: a key by murmur2 made positive, modulo the partitions; keyless records in turn per topic', () => {
  const partitioner = new Partitioner();
  assert.equal(partitioner.of('t', 'foobar', 0x7fffffff), -790332482 & 0x7fffffff);
  assert.equal(partitioner.of('t', 'foobar', 7), (-790332482 & 0x7fffffff) % 7);
  assert.equal(partitioner.of('t', Buffer.from('foobar'), 7), (-790332482 & 0x7fffffff) % 7);
  assert.equal(partitioner.of('t', '', 5), (murmur2(Buffer.alloc(0)) & 0x7fffffff) % 5, 'an empty key is a key');
  assert.deepEqual(
    [null, null, null, null].map(() => partitioner.of('a', null, 3)),
    [0, 1, 2, 0],
  );
  assert.deepEqual([partitioner.of('b', null, 3), partitioner.of('a', null, 3)], [0, 1]);
});

// The partition of a record for the @platformatic/kafka adapter, as the Java client picks it for
// a key: murmur2 of the key's bytes, made positive (so kafkajs, librdkafka's murmur2_random and
// Java put a device on the same partition). The library's own murmur2 works in BigInt, ~35
// BigInts and ~0.4 µs per key; this one is 32-bit integer arithmetic (~0.02 µs) and reads a
// string key's characters without making its bytes when the key is ASCII. A record without a key
// goes to the topic's next partition in turn: the library's compatibility partitioner put every
// keyless record on partition 0.

const m = 0x5bd1e995;
const r = 24;

/** Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2) of a key's bytes, as a signed 32-bit integer. */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  let h = 0x9747b28c ^ length;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = (data[i] as number) | ((data[i + 1] as number) << 8) | ((data[i + 2] as number) << 16) | ((data[i + 3] as number) << 24);
    k = Math.imul(k, m);
    k ^= k >>> r;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const rest = length & 3;
  if (rest === 3) h ^= (data[whole + 2] as number) << 16;
  if (rest >= 2) h ^= (data[whole + 1] as number) << 8;
  if (rest >= 1) h = Math.imul(h ^ (data[whole] as number), m);
  return mixed(h);
}

/** murmur2 of a string's UTF-8 bytes; an ASCII string is read a character at a time. */
export function murmur2OfString(s: string): number {
  const length = s.length;
  for (let i = 0; i < length; i++) if (s.charCodeAt(i) >= 0x80) return murmur2(Buffer.from(s));
  let h = 0x9747b28c ^ length;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = s.charCodeAt(i) | (s.charCodeAt(i + 1) << 8) | (s.charCodeAt(i + 2) << 16) | (s.charCodeAt(i + 3) << 24);
    k = Math.imul(k, m);
    k ^= k >>> r;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const rest = length & 3;
  if (rest === 3) h ^= s.charCodeAt(whole + 2) << 16;
  if (rest >= 2) h ^= s.charCodeAt(whole + 1) << 8;
  if (rest >= 1) h = Math.imul(h ^ s.charCodeAt(whole), m);
  return mixed(h);
}

function mixed(h: number): number {
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/**
 * The partition of each record for the library's producer, chosen before the records are handed
 * over (so a failed send knows where each one went): the Java client's partition for a key, the
 * topic's next partition in turn for a keyless record.
 */
export class Partitioner {
  private readonly next = new Map<string, number>();

  of(topic: string, key: string | Uint8Array | null, partitions: number): number {
    if (typeof key === 'string') return (murmur2OfString(key) & 0x7fffffff) % partitions;
    if (key !== null) return (murmur2(key) & 0x7fffffff) % partitions;
    const n = this.next.get(topic) ?? 0;
    if (this.next.size >= 10_000 && n === 0) this.next.clear(); // topics from a template: bounded
    this.next.set(topic, (n + 1) & 0x7fffffff);
    return n % partitions;
  }
}

// The Kafka options production users expect, each against the local Kafka and on each client:
// every compression (the codec read back from the broker's own log segment), mTLS with the stack's
// CA, SASL PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512 / OAUTHBEARER (a token from a file and from a
// command), acks 1 and several requests in flight without idempotence, and the record timestamp
// taken from the payload. What a client cannot do is a config error naming it.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { Partitioners } from 'kafkajs';
import { tlsFiles } from '../../deploy/local/tls.ts';
import { compressions, type KafkaClientKind } from '../../src/sinks/kafka/client/kafka-client.ts';
import { kafkaConfig } from '../../src/sinks/kafka/config.ts';
import type { KafkaRecord } from '../../src/sinks/kafka/kafka-record.ts';
import { SinkError } from '../../src/sinks/sink.ts';
import { readTopic } from '../support/e2e-helpers.ts';
import { testedKafkaClients, testKafkaSink } from '../support/kafka-clients.ts';
import { config, endpoints, highWater, kafkaTopic, printLogsOnFailure } from '../support/stack.ts';

const tls = tlsFiles(config.runDir);
const { saslUsername: username, saslPassword: password } = config.kafka;

function records(topic: string, n: number, from = 0): KafkaRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    topic,
    key: `d-${(from + i) % 5}`,
    value: Buffer.from(JSON.stringify({ n: from + i, pad: 'x'.repeat(100) })),
    headers: { 'mqtt-qos': '1' },
    timestamp: Date.now(),
  }));
}

/** Writes 20 records through a sink with these settings: all durable, or the write's error. */
async function writeThrough(
  t: TestContext,
  client: KafkaClientKind,
  brokers: string[],
  section: Record<string, unknown>,
): Promise<{ topic: string; error?: SinkError }> {
  const topic = await kafkaTopic(t, 1);
  const sink = await testKafkaSink(t, client, { brokers, section: { connectTimeoutMs: 2_000, ...section } });
  try {
    const result = await sink.write(records(topic, 20));
    assert.deepEqual(result.rejected, []);
    return { topic };
  } catch (err) {
    assert.ok(err instanceof SinkError, `a SinkError, not ${String(err)}`);
    return { topic, error: err };
  }
}

/** An unsigned JWT, as Kafka's unsecured OAUTHBEARER mode takes it (alg none, a sub claim). */
function unsecuredJwt(sub: string): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return `${b64({ alg: 'none' })}.${b64({ sub, iat: now, exp: now + 3600 })}.`;
}

const codecNames = ['none', 'gzip', 'snappy', 'lz4', 'zstd'];

/**
 * The codec of the topic's first record batch as the broker stored it, read from its log segment:
 * the batch's attributes (int16 at byte 21: baseOffset 8, length 4, leader epoch 4, magic 1, crc 4)
 * hold the codec in their lowest 3 bits.
 */
function codecOf(topic: string): string {
  const dir = join(config.runDir, 'kafka/data', `${topic}-0`);
  const log = readdirSync(dir).find((f) => f.endsWith('.log'));
  assert.ok(log, `a log segment for ${topic}`);
  const head = readFileSync(join(dir, log)).subarray(0, 23);
  assert.equal(head.readInt8(16), 2, 'record batch format v2');
  return codecNames[head.readInt16BE(21) & 0x07] ?? 'unknown';
}

test('a compression kafkajs lacks is a config error naming the client; the limits of idempotence are named too', () => {
  for (const c of ['snappy', 'lz4', 'zstd']) {
    const r = kafkaConfig.safeParse({ client: 'kafkajs', compression: c });
    assert.equal(r.success, false);
    assert.match(r.error?.issues[0]?.message ?? '', new RegExp(`compression ${c} is not supported by kafka.client kafkajs`));
  }
  assert.equal(kafkaConfig.safeParse({ client: 'platformatic', compression: 'zstd' }).success, true);
  const inflight = kafkaConfig.safeParse({ maxInFlightRequests: 3 });
  assert.match(inflight.error?.issues[0]?.message ?? '', /keeps one request in flight per connection with an idempotent producer/);
  assert.equal(kafkaConfig.safeParse({ maxInFlightRequests: 3, idempotent: false }).success, true);
  assert.match(kafkaConfig.safeParse({ acks: 1 }).error?.issues[0]?.message ?? '', /needs acks -1/);
  assert.match(kafkaConfig.safeParse({ sasl: { mechanism: 'scram-sha-256', username: 'u' } }).error?.issues[0]?.message ?? '', /needs a password/);
  assert.match(kafkaConfig.safeParse({ sasl: { mechanism: 'oauthbearer' } }).error?.issues[0]?.message ?? '', /needs a token/);
  assert.match(kafkaConfig.safeParse({ tls: { cert: 'c.pem' } }).error?.issues[0]?.message ?? '', /cert and key go together/);
});

for (const client of testedKafkaClients) {
  const supported = client === 'kafkajs' ? ['none', 'gzip'] : compressions;

  test(`${client}: every compression it supports is what the broker stores, and all records are durable`, { timeout: 120_000 }, async (t) => {
    printLogsOnFailure(t);
    for (const compression of supported) {
      const { topic, error } = await writeThrough(t, client, [endpoints.kafka], { compression });
      assert.equal(error, undefined, `${compression}: ${error?.message}`);
      assert.equal(await highWater(topic), 20, `${compression}: 20 records`);
      assert.equal(codecOf(topic), compression, `${compression}: what the broker's log holds`);
    }
  });

  test(`${client}: mTLS with the stack's CA and a client certificate; no certificate or an unknown CA is refused and retriable`, {
    timeout: 120_000,
  }, async (t) => {
    printLogsOnFailure(t);
    const ok = await writeThrough(t, client, [endpoints.kafkaMtls], { tls: { ca: tls.ca, cert: tls.clientCert, key: tls.clientKey } });
    assert.equal(ok.error, undefined, ok.error?.message);
    assert.equal(await highWater(ok.topic), 20);
    const noCert = await writeThrough(t, client, [endpoints.kafkaMtls], { tls: { ca: tls.ca } });
    assert.ok(noCert.error?.retriable, 'without a client certificate: refused, retriable');
    assert.equal(await highWater(noCert.topic), 0);
    // the system CAs do not know the stack's CA
    const unknownCa = await writeThrough(t, client, [endpoints.kafkaMtls], { tls: { cert: tls.clientCert, key: tls.clientKey } });
    assert.ok(unknownCa.error?.retriable, 'a broker certificate from an unknown CA: refused');
    assert.equal(await highWater(unknownCa.topic), 0);
  });

  test(`${client}: SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 write; a wrong password is refused`, { timeout: 120_000 }, async (t) => {
    printLogsOnFailure(t);
    const dir = mkdtempSync(join(tmpdir(), 'sluice-sasl-'));
    writeFileSync(join(dir, 'password'), `${password}\n`);
    for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512']) {
      const ok = await writeThrough(t, client, [endpoints.kafkaSasl], { sasl: { mechanism, username, password: { file: join(dir, 'password') } } });
      assert.equal(ok.error, undefined, `${mechanism}: ${ok.error?.message}`);
      assert.equal(await highWater(ok.topic), 20, mechanism);
    }
    process.env.SLUICE_TEST_WRONG_PASSWORD = 'not-the-password';
    t.after(() => delete process.env.SLUICE_TEST_WRONG_PASSWORD);
    const wrong = await writeThrough(t, client, [endpoints.kafkaSasl], {
      sasl: { mechanism: 'scram-sha-512', username, password: { env: 'SLUICE_TEST_WRONG_PASSWORD' } },
    });
    assert.ok(wrong.error, 'a wrong password is refused');
    assert.ok(!wrong.error.message.includes('not-the-password'), 'the password is never in the error');
    assert.equal(await highWater(wrong.topic), 0);
  });

  test(`${client}: OAUTHBEARER with a token from a file and from a command`, { timeout: 120_000 }, async (t) => {
    printLogsOnFailure(t);
    const dir = mkdtempSync(join(tmpdir(), 'sluice-oauth-'));
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${unsecuredJwt(username)}\n`);
    const fromFile = await writeThrough(t, client, [endpoints.kafkaSasl], { sasl: { mechanism: 'oauthbearer', token: { file: tokenFile } } });
    assert.equal(fromFile.error, undefined, fromFile.error?.message);
    assert.equal(await highWater(fromFile.topic), 20);
    const script = join(dir, 'token.sh');
    writeFileSync(script, `#!/bin/sh\ncat ${JSON.stringify(tokenFile)}\n`);
    chmodSync(script, 0o755);
    const fromCommand = await writeThrough(t, client, [endpoints.kafkaSasl], { sasl: { mechanism: 'oauthbearer', token: { command: [script] } } });
    assert.equal(fromCommand.error, undefined, fromCommand.error?.message);
    assert.equal(await highWater(fromCommand.topic), 20);
  });

  test(`${client}: acks 1 and 3 requests in flight without idempotence write every record`, { timeout: 60_000 }, async (t) => {
    printLogsOnFailure(t);
    const r = await writeThrough(t, client, [endpoints.kafka], { acks: 1, idempotent: false, maxInFlightRequests: 3 });
    assert.equal(r.error, undefined, r.error?.message);
    assert.equal(await highWater(r.topic), 20);
  });

  test(`${client}: the record timestamp is the one the record carries (a payload's time), not the write time`, { timeout: 60_000 }, async (t) => {
    printLogsOnFailure(t);
    const topic = await kafkaTopic(t, 1);
    const sink = await testKafkaSink(t, client);
    const at = Date.parse('2026-11-30T08:00:00.123Z');
    const batch = records(topic, 3).map((r, i) => ({ ...r, timestamp: at + i }));
    assert.deepEqual((await sink.write(batch)).rejected, []);
    const seen = await readTopic(t, topic, (rs) => rs.length >= 3, 30_000, 5_000);
    assert.deepEqual(seen.map((r) => r.timestamp).sort(), [String(at), String(at + 1), String(at + 2)]);
  });

  test(`${client}: records of one batch months apart keep their own timestamps (one device's stale clock moves no other)`, { timeout: 60_000 }, async (t) => {
    printLogsOnFailure(t);
    const topic = await kafkaTopic(t, 1);
    const sink = await testKafkaSink(t, client);
    // the first record's clock is 300 days behind: the others are 2^31 ms (24.8 days) and more after it
    const day = 86_400_000;
    const at = Date.parse('2026-11-30T08:00:00.123Z');
    const times = [at - 300 * day, at, at - 1, at - 40 * day, at - 300 * day + 2 ** 31, at - 300 * day + 2 ** 31 + 5];
    const batch = records(topic, times.length).map((r, i) => ({ ...r, key: `d-${i}`, timestamp: times[i] as number }));
    assert.deepEqual((await sink.write(batch)).rejected, []);
    const seen = await readTopic(t, topic, (rs) => rs.length >= times.length, 30_000, 5_000);
    assert.deepEqual(
      seen.map((r) => [r.key?.toString(), Number(r.timestamp)]),
      times.map((ts, i) => [`d-${i}`, ts]),
    );
  });

  test(`${client}: a key goes to the partition the Java client picks (murmur2)`, { timeout: 60_000 }, async (t) => {
    printLogsOnFailure(t);
    const topic = await kafkaTopic(t, 5);
    const sink = await testKafkaSink(t, client);
    // ASCII of every length mod 4, and keys with two-, three- and four-byte UTF-8 characters
    const keys = [...Array.from({ length: 40 }, (_, i) => `plant-7/line-${i}/device-${(i * 7919) % 1000}`), 'hall-é', 'Lager-Süd/ö', '工厂-3', 'bin-🚚', ''];
    const batch = keys.map((key, i) => ({ topic, key, value: Buffer.from(String(i)), headers: { 'mqtt-qos': '1' }, timestamp: Date.now() }));
    assert.deepEqual((await sink.write(batch)).rejected, []);
    const seen = await readTopic(t, topic, (rs) => rs.length >= keys.length, 30_000, 5_000);
    // kafkajs' DefaultPartitioner is the Java client's murmur2 (its own tests check it against Java's)
    const java = Partitioners.DefaultPartitioner();
    const partitionMetadata = [0, 1, 2, 3, 4].map((partitionId) => ({ partitionId, leader: 1, partitionErrorCode: 0, replicas: [1], isr: [1] }));
    for (const r of seen) assert.equal(r.partition, java({ topic, partitionMetadata, message: { key: r.key, value: r.value } }), `key ${r.key}`);
    assert.equal(seen.length, keys.length);
  });

  test(`${client}: keyless records are spread over the topic's partitions, not piled on one`, { timeout: 60_000 }, async (t) => {
    printLogsOnFailure(t);
    const topic = await kafkaTopic(t, 5);
    const sink = await testKafkaSink(t, client);
    // eight writes some milliseconds apart: a sticky partitioner (librdkafka's) moves between them
    for (let w = 0; w < 8; w++) {
      const batch = records(topic, 10, w * 10).map((r) => ({ ...r, key: null }));
      assert.deepEqual((await sink.write(batch)).rejected, []);
      await new Promise((r) => setTimeout(r, 30));
    }
    const seen = await readTopic(t, topic, (rs) => rs.length >= 80, 30_000, 5_000);
    assert.equal(seen.length, 80);
    const partitions = new Set(seen.map((r) => r.partition));
    assert.ok(partitions.size >= 2, `80 keyless records on partitions ${[...partitions].join(', ')} of 0-4`);
  });
}

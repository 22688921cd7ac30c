// QoS 2 commands into the audit log, end to end against Mosquitto and Kafka: exactly once
// across SIGKILLs, the broker over-sending while the log is slowed, faithful records of odd
// input, and replay back into Kafka byte for byte.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt, { type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { repoRoot } from '../../deploy/local/stack-config.ts';
import type { CommandRecord } from '../../src/audit/log/format.ts';
import { verifyAuditLog } from '../../src/audit/tools/verify.ts';
import { readTopic, seqCounts, waitFor } from '../support/e2e-helpers.ts';
import { type SluiceProcess, sluiceFor } from '../support/sluice-process.ts';
import { config, endpoints, kafka, kafkaTopic, mqttClient, printLogsOnFailure, unique } from '../support/stack.ts';

const cli = (...args: string[]) => spawnSync(join(repoRoot, 'scripts/node'), [join(repoRoot, 'src/cli.ts'), ...args], { encoding: 'utf8', timeout: 60_000 });

/** Commands under `prefix` recorded in the audit log and forwarded to Kafka `topic`. */
function commandRules(prefix: string, topic: string) {
  return {
    subscriptions: [{ filter: `${prefix}/+/+/+/+/command`, qos: 2 }],
    routes: [
      {
        name: 'commands',
        match: `${prefix}/{site}/{zone}/{deviceType}/{deviceId}/command`,
        audit: true,
        payload: 'raw',
        kafka: { topic, key: '{deviceId}' },
      },
    ],
  };
}

const auditDir = (sluice: SluiceProcess) => join(sluice.dir, 'audit');

/** Every command record in the log, in order; the log must verify. */
function commandsIn(dir: string): CommandRecord[] {
  const records: CommandRecord[] = [];
  const result = verifyAuditLog(dir, { onFrame: (f) => f.record.type === 'command' && records.push(f.record) });
  assert.equal(result.ok, true, `verify: ${result.problem?.kind} ${result.problem?.message}`);
  return records;
}

/** Commands in a log a live writer is appending to: a frame being written reads as a torn tail, not as damage. */
function recordedSoFar(dir: string): number {
  let n = 0;
  const result = verifyAuditLog(dir, {
    onFrame: (f) => {
      if (f.record.type === 'command') n++;
    },
  });
  assert.ok(result.ok || result.problem?.kind === 'torn-tail', `verify: ${result.problem?.kind} ${result.problem?.message}`);
  return n;
}

/**
 * `count` QoS 2 commands from one publisher, numbered, in order; at most 10 in flight (Mosquitto
 * refuses more than 20 QoS 2 in flight from one publisher with "Quota exceeded").
 */
async function publishCommands(client: MqttClient, prefix: string, publisher: number, count: number, ratePerSecond: number): Promise<void> {
  const started = Date.now();
  for (let i = 0; i < count; i += 10) {
    await Promise.all(
      Array.from({ length: Math.min(10, count - i) }, (_, j) => {
        const n = i + j;
        const payload = JSON.stringify({ seq: publisher * 100_000 + n, publisher, n, command: 'set-point', value: n % 50 });
        return client.publishAsync(`${prefix}/plant/zone-${publisher}/valve/v-${publisher}/command`, payload, {
          qos: 2,
          properties: { userProperties: { issuedBy: `operator-${publisher}` }, correlationData: Buffer.from(`corr-${publisher}-${n}`) },
        });
      }),
    );
    const due = started + ((i + 10) / ratePerSecond) * 1000;
    if (due > Date.now()) await sleep(due - Date.now());
  }
}

function assertExactlyOnceInOrder(records: readonly CommandRecord[], publishers: number, perPublisher: number): void {
  const seen = new Map<string, number>();
  const lastOf = new Map<number, number>();
  for (const r of records) {
    const body = JSON.parse(Buffer.from(r.payload, 'base64').toString()) as { publisher: number; n: number };
    const id = `${body.publisher}/${body.n}`;
    seen.set(id, (seen.get(id) ?? 0) + 1);
    const last = lastOf.get(body.publisher) ?? -1;
    assert.ok(body.n > last, `publisher ${body.publisher}: command ${body.n} recorded after ${last}`);
    lastOf.set(body.publisher, body.n);
  }
  const twice = [...seen].filter(([, c]) => c > 1).map(([id]) => id);
  assert.deepEqual(twice.slice(0, 10), [], `${twice.length} commands recorded more than once`);
  assert.equal(seen.size, publishers * perPublisher, `${publishers * perPublisher - seen.size} commands missing`);
  assert.equal(records.length, publishers * perPublisher);
}

async function metric(sluice: SluiceProcess, name: string): Promise<number> {
  try {
    return (await sluice.metrics()).get(name) ?? 0;
  } catch {
    return 0;
  }
}

test('exactly once: 5,000 QoS 2 commands, sluice SIGKILLed three times, each recorded once, in order, and the log verifies', {
  timeout: 240_000,
}, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('eo');
  const topic = `${prefix}.commands`;
  const sluice = sluiceFor(t, {
    rules: commandRules(prefix, topic),
    config: { audit: { dir: 'audit' }, mqtt: { commands: { receiveMaximum: 50 } } },
  });
  await sluice.start();
  const publishers = 5;
  const perPublisher = 1_000;
  const clients = await Promise.all(Array.from({ length: publishers }, () => mqttClient(t)));
  // ~10 s of traffic; sluice is killed three times while it flows (the broker keeps the session)
  const publishing = Promise.all(clients.map((c, p) => publishCommands(c, prefix, p, perPublisher, 100)));
  let redeliveries = 0;
  for (let kill = 0; kill < 3; kill++) {
    await sleep(2_000);
    redeliveries += await metric(sluice, 'sluice_audit_redeliveries_total');
    await sluice.stop('SIGKILL');
    await sleep(300);
    await sluice.start();
  }
  await publishing;
  let records: CommandRecord[] = [];
  await waitFor('5,000 commands in the audit log', () => recordedSoFar(auditDir(sluice)) >= publishers * perPublisher, 90_000).catch(() => {});
  await sleep(2_000); // anything recorded twice would show up now
  records = commandsIn(auditDir(sluice));
  redeliveries += await metric(sluice, 'sluice_audit_redeliveries_total');
  t.diagnostic(`records ${records.length}; QoS 2 redeliveries recognised and not recorded again: ${redeliveries}; exits ${JSON.stringify(sluice.exits)}`);
  assertExactlyOnceInOrder(records, publishers, perPublisher);
  assert.deepEqual(sluice.exits, [null, null, null], 'killed three times');
  // five publishers at once: any of them may be recorded first; look at publisher 0's first command
  const r = records.find((x) => JSON.parse(Buffer.from(x.payload, 'base64').toString()).seq === 0) as CommandRecord;
  assert.equal(r.qos, 2);
  assert.equal(r.worker, `${sluice.clientId}-commands`);
  assert.equal(typeof r.packetId, 'number');
  assert.deepEqual(r.levels, { site: 'plant', zone: 'zone-0', deviceType: 'valve', deviceId: 'v-0' });
  assert.deepEqual(r.properties.userProperties, { issuedBy: 'operator-0' });
  assert.equal(Buffer.from(r.properties.correlationData as string, 'base64').toString(), 'corr-0-0');

  // Kafka: every command at least once, each carrying its audit sequence number
  const kafkaRecords = await readTopic(t, topic, (rs) => seqCounts(rs).size === publishers * perPublisher, 60_000);
  assert.equal(seqCounts(kafkaRecords).size, publishers * perPublisher, 'every command forwarded');
  const seqOf = new Map(records.map((x) => [JSON.parse(Buffer.from(x.payload, 'base64').toString()).seq as number, x.seq]));
  for (const k of kafkaRecords.slice(0, 500)) {
    assert.equal(Number(k.headers['sluice-audit-seq']), seqOf.get(JSON.parse(k.value.toString()).seq), 'the Kafka record names its audit record');
  }
});

test('broker over-sending QoS 2 while the audit log is slowed: no disconnect loop, nothing lost, nothing twice', { timeout: 240_000 }, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('over');
  const topic = `${prefix}.commands`;
  const receiveMaximum = 10;
  const sluice = sluiceFor(t, {
    rules: commandRules(prefix, topic),
    config: { audit: { dir: 'audit' }, mqtt: { keepalive: 3, commands: { receiveMaximum } } },
    env: { SLUICE_TEST_AUDIT_SYNC_DELAY_MS: '25' }, // every fsync 25 ms slower: a slow disk
  });
  await sluice.start();
  await sluice.stop('SIGTERM'); // the session stays: a burst queues at the broker, which then over-sends
  const publishers = 5;
  const perPublisher = 1_000;
  const clients = await Promise.all(Array.from({ length: publishers }, () => mqttClient(t)));
  await Promise.all(clients.map((c, p) => publishCommands(c, prefix, p, perPublisher, 100_000)));
  await sluice.start();
  let records: CommandRecord[] = [];
  await waitFor('5,000 commands in the audit log', () => recordedSoFar(auditDir(sluice)) >= publishers * perPublisher, 150_000).catch(() => {});
  await sleep(1_000);
  records = commandsIn(auditDir(sluice));
  const m = await sluice.metrics();
  t.diagnostic(
    `records ${records.length}; commands in flight max ${m.get('sluice_commands_inflight_messages_max')}, stalls ${m.get('sluice_pump_stalls_total')}, ` +
      `reconnects ${m.get('sluice_mqtt_reconnects_total')}, fsyncs ${m.get('sluice_audit_fsync_seconds_count')} (this run)`,
  );
  assertExactlyOnceInOrder(records, publishers, perPublisher);
  assert.equal(m.get('sluice_mqtt_reconnects_total'), 0, 'the command connection was never dropped');
  assert.ok((m.get('sluice_commands_inflight_messages_max') ?? Infinity) <= receiveMaximum, 'at most Receive Maximum taken');
  assert.ok((m.get('sluice_pump_stalls_total') ?? 0) > 0, 'the window filled and the socket was held');
  assert.doesNotMatch(sluice.logs, /Receive Maximum exceeded|Quota exceeded/);
});

/**
 * Connects as `clientId` to the session it left (no subscription of its own) and counts the
 * PUBRELs the broker sends again: QoS 2 exchanges that were left open at the broker.
 */
async function pubrelsResent(t: TestContext, clientId: string): Promise<{ sessionPresent: boolean; pubrels: number }> {
  const client = mqtt.connect(endpoints.mqtt, {
    protocolVersion: 5,
    clientId,
    clean: false,
    properties: { sessionExpiryInterval: 3600 },
    reconnectPeriod: 0,
    connectTimeout: 5_000,
    manualConnect: true,
  });
  t.after(() => client.endAsync(true));
  let pubrels = 0;
  // listening before CONNECT: the broker sends them right behind its CONNACK
  client.on('packetreceive', (p) => {
    if (p.cmd === 'pubrel') pubrels++;
  });
  const connack = new Promise<boolean>((resolve, reject) => {
    client.once('connect', (c) => resolve(c.sessionPresent));
    client.once('error', reject);
  });
  client.connect();
  const sessionPresent = await connack;
  await sleep(1_500);
  return { sessionPresent, pubrels };
}

test('a graceful stop right after a QoS 2 burst completes every exchange it recorded: the broker holds no PUBREL for the session', {
  timeout: 120_000,
}, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('stopq2');
  const topic = `${prefix}.commands`;
  const sluice = sluiceFor(t, { rules: commandRules(prefix, topic), config: { audit: { dir: 'audit' } } });
  await sluice.start();
  await sluice.stop('SIGTERM'); // the session stays: the burst queues at the broker
  const publishers = 5;
  const perPublisher = 1_000;
  const clients = await Promise.all(Array.from({ length: publishers }, () => mqttClient(t)));
  await Promise.all(clients.map((c, p) => publishCommands(c, prefix, p, perPublisher, 100_000)));
  await sluice.start();
  // stop the moment the last command is recorded and acked (PUBREC): the broker's PUBRELs trail
  await waitFor('5,000 commands acked', async () => (await metric(sluice, 'sluice_messages_acked_total')) >= publishers * perPublisher, 60_000);
  const stopping = Date.now();
  await sluice.stop('SIGTERM');
  const stopMs = Date.now() - stopping;
  const left = await pubrelsResent(t, `${sluice.clientId}-commands`);
  t.diagnostic(`stop took ${stopMs} ms; the broker resent ${left.pubrels} PUBRELs to the session (present: ${left.sessionPresent})`);
  assert.equal(left.sessionPresent, true, 'the session was kept');
  assert.equal(left.pubrels, 0, 'every QoS 2 exchange recorded was completed (PUBCOMP) before DISCONNECT');
  assert.deepEqual(sluice.exits, [0, 0]);
  assert.doesNotMatch(sluice.logs, /write after end|mqtt error/);
  assert.equal(commandsIn(auditDir(sluice)).length, publishers * perPublisher);
});

/**
 * Sends one QoS 2 PUBLISH whose user property value is the raw bytes `bad` (not UTF-8), which no
 * MQTT library will write; resolves with what the broker did: the PUBREC's reason code, or 'closed'.
 */
async function publishRawProperty(topic: string, bad: Buffer): Promise<number | 'closed'> {
  const sock = connect(Number(new URL(endpoints.mqtt).port), '127.0.0.1');
  const parser = mqttPacket.parser({ protocolVersion: 5 });
  const outcome = new Promise<number | 'closed'>((resolve) => {
    parser.on('packet', (p) => {
      if (p.cmd === 'connack') {
        const publish = mqttPacket.generate(
          {
            cmd: 'publish',
            topic,
            payload: Buffer.from('valid payload'),
            qos: 2,
            messageId: 7,
            dup: false,
            retain: false,
            properties: { userProperties: { issuedBy: 'X'.repeat(bad.length) } },
          },
          { protocolVersion: 5 },
        );
        bad.copy(publish, publish.indexOf(Buffer.from('X'.repeat(bad.length))));
        sock.write(publish);
      }
      if (p.cmd === 'pubrec') resolve(p.reasonCode ?? 0);
    });
    sock.on('close', () => resolve('closed'));
  });
  sock.on('data', (d) => parser.parse(d));
  sock.on('error', () => {});
  sock.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: unique('raw'), keepalive: 30 }));
  const result = await Promise.race([outcome, sleep(5_000).then(() => 'timeout' as const)]);
  sock.destroy();
  assert.notEqual(result, 'timeout');
  return result as number | 'closed';
}

test('odd commands are recorded byte for byte: 256 KiB, binary, every property; invalid UTF-8 never corrupts the log', { timeout: 60_000 }, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('odd');
  const topic = `${prefix}.commands`;
  const keys = generateKeyPairSync('ed25519');
  const anchorTopic = await kafkaTopic(t, 1); // compacted in production; here any topic shows the records
  const archivePrefix = unique('e2e-archive');
  const sluice = sluiceFor(t, {
    rules: commandRules(prefix, topic),
    config: {
      audit: {
        dir: 'audit',
        signing: { privateKey: { file: 'audit-signing.key' }, everyRecords: 2, everyMs: 500 },
        anchors: { file: 'witness/anchors.jsonl', kafkaTopic: anchorTopic },
        // a segment per command or two: sealed ones go to the stack's S3 server under Object Lock
        segmentBytes: 4096,
        archive: {
          bucket: config.s3.bucket,
          prefix: archivePrefix,
          endpoint: endpoints.s3,
          accessKeyId: { env: 'ARCHIVE_KEY_ID' },
          secretAccessKey: { env: 'ARCHIVE_SECRET' },
          retentionDays: 1,
        },
      },
    },
    env: { ARCHIVE_KEY_ID: config.s3.accessKeyId, ARCHIVE_SECRET: config.s3.secretAccessKey },
  });
  writeFileSync(join(sluice.dir, 'audit-signing.key'), keys.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(join(sluice.dir, 'audit-signing.pub'), keys.publicKey.export({ type: 'spki', format: 'pem' }));
  await sluice.start();
  const pub = await mqttClient(t);
  const big = Buffer.alloc(256 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
  const binary = Buffer.from([0x00, 0xff, 0xfe, 0xc3, 0x28, 0x80, 0x0a, 0x00]); // not UTF-8
  const at = `${prefix}/plant/z/valve/v-1/command`;
  await pub.publishAsync(at, big, { qos: 2 });
  await pub.publishAsync(at, binary, {
    qos: 2,
    retain: false,
    properties: {
      payloadFormatIndicator: false,
      contentType: 'application/octet-stream',
      responseTopic: `${prefix}/reply`,
      correlationData: Buffer.from([0xde, 0xad, 0xbe, 0xef]),
      messageExpiryInterval: 3600,
      userProperties: { 'ünïcødé-name': '値 ✓', repeated: ['a', 'b'] },
    },
  });
  await pub.publishAsync(at, Buffer.alloc(0), { qos: 2 }); // an empty command is still a command
  let records: CommandRecord[] = [];
  await waitFor('3 records', () => recordedSoFar(auditDir(sluice)) >= 3, 30_000);
  records = commandsIn(auditDir(sluice));
  assert.ok(Buffer.from(records[0]?.payload ?? '', 'base64').equals(big), '256 KiB byte for byte');
  const b = records[1] as CommandRecord;
  assert.ok(Buffer.from(b.payload, 'base64').equals(binary), 'binary byte for byte');
  assert.equal(b.properties.contentType, 'application/octet-stream');
  assert.equal(b.properties.responseTopic, `${prefix}/reply`);
  assert.equal(b.properties.correlationData, Buffer.from([0xde, 0xad, 0xbe, 0xef]).toString('base64'));
  assert.equal(b.properties.payloadFormatIndicator, false);
  assert.ok((b.properties.messageExpiryInterval ?? 0) > 3500);
  assert.deepEqual(b.properties.userProperties, { 'ünïcødé-name': '値 ✓', repeated: ['a', 'b'] });
  assert.equal(records[2]?.payload, '');

  // A user property that is not UTF-8 is a malformed packet (MQTT 5, 1.5.4): the broker refuses
  // it before it reaches sluice. Whatever a broker does, the log must stay whole.
  const refused = await publishRawProperty(`${prefix}/plant/z/valve/v-1/command`, Buffer.from([0xc3, 0x28, 0xff, 0xfe]));
  t.diagnostic(`invalid UTF-8 in a user property: the broker answered ${refused === 'closed' ? 'by closing the connection' : `PUBREC ${refused}`}`);
  assert.ok(refused === 'closed' || refused >= 0x80, 'refused, with a reason code or by disconnecting');
  // a payload marked as UTF-8 (format indicator 1) that is not: recorded as it came, or refused by the broker
  const marked = Buffer.from([0x66, 0x6f, 0xc3, 0x28]);
  await pub.publishAsync(at, marked, { qos: 2, properties: { payloadFormatIndicator: true } }).then(
    () => 'taken',
    (e: Error) => e.message,
  );
  await pub.publishAsync(at, 'after the odd ones', { qos: 2 });
  await waitFor(
    'the last command',
    () => (records = commandsIn(auditDir(sluice))).some((r) => Buffer.from(r.payload, 'base64').toString() === 'after the odd ones'),
    30_000,
  );
  const markedRecord = records.find((r) => r.properties.payloadFormatIndicator === true);
  if (markedRecord) assert.ok(Buffer.from(markedRecord.payload, 'base64').equals(marked), 'recorded byte for byte');
  t.diagnostic(`payload marked UTF-8 but not: ${markedRecord ? 'recorded byte for byte' : 'refused by the broker'}`);
  assert.ok(!records.some((r) => JSON.stringify(r.properties).includes('\ufffd')), 'no property mangled into a replacement character');

  // signed checkpoints from the config verify with the public key, and agree with the anchors the worker published
  await sleep(800); // the time-based checkpoint covers the last records
  const cli = (...args: string[]) => spawnSync(join(repoRoot, 'scripts/node'), [join(repoRoot, 'src/cli.ts'), 'audit', ...args], { encoding: 'utf8' });
  const publicKey = join(sluice.dir, 'audit-signing.pub');
  const signed = cli('verify', auditDir(sluice), '--public-key', publicKey, '--anchors', join(sluice.dir, 'witness/anchors.jsonl'));
  assert.equal(signed.status, 0, signed.stdout);
  assert.match(signed.stdout, /ok: .* \d+ checkpoints\).*signatures valid/);
  assert.doesNotMatch(signed.stdout, /after the last signed checkpoint/, 'the idle tail was signed by time');
  assert.match(signed.stdout, new RegExp(`; \\d+ anchors of worker ${sluice.clientId}-commands agree`));
  // the Kafka witness: each anchor a record keyed by the worker; the topic dumped is an anchors file too
  const anchorRecords = await readTopic(t, anchorTopic, (rs) => rs.length >= 2, 30_000);
  assert.ok(anchorRecords.every((r) => r.key === `${sluice.clientId}-commands`));
  writeFileSync(join(sluice.dir, 'kafka-anchors.jsonl'), anchorRecords.map((r) => r.value.toString()).join('\n'));
  const fromKafka = cli('verify', auditDir(sluice), '--public-key', publicKey, '--anchors', join(sluice.dir, 'kafka-anchors.jsonl'));
  assert.equal(fromKafka.status, 0, fromKafka.stdout);
  assert.match(fromKafka.stdout, /anchors of worker .* agree/);
  // the sealed segments are in the archive, and the log verifies from there alone
  await waitFor(
    'sealed segments archived',
    async () => (await sluice.metrics(['sluice_audit_archive_backlog_segments'])).get('sluice_audit_archive_backlog_segments') === 0,
    30_000,
  );
  const archived = (await sluice.metrics(['sluice_audit_archived_segments_total'])).get('sluice_audit_archived_segments_total') ?? 0;
  assert.ok(archived >= 1, `${archived} segments archived`);
  const fromArchive = spawnSync(
    join(repoRoot, 'scripts/node'),
    [
      join(repoRoot, 'src/cli.ts'),
      'audit',
      'verify',
      `s3://${config.s3.bucket}/${archivePrefix}/${sluice.clientId}-commands`,
      '--public-key',
      publicKey,
      '--s3-endpoint',
      endpoints.s3,
    ],
    { encoding: 'utf8', env: { ...process.env, AWS_ACCESS_KEY_ID: config.s3.accessKeyId, AWS_SECRET_ACCESS_KEY: config.s3.secretAccessKey } },
  );
  assert.equal(fromArchive.status, 0, fromArchive.stdout + fromArchive.stderr);
  assert.match(fromArchive.stdout, new RegExp(`ok: \\d+ records .* in ${archived} segments.*signatures valid`));
  // a proof that the 256 KiB command is in the signed tree, checked with the public key alone
  const proof = cli('prove', auditDir(sluice), '1', '--public-key', publicKey);
  assert.equal(proof.status, 0, proof.stderr);
  writeFileSync(join(sluice.dir, 'proof.json'), proof.stdout);
  const checked = cli('check-proof', join(sluice.dir, 'proof.json'), '--public-key', publicKey);
  assert.equal(checked.status, 0, checked.stdout);
  // and on to Kafka, the same bytes
  const kafkaRecords = await readTopic(t, topic, (rs) => rs.length >= 3, 30_000);
  assert.ok(kafkaRecords[0]?.value.equals(big));
  assert.ok(kafkaRecords[1]?.value.equals(binary));
});

test('replay round trip: recorded commands replayed into Kafka and onto MQTT, payloads and properties byte for byte, in order', {
  timeout: 120_000,
}, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('replay');
  const sluice = sluiceFor(t, { rules: commandRules(prefix, `${prefix}.commands`), config: { audit: { dir: 'audit' } } });
  await sluice.start();
  const pub = await mqttClient(t);
  const sent: Array<{ topic: string; payload: Buffer; correlation: Buffer; user: Record<string, string> }> = [];
  for (let i = 0; i < 200; i++) {
    const payload = i % 3 === 0 ? Buffer.from([i & 0xff, 0x00, 0xff, 0x80]) : Buffer.from(JSON.stringify({ n: i, command: 'open' }));
    const item = {
      topic: `${prefix}/plant/z/valve/v-${i % 4}/command`,
      payload,
      correlation: Buffer.from([i >> 8, i & 0xff, 0xfe]),
      user: { issuedBy: `op-${i % 7}` },
    };
    sent.push(item);
    await pub.publishAsync(item.topic, payload, {
      qos: 2,
      properties: { correlationData: item.correlation, userProperties: item.user, contentType: 'application/x-command' },
    });
  }
  await waitFor('200 records', () => recordedSoFar(auditDir(sluice)) >= 200, 30_000);
  await sluice.stop('SIGTERM'); // replay reads a log nobody writes (it would also read a live one)

  const target = await kafkaTopic(t, 1); // one partition: one total order to compare
  const r = cli('audit', 'replay', auditDir(sluice), '--kafka', target, '--brokers', endpoints.kafka);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /replayed 200 commands to Kafka topic/);
  const replayed = await readTopic(t, target, (rs) => rs.length >= 200, 60_000);
  assert.equal(replayed.length, 200);
  for (const [i, k] of replayed.entries()) {
    const s = sent[i] as (typeof sent)[number];
    assert.ok(k.value.equals(s.payload), `payload ${i} byte for byte`);
    assert.equal(k.headers['mqtt-topic'], s.topic);
    assert.equal(k.headers['mqtt-correlation-data'], s.correlation.toString(), `correlation data ${i}`);
    assert.equal(k.headers.issuedBy, s.user.issuedBy);
    assert.equal(k.headers['mqtt-content-type'], 'application/x-command');
    assert.equal(Number(k.headers['sluice-audit-seq']), i + 1);
  }
  // header values arrive as strings in the helper; check the binary one as bytes too
  const raw = kafka().consumer({ groupId: unique('raw') });
  await raw.connect();
  t.after(() => raw.disconnect());
  await raw.subscribe({ topic: target, fromBeginning: true });
  const firstHeader = await new Promise<Buffer>(
    (resolve) => void raw.run({ eachMessage: async ({ message }) => resolve(message.headers?.['mqtt-correlation-data'] as Buffer) }),
  );
  assert.ok(firstHeader.equals(sent[0]?.correlation as Buffer), 'correlation data bytes');

  // onto MQTT under a prefix, at QoS 2, with the properties
  const sub = await mqttClient(t);
  const got: Array<{ topic: string; payload: Buffer; correlation?: Buffer | undefined }> = [];
  sub.on('message', (topic, payload, packet) => got.push({ topic, payload, correlation: packet.properties?.correlationData }));
  await sub.subscribeAsync(`replayed/${prefix}/#`, { qos: 2 });
  const m = cli('audit', 'replay', auditDir(sluice), '--mqtt-prefix', 'replayed', '--url', endpoints.mqtt, '--from', '11', '--to', '20');
  assert.equal(m.status, 0, m.stderr);
  await waitFor('10 republished', () => got.length >= 10, 20_000);
  assert.deepEqual(
    got.map((g) => g.topic),
    sent.slice(10, 20).map((s) => `replayed/${s.topic}`),
    'seq 11..20, in order, under the prefix',
  );
  assert.ok(got.every((g, i) => g.payload.equals(sent[10 + i]?.payload as Buffer) && g.correlation?.equals(sent[10 + i]?.correlation as Buffer)));
});

test('a failed audit write (a full disk, for real) stops sluice with exit 70; restarted on the full disk it waits, not ready, writing nothing; once there is room every command is recorded once', {
  timeout: 120_000,
}, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('full');
  const minFreeBytes = 256 * 1024;
  const sluice = sluiceFor(t, { rules: commandRules(prefix, `${prefix}.commands`), config: { audit: { dir: 'audit', minFreeBytes } } });
  const dir = auditDir(sluice);
  mkdirSync(dir);
  // a 512 KiB filesystem under the audit log: the disk fills for real (ENOSPC), no fault injection
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', dir], { encoding: 'utf8' });
  if (mounted.status !== 0) {
    t.skip(`needs root to mount a small tmpfs (${mounted.stderr.trim() || 'mount failed'})`);
    return;
  }
  t.after(async () => {
    await sluice.stop('SIGKILL');
    spawnSync('umount', ['-l', dir]);
  });
  await sluice.start();
  const pub = await mqttClient(t);
  const total = 8;
  const payloads = Array.from({ length: total }, (_, i) => Buffer.concat([Buffer.from(`cmd-${i};`), randomBytes(100 * 1024)]));
  for (const p of payloads) await pub.publishAsync(`${prefix}/plant/z/valve/v-1/command`, p, { qos: 2 });
  await waitFor('sluice to stop', () => sluice.exits.length > 0, 30_000);
  assert.equal(sluice.exits[0], 70, 'exit code 70');
  assert.match(sluice.logs, /"level":60.*audit log failed: stopping without acknowledging anything more/);
  assert.match(sluice.logs, /ENOSPC|no space/i, 'the cause is named');
  const before = verifyAuditLog(dir);
  t.diagnostic(`recorded before the disk filled: ${before.commands}; verify: ${before.problem?.kind ?? 'ok'}`);
  assert.ok(before.commands < total, 'the disk filled before all were recorded');
  assert.ok(before.ok || before.problem?.kind === 'torn-tail', 'at worst a torn last record, never damage inside');

  // restarted while the disk is still full (as a Kubernetes restart would): it waits, not ready,
  // says why once, takes no command and writes nothing: no crash loop, no torn record
  const logFrom = sluice.logs.length;
  const starting = sluice.start(90_000);
  starting.catch(() => {}); // it resolves only once ready, after the room below
  let ready = { status: 0, body: '' };
  await waitFor(
    '/readyz to say the disk is full',
    async () => /audit: disk full/.test((ready = await sluice.ready().catch(() => ({ status: 0, body: '' }))).body),
    30_000,
  );
  await sleep(6_000); // three more checks of the free space
  const waiting = sluice.logs.slice(logFrom);
  const m = await sluice.metrics(['sluice_audit_disk_free_bytes', 'sluice_audit_min_free_bytes']);
  t.diagnostic(
    `restarted on the full disk: /readyz ${ready.status}: ${ready.body.split('\n').find((l) => /disk full/.test(l))}; free ${m.get('sluice_audit_disk_free_bytes')} of ${m.get('sluice_audit_min_free_bytes')} needed`,
  );
  assert.equal(ready.status, 503);
  assert.equal(sluice.exits.length, 1, 'no second exit: it waits instead of crash-looping');
  assert.equal(waiting.match(/the disk is full: waiting for room/g)?.length, 1, 'one clear line, not one per check');
  assert.ok((m.get('sluice_audit_disk_free_bytes') ?? Infinity) < minFreeBytes, 'the free space is in the metrics (SluiceAuditDiskFull)');
  const meanwhile = verifyAuditLog(dir);
  assert.equal(meanwhile.commands, before.commands, 'nothing written while it waits');

  // the operator makes room: the waiting worker opens the log by itself, cuts the torn tail and takes the redeliveries
  assert.equal(spawnSync('mount', ['-o', 'remount,size=16m', dir]).status, 0);
  await starting;
  assert.match(sluice.logs.slice(logFrom), /room on the disk again/);
  await waitFor(`${total} commands`, () => recordedSoFar(dir) >= total, 30_000);
  await sleep(1_000);
  const records = commandsIn(dir);
  const recorded = records.map((r) => Buffer.from(r.payload, 'base64'));
  assert.equal(recorded.length, total, 'nothing twice');
  for (const p of payloads) assert.equal(recorded.filter((r) => r.equals(p)).length, 1, `${p.subarray(0, 6).toString()} recorded once, byte for byte`);
});

test('idempotency key: a command its publisher sends again (a new PUBLISH, a new packet id) is recorded once, also across a sluice restart; one without a key is recorded and counted', {
  timeout: 120_000,
}, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('idem');
  const topic = `${prefix}.commands`;
  const rules = commandRules(prefix, topic);
  (rules.routes[0] as Record<string, unknown>).audit = { idempotencyKey: { userProperty: 'commandId' } };
  const sluice = sluiceFor(t, { rules, config: { audit: { dir: 'audit' } } });
  await sluice.start();
  const client = await mqttClient(t);
  const send = (n: number, key: string | undefined) =>
    client.publishAsync(`${prefix}/plant/z/valve/v-1/command`, JSON.stringify({ seq: n, publisher: 0, n }), {
      qos: 2,
      properties: key === undefined ? {} : { userProperties: { commandId: key } },
    });
  for (let n = 0; n < 50; n++) await send(n, `cmd-${n}`);
  for (let n = 0; n < 50; n++) await send(n, `cmd-${n}`); // the publisher's retries
  await waitFor('50 recorded', () => recordedSoFar(auditDir(sluice)) >= 50);
  const first = await metric(sluice, 'sluice_audit_idempotent_duplicates_total');
  await sluice.stop('SIGKILL');
  await sluice.start();
  for (let n = 0; n < 50; n++) await send(n, `cmd-${n}`); // and again, after the restart
  await send(50, undefined);
  await waitFor('the keyless command recorded', () => recordedSoFar(auditDir(sluice)) >= 51);
  await sleep(1_000);
  const records = commandsIn(auditDir(sluice));
  const second = await metric(sluice, 'sluice_audit_idempotent_duplicates_total');
  const received = (await sluice.metrics()).get('sluice_messages_received_total{qos="2"}') ?? 0;
  t.diagnostic(
    `records ${records.length}; duplicates by key: ${first} before the restart, ${second} after it (of ${received} received: what the broker redelivered counts too)`,
  );
  assert.equal(records.length, 51, 'each key once, and the keyless command');
  assert.deepEqual(
    records.slice(0, 50).map((r) => r.idempotencyKey),
    Array.from({ length: 50 }, (_, n) => `cmd-${n}`),
    'each record carries its key',
  );
  assert.equal(records[50]?.idempotencyKey, undefined);
  assert.equal(first, 50);
  assert.ok(second >= 50, `the index was rebuilt from the log (${second})`);
  assert.equal(await metric(sluice, 'sluice_audit_idempotency_key_missing_total'), 1);
  // the route's other outputs get the first record's number for every retry
  const kafkaRecords = await readTopic(t, topic, (rs) => rs.length >= 151, 30_000, 5_000);
  const seqByN = new Map(records.map((r) => [JSON.parse(Buffer.from(r.payload, 'base64').toString()).n as number, r.seq]));
  for (const k of kafkaRecords) assert.equal(Number(k.headers['sluice-audit-seq']), seqByN.get(JSON.parse(k.value.toString()).n));
});

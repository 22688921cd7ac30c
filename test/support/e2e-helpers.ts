// Publishing and read-back helpers for the end-to-end tests: numbered telemetry in, Kafka
// records out, counted per sequence number so losses and duplicates are exact.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel } from 'kafkajs';
import type { MqttClient } from 'mqtt';
import { verifyAuditLog } from '../../src/audit/tools/verify.ts';
import { endpoints, influxQuery, kafka, unique } from './stack.ts';

export interface KafkaRecordSeen {
  readonly topic: string;
  readonly key: string | null;
  readonly value: Buffer;
  readonly headers: Record<string, string>;
  readonly partition: number;
  /** The record's timestamp, epoch ms as a string (kafkajs'). */
  readonly timestamp: string;
}

/** Publishes `count` QoS 1 messages numbered from `from`; `topicOf(seq)` names the topic. */
export async function publishNumbered(
  client: MqttClient,
  count: number,
  topicOf: (seq: number) => string,
  options: { from?: number; ratePerSecond?: number; payload?: (seq: number) => string } = {},
): Promise<void> {
  const from = options.from ?? 0;
  const chunk = 200;
  const started = Date.now();
  for (let i = 0; i < count; i += chunk) {
    const batch: Array<Promise<unknown>> = [];
    for (let seq = from + i; seq < from + Math.min(count, i + chunk); seq++) {
      const body = options.payload ? options.payload(seq) : JSON.stringify({ seq, temperature: 20 + (seq % 7), ts: Date.now() });
      batch.push(client.publishAsync(topicOf(seq), body, { qos: 1 }));
    }
    await Promise.all(batch);
    if (options.ratePerSecond) {
      const due = started + ((i + chunk) / options.ratePerSecond) * 1000;
      if (due > Date.now()) await sleep(due - Date.now());
    }
  }
}

/**
 * Reads a topic from the beginning until `done(records)` holds, or until nothing new arrived
 * for `idleMs` (then the caller's assertions say what is missing), or `timeoutMs` overall.
 *
 * A reader that falls idle short of what the topic's partitions hold (their watermarks) is the
 * reader's trouble, not the writer's: it is replaced by a new consumer group, up to twice, and
 * what the stalled one saw (crashes, kafkajs warnings, watermarks) goes into the test's
 * diagnostics. Twice in CI a kafkajs reader right after a broker's SIGSTOP outage joined its
 * group and then fetched nothing for 10 s and then 40 s, while the records were there.
 */
export async function readTopic(
  t: TestContext,
  topic: string,
  done: (records: readonly KafkaRecordSeen[]) => boolean,
  timeoutMs = 60_000,
  idleMs = 20_000,
  brokers?: readonly string[],
): Promise<KafkaRecordSeen[]> {
  const deadline = Date.now() + timeoutMs;
  // sluice creates its topics on first write; subscribing before that fails
  // (a broker just thawed from SIGSTOP can answer a metadata request with nothing: ask again)
  const admin = kafka(undefined, brokers).admin();
  await admin.connect();
  t.after(() => admin.disconnect());
  await waitFor(`topic ${topic}`, async () => (await admin.listTopics().catch(() => [] as string[])).includes(topic), timeoutMs);
  const held = async (): Promise<number | undefined> => {
    const offsets = await admin.fetchTopicOffsets(topic).catch(() => undefined);
    return offsets?.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
  };
  const records: KafkaRecordSeen[] = [];
  // a record fetched again (the group rebalanced, a fetch was retried, a reader was replaced) is
  // the reader's repeat, not a duplicate in the topic: one partition and offset is one record.
  // Counting repeats let a reader stop at "as many records as the cluster holds" with some never
  // read (a rolling restart run: 66,395 read of 60,422 held, 3,100 seqs "lost")
  const offsets = new Set<string>();
  for (let reader = 1; ; reader++) {
    const outcome = await readOnce(t, topic, done, records, offsets, deadline, idleMs, brokers);
    if (outcome.finished) return records;
    const inTopic = await held();
    if (inTopic === undefined || records.length >= inTopic || reader >= 3 || Date.now() >= deadline) {
      t.diagnostic(`reader ${reader} of ${topic}: read ${records.length} of ${inTopic ?? 'unknown (offsets not fetched)'} held; ${outcome.seen}`);
      return records;
    }
    t.diagnostic(`reader ${reader} of ${topic} idle ${idleMs} ms at ${records.length} of ${inTopic} held; a new group reads on (${outcome.seen})`);
  }
}

/** One consumer group's read: `finished` when `done` held or time ran out, otherwise it fell idle. */
async function readOnce(
  t: TestContext,
  topic: string,
  done: (records: readonly KafkaRecordSeen[]) => boolean,
  records: KafkaRecordSeen[],
  offsets: Set<string>,
  deadline: number,
  idleMs: number,
  brokers?: readonly string[],
): Promise<{ finished: boolean; seen: string }> {
  const notes: string[] = [];
  const note = (what: string) => {
    if (notes.length < 20) notes.push(what);
  };
  const client = new Kafka({
    clientId: unique('reader'),
    brokers: [...(brokers ?? [endpoints.kafka])],
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log }) =>
        note(`${logLevel[level]} ${log.message}${log.error ? `: ${String(log.error)}` : ''}`),
  });
  const consumer = client.consumer({ groupId: unique('reader'), maxWaitTimeInMs: 200 });
  await consumer.connect();
  t.after(() => consumer.disconnect());
  consumer.on(consumer.events.CRASH, (e) => note(`crash: ${String(e.payload.error)}`));
  await consumer.subscribe({ topic, fromBeginning: true });
  const finished = Promise.withResolvers<boolean>();
  // idleness counts from the group join: joining a new group took over 10 s on a busy machine
  let idle: NodeJS.Timeout | undefined;
  let over = false;
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    note(`joined, assigned ${JSON.stringify(e.payload.memberAssignment)}`);
    if (idle || over) return;
    let seen = records.length;
    let since = Date.now();
    idle = setInterval(
      () => {
        if (records.length !== seen) [seen, since] = [records.length, Date.now()];
        else if (Date.now() - since >= idleMs) finished.resolve(false);
      },
      Math.min(500, idleMs),
    );
  });
  await consumer.run({
    eachBatchAutoResolve: true,
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) {
        const at = `${batch.partition}:${m.offset}`;
        if (offsets.has(at)) continue;
        offsets.add(at);
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(m.headers ?? {})) headers[k] = Buffer.isBuffer(v) ? v.toString() : String(v);
        records.push({
          topic: batch.topic,
          key: m.key?.toString() ?? null,
          value: m.value ?? Buffer.alloc(0),
          headers,
          partition: batch.partition,
          timestamp: m.timestamp,
        });
      }
      if (done(records)) finished.resolve(true);
    },
  });
  if (done(records)) finished.resolve(true);
  const timer = setTimeout(() => finished.resolve(true), Math.max(0, deadline - Date.now()));
  const outcome = await finished.promise.finally(() => {
    over = true;
    clearTimeout(timer);
    clearInterval(idle);
  });
  await consumer.stop();
  return { finished: outcome, seen: notes.join('; ') || 'nothing logged' };
}

/** Sequence numbers of JSON records carrying {"seq": n}: count of each. */
export function seqCounts(records: readonly KafkaRecordSeen[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const r of records) {
    const seq = (JSON.parse(r.value.toString()) as { seq: number }).seq;
    counts.set(seq, (counts.get(seq) ?? 0) + 1);
  }
  return counts;
}

export interface Publishing {
  /** When the publisher got the broker's PUBACK / PUBCOMP (the broker's promise), epoch ms, by number. */
  readonly ackedAt: Map<number, number>;
  stop(): Promise<void>;
}

/**
 * Publishes numbered messages at `rate` per second until stopped, riding out broker restarts
 * and failovers (the client reconnects). The body defaults to a JSON reading with `seq`.
 */
export function publishUntilStopped(
  client: MqttClient,
  qos: 1 | 2,
  rate: number,
  topicOf: (n: number) => string,
  options: { readonly body?: (n: number) => string; readonly properties?: (n: number) => Record<string, unknown> } = {},
): Publishing {
  const body = options.body ?? ((seq: number) => JSON.stringify({ seq, ts: Date.now(), command: 'set-point', value: seq % 50 }));
  const ackedAt = new Map<number, number>();
  let stopped = false;
  let n = 0;
  const tick = 50;
  const perTick = Math.max(1, Math.round((rate * tick) / 1000));
  const running = (async () => {
    const started = Date.now();
    for (let k = 0; !stopped; k++) {
      for (let i = 0; i < perTick; i++) {
        const seq = n++;
        client.publish(topicOf(seq), body(seq), { qos, ...(options.properties ? { properties: options.properties(seq) } : {}) }, (err) => {
          if (!err) ackedAt.set(seq, Date.now());
        });
      }
      const due = started + (k + 1) * tick;
      if (due > Date.now()) await sleep(due - Date.now());
    }
  })();
  return {
    ackedAt,
    async stop() {
      stopped = true;
      await running;
      // what is still queued or in flight gets its ack (or never does: not promised)
      await waitFor('publisher acks', () => ackedAt.size >= n, 10_000).catch(() => {});
    },
  };
}

/**
 * QoS 2 commands at `perSecond` for `seconds`, payloads `cmd-<n>` on `topicOf(n)`: `sent` grows
 * as the broker takes each one; `done` when the last is taken.
 */
export function publishCommands(client: MqttClient, topicOf: (n: number) => string, seconds: number, perSecond = 20): { sent: string[]; done: Promise<void> } {
  const sent: string[] = [];
  const done = (async () => {
    const started = Date.now();
    for (let n = 0; n < seconds * perSecond; n++) {
      const id = `cmd-${n}`;
      await client.publishAsync(topicOf(n), id, { qos: 2 });
      sent.push(id);
      const due = started + ((n + 1) / perSecond) * 1000;
      if (due > Date.now()) await sleep(due - Date.now());
    }
  })();
  return { sent, done };
}

/** The payloads of the commands in an audit log a worker may still be writing (its last frame may read as torn, nothing else may be wrong). */
export function commandsRecorded(auditDir: string): string[] {
  const payloads: string[] = [];
  const result = verifyAuditLog(auditDir, {
    onFrame: (f) => f.record.type === 'command' && payloads.push(Buffer.from(f.record.payload, 'base64').toString()),
  });
  assert.ok(result.ok || result.problem?.kind === 'torn-tail', `verify ${auditDir}: ${result.problem?.kind} ${result.problem?.message}`);
  return payloads;
}

export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Numbered telemetry to InfluxDB, the sequence number as the timestamp (s): every point has its own time, so counting them is exact. */
export function telemetryToInflux(prefix: string, measurement: string) {
  return {
    subscriptions: [{ filter: `${prefix}/+/+/+/+/telemetry`, qos: 1 }],
    routes: [
      {
        name: 'telemetry',
        match: `${prefix}/{site}/{zone}/{deviceType}/{deviceId}/telemetry`,
        influx: {
          measurement,
          tags: ['deviceId'],
          fields: { temperature: '$.temperature', seq: { path: '$.seq', type: 'integer' } },
          time: '$.seq',
          timeUnit: 's',
        },
      },
    ],
  };
}

export function telemetryToKafka(prefix: string, topic: string) {
  return {
    subscriptions: [{ filter: `${prefix}/+/+/+/+/telemetry`, qos: 1 }],
    routes: [{ name: 'telemetry', match: `${prefix}/{site}/{zone}/{deviceType}/{deviceId}/telemetry`, kafka: { topic } }],
  };
}

/**
 * Points of a measurement in the stack's InfluxDB (counted on `field`), once `total` are there
 * or `timeoutMs` passed: the caller asserts on the count.
 */
export async function influxPoints(measurement: string, total: number, timeoutMs = 90_000, field = 'seq'): Promise<number> {
  let count = 0;
  await waitFor(
    `${total} points in InfluxDB`,
    async () => {
      const rows = await influxQuery(`SELECT count("${field}") FROM "${measurement}"`);
      count = Number(rows[0]?.[1] ?? 0);
      return count >= total;
    },
    timeoutMs,
  ).catch(() => {});
  return count;
}

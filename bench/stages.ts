// `npm run bench -- --stages`: the per-stage cost budget. The bench's traffic (1,000 devices,
// ~200-byte JSON telemetry, the (b) route to Kafka and InfluxDB) is replayed through each stage
// of the message path alone, in this process, with no server: CPU µs per message (all threads,
// GC included), the GC's share of it, and bytes allocated per message (heap and buffers, measured
// in slices with no GC in between). A regression shows in the stage that caused it. Stages:
//   mqtt          MQTT.js parsing PUBLISH packets off a stream, sluice's deferred acks and
//                 message, PUBACKs written back (the socket itself is not in it)
//   route         topic match, level names, JSON decode (RuleSet.route)
//   route-forward the same for (a)'s route, Kafka alone with the bytes forwarded: the payload
//                 checked to be JSON, not parsed
//   route-fleet   (b)'s route and both outputs for a fleet of 50,000 devices, five times the
//                 topics a worker keeps the routes of: most topics matched per message, each
//                 topic string made from its bytes per message, as a socket gives it
//   kafka-record  the route's Kafka output: topic, key, headers, value (sluice)
//   influx-line   the route's InfluxDB output: one line of line protocol (sluice)
//   kafka-batch   the client's records as a worker encodes them: the adapter's messages (keys
//                 and header values as strings, number timestamps) and sluice's one-buffer
//                 RecordBatch v2 encoder (lean-records.ts) with the library's CRC-32C, 1,000
//                 records a batch
//   kafka-batch-library  the library's shapes (Buffers, bigints) and @platformatic/kafka's own
//                 encoder, for comparison
//   sparkplug     (f)'s traffic: alias-only Sparkplug B DDATA (10 edge nodes x 10 devices, 6
//                 metrics each, births routed first) decoded, aliases resolved, and encoded by
//                 (f)'s route into a point per message (a field per metric) and a Kafka record
//                 of JSON with the metrics' names
//   pipeline      the whole of sluice between the source and the sinks' writes: route, both
//                 encodings, batch queues, fan-out, settle, metrics and the ack window's release
import '../src/source/mqtt/quiet-debug.ts'; // as src/cli.ts: first, before mqtt-packet loads
import { cpuUsage } from 'node:process';
import { Duplex, type PassThrough } from 'node:stream';
import { setImmediate as immediate } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import { createRecordsBatch as libraryRecordsBatch, type MessageRecord } from '@platformatic/kafka';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import pino from 'pino';
import { Registry } from 'prom-client';
import sparkplugPayload from 'sparkplug-payload';
import { compileRules } from '../src/config/load.ts';
import { rulesFile } from '../src/config/rules-schema.ts';
import type { Message } from '../src/message.ts';
import { createMetrics } from '../src/observability/metrics.ts';
import { BatchQueue } from '../src/pipeline/batch-queue.ts';
import { Pipeline } from '../src/pipeline/pipeline.ts';
import type { MatchInput, RouteOutput } from '../src/router/route-output.ts';
import { alias, deviceMetrics } from '../src/simulator/sparkplug-simulator.ts';
import { createRecordsBatch as leanRecordsBatch } from '../src/sinks/kafka/client/lean-records.ts';
import { producerMessages } from '../src/sinks/kafka/client/platformatic-client.ts';
import type { KafkaRecord } from '../src/sinks/kafka/kafka-record.ts';
import type { DeadLetterItem, Sink, WriteResult } from '../src/sinks/sink.ts';
import { type AckSlot, AckWindow } from '../src/source/ack-window.ts';
import { installDeferredAcks } from '../src/source/mqtt/deferred-acks.ts';
import { messageOf } from '../src/source/mqtt/mqtt-session.ts';

export interface StageResult {
  stage: string;
  /** CPU µs per message, all threads, GC included (median of the rounds). */
  usPerMessage: number;
  /** Of that, the share V8's GC took (its pauses, from v8.GCProfiler). */
  gcShare: number;
  /** Bytes allocated per message: V8 heap and ArrayBuffers (median of slices without a GC). */
  bytesPerMessage: number;
  /**
   * pipeline only: bytes sluice holds per message while its sinks have not answered, beyond the
   * message itself (1,000 in flight, live after a full GC). What a young-generation GC finds
   * alive, and promotes, is this times the messages in flight.
   */
  heldBytesPerMessage?: number;
}

const gc = (() => {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
})();

// ------------------------------------------------------------------------------------------
// the traffic: the bench's load generator's topics and payloads

const sites = ['malta-factory', 'lisbon-dc', 'gdansk-plant', 'porto-warehouse'];
const padding = 'x'.repeat(60);
const prefix = 'stage';
function topicOf(i: number): string {
  const d = i % 1000;
  return `${prefix}/${sites[d % 4]}/floor-${String(d % 8).padStart(2, '0')}/temperature-sensor/ts-${10000 + d}/telemetry`;
}
function payloadOf(seq: number): Buffer {
  return Buffer.from(
    JSON.stringify({
      seq,
      ts: 1_764_700_000_000 + seq,
      temperature: 20 + (seq % 100) / 10,
      humidity: 40 + (seq % 30),
      battery: 97.5,
      status: 'ok',
      fw: '2.4.1',
      note: padding,
    }),
  );
}

/** (b)'s route: Kafka and InfluxDB. */
const rulesSource = {
  subscriptions: [{ filter: `${prefix}/+/+/+/+/telemetry`, qos: 1 }],
  routes: [
    {
      name: 'telemetry',
      match: `${prefix}/{site}/{zone}/{deviceType}/{deviceId}/telemetry`,
      kafka: { topic: `${prefix}.telemetry`, key: '{deviceId}' },
      influx: {
        measurement: prefix,
        tags: ['site', 'zone', 'deviceId'],
        fields: { temperature: '$.temperature', humidity: '$.humidity', battery: '$.battery' },
        time: '$.ts',
      },
    },
  ],
};
const rules = compileRules(rulesFile.parse(rulesSource));

/** (a)'s route: Kafka alone, the payload forwarded as it came (checked to be JSON, not parsed). */
const forwardRules = compileRules(
  rulesFile.parse({
    subscriptions: [{ filter: `${prefix}/+/+/+/+/telemetry`, qos: 1 }],
    routes: [
      { name: 'telemetry', match: `${prefix}/{site}/{zone}/{deviceType}/{deviceId}/telemetry`, kafka: { topic: `${prefix}.telemetry`, key: '{deviceId}' } },
    ],
  }),
);

function messages(n: number): Message[] {
  return Array.from({ length: n }, (_, i) => ({
    topic: topicOf(i),
    payload: payloadOf(i),
    qos: 1,
    retain: false,
    properties: {},
    receivedAt: Date.now(),
    packetId: (i % 65535) + 1,
    dup: false,
  }));
}

function inputs(ms: readonly Message[]): Array<{ input: MatchInput; kafka: RouteOutput<KafkaRecord>; influx: RouteOutput<string> }> {
  return ms.map((message) => {
    const routed = rules.route(message);
    const match = routed.matches[0];
    if (!match) throw new Error(`the stage traffic did not route: ${message.topic}`);
    const kafka = match.outputs.find((o) => o.sink === 'kafka') as RouteOutput<KafkaRecord>;
    const influx = match.outputs.find((o) => o.sink === 'influx') as RouteOutput<string>;
    return { input: { message, route: match.route, levels: match.levels, payload: match.payload, clientId: 'stage', annotations: undefined }, kafka, influx };
  });
}

// ------------------------------------------------------------------------------------------
// measuring

/** Runs messages [from, to) through the stage; resolves when they are through. */
type Run = (from: number, to: number) => void | Promise<void>;

async function measure(stage: string, n: number, run: Run, rounds: number): Promise<StageResult> {
  await run(0, Math.min(n, 5_000)); // warm up: JIT, caches, pools
  const us: number[] = [];
  const gcShares: number[] = [];
  for (let r = 0; r < rounds; r++) {
    gc();
    const profiler = new v8.GCProfiler();
    profiler.start();
    const cpu0 = cpuUsage();
    await run(0, n);
    const cpu = cpuUsage(cpu0);
    const gcUs = profiler.stop().statistics.reduce((a, s) => a + s.cost, 0);
    const total = cpu.user + cpu.system;
    us.push(total / n);
    gcShares.push(total > 0 ? gcUs / total : 0);
  }
  // allocation: the heap's growth over small slices; a slice during which a GC ran is not
  // counted. No GC is forced between them: a full GC that finds no object of a shape alive
  // clears the shape and the optimised code that made it ("embedded weak objects cleared"), and
  // the slices after it ran less optimised code that allocated more (kafka-record 353 B, not
  // 216), which a worker with messages in flight does not. The first slices are not counted:
  // each ends with the stage idle, a path the rounds did not take, and V8 re-optimises for it
  // only after ~15 of them (until then the pipeline allocated ~3,800 B per message, not ~3,150)
  const slice = 200;
  const warmSlices = Math.min(20, Math.floor(n / slice / 3)); // fewer for a smoke run's few messages
  const perMessage: number[] = [];
  for (let k = 0, from = 0; k < warmSlices + 40 && from + slice <= n; k++, from += slice) {
    const before = process.memoryUsage();
    const profiler = new v8.GCProfiler();
    profiler.start();
    await run(from, from + slice);
    const gcs = profiler.stop().statistics.length;
    const after = process.memoryUsage();
    if (gcs === 0 && k >= warmSlices) perMessage.push((after.heapUsed - before.heapUsed + after.arrayBuffers - before.arrayBuffers) / slice);
  }
  return { stage, usPerMessage: round(median(us), 2), gcShare: round(median(gcShares), 3), bytesPerMessage: Math.round(median(perMessage)) };
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function round(x: number, digits: number): number {
  return Number(x.toFixed(digits));
}

// ------------------------------------------------------------------------------------------
// the stages

/** MQTT.js on an in-memory stream carrying the PUBLISH packets; the slots settle a tick later, as a sink would. */
async function mqttStage(n: number): Promise<Run> {
  const options = { protocolVersion: 5 } as const;
  const connack = mqttPacket.generate({ cmd: 'connack', returnCode: 0, reasonCode: 0, sessionPresent: true, properties: {} }, options);
  // PUBLISH packets as a broker sends them, cut into 64 KiB reads as a socket gives them
  const publishes = Array.from({ length: Math.min(n, 65_535) }, (_, i) =>
    mqttPacket.generate(
      {
        cmd: 'publish',
        topic: topicOf(i),
        payload: payloadOf(i),
        qos: 1,
        messageId: i + 1,
        retain: false,
        dup: false,
      },
      options,
    ),
  );
  let delivered = 0;
  let target = 0;
  let done: (() => void) | undefined;
  let pending: AckSlot[] = [];
  const settleLater = async () => {
    await immediate();
    const slots = pending;
    pending = [];
    for (const s of slots) s.settle();
  };
  let stream: Duplex | undefined;
  let written = 0;
  const client: MqttClient = new mqtt.MqttClient(
    () => {
      stream = new Duplex({
        read() {},
        write(chunk: Buffer, _enc, cb) {
          written += chunk.length; // CONNECT, then the PUBACKs
          cb();
        },
      });
      stream.push(connack);
      return stream as unknown as PassThrough;
    },
    {
      protocolVersion: 5,
      clientId: 'stage',
      clean: false,
      keepalive: 0,
      reconnectPeriod: 0,
      manualConnect: true,
      log: () => {},
      properties: { receiveMaximum: 1000 },
    } as IClientOptions,
  );
  const window = new AckWindow(1000, { release: (ack) => sendAck(ack) });
  const metrics = createMetrics(new Registry(), { defaultMetrics: false });
  const received = metrics.received.labels('1');
  const { sendAck } = installDeferredAcks(client, window, {
    accepting: () => true,
    onMessage: (packet, slot) => {
      received.inc();
      const message = messageOf(packet);
      if (message.payload.length === 0) throw new Error('empty');
      if (pending.push(slot) === 1) void settleLater();
      if (++delivered === target) done?.();
    },
  });
  const connected = new Promise<void>((resolve) => client.once('connect', () => resolve()));
  client.connect();
  await connected;
  return async (from, to) => {
    target = delivered + (to - from);
    const finished = new Promise<void>((resolve) => (done = resolve));
    let chunk: Buffer[] = [];
    let bytes = 0;
    for (let i = from; i < to; i++) {
      const p = publishes[i % publishes.length] as Buffer;
      chunk.push(p);
      bytes += p.length;
      if (bytes >= 65_536) {
        stream?.push(Buffer.concat(chunk, bytes));
        chunk = [];
        bytes = 0;
      }
    }
    if (bytes > 0) stream?.push(Buffer.concat(chunk, bytes));
    await finished;
    if (written === 0) throw new Error('no PUBACK was written');
  };
}

function routeStage(ms: readonly Message[], set = rules): Run {
  return (from, to) => {
    for (let i = from; i < to; i++) if (set.route(ms[i] as Message).matches.length !== 1) throw new Error('unrouted');
  };
}

/** A topic of the fleet stage: device `d` of 50,000, named as the bench's devices are. */
const fleetDevices = 50_000;
function fleetTopicOf(d: number): string {
  return `${prefix}/${sites[d % 4]}/floor-${String(d % 8).padStart(2, '0')}/temperature-sensor/ts-${100000 + d}/telemetry`;
}

function fleetStage(): Run {
  const set = compileRules(rulesFile.parse(rulesSource)); // its own: the other stages' topics are not kept in it
  const topics = Array.from({ length: fleetDevices }, (_, d) => Buffer.from(fleetTopicOf(d)));
  const payloads = Array.from({ length: 1_000 }, (_, i) => payloadOf(i));
  return (from, to) => {
    for (let i = from; i < to; i++) {
      const message: Message = {
        topic: (topics[i % fleetDevices] as Buffer).toString(),
        payload: payloads[i % 1_000] as Buffer,
        qos: 1,
        retain: false,
        properties: {},
        receivedAt: Date.now(),
      };
      const match = set.route(message).matches[0];
      if (!match) throw new Error('unrouted');
      const input: MatchInput = { message, route: match.route, levels: match.levels, payload: match.payload, clientId: 'stage', annotations: undefined };
      for (const output of match.outputs) if (!('item' in output.encode(input))) throw new Error(`${output.sink} refused the fleet traffic`);
    }
  };
}

/** (f)'s traffic and route: births first, then alias-only DDATA, 1,000 distinct payloads replayed. */
function sparkplugStage(): Run {
  const spb = sparkplugPayload.get('spBv1.0') as { encodePayload(p: unknown): Uint8Array };
  const group = 'stage';
  const set = compileRules(
    rulesFile.parse({
      subscriptions: [{ filter: `spBv1.0/${group}/+/#`, qos: 1 }],
      routes: [
        {
          name: 'sparkplug',
          match: `spBv1.0/${group}/#`,
          payload: 'sparkplug',
          influx: { measurement: group, tags: ['edgeNode', 'device'] },
          kafka: { topic: `${group}.sparkplug` },
        },
      ],
    }),
  );
  const node = (n: number) => `gw-${String(n).padStart(2, '0')}`;
  const message = (topic: string, payload: unknown): Message => ({
    topic,
    payload: Buffer.from(spb.encodePayload(payload)),
    qos: 1,
    retain: false,
    properties: {},
    receivedAt: Date.now(),
  });
  const start = 1_764_700_000_000;
  for (let n = 0; n < 10; n++) {
    const births = [message(`spBv1.0/${group}/NBIRTH/${node(n)}`, { timestamp: start, seq: 0, metrics: [{ name: 'bdSeq', type: 'UInt64', value: 0 }] })];
    for (let d = 0; d < 10; d++) {
      const metrics = deviceMetrics.map((m, k) => ({ name: m.name, alias: alias(d, k), type: m.type, value: m.value(0, d) }));
      births.push(message(`spBv1.0/${group}/DBIRTH/${node(n)}/dev-${d}`, { timestamp: start, seq: d + 1, metrics }));
    }
    for (const b of births) set.route(b, Date.now(), { followSeq: false });
  }
  const data = Array.from({ length: 1_000 }, (_, i) => {
    const n = i % 10;
    const d = Math.floor(i / 10) % 10;
    return message(`spBv1.0/${group}/DDATA/${node(n)}/dev-${d}`, {
      timestamp: start + i,
      seq: 0,
      metrics: deviceMetrics.map((m, k) => ({ alias: alias(d, k), type: m.type, value: m.value(i, d) })),
    });
  });
  return (from, to) => {
    for (let i = from; i < to; i++) {
      const message = data[i % 1_000] as Message;
      const match = set.route(message, Date.now(), { followSeq: false }).matches[0];
      if (!match || match.problem) throw new Error(`the Sparkplug traffic did not route: ${match?.problem?.error}`);
      const input: MatchInput = { message, route: match.route, levels: match.levels, payload: match.payload, clientId: 'stage', annotations: undefined };
      for (const output of match.outputs) if (!('item' in output.encode(input))) throw new Error(`${output.sink} refused the Sparkplug traffic`);
    }
  };
}

function encodeStage(ins: ReturnType<typeof inputs>, sink: 'kafka' | 'influx'): Run {
  return (from, to) => {
    for (let i = from; i < to; i++) {
      const x = ins[i] as (typeof ins)[number];
      const encoded = (sink === 'kafka' ? x.kafka : x.influx).encode(x.input);
      if (!('item' in encoded)) throw new Error(`${sink} refused the stage traffic`);
    }
  };
}

function kafkaBatchStage(
  ins: ReturnType<typeof inputs>,
  encode: typeof leanRecordsBatch,
  messagesOf: (batches: Parameters<typeof producerMessages>[0]) => ReturnType<typeof producerMessages>,
): Run {
  const records = ins.map((x) => (x.kafka.encode(x.input) as { item: KafkaRecord }).item);
  return (from, to) => {
    for (let start = from; start < to; start += 1000) {
      const batch = records.slice(start, Math.min(to, start + 1000));
      const messages = messagesOf([{ topic: `${prefix}.telemetry`, records: batch }]);
      const encoded = encode(messages as MessageRecord[], { producerId: 1000n, producerEpoch: 0 });
      if (encoded.length === 0) throw new Error('empty batch');
    }
  };
}

/**
 * A sink that is durable at once (what remains is sluice's own work), or that never answers (what
 * a message in flight holds). One that never answers keeps the batches it was given, as a client
 * keeps a request's records until the broker answers: a promise nothing resolves would otherwise
 * let the whole write, batch and all, be collected.
 */
class StageSink<T> implements Sink<T> {
  readonly name: string;
  private readonly answers: boolean;
  /** The batches written and not answered. */
  readonly unanswered: Array<readonly T[]> = [];
  constructor(name: string, answers: boolean) {
    this.name = name;
    this.answers = answers;
  }
  sizeOf(): number {
    return 200;
  }
  write(batch: readonly T[]): Promise<WriteResult> {
    if (this.answers) return Promise.resolve({ rejected: [] });
    this.unanswered.push(batch);
    return new Promise(() => {});
  }
  async close(): Promise<void> {}
}

/** sluice's pipeline on the stage's rules, its Kafka, InfluxDB and dead-letter queues on stage sinks. */
function stagePipeline(answers: boolean, lingerMs: number): Pipeline {
  const log = pino({ level: 'silent' });
  const metrics = createMetrics(new Registry(), { defaultMetrics: false });
  const queues = new Map<string, BatchQueue<unknown>>(
    ['kafka', 'influx', 'dead-letter'].map((name) => [
      name,
      new BatchQueue<unknown>(
        new StageSink(name, answers),
        { maxItems: 1000, maxBytes: 1 << 20, lingerMs, concurrency: 2 },
        { minMs: 10, maxMs: 100 },
        log,
        metrics,
      ),
    ]),
  );
  return new Pipeline({ rules: () => rules, queues, deadLetters: queues.get('dead-letter') as BatchQueue<DeadLetterItem>, metrics, log });
}

function pipelineStage(ms: readonly Message[]): Run {
  const pipeline = stagePipeline(true, 5);
  let released = 0;
  let target = 0;
  let done: (() => void) | undefined;
  const window = new AckWindow(1000, {
    release: () => {
      if (++released === target) done?.();
    },
  });
  return async (from, to) => {
    target = released + (to - from);
    const finished = new Promise<void>((resolve) => (done = resolve));
    for (let i = from; i < to; i++) {
      while (window.full) await new Promise<void>((resume) => window.whenRoom(resume));
      const slot = window.open();
      window.attach(slot, 'puback');
      pipeline.dispatch(ms[i] as Message, slot, 'stage');
    }
    await finished;
  };
}

/** What 1,000 messages in flight hold in sluice's pipeline, per message (median of 5 fresh pipelines). */
async function heldInFlight(ms: readonly Message[]): Promise<number> {
  const n = 1000;
  const perMessage: number[] = [];
  for (let r = 0; r < 5; r++) {
    const pipeline = stagePipeline(false, 1);
    const window = new AckWindow(n, { release: () => {} });
    const batch = ms.slice(r * n, (r + 1) * n);
    gc();
    gc();
    const before = process.memoryUsage();
    for (const m of batch) {
      const slot = window.open();
      window.attach(slot, 'puback');
      pipeline.dispatch(m, slot, 'stage');
    }
    await new Promise((resume) => setTimeout(resume, 20)); // past the linger: the batches are being written
    gc();
    gc();
    const after = process.memoryUsage();
    perMessage.push((after.heapUsed - before.heapUsed + after.arrayBuffers - before.arrayBuffers) / n);
    if (window.inFlight !== n) throw new Error('a message in flight was settled');
  }
  return Math.round(median(perMessage));
}

/** Every stage, `n` messages each, `rounds` times. */
export async function runStages(n = 50_000, rounds = 5, say: (s: string) => void = () => {}, only?: ReadonlySet<string>): Promise<StageResult[]> {
  const ms = messages(n);
  const ins = inputs(ms);
  const stages: Array<[string, () => Run | Promise<Run>]> = [
    ['mqtt', () => mqttStage(n)],
    ['route', () => routeStage(ms)],
    ['route-forward', () => routeStage(ms, forwardRules)],
    ['route-fleet', () => fleetStage()],
    ['kafka-record', () => encodeStage(ins, 'kafka')],
    ['influx-line', () => encodeStage(ins, 'influx')],
    ['kafka-batch', () => kafkaBatchStage(ins, leanRecordsBatch, (b) => producerMessages(b, true))],
    ['kafka-batch-library', () => kafkaBatchStage(ins, libraryRecordsBatch, producerMessages)],
    ['sparkplug', () => sparkplugStage()],
    ['pipeline', () => pipelineStage(ms)],
  ];
  const out: StageResult[] = [];
  for (const [name, make] of stages) {
    if (only && !only.has(name)) continue;
    const r = await measure(name, n, await make(), rounds);
    if (name === 'pipeline') r.heldBytesPerMessage = await heldInFlight(ms);
    say(
      `stage ${name}: ${r.usPerMessage} µs, ${r.bytesPerMessage} B per message, GC ${(r.gcShare * 100).toFixed(1)}%` +
        (r.heldBytesPerMessage === undefined ? '' : `, ${r.heldBytesPerMessage} B held in flight`),
    );
    out.push(r);
  }
  return out;
}

export function stageTable(results: readonly StageResult[]): string {
  const rows = [['stage', 'CPU µs / msg', 'of which GC', 'bytes allocated / msg', 'bytes held in flight / msg']];
  for (const r of results) {
    const held = r.heldBytesPerMessage === undefined ? '' : r.heldBytesPerMessage.toLocaleString('en-US');
    rows.push([r.stage, r.usPerMessage.toFixed(2), `${(r.gcShare * 100).toFixed(1)}%`, r.bytesPerMessage.toLocaleString('en-US'), held]);
  }
  const widths = (rows[0] as string[]).map((_, i) => Math.max(...rows.map((x) => (x[i] ?? '').length)));
  const lines = rows.map((x) => `| ${x.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`);
  lines.splice(1, 0, `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  return lines.join('\n');
}

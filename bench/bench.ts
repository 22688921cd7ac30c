// `npm run bench`: sustained throughput, end-to-end latency and memory of sluice, side by side
// with the broker's own delivery rate measured in the same run. Method (docs/benchmarks.md):
// a persistent session is made, N messages are queued for it at the broker, then the consumer
// under test connects and drains them; the rate is N / (last ack - first message). The same
// N, Receive Maximum and broker serve the ceilings (a bare MQTT.js subscriber that acks at
// once, and mosquitto_sub) and sluice. Several rounds; medians and spreads; JSON and a table.
import '../src/source/mqtt/quiet-debug.ts'; // as src/cli.ts does: first, before mqtt-packet loads (the stage table)
import { execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { closeSync, fdatasyncSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { Admin } from 'kafkajs';
import { LocalStack } from '../deploy/local/local-stack.ts';
import { findExecutable } from '../deploy/local/prerequisites.ts';
import { kafkaVersion } from '../deploy/local/servers/kafka.ts';
import { repoRoot, stackConfig } from '../deploy/local/stack-config.ts';
import { buildDist } from '../scripts/build-dist.ts';
import { histogramQuantile } from '../scripts/prometheus-text.ts';
import { sluiceNodeFlags } from '../scripts/sluice-node-flags.ts';
import { verifyAuditLog } from '../src/audit/tools/verify.ts';
import { type KafkaClientKind, kafkaClients } from '../src/sinks/kafka/client/kafka-client.ts';
import { rdkafkaMissing } from '../src/sinks/kafka/client/rdkafka-client.ts';
import { kafkaConfig } from '../src/sinks/kafka/config.ts';
import { merge, peakRssMiBOf, type SluiceProcess, sluiceProcess as startSluice } from '../test/support/sluice-process.ts';
import { createReadyTopic, endpoints, kafka, unique } from '../test/support/stack.ts';
import { summarizeProfile } from './profile-summary.ts';
import { runStages, stageTable } from './stages.ts';
import { percentile, type Spread, spread } from './stats.ts';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    count: { type: 'string', default: '100000' },
    'receive-maximum': { type: 'string', default: '1000' },
    scenarios: { type: 'string', default: 'a,b,c,d,e,f,s,t' },
    'command-count': { type: 'string', default: '20000' },
    'commands-receive-maximum': { type: 'string', default: '100' },
    'audit-trust': { type: 'string', default: 'none' },
    smoke: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    'profile-scenario': { type: 'string', default: 'a' },
    'sluice-node-args': { type: 'string', default: '' },
    // worker config laid over every sluice process's, as JSON: '{"kafka":{"batch":{"lingerMs":0}}}'
    'sluice-config': { type: 'string', default: '{}' },
    // every client, rdkafka only where node-rdkafka built (an optional dependency)
    'kafka-client': { type: 'string', default: kafkaClients.filter((k) => k !== 'rdkafka' || rdkafkaMissing() === undefined).join(',') },
    'poll-ms': { type: 'string', default: '50' },
    'full-poll': { type: 'boolean', default: false },
    build: { type: 'string', default: 'dist' },
    stages: { type: 'boolean', default: false },
    'stage-messages': { type: 'string', default: '50000' },
    'stage-only': { type: 'string' },
    'steady-rates': { type: 'string', default: '1000,10000' },
    'steady-seconds': { type: 'string', default: '30' },
    // the route of the steady points: a (Kafka) or b (Kafka + InfluxDB, as (b)'s half-rate point)
    'steady-route': { type: 'string', default: 'a' },
    'soak-minutes': { type: 'string', default: '30' },
    'soak-rate': { type: 'string', default: '5000' },
    // the most (a) drains, not counted, that warm a Kafka up before the first round; 0: none
    'warm-up': { type: 'string', default: '12' },
    // scenario t: the Telegraf binary (else `telegraf` on the PATH; the scenario is skipped without one)
    telegraf: { type: 'string' },
    // value: Telegraf forwards the payload as it came, as (a) does; json: it parses the payload
    // and writes its metric as JSON (how JSON telemetry is usually set up)
    'telegraf-format': { type: 'string', default: 'value' },
  },
});
const smoke = args.smoke;
const rounds = smoke ? 1 : Number(args.rounds);
const count = smoke ? 5_000 : Number(args.count);
const receiveMaximum = Number(args['receive-maximum']);
const scenarios = new Set((smoke ? 'a,b,c,s' : args.scenarios).split(','));
/** (s) steady rates: sluice at each rate for steady-seconds, one after the other. */
const steadyRates = args['steady-rates']
  .split(',')
  .map(Number)
  .filter((x) => x > 0);
const steadySeconds = Number(args['steady-seconds']);
if (args['steady-route'] !== 'a' && args['steady-route'] !== 'b') throw new Error(`--steady-route ${args['steady-route']}: a (Kafka) or b (Kafka + InfluxDB)`);
const steadyWithInflux = args['steady-route'] === 'b';
const commandCount = smoke ? 2_000 : Number(args['command-count']);
const commandsReceiveMaximum = Number(args['commands-receive-maximum']);
const node = join(repoRoot, 'scripts/node');
/** Extra node flags for every sluice process, for experiments (e.g. V8 heap sizes). */
const sluiceNodeArgs = args['sluice-node-args'].split(' ').filter(Boolean);
/** Worker config for every sluice process, over the scenario's, for experiments (e.g. batching). */
const sluiceConfig = JSON.parse(args['sluice-config']) as Record<string, unknown>;
function sluiceProcess(options: Parameters<typeof startSluice>[0]): SluiceProcess {
  return startSluice({ ...options, config: merge(options.config ?? {}, sluiceConfig) });
}
/** The Kafka clients measured side by side in (a) and (b); the others run on the default. */
const clients = args['kafka-client']
  .split(',')
  .map((c) => c.trim())
  .filter(Boolean) as KafkaClientKind[];
for (const c of clients)
  if (!(kafkaClients as readonly string[]).includes(c)) throw new Error(`--kafka-client: unknown client ${c} (${kafkaClients.join(', ')})`);
const defaultClient = kafkaConfig.parse({}).client;
/**
 * sluice as users run it (dist/, built below) unless --build src; --build PATH runs another
 * checkout's built cli.js (an A/B against the code before a change, on the same stack).
 */
const build = args.build === 'src' ? 'src' : args.build === 'dist' || args.build === undefined ? 'dist' : { entry: args.build };
/**
 * How the drains watch sluice: every poll-ms, only the counters they read (`/metrics?name=`),
 * unless --full-poll renders the whole registry each time (what the bench did before; measured
 * against the named poll in docs/benchmarks.md).
 */
const pollMs = Number(args['poll-ms']);
const polled = args['full-poll']
  ? []
  : [
      'sluice_messages_received_total',
      'sluice_messages_acked_total',
      'sluice_nodejs_heap_size_total_bytes',
      'sluice_nodejs_heap_size_used_bytes',
      'sluice_nodejs_external_memory_bytes',
    ];

/**
 * The tool our users would run instead, measured on this machine with the same method beside a
 * bare MQTT.js subscriber in the same run (2026-12-03: Telegraf 1.37.2 mqtt_consumer -> kafka
 * output, persistent session, acks after the write, 100k QoS 1, acks=-1, medians of 3; ceiling
 * 127,389 msg/s), and the targets set against it: rates as a share of the ceiling measured in the
 * same run, since the machine's speed moves from run to run.
 */
const telegraf = {
  rate: 38_405,
  ofCeiling: 0.3,
  peakRssMiB: 36.9,
  cpuSecondsPer100k: 2.57,
  steady: { 1000: { p99Ms: 102, rssMiB: 31 }, 10000: { p99Ms: 106, rssMiB: 34 } },
};
const targets = {
  /** (a) drain rate, as a share of the bare MQTT.js ceiling of the same run (1.5x Telegraf's share). */
  ofCeiling: 0.43,
  cpuSecondsPer100k: 1.9,
  /** Peak RSS during a drain and during the catch-up after a Kafka outage. */
  peakRssMiB: 150,
  /** RSS at a steady 1,000 msg/s. */
  steadyRssMiB: 100,
  /** p99 end to end at a steady rate (ms). */
  steadyP99Ms: { 1000: 5, 10000: 10 } as Record<number, number>,
  /** p99 end to end at half the drain rate (ms). */
  halfRateP99Ms: 25,
  /** (b)'s rate as a share of (a)'s. */
  bOfA: 0.8,
};
const say = (s: string) => process.stderr.write(`bench: ${s}\n`);

// ---------------------------------------------------------------------------------------------
// helpers

function runJson(script: string, scriptArgs: string[]): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const child = spawn(node, [join(repoRoot, script), ...scriptArgs], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`${script} exited ${code}`));
      const last = out.trim().split('\n').at(-1);
      resolve(last ? (JSON.parse(last) as Record<string, number>) : {});
    });
  });
}

function load(prefix: string, n: number, rate = 0, devices = 1000, extra: string[] = []) {
  return runJson('bench/load-generator.ts', [
    '--url',
    endpoints.mqtt,
    '--prefix',
    prefix,
    '--count',
    String(n),
    '--rate',
    String(rate),
    '--devices',
    String(devices),
    ...extra,
  ]);
}

/** QoS 2 commands: 8 publishers, each within Mosquitto's QoS 2 quota. */
function loadCommands(prefix: string, n: number) {
  return load(prefix, n, 0, 1000, ['--qos', '2', '--kind', 'command', '--connections', '8']);
}

function filterOf(prefix: string) {
  return `${prefix}/+/+/+/+/telemetry`;
}

function rules(prefix: string, topic: string, withInflux: boolean) {
  return {
    subscriptions: [{ filter: filterOf(prefix), qos: 1 }],
    routes: [
      {
        name: 'telemetry',
        match: `${prefix}/{site}/{zone}/{deviceType}/{deviceId}/telemetry`,
        kafka: { topic, key: '{deviceId}' },
        ...(withInflux
          ? {
              influx: {
                measurement: prefix.replace(/-/g, '_'),
                tags: ['site', 'zone', 'deviceId'],
                fields: { temperature: '$.temperature', humidity: '$.humidity', battery: '$.battery' },
                time: '$.ts',
              },
            }
          : {}),
      },
    ],
  };
}

/** Every topic this run created: deleted at its end, so that runs do not pile up on the stack's disk. */
const createdTopics: string[] = [];

async function createTopic(topic: string, configEntries: Array<{ name: string; value: string }> = []): Promise<void> {
  const admin = kafka().admin();
  await admin.connect();
  await createReadyTopic(admin, topic, 6, configEntries);
  createdTopics.push(topic);
  await admin.disconnect();
}

async function deleteCreatedTopics(): Promise<void> {
  if (createdTopics.length === 0) return;
  const admin = kafka().admin();
  try {
    await admin.connect();
    await admin.deleteTopics({ topics: createdTopics, timeout: 30_000 });
    say(`deleted the ${createdTopics.length} topics this run created`);
  } catch (err) {
    say(`could not delete this run's topics (${(err as Error).message}): ${createdTopics.join(', ')}`);
  } finally {
    await admin.disconnect();
  }
}

async function topicCount(topic: string, admin?: Admin): Promise<number> {
  if (admin) return (await admin.fetchTopicOffsets(topic)).reduce((a, o) => a + Number(o.high), 0);
  const own = kafka().admin();
  await own.connect();
  try {
    return await topicCount(topic, own);
  } finally {
    await own.disconnect();
  }
}

function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
}

/**
 * A process's main thread: seconds on a core, and seconds runnable but waiting for one (the
 * scheduler's own account, /proc/<pid>/task/<pid>/schedstat).
 */
function mainThreadSeconds(pid: number): [running: number, waiting: number] {
  const [run, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ').map(Number);
  return [(run ?? NaN) / 1e9, (wait ?? NaN) / 1e9];
}

/** A process's CPU seconds, all its threads. */
function cpuSeconds(pid: number): number {
  return statCpuSeconds(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/** utime + stime from a /proc stat line (a process's or a thread's), in seconds (USER_HZ 100). */
function statCpuSeconds(stat: string): number {
  // the fields after the name, which is in parentheses and may hold spaces
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** CPU seconds the whole machine has been busy (every core; /proc/stat's jiffies, USER_HZ 100). */
function machineBusySeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
  // user nice system idle iowait irq softirq steal: busy is all but idle and iowait
  return ((f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0)) / 100;
}

/**
 * Where the machine's CPU goes during a drain: a reading of every core's busy time and of each
 * process named, taken at the drain's first message and again at its last ack. What the
 * processes named do not account for (the bench itself, the kernel's work for nobody in
 * particular, anything else running) is `rest`. For the processes named in `mainThreadOf`, their
 * main thread too: the time it ran (`<name> main thread`) and the time it was ready to run but
 * waited for a core (`<name> main thread waiting`); what is left of the wall time it was idle,
 * waiting for something to do. With several such processes, their mean.
 */
class MachineCpu {
  private readonly pids: Map<string, number[]>;
  private readonly mainThreadOf: Set<string>;
  private readonly at0: { wall: number; busy: number; cpu: Map<string, number[]>; main: Map<string, Array<[number, number]>> };
  private constructor(pids: Map<string, number[]>, mainThreadOf: Set<string>) {
    this.pids = pids;
    this.mainThreadOf = mainThreadOf;
    this.at0 = { wall: Date.now(), busy: machineBusySeconds(), cpu: this.read(cpuSeconds, NaN), main: this.readMain() };
  }

  static start(pids: Map<string, number[]>, mainThreadOf: string[] = []): MachineCpu {
    return new MachineCpu(pids, new Set(mainThreadOf));
  }

  /** `f` of each process by name; `gone` for a process that is no longer there (its share unknown, not zero). */
  private read<T>(f: (pid: number) => T, gone: T, names = [...this.pids.keys()]): Map<string, T[]> {
    return new Map(
      names.map((name) => [
        name,
        (this.pids.get(name) ?? []).map((p) => {
          try {
            return f(p);
          } catch {
            return gone;
          }
        }),
      ]),
    );
  }

  private readMain(): Map<string, Array<[number, number]>> {
    return this.read(mainThreadSeconds, [NaN, NaN], [...this.mainThreadOf]);
  }

  /** Cores busy on average since `start`, in all and by process name (each name's processes summed). */
  stop(): MachineShare {
    const seconds = (Date.now() - this.at0.wall) / 1000;
    const cores = (cpu: number) => Number((cpu / seconds).toFixed(2));
    const cpu = this.read(cpuSeconds, NaN);
    const main = this.readMain();
    const byName: Record<string, number> = {};
    let named = 0;
    for (const [name, before] of this.at0.cpu) {
      const after = cpu.get(name) ?? [];
      const used = before.reduce((a, c, i) => a + ((after[i] ?? NaN) - c), 0);
      byName[name] = cores(used);
      if (Number.isFinite(used)) named += used;
    }
    for (const [name, before] of this.at0.main) {
      const after = main.get(name) ?? [];
      const delta = (k: 0 | 1) => before.reduce((a, c, i) => a + ((after[i]?.[k] ?? NaN) - c[k]), 0) / before.length;
      byName[`${name} main thread`] = cores(delta(0));
      byName[`${name} main thread waiting`] = cores(delta(1));
    }
    const busy = machineBusySeconds() - this.at0.busy;
    return { busyCores: cores(busy), ofCores: cpus().length, ...byName, rest: cores(busy - named) };
  }
}

type MachineShare = { busyCores: number; ofCores: number; rest: number } & Record<string, number>;

/** The stack's servers' pids by name, read now (a server restarted since has a new one). */
async function serverPids(): Promise<Map<string, number[]>> {
  const m = new Map<string, number[]>();
  for (const s of await stack.status()) if (s.pid !== undefined) m.set(s.name, [s.pid]);
  return m;
}

/** Each name's median over the rounds that measured it. */
function medianShare(shares: Array<MachineShare | undefined>): Record<string, number> | undefined {
  const got = shares.filter((x) => x !== undefined);
  if (got.length === 0) return undefined;
  const names = [...new Set(got.flatMap((x) => Object.keys(x)))];
  return Object.fromEntries(names.map((n) => [n, spread(got.map((x) => x[n] ?? NaN).filter(Number.isFinite)).median]));
}

interface DrainResult {
  rate: number;
  seconds: number;
  peakRssMiB: number;
  cpuPer100k: number;
  durable: number;
  /** The largest V8 heap (total and used) and external memory any poll saw (sampled: a lower bound). */
  peakHeapTotalMiB?: number;
  peakHeapUsedMiB?: number;
  peakExternalMiB?: number;
  /** Cores busy during the drain, the machine's and each process's (sluice's workers summed). */
  machine?: MachineShare;
}

// ---------------------------------------------------------------------------------------------
// ceilings

async function ceilingMqttJs(): Promise<number> {
  const prefix = unique('ceil');
  const clientId = unique('bare');
  const filter = `$share/${unique('g')}/${filterOf(prefix)}`;
  const base = ['--url', endpoints.mqtt, '--filter', filter, '--client-id', clientId, '--receive-maximum', String(receiveMaximum)];
  await runJson('bench/bare-subscriber.ts', [...base, '--setup']);
  await load(prefix, count);
  const r = await runJson('bench/bare-subscriber.ts', [...base, '--count', String(count)]);
  return r.rate as number;
}

async function ceilingMosquittoSub(): Promise<number | undefined> {
  const prefix = unique('ceil');
  return drainWithMosquittoSub(1, filterOf(prefix), receiveMaximum, () => load(prefix, count), count);
}

/**
 * mosquitto_sub makes a persistent session on `filter`, `queue()` fills it at the broker, then
 * it drains `n` messages: their count over its run time. Undefined without mosquitto_sub.
 */
async function drainWithMosquittoSub(qos: 1 | 2, filter: string, receiveMax: number, queue: () => Promise<unknown>, n: number): Promise<number | undefined> {
  const sub = findExecutable('mosquitto_sub');
  if (!sub) return undefined;
  const common = [
    '-h',
    '127.0.0.1',
    '-p',
    String(stackConfig().mqtt.port),
    '-V',
    'mqttv5',
    '-q',
    String(qos),
    '-c',
    '-i',
    unique('msub'),
    '-x',
    '3600',
    '-D',
    'connect',
    'receive-maximum',
    String(receiveMax),
    '-t',
    `$share/${unique('g')}/${filter}`,
  ];
  execFileSync(sub, [...common, '-E']);
  await queue();
  const started = process.hrtime.bigint();
  execFileSync(sub, [...common, '-C', String(n)], { stdio: ['ignore', 'ignore', 'inherit'], maxBuffer: 1 << 30 });
  return Math.round(n / (Number(process.hrtime.bigint() - started) / 1e9));
}

// ---------------------------------------------------------------------------------------------
// sluice drains the same backlog

async function drainSluice(workers: number, withInflux: boolean, client: KafkaClientKind, profileDir?: string, messages = count): Promise<DrainResult> {
  const prefix = unique('bench');
  const topic = `${prefix}.telemetry`;
  await createTopic(topic);
  const group = unique('group');
  const procs: SluiceProcess[] = Array.from({ length: workers }, () =>
    sluiceProcess({
      rules: rules(prefix, topic, withInflux),
      group,
      config: { mqtt: { receiveMaximum }, kafka: { client } },
      nodeArgs: [...sluiceNodeArgs, ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [])],
      build,
    }),
  );
  // make the sessions, then queue the backlog while the workers are away
  await Promise.all(procs.map((p) => p.start()));
  await Promise.all(procs.map((p) => p.stop('SIGTERM')));
  await load(prefix, messages);
  // read before the start: the backlog flows from the moment a worker connects
  const servers = await serverPids();
  await Promise.all(procs.map((p) => p.start()));

  const pids = new Map([['sluice', procs.map((p) => p.pid as number)], ...servers]);
  let machine: MachineCpu | undefined;
  let first = 0;
  let cpuAtFirst = 0;
  const heap = { totalMiB: 0, usedMiB: 0, externalMiB: 0 };
  for (;;) {
    const ms = await Promise.all(procs.map((p) => p.metrics(polled)));
    const received = ms.reduce((a, m) => a + (m.get('sluice_messages_received_total{qos="1"}') ?? 0), 0);
    const acked = ms.reduce((a, m) => a + (m.get('sluice_messages_acked_total') ?? 0), 0);
    for (const m of ms) {
      heap.totalMiB = Math.max(heap.totalMiB, (m.get('sluice_nodejs_heap_size_total_bytes') ?? 0) / 2 ** 20);
      heap.usedMiB = Math.max(heap.usedMiB, (m.get('sluice_nodejs_heap_size_used_bytes') ?? 0) / 2 ** 20);
      heap.externalMiB = Math.max(heap.externalMiB, (m.get('sluice_nodejs_external_memory_bytes') ?? 0) / 2 ** 20);
    }
    if (first === 0 && received > 0) {
      first = Date.now() - pollMs / 2;
      cpuAtFirst = procs.reduce((a, p) => a + cpuSeconds(p.pid as number), 0);
      machine = MachineCpu.start(pids, ['sluice']);
    }
    if (acked >= messages) break;
    await sleep(pollMs);
  }
  const seconds = (Date.now() - first) / 1000;
  const share = machine?.stop();
  const cpu = procs.reduce((a, p) => a + cpuSeconds(p.pid as number), 0) - cpuAtFirst;
  const peakRssMiB = Math.max(...procs.map((p) => p.peakRssMiB()));
  await Promise.all(procs.map((p) => p.stop('SIGTERM')));
  const durable = await topicCount(topic);
  if (durable < messages) throw new Error(`only ${durable} of ${messages} in Kafka after every ack: a broken guarantee`);
  return {
    rate: Math.round(messages / seconds),
    seconds,
    peakRssMiB,
    cpuPer100k: (cpu / messages) * 100_000,
    durable,
    peakHeapTotalMiB: Math.round(heap.totalMiB),
    peakHeapUsedMiB: Math.round(heap.usedMiB),
    peakExternalMiB: Math.round(heap.externalMiB),
    ...(share ? { machine: share } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// the tool our users would run instead drains the same backlog (scenario t)

interface PeerDrain {
  rate: number;
  peakRssMiB: number;
  cpuPer100k: number;
}

/**
 * Telegraf's mqtt_consumer -> kafka output on the same backlog: a persistent session (so it
 * acknowledges a message only once its metric is written), the same window of 1,000 (MQTT 3.1.1
 * has no Receive Maximum: the local broker's max_inflight_messages), acks=-1, a 100 ms flush. The
 * rate runs from its connect to the last record in Kafka (Kafka's offsets polled as often as
 * sluice's metrics); RSS is its own peak (VmHWM).
 */
async function drainTelegraf(binary: string, forward: boolean): Promise<PeerDrain> {
  const prefix = unique('telegraf');
  const topic = `${prefix}.telemetry`;
  await createTopic(topic);
  const dir = mkdtempSync(join(tmpdir(), 'bench-telegraf-'));
  const conf = join(dir, 'telegraf.conf');
  writeFileSync(
    conf,
    [
      '[agent]',
      '  interval = "10s"',
      '  flush_interval = "100ms"',
      '  flush_jitter = "0s"',
      `  metric_batch_size = ${receiveMaximum}`,
      `  metric_buffer_limit = ${Math.max(10_000, 10 * receiveMaximum)}`,
      '  omit_hostname = true',
      '[[inputs.mqtt_consumer]]',
      `  servers = ["tcp://${endpoints.mqtt.replace(/^mqtt:\/\//, '')}"]`,
      `  topics = ["${prefix}/#"]`,
      '  qos = 1',
      '  persistent_session = true',
      `  client_id = "${unique('tg')}"`,
      `  max_undelivered_messages = ${receiveMaximum}`,
      ...(forward ? ['  data_format = "value"', '  data_type = "string"'] : ['  data_format = "json"']),
      '[[outputs.kafka]]',
      `  brokers = ["${endpoints.kafka}"]`,
      `  topic = "${topic}"`,
      '  required_acks = -1',
      ...(forward ? ['  data_format = "template"', `  template = '{{ .Field "value" }}'`] : ['  data_format = "json"']),
      '',
    ].join('\n'),
  );
  const run = async (untilRecords: number | undefined): Promise<PeerDrain | undefined> => {
    const child = spawn(binary, ['--config', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    const connected = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`telegraf did not connect in 30 s: ${log.slice(-2_000)}`)), 30_000);
      child.stderr.on('data', (d: Buffer) => {
        log = (log + d.toString()).slice(-20_000);
        if (/Connected \[/.test(log)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`telegraf exited (${code}) before it connected: ${log.slice(-2_000)}`));
      });
    });
    connected.catch(() => {}); // awaited below: its exit at the end must not be an unhandled rejection
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      await connected;
      if (untilRecords === undefined) return undefined;
      const pid = child.pid as number;
      const started = Date.now();
      const cpuAtStart = cpuSeconds(pid);
      // one admin connection for the drain: a connection per poll would cost the bench's own CPU
      const admin = kafka().admin();
      await admin.connect();
      let records = 0;
      try {
        while ((records = await topicCount(topic, admin)) < untilRecords) {
          if (Date.now() - started > 600_000) throw new Error(`telegraf wrote ${records} of ${untilRecords} in 10 min`);
          await sleep(pollMs);
        }
      } finally {
        await admin.disconnect();
      }
      const seconds = (Date.now() - started) / 1000;
      const cpu = cpuSeconds(pid) - cpuAtStart;
      const peak = peakRssMiBOf(pid);
      return {
        rate: Math.round(untilRecords / seconds),
        peakRssMiB: Math.round(peak * 10) / 10,
        cpuPer100k: Number(((cpu / untilRecords) * 100_000).toFixed(2)),
      };
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  };
  try {
    await run(undefined); // the session, then the backlog queued for it while it is away
    await load(prefix, count);
    return (await run(count)) as PeerDrain;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// a Kafka warmed up before the first round

interface WarmUpDrain {
  rate: number;
  /** Kafka's CPU seconds over the drain (its setup and load included), and its JIT compilers' share of them. */
  kafkaCpuSeconds: number;
  compilerShare: number;
}

/** A JVM's CPU seconds, all its threads, and those of its JIT compiler threads ("C1 CompilerThre", "C2 CompilerThre"). */
function jvmCpuSeconds(pid: number): { all: number; compilers: number } {
  let compilers = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8');
      if (/^\d+ \(C\d CompilerThre/.test(stat)) compilers += statCpuSeconds(stat);
    } catch {
      // a thread that ended between the listing and the read
    }
  }
  return { all: cpuSeconds(pid), compilers };
}

/** The most messages in one warm-up drain: a long `--count` does not make a long warm-up. */
const warmUpMessages = 100_000;

/**
 * A Kafka just started spends minutes compiling its request path: in the first drains after the
 * stack starts it took 0.3-0.7 of a core where a warm one takes ~0.15, half of it or more the
 * JVM's C2 compiler threads, and the drains it served paid for that, (a) above all, since it
 * runs first. So before the first round, (a) drains that are not counted run until Kafka's
 * compilers take less than `quiet` of its CPU over one, at most `max` of them. That takes off
 * the worst, not all of it: Kafka took 0.18-0.26 of a core in the counted drains right after,
 * 0.11-0.15 in runs a few minutes later; two quiet drains in a row at 0.1 took 23 drains and
 * left it at 0.18-0.26 too. Each drain is of `--count` messages, at most warmUpMessages.
 */
async function warmUpKafka(max: number, quiet = 0.2): Promise<WarmUpDrain[]> {
  const drains: WarmUpDrain[] = [];
  const kafka = (await serverPids()).get('kafka')?.[0];
  if (kafka === undefined) {
    if (max > 0) say('warming Kafka up: no local Kafka to read (a cluster, or not started by the stack): not warmed');
    return drains;
  }
  while (drains.length < max) {
    const before = jvmCpuSeconds(kafka);
    const r = await drainSluice(1, false, defaultClient, undefined, Math.min(count, warmUpMessages));
    const after = jvmCpuSeconds(kafka);
    const all = after.all - before.all;
    const drain = { rate: r.rate, kafkaCpuSeconds: Number(all.toFixed(2)), compilerShare: Number(((after.compilers - before.compilers) / all).toFixed(2)) };
    drains.push(drain);
    say(`warming Kafka up: drain ${drains.length}: ${drain.rate}/s; Kafka ${drain.kafkaCpuSeconds} CPU s, its JIT compilers ${drain.compilerShare} of it`);
    if (drain.compilerShare < quiet) break;
  }
  return drains;
}

// ---------------------------------------------------------------------------------------------
// (c) QoS 2 commands into the audit log

/** The disk's own fsync cost, in the same place the audit log writes: write 200 B + fdatasync, one at a time. */
function rawFsyncMs(samples = 200): { median: number; min: number; max: number; p99: number } {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-fsync-'));
  const fd = openSync(join(dir, 'probe'), 'a');
  const ms: number[] = [];
  const record = Buffer.alloc(200, 1);
  try {
    for (let i = 0; i < samples; i++) {
      const t0 = process.hrtime.bigint();
      writeSync(fd, record);
      fdatasyncSync(fd);
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
  const sorted = ms.sort((x, y) => x - y);
  const round = (v: number) => Number(v.toFixed(3));
  return { median: round(percentile(sorted, 50)), min: round(sorted[0] as number), max: round(sorted.at(-1) as number), p99: round(percentile(sorted, 99)) };
}

/**
 * Messages the broker holds for offline sessions ($SYS, retained, so answered at once). Mosquitto
 * writes all of them to disk every autosave_interval (30 s on the local stack) and serves no one
 * while it writes: 381,000 of them (94 MB), left on a development stack by earlier runs, put the
 * steady rates' p99 at 21-114 ms where a clean broker gives 7-9. Undefined without mosquitto_sub.
 */
function brokerStoredMessages(): number | undefined {
  const sub = findExecutable('mosquitto_sub');
  if (!sub) return undefined;
  try {
    // The first message is the retained one, up to sys_interval (10 s) old: right after a drain it
    // still counts that drain's backlog. Mosquitto publishes again within 10 s if the count has
    // changed since; if nothing comes, the retained one is current.
    const out = execFileSync(sub, ['-h', '127.0.0.1', '-p', String(stackConfig().mqtt.port), '-t', '$SYS/broker/store/messages/count', '-C', '2', '-W', '11'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'], // its "Timed out" is the case handled below
    });
    return Number(out.trim().split('\n').at(-1));
  } catch (err) {
    // no second message within the wait (-W ends it with an error): the retained one, if any
    const out = String((err as { stdout?: unknown }).stdout ?? '').trim();
    return out ? Number(out.split('\n').at(-1)) : undefined;
  }
}

/** Says when the broker holds so much for offline sessions that its saves would be in the figures. */
function checkBrokerStore(when: string): number | undefined {
  const stored = brokerStoredMessages();
  if (stored !== undefined && stored > 20_000)
    say(
      `warning (${when}): Mosquitto holds ${stored.toLocaleString('en-US')} messages for offline sessions; its save every 30 s blocks it and will be in the latency figures (a clean stack: npm run stack:down, then remove .stack/mosquitto/data)`,
    );
  return stored;
}

/** mosquitto_sub draining the same QoS 2 backlog, recording nothing: the baseline (libmosquitto delivers at PUBREL, so it is no ceiling). */
function baselineMosquittoSubQos2(): Promise<number | undefined> {
  const prefix = unique('ceil2');
  // Receive Maximum 65,535: at 100 (or libmosquitto's default of 20) it falls into the same trap
  // as MQTT.js (Mosquitto over-sends QoS 2; the client ends with "protocol error")
  return drainWithMosquittoSub(2, `${prefix}/+/+/+/+/command`, 65535, () => loadCommands(prefix, commandCount), commandCount);
}

interface AuditDrain {
  rate: number;
  /** the worker's CPU (all threads) from its start on the backlog to the last command acked */
  cpuSecondsPer100k: number;
  fsyncMsMean: number;
  fsyncMsP99AtMost: number;
  recordsPerFsync: number;
  peakRssMiB: number;
}

/**
 * --audit-trust: none (the default), signed (a checkpoint every 1,000 records: chain and Merkle
 * tree heads signed), anchored (signed, and each checkpoint appended to a witness file).
 */
const auditTrust: { signing?: { privateKey: { file: string } }; anchors?: { file: string } } = (() => {
  const t = args['audit-trust'];
  if (t !== 'none' && t !== 'signed' && t !== 'anchored') throw new Error(`--audit-trust takes none, signed or anchored, not ${t}`);
  if (t === 'none') return {};
  return { signing: { privateKey: { file: 'audit-signing.key' } }, ...(t === 'anchored' ? { anchors: { file: 'witness/anchors.jsonl' } } : {}) };
})();

/** sluice drains a queued QoS 2 backlog into the audit log (audit-only route); every command once. */
async function drainCommands(): Promise<AuditDrain> {
  const prefix = unique('cmd');
  const sluice = sluiceProcess({
    rules: {
      subscriptions: [{ filter: `${prefix}/+/+/+/+/command`, qos: 2 }],
      routes: [{ name: 'commands', match: `${prefix}/{site}/{zone}/{deviceType}/{deviceId}/command`, audit: true }],
    },
    config: { audit: { dir: 'audit', ...auditTrust }, mqtt: { commands: { receiveMaximum: commandsReceiveMaximum } } },
    nodeArgs: sluiceNodeArgs,
    build,
  });
  if (auditTrust.signing)
    writeFileSync(join(sluice.dir, 'audit-signing.key'), generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await sluice.start();
  await sluice.stop('SIGTERM');
  await loadCommands(prefix, commandCount);
  await sluice.start();
  const cpu0 = cpuSeconds(sluice.pid as number);
  let first = 0;
  for (;;) {
    const m = await sluice.metrics(polled);
    if (first === 0 && (m.get('sluice_messages_received_total{qos="2"}') ?? 0) > 0) first = Date.now() - pollMs / 2;
    if ((m.get('sluice_messages_acked_total') ?? 0) >= commandCount) break;
    await sleep(pollMs);
  }
  const seconds = (Date.now() - first) / 1000;
  const cpuSecondsPer100k = Number((((cpuSeconds(sluice.pid as number) - cpu0) / commandCount) * 100_000).toFixed(2));
  const m = await sluice.metrics();
  const peakRssMiB = sluice.peakRssMiB();
  await sluice.stop('SIGTERM');
  const verified = verifyAuditLog(join(sluice.dir, 'audit'));
  if (!verified.ok || verified.commands !== commandCount) {
    throw new Error(`the audit log holds ${verified.commands} of ${commandCount} commands (${verified.problem?.message ?? 'verified'}): a broken guarantee`);
  }
  const syncs = m.get('sluice_audit_fsync_seconds_count') ?? NaN;
  return {
    rate: Math.round(commandCount / seconds),
    cpuSecondsPer100k,
    fsyncMsMean: Number((((m.get('sluice_audit_fsync_seconds_sum') ?? NaN) / syncs) * 1000).toFixed(3)),
    fsyncMsP99AtMost: (histogramQuantile(m, 'sluice_audit_fsync_seconds', 0.99) ?? NaN) * 1000,
    recordsPerFsync: Number(((m.get('sluice_audit_records_total') ?? NaN) / syncs).toFixed(1)),
    peakRssMiB,
  };
}

/** A steady or half-rate point: latency, memory, CPU and what held the window. */
type SteadyPoint = Awaited<ReturnType<typeof latencyAt>>;

/**
 * End-to-end latency at a fixed rate, with no consumer in the loop: the topic stamps each record
 * with the broker's append time (message.timestamp.type=LogAppendTime), so a record's latency is
 * its append time minus the payload's publish time; the records are read after the run.
 */
async function latencyAt(rate: number, withInflux: boolean, client: KafkaClientKind, seconds = smoke ? 4 : 12, profileDir?: string) {
  const prefix = unique('lat');
  const topic = `${prefix}.telemetry`;
  await createTopic(topic, [{ name: 'message.timestamp.type', value: 'LogAppendTime' }]);
  const sluice = sluiceProcess({
    rules: rules(prefix, topic, withInflux),
    config: { mqtt: { receiveMaximum }, kafka: { client } },
    nodeArgs: [...sluiceNodeArgs, ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [])],
    build,
  });
  await sluice.start();
  const n = Math.round(rate * seconds);
  // RSS once a second while the load runs, and the CPU the whole run took
  const rss: number[] = [];
  const sampler = setInterval(() => rss.push(rssMiB(sluice.pid as number)), 1000);
  const machine = MachineCpu.start(new Map([['sluice', [sluice.pid as number]], ...(await serverPids())]), ['sluice']);
  const cpu0 = cpuSeconds(sluice.pid as number);
  // the rate the generator reached: below the asked rate, it waited for a core itself
  const published = await load(prefix, n, rate);
  for (let waited = 0; waited < 30_000; waited += 100) {
    if (((await sluice.metrics(polled)).get('sluice_messages_acked_total') ?? 0) >= n) break;
    await sleep(100);
  }
  const machineCores = machine.stop();
  clearInterval(sampler);
  const cpuPer100k = ((cpuSeconds(sluice.pid as number) - cpu0) / n) * 100_000;
  // sluice's own share: receive -> ack (Kafka acks -1 included), from its histogram (bucket bounds)
  const m = await sluice.metrics();
  const peakRssMiB = sluice.peakRssMiB();
  await sluice.stop('SIGTERM');
  // [publish time, latency] of every record, read partition by partition
  const records: Array<[number, number]> = [];
  const consumer = kafka().consumer({ groupId: unique('lat'), maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const done = Promise.withResolvers<void>();
  await consumer.run({
    eachBatch: async ({ batch }) => {
      for (const r of batch.messages) {
        const published = (JSON.parse(r.value?.toString() ?? '{}') as { ts: number }).ts;
        records.push([published, Number(r.timestamp) - published]);
      }
      if (records.length >= n) done.resolve();
    },
  });
  const timer = setTimeout(() => done.resolve(), 60_000);
  await done.promise;
  clearTimeout(timer);
  await consumer.disconnect();
  // The first 10% by publish time is left out: connections, the producer id and JIT warming up
  // (up to ~300 ms for the first few hundred messages). By publish time, not by the order read:
  // the consumer reads a partition's records in batches, so the first 10% read is not the first
  // 10% published, and a share of the start-up records counted or not by chance moved p99 at
  // 1,000 msg/s between ~8 and ~150 ms from run to run.
  records.sort((a, b) => a[0] - b[0]);
  const sorted = records
    .slice(Math.round(records.length * 0.1))
    .map(([, latency]) => latency)
    .sort((a, b) => a - b);
  const rssSorted = rss.sort((x, y) => x - y);
  return {
    rate,
    publishedRate: published.rate,
    client,
    seconds,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? NaN,
    samples: sorted.length,
    peakRssMiB: Math.round(peakRssMiB),
    rssMiBMedian: Math.round(percentile(rssSorted, 50)),
    rssMiBMax: Math.round(rssSorted.at(-1) ?? NaN),
    cpuSecondsPer100k: Number(cpuPer100k.toFixed(2)),
    machineCores,
    // the window full (reading paused: the broker holds what follows), its fullest, the worst event loop lag
    pumpStalls: m.get('sluice_pump_stalls_total') ?? NaN,
    inFlightMax: m.get('sluice_inflight_messages_max') ?? NaN,
    eventLoopWorstLagMs: Math.round((m.get('sluice_event_loop_worst_lag_seconds') ?? NaN) * 1000),
    sluiceAckLatencyMsAtMost: {
      p50: (histogramQuantile(m, 'sluice_ack_latency_seconds', 0.5) ?? NaN) * 1000,
      p99: (histogramQuantile(m, 'sluice_ack_latency_seconds', 0.99) ?? NaN) * 1000,
    },
    // from reading a message to durable in the sink: what the ack waits for, sink by sink
    sluiceSinkLatencyMsAtMost: Object.fromEntries(
      ['kafka', 'influx'].map((sink) => [
        sink,
        {
          p50: (histogramQuantile(m, 'sluice_sink_latency_seconds', 0.5, undefined, `sink="${sink}"`) ?? NaN) * 1000,
          p99: (histogramQuantile(m, 'sluice_sink_latency_seconds', 0.99, undefined, `sink="${sink}"`) ?? NaN) * 1000,
        },
      ]),
    ),
  };
}

/**
 * (f) Sparkplug B: a backlog of alias-only DDATA (10 edge nodes x 10 devices, 6 metrics each,
 * births queued first) drained into InfluxDB (a field per metric) and Kafka (JSON, names
 * resolved), one worker, state feed on: msg/s and metrics/s, against (b)'s JSON drain in the
 * same round. Every data message must be acked, none dead-lettered, every point in InfluxDB.
 */
async function drainSparkplug(client: KafkaClientKind): Promise<DrainResult & { metricsPerSecond: number; points: number }> {
  const group = unique('spbench');
  const topic = `${group}.sparkplug`;
  await createTopic(topic);
  const sluice = sluiceProcess({
    rules: {
      subscriptions: [{ filter: `spBv1.0/${group}/+/#`, qos: 1 }],
      routes: [
        {
          name: 'sparkplug',
          match: `spBv1.0/${group}/#`,
          payload: 'sparkplug',
          influx: { measurement: group.replace(/-/g, '_'), tags: ['edgeNode', 'device'] },
          kafka: { topic },
        },
      ],
    },
    config: { mqtt: { receiveMaximum }, kafka: { client } },
    nodeArgs: sluiceNodeArgs,
    build,
  });
  await sluice.start();
  await sluice.stop('SIGTERM');
  const loaded = await runJson('bench/sparkplug-load.ts', ['--url', endpoints.mqtt, '--group', group, '--count', String(count)]);
  const total = (loaded.births as number) + count;
  await sluice.start();
  let first = 0;
  let cpuAtFirst = 0;
  for (;;) {
    const m = await sluice.metrics(polled);
    if (first === 0 && (m.get('sluice_messages_received_total{qos="1"}') ?? 0) > 0) {
      first = Date.now() - pollMs / 2;
      cpuAtFirst = cpuSeconds(sluice.pid as number);
    }
    if ((m.get('sluice_messages_acked_total') ?? 0) >= total) break;
    await sleep(pollMs);
  }
  const seconds = (Date.now() - first) / 1000;
  const cpu = cpuSeconds(sluice.pid as number) - cpuAtFirst;
  const peakRssMiB = sluice.peakRssMiB();
  const m = await sluice.metrics();
  await sluice.stop('SIGTERM');
  const dead = [...m].filter(([k]) => k.startsWith('sluice_dead_letters_total')).reduce((a, [, v]) => a + v, 0);
  if (dead > 0) throw new Error(`${dead} Sparkplug messages dead-lettered in the benchmark: a mapping broke`);
  const durable = await topicCount(topic);
  if (durable < total) throw new Error(`only ${durable} of ${total} Sparkplug records in Kafka after every ack: a broken guarantee`);
  const url = `${endpoints.influxdb}/query?${new URLSearchParams({ db: stackConfig().influxdb.database, q: `SELECT count("Process/Temperature") FROM "${group.replace(/-/g, '_')}"` })}`;
  const points =
    ((await (await fetch(url)).json()) as { results: Array<{ series?: Array<{ values: number[][] }> }> }).results[0]?.series?.[0]?.values[0]?.[1] ?? 0;
  if (points < count) throw new Error(`only ${points} of ${count} Sparkplug points in InfluxDB after every ack: a broken guarantee`);
  const rate = Math.round(total / seconds);
  return { rate, seconds, peakRssMiB, cpuPer100k: (cpu / total) * 100_000, durable, metricsPerSecond: rate * (loaded.metricsPerMessage as number), points };
}

/** The live V8 heap of a sluice process: a heap snapshot (taken after a full GC) on SIGUSR2, its nodes' sizes summed, the largest constructors named. */
async function liveHeap(sluice: SluiceProcess): Promise<{ liveMiB: number; top: Array<[string, number]> }> {
  const before = new Set(readdirSync(sluice.dir));
  process.kill(sluice.pid as number, 'SIGUSR2');
  let file: string | undefined;
  for (let waited = 0; waited < 120_000 && !file; waited += 500) {
    await sleep(500);
    file = readdirSync(sluice.dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f));
    // written in full once its size stops changing
    if (file) {
      const size = statSync(join(sluice.dir, file)).size;
      await sleep(1_000);
      if (statSync(join(sluice.dir, file)).size !== size || size === 0) file = undefined;
    }
  }
  if (!file) throw new Error('no heap snapshot within 2 minutes of SIGUSR2');
  const snapshot = JSON.parse(readFileSync(join(sluice.dir, file), 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  rmSync(join(sluice.dir, file));
  const fields = snapshot.snapshot.meta.node_fields;
  const stride = fields.length;
  const [typeAt, nameAt, sizeAt] = [fields.indexOf('type'), fields.indexOf('name'), fields.indexOf('self_size')];
  const types = snapshot.snapshot.meta.node_types[0];
  let total = 0;
  const byName = new Map<string, number>();
  for (let i = 0; i < snapshot.nodes.length; i += stride) {
    const size = snapshot.nodes[i + sizeAt] as number;
    total += size;
    const type = types[snapshot.nodes[i + typeAt] as number];
    const name = type === 'object' || type === 'closure' ? (snapshot.strings[snapshot.nodes[i + nameAt] as number] ?? '?') : `(${type})`;
    byName.set(name, (byName.get(name) ?? 0) + size);
  }
  const top = [...byName]
    .sort((x, y) => y[1] - x[1])
    .slice(0, 8)
    .map(([n, b]) => [n, Number((b / 2 ** 20).toFixed(1))] as [string, number]);
  return { liveMiB: Number((total / 2 ** 20).toFixed(1)), top };
}

/**
 * (g) Soak: (b)'s route at a steady rate for many minutes; RSS sampled every 10 s (reported per
 * minute, the largest sample of each), and the live heap after a full GC at the end (a heap
 * snapshot, taken after the samples since it takes memory itself). Flat means no growth after
 * the warm-up: the slope of RSS over the run's second half.
 */
async function soak(minutes: number, rate: number): Promise<Record<string, unknown>> {
  const prefix = unique('soak');
  const topic = `${prefix}.telemetry`;
  await createTopic(topic);
  const sluice = sluiceProcess({
    rules: rules(prefix, topic, true),
    config: { mqtt: { receiveMaximum } },
    nodeArgs: [...sluiceNodeArgs, '--heapsnapshot-signal=SIGUSR2'],
    build,
  });
  await sluice.start();
  const total = Math.round(rate * minutes * 60);
  const started = Date.now();
  const cpu0 = cpuSeconds(sluice.pid as number);
  const samples: Array<{ minute: number; rssMiB: number }> = [];
  const sampler = setInterval(() => samples.push({ minute: (Date.now() - started) / 60_000, rssMiB: rssMiB(sluice.pid as number) }), 10_000);
  await load(prefix, total, rate);
  for (let waited = 0; waited < 60_000; waited += 200) {
    if (((await sluice.metrics(polled)).get('sluice_messages_acked_total') ?? 0) >= total) break;
    await sleep(200);
  }
  clearInterval(sampler);
  const cpuPer100k = ((cpuSeconds(sluice.pid as number) - cpu0) / total) * 100_000;
  const peakRssMiB = sluice.peakRssMiB();
  // after the RSS samples: a heap snapshot itself takes memory
  const heapEnd = await liveHeap(sluice);
  const acked = (await sluice.metrics(polled)).get('sluice_messages_acked_total') ?? 0;
  await sluice.stop('SIGTERM');
  const durable = await topicCount(topic);
  if (durable < total) throw new Error(`soak: only ${durable} of ${total} in Kafka after every ack: a broken guarantee`);
  const perMinute: Array<{ minute: number; rssMiB: number }> = [];
  for (let m = 1; m <= Math.ceil(minutes); m++) {
    const inMinute = samples.filter((x) => x.minute > m - 1 && x.minute <= m);
    if (inMinute.length > 0) perMinute.push({ minute: m, rssMiB: Math.round(Math.max(...inMinute.map((x) => x.rssMiB))) });
  }
  // least-squares slope of RSS over the second half, in MiB per 10 minutes
  const late = samples.filter((x) => x.minute >= minutes / 2);
  const mx = late.reduce((a, x) => a + x.minute, 0) / late.length;
  const my = late.reduce((a, x) => a + x.rssMiB, 0) / late.length;
  const slope = late.reduce((a, x) => a + (x.minute - mx) * (x.rssMiB - my), 0) / late.reduce((a, x) => a + (x.minute - mx) ** 2, 0);
  return {
    minutes,
    rate,
    messages: total,
    acked,
    durable,
    cpuSecondsPer100k: Number(cpuPer100k.toFixed(2)),
    peakRssMiB: Math.round(peakRssMiB),
    rssMiBPerMinute: perMinute,
    rssSlopeMiBPer10MinSecondHalf: Number((slope * 10).toFixed(2)),
    liveHeapMiBAtEnd: heapEnd.liveMiB,
    liveHeapTopAtEnd: heapEnd.top,
  };
}

/** (e) Kafka stopped for 30 s under a steady load: memory while ~100k wait at the broker, recovery, loss. */
async function kafkaPause(stack: LocalStack): Promise<Record<string, number>> {
  const prefix = unique('pause');
  const topic = `${prefix}.telemetry`;
  await createTopic(topic);
  const sluice = sluiceProcess({ rules: rules(prefix, topic, false), config: { mqtt: { receiveMaximum } }, nodeArgs: sluiceNodeArgs, build });
  await sluice.start();
  const rate = 3_400;
  const total = rate * 45;
  const loading = load(prefix, total, rate);
  await sleep(8_000);
  await stack.down(['kafka']);
  const pausedAt = Date.now();
  await sleep(30_000);
  const rssDuringPause = sluice.peakRssMiB();
  await stack.up(['kafka']);
  const back = Date.now();
  await loading;
  for (;;) {
    const m = await sluice.metrics();
    if ((m.get('sluice_messages_acked_total') ?? 0) >= total) break;
    await sleep(100);
  }
  const recoverySeconds = (Date.now() - back) / 1000;
  const m = await sluice.metrics();
  const peakRssMiB = sluice.peakRssMiB(); // while the process still exists
  // a whole-cluster outage is held, never dead-lettered (docs/configuration.md, kafka.stuckAfterMs)
  const deadLettered = [...m.entries()].reduce((a, [k, v]) => (k.startsWith('sluice_dead_letters_total') ? a + v : a), 0);
  await sluice.stop('SIGTERM');
  const durable = await topicCount(topic);
  return {
    pauseSeconds: Math.round((back - pausedAt) / 1000),
    waitingAtBrokerApprox: Math.round(rate * ((back - pausedAt) / 1000)),
    peakRssMiBDuringPause: Math.round(rssDuringPause),
    peakRssMiB: Math.round(peakRssMiB),
    recoverySecondsAfterKafkaReady: Number(recoverySeconds.toFixed(1)),
    inFlightMax: m.get('sluice_inflight_messages_max') ?? NaN,
    reconnects: m.get('sluice_mqtt_reconnects_total') ?? NaN,
    published: total,
    deadLettered,
    lost: Math.max(0, total - durable - deadLettered),
  };
}

// ---------------------------------------------------------------------------------------------

if (args.stages) {
  // the per-stage budget alone: no servers, one process (node --expose-gc is set by stages.ts)
  const only = args['stage-only'] === undefined ? undefined : new Set(args['stage-only'].split(','));
  const results = await runStages(smoke ? 5_000 : Number(args['stage-messages']), smoke ? 1 : rounds, say, only);
  const resultsDir = join(repoRoot, 'bench-results');
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `stages-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify({ when: new Date().toISOString(), node: process.version, cpu: cpus()[0]?.model, stages: results }, null, 2)}\n`);
  process.stdout.write(`${stageTable(results)}\n\nJSON: ${file}\n`);
  process.exit(0);
}
if (build === 'dist') {
  say('building dist/ (npm run build): the bench runs what users run');
  await buildDist();
}
const stack = new LocalStack(stackConfig());
const started = await stack.up();
const storedAtStart = checkBrokerStore('at the start');
const resultsDir = join(repoRoot, 'bench-results');
mkdirSync(resultsDir, { recursive: true });
const profileDir = args.profile ? join(resultsDir, `profile-${Date.now()}`) : undefined;

const ceilingJs: number[] = [];
const ceilingSub: number[] = [];
/** (a) and (b), per Kafka client. */
const a = new Map<KafkaClientKind, DrainResult[]>(clients.map((k) => [k, []]));
const b = new Map<KafkaClientKind, DrainResult[]>(clients.map((k) => [k, []]));
const d: DrainResult[] = [];
const c: AuditDrain[] = [];
const f: Array<Awaited<ReturnType<typeof drainSparkplug>>> = [];
const ceilingQos2: number[] = [];
const fsyncRaw: Array<ReturnType<typeof rawFsyncMs>> = [];
const profiled = clients.includes(defaultClient) ? defaultClient : (clients[0] as KafkaClientKind);
const usesKafka = ['a', 'b', 'd', 'e', 'f', 's', 'g', 't'].some((x) => scenarios.has(x));
const t: PeerDrain[] = [];
const telegrafBinary = scenarios.has('t') ? (args.telegraf ?? findExecutable('telegraf')) : undefined;
if (scenarios.has('t') && !telegrafBinary)
  say('scenario t skipped: no telegraf binary (--telegraf <path>, or telegraf on the PATH; docs/benchmarks.md says how to build one)');
try {
  const warmUp = usesKafka && !smoke ? await warmUpKafka(Number(args['warm-up'])) : [];
  for (let round = 1; round <= rounds; round++) {
    say(`round ${round}/${rounds}: ${count} messages, Receive Maximum ${receiveMaximum}, Kafka clients ${clients.join(', ')}`);
    ceilingJs.push(await ceilingMqttJs());
    const sub = await ceilingMosquittoSub();
    if (sub !== undefined) ceilingSub.push(sub);
    // the clients alternate their order by round, so neither always runs on a warmer machine
    const order = round % 2 === 1 ? clients : [...clients].reverse();
    for (const k of order) {
      const profileHere = (scenario: string) => (round === 1 && k === profiled && args['profile-scenario'] === scenario ? profileDir : undefined);
      if (scenarios.has('a')) a.get(k)?.push(await drainSluice(1, false, k, profileHere('a')));
      if (scenarios.has('b')) b.get(k)?.push(await drainSluice(1, true, k, profileHere('b')));
    }
    if (telegrafBinary) t.push(await drainTelegraf(telegrafBinary, args['telegraf-format'] === 'value'));
    if (scenarios.has('c')) {
      const q2 = await baselineMosquittoSubQos2();
      if (q2 !== undefined) ceilingQos2.push(q2);
      fsyncRaw.push(rawFsyncMs());
      c.push(await drainCommands());
    }
    if (scenarios.has('d')) d.push(await drainSluice(3, false, defaultClient));
    if (scenarios.has('f')) f.push(await drainSparkplug(defaultClient));
    const last = (m: Map<KafkaClientKind, DrainResult[]>) => clients.map((k) => `${k} ${m.get(k)?.at(-1)?.rate ?? '-'}/s`).join(', ');
    say(
      `round ${round}: ceiling ${ceilingJs.at(-1)}/s (MQTT.js) ${ceilingSub.at(-1) ?? '-'}/s (mosquitto_sub); ` +
        `a ${last(a)}; b ${last(b)}; c ${c.at(-1)?.rate ?? '-'}/s (mosquitto_sub QoS 2 ${ceilingQos2.at(-1) ?? '-'}/s), d ${d.at(-1)?.rate ?? '-'}/s, ` +
        `f ${f.at(-1)?.rate ?? '-'} msg/s (${f.at(-1)?.metricsPerSecond ?? '-'} metrics/s), t ${t.at(-1)?.rate ?? '-'}/s`,
    );
  }
  const ceiling = spread(ceilingJs);
  const summarize = (rs: DrainResult[] | undefined) =>
    !rs || rs.length === 0
      ? undefined
      : {
          rate: spread(rs.map((r) => r.rate)),
          ratioToCeiling: Number((spread(rs.map((r) => r.rate)).median / ceiling.median).toFixed(3)),
          peakRssMiB: spread(rs.map((r) => Math.round(r.peakRssMiB))),
          cpuSecondsPer100k: spread(rs.map((r) => Number(r.cpuPer100k.toFixed(2)))),
          peakHeapTotalMiB: spread(rs.map((r) => r.peakHeapTotalMiB ?? NaN)),
          peakHeapUsedMiB: spread(rs.map((r) => r.peakHeapUsedMiB ?? NaN)),
          peakExternalMiB: spread(rs.map((r) => r.peakExternalMiB ?? NaN)),
          machineCores: medianShare(rs.map((r) => r.machine)),
        };
  type Summary = NonNullable<ReturnType<typeof summarize>>;
  const perClient: Record<
    string,
    {
      a?: Summary & { endToEndAtHalfRate?: SteadyPoint };
      b?: Summary & { endToEndAtHalfRate?: SteadyPoint };
    }
  > = {};
  for (const k of clients) {
    const sa = summarize(a.get(k));
    const sb = summarize(b.get(k));
    perClient[k] = {
      ...(sa ? { a: { ...sa, endToEndAtHalfRate: await latencyAt(Math.round(sa.rate.median / 2), false, k) } } : {}),
      ...(sb ? { b: { ...sb, endToEndAtHalfRate: await latencyAt(Math.round(sb.rate.median / 2), true, k) } } : {}),
    };
  }
  // the steady rates first: (e) stops and restarts Kafka, whose first minute after would be in their tail
  const storedBeforeSteady = scenarios.has('s') ? checkBrokerStore('before the steady rates') : undefined;
  const steady: SteadyPoint[] = [];
  if (scenarios.has('s')) {
    for (const [i, rate] of steadyRates.entries()) {
      say(`(s) steady ${rate} msg/s for ${smoke ? 4 : steadySeconds} s${steadyWithInflux ? ", (b)'s route" : ''}`);
      // --profile-scenario s profiles the first rate
      const profileHere = i === 0 && args['profile-scenario'] === 's' ? profileDir : undefined;
      steady.push(await latencyAt(rate, steadyWithInflux, defaultClient, smoke ? 4 : steadySeconds, profileHere));
    }
  }
  const pause = scenarios.has('e') ? await kafkaPause(stack) : undefined;
  const soaked = scenarios.has('g') ? await soak(Number(args['soak-minutes']), Number(args['soak-rate'])) : undefined;
  let profile: string | undefined;
  if (profileDir) {
    // the largest: the drain itself (the short session-setup run writes one too)
    const file = readdirSync(profileDir)
      .filter((f) => f.endsWith('.cpuprofile'))
      .map((f) => ({ f, size: statSync(join(profileDir, f)).size }))
      .sort((x, y) => y.size - x.size)[0]?.f;
    if (file) profile = summarizeProfile(join(profileDir, file), 15);
  }

  const result = {
    when: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    servers: { mosquitto: '2.0.11 (Debian)', kafka: kafkaVersion(join(repoRoot, 'deploy/local/kafka/pom.xml')), influxdb: '1.8.10' },
    /** Messages Mosquitto held for offline sessions (its saves block it: see brokerStoredMessages). */
    brokerStoredMessages: { atStart: storedAtStart, beforeSteady: storedBeforeSteady },
    /** The (a) drains not counted that warmed Kafka up before the first round. */
    kafkaWarmUp: warmUp,
    method: {
      messages: count,
      rounds,
      receiveMaximum,
      payloadBytes: 200,
      devices: 1000,
      qos: 1,
      kafkaClients: clients,
      defaultClient,
      build,
      nodeFlags: [...sluiceNodeFlags, ...sluiceNodeArgs],
      pollMs,
      fullPoll: args['full-poll'],
    },
    ceiling: { mqttjsBareSubscriber: ceiling, mosquittoSub: ceilingSub.length ? spread(ceilingSub) : undefined },
    telegraf,
    targets,
    kafkaClients: perClient,
    verdicts: verdicts(perClient, pause, steady, spread(ceilingJs).median),
    scenarios: {
      c_audit:
        c.length === 0
          ? undefined
          : {
              method: {
                commands: commandCount,
                qos: 2,
                receiveMaximum: commandsReceiveMaximum,
                route: 'audit only (no Kafka)',
                publishers: 8,
                trust: args['audit-trust'],
              },
              rate: spread(c.map((x) => x.rate)),
              cpuSecondsPer100k: spread(c.map((x) => x.cpuSecondsPer100k)),
              baselineMosquittoSubQos2: ceilingQos2.length ? spread(ceilingQos2) : undefined,
              groupCommitGain: Number((spread(c.map((x) => x.rate)).median / Math.round(1000 / spread(fsyncRaw.map((x) => x.median)).median)).toFixed(2)),
              fsyncMsMean: spread(c.map((x) => x.fsyncMsMean)),
              fsyncMsP99AtMost: spread(c.map((x) => x.fsyncMsP99AtMost)),
              recordsPerFsync: spread(c.map((x) => x.recordsPerFsync)),
              rawFsyncMs: spread(fsyncRaw.map((x) => x.median)),
              rawFsyncMsP99: spread(fsyncRaw.map((x) => x.p99)),
              oneFsyncPerRecordRate: Math.round(1000 / spread(fsyncRaw.map((x) => x.median)).median),
              peakRssMiB: spread(c.map((x) => Math.round(x.peakRssMiB))),
            },
      d_three_workers: summarize(d),
      t_telegraf:
        t.length === 0
          ? undefined
          : {
              binary: telegrafBinary,
              format: args['telegraf-format'],
              rate: spread(t.map((x) => x.rate)),
              ratioToCeiling: Number((spread(t.map((x) => x.rate)).median / ceiling.median).toFixed(3)),
              peakRssMiB: spread(t.map((x) => x.peakRssMiB)),
              cpuSecondsPer100k: spread(t.map((x) => x.cpuPer100k)),
            },
      e_kafka_paused_30s: pause,
      s_steady: steady.length === 0 ? undefined : steady.map((x) => ({ route: args['steady-route'], ...x })),
      g_soak: soaked,
      f_sparkplug:
        f.length === 0
          ? undefined
          : {
              method: {
                dataMessages: count,
                edgeNodes: 10,
                devicesPerNode: 10,
                metricsPerMessage: 6,
                aliasOnly: true,
                sinks: 'influx (a field per metric) + kafka (JSON, names resolved)',
                client: defaultClient,
              },
              rate: spread(f.map((x) => x.rate)),
              metricsPerSecond: spread(f.map((x) => x.metricsPerSecond)),
              vsJsonDrainB: b.get(defaultClient)?.length
                ? Number((spread(f.map((x) => x.rate)).median / spread((b.get(defaultClient) ?? []).map((x) => x.rate)).median).toFixed(2))
                : undefined,
              peakRssMiB: spread(f.map((x) => Math.round(x.peakRssMiB))),
              cpuSecondsPer100k: spread(f.map((x) => Number(x.cpuPer100k.toFixed(2)))),
            },
    },
  };
  const file = join(resultsDir, `bench-${result.when.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${table(result)}\n\nJSON: ${file}\n`);
  if (profile) process.stdout.write(`\nCPU profile of scenario (${args['profile-scenario']}) on ${profiled}, top self time:\n${profile}\n`);
} finally {
  await deleteCreatedTopics();
  if (started.length > 0 && process.env.SLUICE_KEEP_STACK !== '1') await stack.down(started);
}

type PerClient = Record<
  string,
  {
    a?: { rate: Spread; peakRssMiB: Spread; cpuSecondsPer100k: Spread; endToEndAtHalfRate?: { p99: number; rate: number } };
    b?: { rate: Spread; endToEndAtHalfRate?: { p99: number; rate: number } };
  }
>;
type Steady = { rate: number; p99: number; rssMiBMedian: number; cpuSecondsPer100k: number };

/** Each client against each target: met or missed, and the figure beside the target. */
function verdicts(perClient: PerClient, pause: Record<string, number> | undefined, steady: readonly Steady[], ceiling: number) {
  type Verdict = { value: number; target: string; met: boolean };
  const out: Record<string, Record<string, Verdict>> = {};
  const atMost = (value: number, limit: number, what = ''): Verdict => ({ value, target: `<= ${limit}${what}`, met: value <= limit });
  for (const [k, r] of Object.entries(perClient)) {
    const v: Record<string, Verdict> = {};
    if (r.a) {
      const share = Number((r.a.rate.median / ceiling).toFixed(3));
      v['a rate, share of the MQTT.js ceiling'] = {
        value: share,
        target: `>= ${targets.ofCeiling} (Telegraf ${telegraf.ofCeiling})`,
        met: share >= targets.ofCeiling,
      };
      v['a CPU s per 100k'] = atMost(r.a.cpuSecondsPer100k.median, targets.cpuSecondsPer100k, ` (Telegraf ${telegraf.cpuSecondsPer100k})`);
      v['a peak RSS MiB (drain)'] = atMost(r.a.peakRssMiB.median, targets.peakRssMiB, ` (Telegraf ${telegraf.peakRssMiB})`);
      if (r.a.endToEndAtHalfRate) v['a p99 ms at half rate'] = atMost(r.a.endToEndAtHalfRate.p99, targets.halfRateP99Ms);
    }
    if (r.a && r.b) {
      const ratio = Number((r.b.rate.median / r.a.rate.median).toFixed(2));
      v['b rate, share of a'] = { value: ratio, target: `>= ${targets.bOfA}`, met: ratio >= targets.bOfA };
    }
    if (r.b?.endToEndAtHalfRate) v['b p99 ms at half rate'] = atMost(r.b.endToEndAtHalfRate.p99, targets.halfRateP99Ms);
    if (k === defaultClient) {
      if (pause) v['e peak RSS MiB (catch-up after a Kafka outage)'] = atMost(pause.peakRssMiB as number, targets.peakRssMiB);
      // the targets are (a)'s route's
      for (const x of steadyWithInflux ? [] : steady) {
        const p99 = targets.steadyP99Ms[x.rate];
        if (p99 !== undefined) v[`s p99 ms at a steady ${x.rate}/s`] = atMost(x.p99, p99);
        if (x.rate === 1000) v['s RSS MiB (median) at a steady 1000/s'] = atMost(x.rssMiBMedian, targets.steadyRssMiB);
      }
    }
    out[k] = v;
  }
  return out;
}

function table(r: {
  ceiling: { mqttjsBareSubscriber: Spread; mosquittoSub: Spread | undefined };
  kafkaClients: PerClient &
    Record<string, { a?: { ratioToCeiling: number }; b?: { rate: Spread; ratioToCeiling: number; peakRssMiB: Spread; cpuSecondsPer100k: Spread } }>;
  verdicts: ReturnType<typeof verdicts>;
  scenarios: Record<string, unknown>;
}): string {
  const fmt = (s: Spread) => `${s.median.toLocaleString('en-US')} (${s.min.toLocaleString('en-US')}-${s.max.toLocaleString('en-US')})`;
  const rows: string[][] = [
    ['scenario', 'msg/s median (min-max)', 'of ceiling', 'vs Telegraf', 'peak RSS MiB (V8 heap, external)', 'CPU s / 100k msg', 'p99 ms at half rate'],
  ];
  rows.push(['ceiling: bare MQTT.js subscriber', fmt(r.ceiling.mqttjsBareSubscriber), '1.00', '', '', '', '']);
  if (r.ceiling.mosquittoSub) rows.push(['ceiling: mosquitto_sub', fmt(r.ceiling.mosquittoSub), '', '', '', '', '']);
  // Telegraf measured in this run (scenario t), else its figures from the day the targets were set
  const tg = r.scenarios.t_telegraf as { rate: Spread; ratioToCeiling: number; peakRssMiB: Spread; cpuSecondsPer100k: Spread } | undefined;
  const telegrafShare = tg?.ratioToCeiling ?? telegraf.ofCeiling;
  rows.push(
    tg
      ? ['(t) Telegraf, this run', fmt(tg.rate), tg.ratioToCeiling.toFixed(2), '1.00', String(tg.peakRssMiB.median), String(tg.cpuSecondsPer100k.median), '']
      : [
          'Telegraf 1.37.2 (2026-12-03, same method)',
          telegraf.rate.toLocaleString('en-US'),
          telegraf.ofCeiling.toFixed(2),
          '1.00',
          String(telegraf.peakRssMiB),
          String(telegraf.cpuSecondsPer100k),
          '',
        ],
  );
  type Row = {
    rate: Spread;
    ratioToCeiling: number;
    peakRssMiB: Spread;
    cpuSecondsPer100k: Spread;
    endToEndAtHalfRate?: { p99: number; rate: number; publishedRate?: number; machineCores?: Record<string, number> };
    peakHeapTotalMiB?: Spread;
    peakExternalMiB?: Spread;
    machineCores?: Record<string, number>;
  };
  const machine: string[] = [];
  /** Said when the load generator fell more than 2% behind the rate asked of it. */
  const behind = (x: { rate: number; publishedRate?: number | undefined }) =>
    x.publishedRate !== undefined && x.publishedRate < x.rate * 0.98 ? `, published at ${x.publishedRate}/s` : '';
  const row = (label: string, x: Row | undefined) => {
    if (!x) return;
    rows.push([
      label,
      fmt(x.rate),
      x.ratioToCeiling.toFixed(2),
      (x.ratioToCeiling / telegrafShare).toFixed(2),
      `${x.peakRssMiB.median}${x.peakHeapTotalMiB ? ` (heap ${x.peakHeapTotalMiB.median}, ext ${x.peakExternalMiB?.median})` : ''}`,
      String(x.cpuSecondsPer100k.median),
      x.endToEndAtHalfRate ? `${x.endToEndAtHalfRate.p99} (at ${x.endToEndAtHalfRate.rate}/s${behind(x.endToEndAtHalfRate)})` : '',
    ]);
    const cores = (m: Record<string, number>) => {
      const { busyCores, ofCores, rest, ...procs } = m;
      const each = Object.entries(procs)
        .filter(([, v]) => v >= 0.005)
        .map(([n, v]) => `${n} ${v.toFixed(2)}`);
      return `${busyCores?.toFixed(2)} of ${ofCores} busy: ${[...each, `rest ${rest?.toFixed(2)}`].join(', ')}`;
    };
    const scenario = label.split(',')[0];
    if (x.machineCores) machine.push(`  ${scenario}, drain: ${cores(x.machineCores)}`);
    if (x.endToEndAtHalfRate?.machineCores) machine.push(`  ${scenario}, at half rate: ${cores(x.endToEndAtHalfRate.machineCores)}`);
  };
  for (const [k, x] of Object.entries(r.kafkaClients)) {
    row(`(a) QoS 1 -> Kafka, ${k}${k === defaultClient ? ' (default)' : ''}`, x.a as Row | undefined);
    row(`(b) QoS 1 -> Kafka + InfluxDB, ${k}${k === defaultClient ? ' (default)' : ''}`, x.b as Row | undefined);
  }
  const d = r.scenarios.d_three_workers as Row | undefined;
  if (d) row(`(d) 3 workers, one share group, ${defaultClient}`, d);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((x) => (x[i] ?? '').length)));
  const lines = rows.map((x) => `| ${x.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`);
  lines.splice(1, 0, `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  lines.push('', 'End to end = Kafka LogAppendTime - payload publish time (no consumer in the loop), first 10% left out.');
  if (machine.length > 0)
    lines.push('', 'Cores busy (drains: medians of the rounds; rest = the bench and its load generator, the kernel, anything else):', ...machine);
  const steady = r.scenarios.s_steady as SteadyPoint[] | undefined;
  if (steady) {
    lines.push(
      '',
      `(s) steady rates, ${defaultClient}${steadyWithInflux ? ", (b)'s route" : ''}: end to end p50 / p99 ms, RSS median / max MiB, CPU s per 100k, times reading paused on a full ack window, the event loop's worst lag (Telegraf at 1k and 10k: p99 ${telegraf.steady[1000].p99Ms} / ${telegraf.steady[10000].p99Ms} ms, ${telegraf.steady[1000].rssMiB} / ${telegraf.steady[10000].rssMiB} MiB)`,
    );
    for (const x of steady)
      lines.push(
        `  ${String(x.rate).padStart(6)}/s for ${x.seconds} s: ${x.p50} / ${x.p99} ms, ${x.rssMiBMedian} / ${x.rssMiBMax} MiB, ${x.cpuSecondsPer100k} CPU s, window full ${x.pumpStalls ?? '-'}x, worst loop lag ${x.eventLoopWorstLagMs ?? '-'} ms${behind(x)}`,
      );
  }
  lines.push('', 'Targets and verdicts:');
  for (const [k, v] of Object.entries(r.verdicts)) {
    for (const [what, x] of Object.entries(v))
      lines.push(`  ${k.padEnd(12)} ${what.padEnd(48)} ${String(x.value).padStart(8)}  target ${x.target.padEnd(26)} ${x.met ? 'met' : 'MISSED'}`);
  }
  if (r.scenarios.e_kafka_paused_30s) lines.push('', `(e) Kafka paused (${defaultClient}): ${JSON.stringify(r.scenarios.e_kafka_paused_30s)}`);
  if (r.scenarios.g_soak) lines.push('', `(g) soak (${defaultClient}, Kafka + InfluxDB): ${JSON.stringify(r.scenarios.g_soak)}`);
  if (r.scenarios.f_sparkplug) lines.push('', `(f) Sparkplug B (${defaultClient}): ${JSON.stringify(r.scenarios.f_sparkplug)}`);
  const cAudit = r.scenarios.c_audit as
    | undefined
    | {
        rate: Spread;
        cpuSecondsPer100k: Spread;
        baselineMosquittoSubQos2?: Spread;
        groupCommitGain: number;
        fsyncMsMean: Spread;
        fsyncMsP99AtMost: Spread;
        recordsPerFsync: Spread;
        rawFsyncMs: Spread;
        oneFsyncPerRecordRate: number;
        peakRssMiB: Spread;
      };
  if (cAudit) {
    lines.push(
      '',
      `(c) QoS 2 commands -> audit log (fsync before PUBREC, group commit): ${fmt(cAudit.rate)} commands/s at ${cAudit.cpuSecondsPer100k.median} CPU s / 100k` +
        `${cAudit.baselineMosquittoSubQos2 ? `; mosquitto_sub QoS 2 on the same backlog ${fmt(cAudit.baselineMosquittoSubQos2)}/s (Receive Maximum 65,535: not comparable, see docs/benchmarks.md)` : ''}; ` +
        `fsync mean ${cAudit.fsyncMsMean.median} ms, p99 <= ${cAudit.fsyncMsP99AtMost.median} ms, ${cAudit.recordsPerFsync.median} records per fsync; ` +
        `this disk's bare write+fdatasync ${cAudit.rawFsyncMs.median} ms (one fsync per record would cap at ~${cAudit.oneFsyncPerRecordRate}/s: group commit gives ${cAudit.groupCommitGain}x); peak RSS ${cAudit.peakRssMiB.median} MiB`,
    );
  }
  return lines.join('\n');
}

// `npm run demo`: the main job in one command. Brings the local stack up, starts sluice with
// config/sluice.yaml, a simulated fleet (telemetry at QoS 1, commands, a trickle of malformed
// messages) and a Sparkplug B fleet (births, alias-only data, a gateway restarting now and
// then), and shows a live one-screen summary from sluice's own /metrics. Ctrl-C (or
// --duration S) stops everything cleanly: simulator, sluice (drains and acks), the servers the
// demo started.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { LocalStack } from '../deploy/local/local-stack.ts';
import { repoRoot, stackConfig } from '../deploy/local/stack-config.ts';
import { buildDist } from './build-dist.ts';
import { histogramQuantile, parseSamples, type Samples } from './prometheus-text.ts';
import { sluiceNodeFlags } from './sluice-node-flags.ts';

const { values } = parseArgs({
  options: {
    duration: { type: 'string' },
    rate: { type: 'string', default: '1000' },
    devices: { type: 'string', default: '1000' },
    'sparkplug-rate': { type: 'string', default: '50' },
  },
});
const durationS = values.duration === undefined ? undefined : Number(values.duration);
const tty = process.stdout.isTTY === true;
const node = join(repoRoot, 'scripts/node');
const cli = join(repoRoot, 'src/cli.ts');
// sluice runs as users run it, built: from the TypeScript sources it needs ~20-35 MiB more (the
// type stripping and the sources' larger text), and the summary shows its memory
const built = join(repoRoot, 'dist/cli.js');

const stack = new LocalStack(stackConfig());
process.stderr.write('demo: bringing the local stack up (first run installs and builds; later runs take seconds)\n');
const startedServers = await stack.up();
process.stderr.write('demo: building dist/ (npm run build)\n');
await buildDist();

const children: ChildProcess[] = [];
function child(name: string, args: string[], logToFile: boolean, entry = cli): ChildProcess {
  const c = spawn(node, [...sluiceNodeFlags, entry, ...args], { cwd: repoRoot, stdio: ['ignore', logToFile ? 'pipe' : 'inherit', 'pipe'] });
  children.push(c);
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    lines.push(...chunk.toString().split('\n').filter(Boolean));
    if (lines.length > 200) lines.splice(0, lines.length - 200);
  };
  c.stdout?.on('data', keep);
  c.stderr?.on('data', keep);
  c.on('exit', (code, signal) => {
    if (!stopping) {
      process.stderr.write(`demo: ${name} exited (${code ?? signal}); last lines:\n${lines.slice(-20).join('\n')}\n`);
      void stop(1);
    }
  });
  return c;
}

let stopping = false;
const sluice = child('sluice', ['run', '--config', 'config/sluice.yaml'], true, built);
let metricsUrl = '';
/** The filters sluice has subscribed so far (the Sparkplug fleet waits for them). */
let subscribed = 0;
sluice.stdout?.on('data', (chunk: Buffer) => {
  const text = chunk.toString();
  const m = /"http":"(http:\/\/[^"]+)"/.exec(text);
  if (m) metricsUrl = `${m[1]}/metrics`;
  subscribed += text.split(/"msg":"(?:subscribed|sparkplug state feed subscribed)"/).length - 1;
});
const simulator = child(
  'simulator',
  ['simulate', '--rate', String(values.rate), '--devices', String(values.devices), '--command-rate', '2', '--bad-ratio', '0.001'],
  true,
);
const sparkplugRate = Number(values['sparkplug-rate']);
// the edge nodes come up once sluice has subscribed (its 4 filters and the state feed), so their
// births are not missed (births missed: sparkplug.rebirth: true would ask them again)
let sparkplugFleet: ChildProcess | undefined;
const fleetTimer = setInterval(() => {
  if (subscribed < 5 || stopping) return;
  clearInterval(fleetTimer);
  if (sparkplugRate > 0) {
    sparkplugFleet = child(
      'sparkplug',
      ['simulate', '--sparkplug', '--edge-nodes', '3', '--devices', '4', '--rate', String(sparkplugRate), '--rebirth-every', '20'],
      true,
    );
  }
}, 200);

interface Sample {
  at: number;
  m: Samples;
}
let previous: Sample | undefined;
const started = Date.now();

async function scrape(): Promise<Samples | undefined> {
  if (!metricsUrl) return undefined;
  try {
    return parseSamples(await (await fetch(metricsUrl)).text());
  } catch {
    return undefined;
  }
}

const sum = (m: Samples, prefix: string) => [...m].filter(([k]) => k.startsWith(prefix)).reduce((a, [, v]) => a + v, 0);

function render(m: Samples): string {
  const now = Date.now();
  const dt = previous ? (now - previous.at) / 1000 : 0;
  const rate = (key: string) => (previous && dt > 0 ? (sum(m, key) - sum(previous.m, key)) / dt : 0);
  const fmt = (n: number) => n.toLocaleString('en-US', { maximumFractionDigits: 0 });
  const ms = (s: number | undefined) => (s === undefined ? '-' : s === Infinity ? '>60 s' : `<= ${s * 1000} ms`);
  const routes = [...m]
    .filter(([k]) => k.startsWith('sluice_messages_routed_total{'))
    .map(([k]) => k)
    .sort()
    .map(
      (k) =>
        `  ${/route="([^"]+)"/.exec(k)?.[1]?.padEnd(12)} -> ${/sink="([^"]+)"/.exec(k)?.[1]?.padEnd(11)} ${fmt(rate(k)).padStart(7)}/s  total ${fmt(m.get(k) ?? 0)}`,
    );
  const dead =
    [...m]
      .filter(([k, v]) => k.startsWith('sluice_dead_letters_total{') && v > 0)
      .map(([k, v]) => `${/reason="([^"]+)"/.exec(k)?.[1]} ${fmt(v)}`)
      .join(', ') || 'none';
  const sinks = [...m]
    .filter(([k]) => k.startsWith('sluice_sink_healthy{'))
    .map(([k, v]) => `${/sink="([^"]+)"/.exec(k)?.[1]} ${v === 0 ? 'FAILING (retrying)' : 'ok'}`)
    .sort()
    .join('   ');
  // how long each sink takes to hold a message (the ack waits for the slowest of its sinks)
  const sinkLatency = [
    ...new Set([...m.keys()].map((k) => /^sluice_sink_latency_seconds_bucket\{.*sink="([^"]+)"/.exec(k)?.[1]).filter((s) => s !== undefined)),
  ]
    .sort()
    .map((sink) => `${sink} p99 ${ms(histogramQuantile(m, 'sluice_sink_latency_seconds', 0.99, previous?.m, `sink="${sink}"`))}`)
    .join('   ');
  return [
    `sluice demo: ${((now - started) / 1000).toFixed(0)} s   (Ctrl-C stops everything cleanly)`,
    '',
    `broker      ${m.get('sluice_mqtt_connected') === 1 ? 'connected' : 'DISCONNECTED'}   received ${fmt(rate('sluice_messages_received_total'))}/s   acked ${fmt(rate('sluice_messages_acked_total'))}/s   total acked ${fmt(m.get('sluice_messages_acked_total') ?? 0)}`,
    `in flight   ${fmt(m.get('sluice_inflight_messages') ?? 0)} of ${fmt(m.get('sluice_receive_maximum') ?? 0)} (max so far ${fmt(m.get('sluice_inflight_messages_max') ?? 0)})   pump stalls ${fmt(m.get('sluice_pump_stalls_total') ?? 0)}`,
    'routes',
    ...routes,
    `sinks       ${sinks}`,
    `commands    ${m.get('sluice_commands_mqtt_connected') === 1 ? 'connected' : 'DISCONNECTED'}   audited ${fmt(rate('sluice_audit_records_total'))}/s   total ${fmt(m.get('sluice_audit_records_total') ?? 0)}   redeliveries recognised ${fmt((m.get('sluice_audit_redeliveries_total') ?? 0) + (m.get('sluice_audit_rollback_redeliveries_total') ?? 0) + (m.get('sluice_audit_idempotent_duplicates_total') ?? 0))}   fsync p99 ${ms(histogramQuantile(m, 'sluice_audit_fsync_seconds', 0.99, previous?.m))}`,
    // of the last interval: since the start, the first seconds (topics being created) would hold p99 for the whole run
    `latency     ack p50 ${ms(histogramQuantile(m, 'sluice_ack_latency_seconds', 0.5, previous?.m))}  p99 ${ms(histogramQuantile(m, 'sluice_ack_latency_seconds', 0.99, previous?.m))}   end-to-end p99 ${ms(histogramQuantile(m, 'sluice_end_to_end_seconds', 0.99, previous?.m))}   (last ${dt.toFixed(0)} s)`,
    `  durable   ${sinkLatency || '-'}`,
    `sparkplug   edge nodes ${fmt(m.get('sluice_sparkplug_edge_nodes') ?? 0)}   state feed ${m.get('sluice_sparkplug_feed_connected') === 1 ? 'connected' : 'DISCONNECTED'}   seq gaps ${fmt(m.get('sluice_sparkplug_seq_gaps_total') ?? 0)}   alias waits ${fmt(m.get('sluice_sparkplug_alias_waits_total') ?? 0)}`,
    `dead letters ${dead}`,
    `memory      ${((m.get('sluice_process_resident_memory_bytes') ?? 0) / 1048576).toFixed(0)} MiB RSS`,
    '',
    `metrics ${metricsUrl}   Kafka 127.0.0.1:${stackConfig().kafka.port} (telemetry.<site>, commands, sparkplug.<group>, sluice.dead-letter)   InfluxDB http://127.0.0.1:${stackConfig().influxdb.port} (db sluice)`,
  ].join('\n');
}

const tick = setInterval(async () => {
  const m = await scrape();
  if (!m) return;
  const screen = render(m);
  if (tty) process.stdout.write(`\x1b[H\x1b[2J${screen}\n`);
  else if (!previous || Date.now() - previous.at >= 5_000) process.stdout.write(`${screen}\n\n`);
  if (tty || !previous || Date.now() - previous.at >= 5_000) previous = { at: Date.now(), m };
  if (durationS !== undefined && Date.now() - started >= durationS * 1000) await stop(0);
}, 1_000);

/**
 * Stops the simulator, then sluice (it drains and acks), then the stack. A Ctrl-C in the terminal
 * reaches every process of the foreground group, the children too, and they are already stopping
 * by themselves: a second signal from here would land while sluice exits and kill it mid-exit. So
 * after a SIGINT a child gets a few seconds to finish on its own before it is sent SIGTERM.
 */
async function stop(code: number, signal?: NodeJS.Signals): Promise<void> {
  if (stopping) return;
  stopping = true;
  clearInterval(tick);
  clearInterval(fleetTimer);
  process.stderr.write('\ndemo: stopping the simulator, then sluice (it drains and acks), then the stack\n');
  const exited = (c: ChildProcess) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r)));
  const end = async (c: ChildProcess) => {
    if (signal === 'SIGINT') await Promise.race([exited(c), new Promise((r) => setTimeout(r, 3_000))]);
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await exited(c);
  };
  await end(simulator);
  if (sparkplugFleet) await end(sparkplugFleet);
  await end(sluice);
  const final = sluice.exitCode ?? sluice.signalCode;
  if (startedServers.length > 0 && process.env.SLUICE_KEEP_STACK !== '1') await stack.down(startedServers);
  process.stderr.write(`demo: done (sluice exit ${final})\n`);
  process.exit(code || (typeof final === 'number' ? final : 1));
}

process.on('SIGINT', () => void stop(0, 'SIGINT'));
process.on('SIGTERM', () => void stop(0, 'SIGTERM'));

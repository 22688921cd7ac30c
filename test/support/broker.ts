// A private MQTT 5 broker for one test, so it can be killed, rolled back and restarted without
// touching the shared stack: its own port, data directory and settings, started from the same
// installed software as the stack's broker of that kind. Killed after the test.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LaunchSpec } from '../../deploy/local/daemon.ts';
import { requireExecutable } from '../../deploy/local/prerequisites.ts';
import { hivemqJars, hivemqLaunch } from '../../deploy/local/servers/hivemq.ts';
import { mqttProbe } from '../../deploy/local/servers/mqtt-probe.ts';
import { config } from './stack.ts';

export type BrokerKind = 'mosquitto' | 'hivemq';

/** The brokers the broker-level tests run against (SLUICE_TEST_BROKERS narrows it: "mosquitto"). */
export const brokerKinds: readonly BrokerKind[] = (process.env.SLUICE_TEST_BROKERS ?? 'mosquitto,hivemq')
  .split(',')
  .map((s) => s.trim())
  .filter((s): s is BrokerKind => s === 'mosquitto' || s === 'hivemq');

export interface BrokerOptions {
  /** Mosquitto: seconds between saves of its in-memory state (what a crash rolls back to). */
  readonly autosaveSeconds?: number;
}

export class TestBroker {
  readonly kind: BrokerKind;
  readonly dir: string;
  readonly port: number;
  /** When each start began and when the broker first answered a CONNECT (epoch ms). */
  readonly starts: Array<{ spawned: number; listening: number }> = [];
  private child: ChildProcess | undefined;
  private readonly options: BrokerOptions;

  constructor(kind: BrokerKind, port: number, options: BrokerOptions) {
    this.kind = kind;
    this.port = port;
    this.options = options;
    this.dir = mkdtempSync(join(tmpdir(), `sluice-${kind}-`));
  }

  get url(): string {
    return `mqtt://${config.host}:${this.port}`;
  }

  get logFile(): string {
    return join(this.dir, 'broker.log');
  }

  async start(timeoutMs = 60_000): Promise<void> {
    if (this.kind === 'hivemq') await hivemqJars(config); // fetched once, by the stack's start
    const spawned = Date.now();
    const spec: LaunchSpec = this.kind === 'mosquitto' ? this.mosquitto() : hivemqLaunch(config, { dir: this.dir, port: this.port, host: config.host });
    const log = join(this.dir, 'broker.log');
    writeFileSync(log, `--- ${new Date(spawned).toISOString()} start\n`, { flag: 'a' });
    const child = spawn(spec.command, spec.args, { cwd: spec.cwd, stdio: ['ignore', 'pipe', 'pipe'], env: spec.env ?? process.env });
    const append = (b: Buffer) => writeFileSync(log, b, { flag: 'a' });
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    this.child = child;
    const deadline = spawned + timeoutMs;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${this.kind} exited during start:\n${this.logTail()}`);
      try {
        await mqttProbe(config.host, this.port);
        break;
      } catch {
        if (Date.now() > deadline) throw new Error(`${this.kind} not answering on ${this.url} after ${timeoutMs} ms:\n${this.logTail()}`);
        await sleep(20);
      }
    }
    this.starts.push({ spawned, listening: Date.now() });
  }

  /** Kills the broker (SIGKILL: no save on the way out) and waits until it is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<number> {
    const child = this.child;
    const at = Date.now();
    if (!child || child.exitCode !== null || child.signalCode !== null) return at;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await gone;
    return at;
  }

  logTail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  private mosquitto() {
    const conf = join(this.dir, 'mosquitto.conf');
    mkdirSync(join(this.dir, 'data'), { recursive: true });
    writeFileSync(
      conf,
      [
        // started as root, Mosquitto drops to the user "mosquitto", who cannot write the data
        // directory: it would then never save, silently (no persistence at all)
        `user ${userInfo().username}`,
        'persistence true',
        `persistence_location ${join(this.dir, 'data')}/`,
        `autosave_interval ${this.options.autosaveSeconds ?? 30}`,
        'max_queued_messages 1000000',
        'max_queued_bytes 0',
        'set_tcp_nodelay true',
        'log_dest stdout',
        'log_type error',
        'log_type warning',
        'log_type notice',
        'log_type information',
        'log_timestamp_format %Y-%m-%dT%H:%M:%S',
        `listener ${this.port} ${config.host}`,
        'allow_anonymous true',
        '',
      ].join('\n'),
    );
    return { command: requireExecutable('mosquitto', '`apt-get install mosquitto`'), args: ['-c', conf], cwd: this.dir };
  }
}

/** A private broker for one test, started; killed after it, its log printed if the test failed. */
export async function brokerFor(t: TestContext, kind: BrokerKind, options: BrokerOptions = {}): Promise<TestBroker> {
  const broker = new TestBroker(kind, await freePort(), options);
  t.after(async () => {
    if (!(t as TestContext & { readonly passed: boolean }).passed) process.stderr.write(`\n--- ${kind} log ---\n${broker.logTail(60)}\n`);
    await broker.kill();
    rmSync(broker.dir, { recursive: true, force: true }); // a HiveMQ data directory is ~1.4 GB
  });
  await broker.start();
  return broker;
}

/** A TCP port nothing listens on now, on the stack's host. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, config.host, r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

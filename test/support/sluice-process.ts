// Runs sluice as a real child process with a config made for one test (its own topics, share
// group, dead-letter topic, ephemeral HTTP port), so tests can kill it with SIGKILL, restart
// it with the same client id, read its metrics and see its logs when they fail.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { stringify } from 'yaml';
import { repoRoot } from '../../deploy/local/stack-config.ts';
import { parseSamples, type Samples } from '../../scripts/prometheus-text.ts';
import { sluiceNodeFlags } from '../../scripts/sluice-node-flags.ts';
import { endpoints, unique } from './stack.ts';

export interface SluiceOptions {
  /** The rules file as an object (written as YAML). */
  readonly rules: unknown;
  /** Deep-merged over the test defaults. */
  readonly config?: Record<string, unknown>;
  readonly clientId?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Extra node flags (the benchmark's --cpu-prof). */
  readonly nodeArgs?: readonly string[];
  /** Extra `sluice run` options (--watch). */
  readonly args?: readonly string[];
  /**
   * Which build runs: the sources (default), dist/ as users run it (the benchmark; `npm run build`
   * first), or another checkout's built cli.js (the benchmark's A/B: the code before a change).
   */
  readonly build?: 'src' | 'dist' | { readonly entry: string };
}

export class SluiceProcess {
  readonly dir: string;
  readonly clientId: string;
  readonly deadLetterTopic: string;
  private child: ChildProcess | undefined;
  private exited: Promise<number | null> | undefined;
  private logText = '';
  private httpUrl = '';
  private readonly env: NodeJS.ProcessEnv;
  private readonly nodeArgs: readonly string[];
  private readonly args: readonly string[];
  private readonly entry: string;
  /** Exit codes of the runs so far (null when killed by a signal). */
  readonly exits: Array<number | null> = [];
  /** Filters in the current rules: start() waits until each is subscribed. */
  private filters: number;

  constructor(options: SluiceOptions & { dir: string; group: string }) {
    this.dir = options.dir;
    this.clientId = options.clientId ?? unique('worker');
    this.deadLetterTopic = unique('dlq');
    this.env = options.env ?? {};
    this.nodeArgs = options.nodeArgs ?? [];
    this.args = options.args ?? [];
    const build = options.build ?? 'src';
    this.entry = typeof build === 'object' ? build.entry : join(repoRoot, build === 'dist' ? 'dist/cli.js' : 'src/cli.ts');
    // another checkout's build (the bench's A/B) may be from before the dead-letter topic moved to deadLetter.topic
    const olderBuild = typeof build === 'object' && readsKafkaDeadLetterTopic(build.entry);
    const config = merge(
      {
        rules: 'rules.yaml',
        mqtt: { url: endpoints.mqtt, group: options.group, clientId: this.clientId, keepalive: 10, reconnect: { minMs: 200, maxMs: 2000 } },
        kafka: {
          brokers: [endpoints.kafka],
          createTopics: { enabled: true, partitions: 3, replicationFactor: 1 },
          ...(olderBuild ? { deadLetterTopic: this.deadLetterTopic } : {}),
        },
        ...(olderBuild ? {} : { deadLetter: { topic: this.deadLetterTopic } }),
        influx: { url: endpoints.influxdb, bucket: endpoints.influxBucket },
        retry: { minMs: 100, maxMs: 1000 },
        http: { host: '127.0.0.1', port: 0 },
        shutdown: { deadlineMs: 10_000 },
        log: { level: 'info' },
      },
      options.config ?? {},
    );
    writeFileSync(join(this.dir, 'sluice.yaml'), stringify(config));
    writeFileSync(join(this.dir, 'rules.yaml'), stringify(options.rules));
    this.filters = filterCount(options.rules);
  }

  /** Replaces the rules file (takes effect at the next start). */
  writeRules(rules: unknown): void {
    writeFileSync(join(this.dir, 'rules.yaml'), stringify(rules));
    this.filters = filterCount(rules);
  }

  /**
   * Starts sluice and resolves when it serves HTTP and the broker acknowledged every filter of
   * the rules (on every connection: sluice subscribes on each CONNACK, resumed session or not),
   * so a message published next is delivered.
   */
  async start(timeoutMs = 30_000): Promise<void> {
    const child = spawn(
      join(repoRoot, 'scripts/node'),
      [...sluiceNodeFlags, ...this.nodeArgs, this.entry, 'run', '--config', join(this.dir, 'sluice.yaml'), ...this.args],
      {
        cwd: this.dir,
        env: { ...process.env, ...this.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.child = child;
    this.exited = new Promise((resolve) =>
      child.on('exit', (code) => {
        this.exits.push(code);
        resolve(code);
      }),
    );
    const started = Promise.withResolvers<void>();
    let subscribed = 0;
    const onData = (chunk: Buffer) => {
      const text = chunk.toString();
      this.logText += text;
      const http = /"http":"(http:\/\/[^"]+)"/.exec(text);
      if (http) this.httpUrl = http[1] as string;
      subscribed += text.split('"msg":"subscribed"').length - 1;
      if (subscribed >= this.filters) started.resolve();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    void this.exited.then((code) => started.reject(new Error(`sluice exited (${code}) during start:\n${this.logTail()}`)));
    const timer = setTimeout(() => started.reject(new Error(`sluice not connected after ${timeoutMs} ms:\n${this.logTail()}`)), timeoutMs);
    await started.promise.finally(() => clearTimeout(timer));
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Sends a signal and waits for the process to exit. Returns the exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return this.child?.exitCode ?? null;
    this.child.kill(signal);
    return (await this.exited) ?? null;
  }

  /** Its metrics; only the named ones when names are given (a cheap poll: the rest is not rendered). */
  async metrics(names: readonly string[] = []): Promise<Samples> {
    const query = names.length === 0 ? '' : `?${names.map((n) => `name=${encodeURIComponent(n)}`).join('&')}`;
    return parseSamples(await (await fetch(`${this.httpUrl}/metrics${query}`)).text());
  }

  /** /healthz's URL (for a probe with its own timeout). */
  async healthUrl(): Promise<string> {
    return `${this.httpUrl}/healthz`;
  }

  /** /healthz's status code. */
  async healthz(): Promise<number> {
    return (await fetch(`${this.httpUrl}/healthz`)).status;
  }

  async ready(): Promise<{ status: number; body: string }> {
    const res = await fetch(`${this.httpUrl}/readyz`);
    return { status: res.status, body: await res.text() };
  }

  /** Peak resident memory of the current process in MiB (VmHWM). */
  peakRssMiB(): number {
    return peakRssMiBOf(this.pid as number);
  }

  get logs(): string {
    return this.logText;
  }

  logTail(lines = 40): string {
    return this.logText.split('\n').slice(-lines).join('\n');
  }
}

/** A sluice process outside a test (the benchmark): its own temp dir, caller stops it. */
export function sluiceProcess(options: SluiceOptions & { group?: string }): SluiceProcess {
  return new SluiceProcess({ ...options, dir: mkdtempSync(join(tmpdir(), 'sluice-bench-')), group: options.group ?? unique('group') });
}

/** A sluice process for one test; killed after it, its log printed if the test failed. */
export function sluiceFor(t: TestContext, options: SluiceOptions & { group?: string }): SluiceProcess {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-test-'));
  const sluice = new SluiceProcess({ ...options, dir, group: options.group ?? unique('group') });
  t.after(async () => {
    if (!(t as TestContext & { readonly passed: boolean }).passed) {
      process.stderr.write(`\n--- sluice log (${sluice.clientId}) ---\n${sluice.logTail(60)}\n`);
    }
    await sluice.stop('SIGKILL');
  });
  return sluice;
}

function filterCount(rules: unknown): number {
  return ((rules as { subscriptions?: unknown[] }).subscriptions ?? []).length;
}

/** `over` laid onto `base`: objects merged key by key, anything else replaced. */
export function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)
        ? merge(b as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

/** Whether the build at `entry` (dist/cli.js) still reads the dead-letter topic from kafka.deadLetterTopic. */
function readsKafkaDeadLetterTopic(entry: string): boolean {
  const kafkaConfig = join(dirname(entry), 'sinks/kafka/config.js');
  return existsSync(kafkaConfig) && readFileSync(kafkaConfig, 'utf8').includes('deadLetterTopic');
}

/** A process's peak resident memory in MiB (VmHWM). */
export function peakRssMiBOf(pid: number): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
}

// The local stack as one object: bring every server up (install, start, probe), report status,
// bring it down. Used by `npm run stack:*`, the test suite's global setup, the demo and the bench.
import { launch, runningPid, tail, terminate, waitUntilReady } from './daemon.ts';
import { assertPortFree, ensureDebianPackages } from './prerequisites.ts';
import { apicurioServer } from './servers/apicurio.ts';
import { hivemqServer } from './servers/hivemq.ts';
import { influxdbServer } from './servers/influxdb.ts';
import { kafkaServer } from './servers/kafka.ts';
import { kafkaClusterNodes } from './servers/kafka-cluster.ts';
import type { LocalServer } from './servers/local-server.ts';
import { mosquittoServer } from './servers/mosquitto.ts';
import { s3Server } from './servers/s3.ts';
import { victoriaMetricsServer } from './servers/victoria-metrics.ts';
import type { StackConfig } from './stack-config.ts';

export interface ServerStatus {
  readonly name: string;
  readonly pid: number | undefined;
  readonly ready: boolean;
  readonly detail: string;
  readonly endpoints: string[];
}

export class LocalStack {
  readonly config: StackConfig;
  readonly servers: readonly LocalServer[];
  private readonly log: (line: string) => void;

  constructor(config: StackConfig, log: (line: string) => void = (l) => process.stderr.write(`stack: ${l}\n`)) {
    this.config = config;
    this.servers = [
      mosquittoServer(config),
      hivemqServer(config),
      kafkaServer(config),
      influxdbServer(config),
      victoriaMetricsServer(config),
      apicurioServer(config),
      s3Server(config),
      ...kafkaClusterNodes(config),
    ];
    this.log = log;
  }

  server(name: string): LocalServer {
    const found = this.servers.find((s) => s.name === name);
    if (!found) throw new Error(`no server "${name}" in the stack; known: ${this.servers.map((s) => s.name).join(', ')}`);
    return found;
  }

  /** Starts what is not running and waits until all serve. Returns the names it started. */
  async up(names?: readonly string[]): Promise<string[]> {
    const wanted = names && names.length > 0 ? names.map((n) => this.server(n)) : this.servers.filter((s) => !s.optional);
    const toStart = wanted.filter((s) => runningPid(s.files) === undefined);
    for (const s of toStart) {
      for (const p of s.ports) await assertPortFree(this.config.host, p.port, s.name, p.variable);
    }
    ensureDebianPackages(toStart.flatMap((s) => s.debianPackages));
    // Installs and builds are independent and the slowest part of a cold start: run them together.
    await Promise.all(toStart.map((s) => s.prepare()));
    for (const s of toStart) {
      const pid = launch(s.files, s.launchSpec());
      this.log(`${s.name} started (pid ${pid}, log ${s.files.logFile})`);
    }
    await Promise.all(
      wanted.map(async (s) => {
        await waitUntilReady(s.name, s.files, () => s.probe(), s.startTimeoutMs);
        await s.afterReady?.();
      }),
    );
    this.log(`ready: ${wanted.map((s) => s.name).join(', ')}`);
    return toStart.map((s) => s.name);
  }

  async down(names?: readonly string[]): Promise<void> {
    const wanted = names && names.length > 0 ? names.map((n) => this.server(n)) : this.servers;
    await Promise.all(
      wanted.map(async (s) => {
        if (await terminate(s.files)) this.log(`${s.name} stopped`);
      }),
    );
  }

  async status(): Promise<ServerStatus[]> {
    // an optional server is reported only while it runs
    return Promise.all(
      this.servers
        .filter((s) => !s.optional || runningPid(s.files) !== undefined)
        .map(async (s) => {
          const pid = runningPid(s.files);
          if (pid === undefined) return { name: s.name, pid, ready: false, detail: 'not running', endpoints: s.endpoints() };
          try {
            await s.probe();
            return { name: s.name, pid, ready: true, detail: 'ready', endpoints: s.endpoints() };
          } catch (err) {
            return { name: s.name, pid, ready: false, detail: `not ready: ${(err as Error).message}`, endpoints: s.endpoints() };
          }
        }),
    );
  }

  /** The last lines of every server's log, for a failing test's report. */
  logTails(lines = 20): string {
    return this.servers
      .filter((s) => !s.optional || runningPid(s.files) !== undefined)
      .map((s) => `==> ${s.files.logFile} <==\n${tail(s.files.logFile, lines)}`)
      .join('\n');
  }
}

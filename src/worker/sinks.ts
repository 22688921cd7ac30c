// The worker's sinks: built from the registry (the ones the rules use, and the dead letter),
// each behind its batch queue, started with backoff (a sink down at start makes the worker wait,
// not ready, rather than crash-loop), checked for /readyz and closed after the sessions.
import type { Logger } from 'pino';
import { backoffMs } from '../backoff.ts';
import type { LoadedConfig } from '../config/load.ts';
import type { Metrics } from '../observability/metrics.ts';
import { BatchQueue } from '../pipeline/batch-queue.ts';
import { type BuiltSink, sectionKey } from '../sinks/plugin.ts';
import { sinkPlugins } from '../sinks/registry.ts';
import type { DeadLetterItem } from '../sinks/sink.ts';

interface RunningSink {
  readonly built: BuiltSink;
  readonly queue: BatchQueue<unknown>;
}

export interface SinksContext {
  readonly commandsClientId: string | undefined;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly onFatal: (err: Error) => void;
  /** What is not usable yet, by name (for /readyz): a sink that waits while it is built says why here. */
  readonly starting: Map<string, string>;
  readonly signal?: AbortSignal | undefined;
}

export class WorkerSinks {
  private readonly running: ReadonlyMap<string, RunningSink>;
  private readonly metrics: Metrics;
  private readonly log: Logger;

  private constructor(running: ReadonlyMap<string, RunningSink>, metrics: Metrics, log: Logger) {
    this.running = running;
    this.metrics = metrics;
    this.log = log;
  }

  /** Builds them in registry order; a sink that cannot even be built (a damaged audit log) throws. */
  static async build(config: LoadedConfig, context: SinksContext): Promise<WorkerSinks> {
    const s = config.service;
    const running = new Map<string, RunningSink>();
    for (const plugin of sinkPlugins) {
      if (!plugin.always && !config.rules.uses(plugin.name)) continue;
      const sinkLog = context.log.child({ sink: plugin.name });
      const built = await plugin.create({
        section: (s as Record<string, unknown>)[sectionKey(plugin)],
        sections: s as Record<string, unknown>,
        clientIds: { telemetry: config.clientId, commands: context.commandsClientId },
        log: sinkLog,
        registry: context.metrics.registry,
        onFatal: context.onFatal,
        waiting: (reason) => (reason === undefined ? context.starting.delete(plugin.name) : context.starting.set(plugin.name, reason)),
        signal: context.signal,
      });
      running.set(plugin.name, { built, queue: new BatchQueue(built.sink, built.batch, s.retry, sinkLog, context.metrics) });
    }
    return new WorkerSinks(running, context.metrics, context.log);
  }

  /**
   * Starts each sink that needs it, waiting for it with backoff; `starting` names the ones not
   * usable yet (for /readyz). Rejects only when `signal` aborts meanwhile.
   */
  async start(starting: Map<string, string>, signal: AbortSignal | undefined): Promise<void> {
    for (const [name, { built }] of this.running) if (built.sink.start) this.metrics.sinkHealthy.set({ sink: name }, 0); // not started: cannot write
    for (const [name, { built }] of this.running) {
      if (!built.sink.start) continue;
      for (let attempt = 0; ; attempt++) {
        try {
          await built.sink.start();
          starting.delete(name);
          this.metrics.sinkHealthy.set({ sink: name }, 1);
          break;
        } catch (err) {
          if (signal?.aborted) throw err;
          const wait = backoffMs(attempt, 500, 10_000);
          starting.set(name, (err as Error).message);
          this.metrics.sinkHealthy.set({ sink: name }, 0); // it cannot write: SluiceSinkDown may fire
          this.log.error({ sink: name, err: (err as Error).message, retryInMs: wait }, 'sink not usable yet');
          await new Promise((r) => setTimeout(r, wait));
        }
      }
    }
  }

  get names(): string[] {
    return [...this.running.keys()];
  }

  has(name: string): boolean {
    return this.running.has(name);
  }

  /** The queue of each sink, by name (the pipeline's outputs go there). */
  queues(): Map<string, BatchQueue<unknown>> {
    return new Map([...this.running].map(([name, x]) => [name, x.queue]));
  }

  /** The dead letter's queue: always built. */
  deadLetters(): BatchQueue<DeadLetterItem> {
    return (this.running.get('dead-letter') as RunningSink).queue as BatchQueue<DeadLetterItem>;
  }

  /** The QoS 2 state a sink keeps for the command connection (the audit log's exactly-once ledger). */
  qos2(): BuiltSink['qos2'] {
    return [...this.running.values()].map((x) => x.built.qos2).find((x) => x !== undefined);
  }

  /** Per sink, what keeps it from being healthy: a failing write, and what the sink itself reports. */
  problems(): Map<string, string[]> {
    const problems = new Map<string, string[]>();
    for (const [name, { built, queue }] of this.running) {
      const q: string[] = [];
      if (!queue.healthy) q.push(`${name}: last write failed${queue.lastError ? `: ${queue.lastError.slice(0, 300)}` : ''}`);
      q.push(...(built.sink.problems?.() ?? []));
      problems.set(name, q);
    }
    return problems;
  }

  /** Stops the queues' retries, then closes the sinks (after the sessions stopped). */
  async close(): Promise<void> {
    for (const { queue } of this.running.values()) queue.close();
    await Promise.allSettled([...this.running.values()].map(({ built }) => built.sink.close()));
  }
}

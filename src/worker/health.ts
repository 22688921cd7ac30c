// What /readyz says and the gauges polled every 250 ms: the worker's parts register here as they
// are built (the sinks first, then the pipeline and the sessions), and each names what keeps it
// from being ready: a fatal sink, a sink still starting or failing, a connection down or not yet
// subscribed, a route whose oldest unacknowledged message is too old.
import type { Logger } from 'pino';
import { Gauge } from 'prom-client';
import type { Metrics } from '../observability/metrics.ts';
import type { Pipeline } from '../pipeline/pipeline.ts';
import type { RuleSet } from '../router/rule-set.ts';
import { sinkPlugins } from '../sinks/registry.ts';
import { SinkError } from '../sinks/sink.ts';
import type { MqttSession } from '../source/mqtt/mqtt-session.ts';
import type { SparkplugWorker } from '../sparkplug/index.ts';
import type { WorkerSinks } from './sinks.ts';

export class WorkerHealth {
  /** A sink that failed for good: the worker is stopping. */
  fatal: Error | undefined;
  /** What is not usable yet, by name (mqtt until the sessions start, a sink until it starts). */
  readonly starting = new Map<string, string>([['mqtt', 'not connected yet (the sinks start first)']]);
  sinks: WorkerSinks | undefined;
  pipeline: Pipeline | undefined;
  source: MqttSession | undefined;
  commandSource: MqttSession | undefined;
  sparkplug: SparkplugWorker | undefined;
  private readonly metrics: Metrics;
  private readonly rules: () => RuleSet;
  private readonly maxUnackedAgeMs: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(metrics: Metrics, rules: () => RuleSet, maxUnackedAgeMs: number) {
    this.metrics = metrics;
    this.rules = rules;
    this.maxUnackedAgeMs = maxUnackedAgeMs;
    const health = this;
    new Gauge({
      name: 'sluice_route_oldest_unacked_seconds',
      help: 'Age of the oldest message of each route not yet acknowledged (0 when none)',
      labelNames: ['route'],
      registers: [metrics.registry],
      collect() {
        this.reset();
        const ages = health.pipeline?.oldestUnacked();
        for (const route of health.rules().routeNames) this.set({ route }, (ages?.get(route) ?? 0) / 1000);
      },
    });
  }

  /**
   * What a sink that failed for good calls: the first error is kept (readiness names it), logged
   * naming the sink, and passed on (the process stops, acking nothing more); later ones are dropped.
   */
  fatalHandler(log: Logger, then: ((err: Error) => void) | undefined): (err: Error) => void {
    return (err) => {
      if (this.fatal) return;
      this.fatal = err;
      const sink = err instanceof SinkError ? err.sink : undefined;
      const title = sinkPlugins.find((p) => p.name === sink)?.title ?? sink ?? 'a sink';
      log.fatal({ sink, err: err.message }, `${title} failed: stopping without acknowledging anything more (never retried)`);
      then?.(err);
    };
  }

  /** Why the worker is not ready; empty when it is. */
  problems(): string[] {
    const p: string[] = [];
    if (this.fatal) p.push(`fatal: ${this.fatal.message} (stopping)`);
    for (const [name, why] of this.starting) p.push(`starting: ${name}: ${why}`);
    const { source, commandSource } = this;
    if (source && !source.subscribed) p.push(source.connected ? 'mqtt: connected, subscribing' : 'mqtt: not connected');
    if (commandSource && !commandSource.subscribed) p.push(commandSource.connected ? 'mqtt commands: connected, subscribing' : 'mqtt commands: not connected');
    if (this.sparkplug?.feedConnected === false) p.push('mqtt sparkplug state feed: not connected');
    const sinkProblems = this.sinks?.problems() ?? new Map<string, string[]>();
    for (const q of sinkProblems.values()) p.push(...q);
    const rules = this.rules();
    for (const [route, ageMs] of this.pipeline?.oldestUnacked() ?? []) {
      if (ageMs < this.maxUnackedAgeMs) continue;
      const where = (rules.sinksByRoute.get(route) ?? []).map((x) => (sinkProblems.get(x)?.length ? `${x} (failing)` : x)).join(', ');
      p.push(
        `route ${route}: oldest unacknowledged message is ${Math.round(ageMs / 1000)} s old (http.maxUnackedAgeMs ${this.maxUnackedAgeMs}); it writes to ${where}`,
      );
    }
    return p;
  }

  /** Polls readiness, the windows and Sparkplug's gauges every 250 ms until stop(). */
  startGauges(): void {
    const m = this.metrics;
    this.timer = setInterval(() => {
      m.ready.set(this.problems().length === 0 ? 1 : 0);
      if (this.source) {
        m.inFlight.set(this.source.window.inFlight);
        m.inFlightBytes.set(this.source.window.inFlightBytes);
        m.inFlightMax.set(this.source.window.highWater);
      }
      if (this.commandSource) {
        m.commandsInFlight.set(this.commandSource.window.inFlight);
        m.commandsInFlightMax.set(this.commandSource.window.highWater);
      }
      this.sparkplug?.updateGauges();
    }, 250);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

// The composition root: builds one worker (sessions -> pipeline -> sinks, the ack window
// closing the loop, metrics and HTTP at the edge) from a loaded config, in the order it must
// start: HTTP (so /healthz answers while sinks are waited for), the sinks, Sparkplug, the
// pipeline, the broker connections. The parts are in src/worker/ and src/sparkplug/. No
// module-level state: a test can run several workers in one process.
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { type LoadedConfig, mqttCredentialsOf } from './config/load.ts';
import { ConfigError } from './config/yaml-file.ts';
import { addressOf, startHttpServer } from './observability/http-server.ts';
import { Liveness } from './observability/liveness.ts';
import { memoryBudget } from './observability/memory-budget.ts';
import { createMetrics, type Metrics } from './observability/metrics.ts';
import { Pipeline } from './pipeline/pipeline.ts';
import type { RuleSet } from './router/rule-set.ts';
import { sinkPlugins } from './sinks/registry.ts';
import { SinkError } from './sinks/sink.ts';
import type { Session } from './source/session.ts';
import { startSparkplug } from './sparkplug/index.ts';
import { WorkerHealth } from './worker/health.ts';
import { checkReload, commandsClientIdOf, createSessions } from './worker/sessions.ts';
import { WorkerSinks } from './worker/sinks.ts';

export interface Worker {
  readonly metrics: Metrics;
  /** The telemetry session (QoS 0/1) and the command session (QoS 2), when the rules have them. */
  readonly source: Session | undefined;
  readonly commandSource: Session | undefined;
  readonly httpUrl: string;
  /**
   * Swaps in new rules (a reload), atomically between messages: a message in flight finishes
   * under the rules it was routed with. Filters added or removed are subscribed or
   * unsubscribed on the live connections. Throws ConfigError (the old rules stay) when the new
   * rules need what this worker was not started with: a sink it did not build, a connection
   * it does not have.
   */
  reload(next: RuleSet): { added: string[]; removed: string[] };
  /** Graceful stop: stop reading, flush, ack, disconnect. Resolves to the number of acks left unsettled. */
  stop(): Promise<number>;
}

export interface WorkerOptions {
  readonly signal?: AbortSignal;
  /** A sink turned fatal (a failed fsync): the process must stop now, acking nothing more. */
  readonly onFatal?: (err: Error) => void;
}

export async function startWorker(config: LoadedConfig, log: Logger, options: WorkerOptions = {}): Promise<Worker> {
  const s = config.service;
  const metrics = createMetrics(new Registry());
  let rules = config.rules;
  const health = new WorkerHealth(metrics, () => rules, s.http.maxUnackedAgeMs);
  const onFatal = (err: Error) => {
    if (health.fatal) return;
    health.fatal = err;
    const sink = err instanceof SinkError ? err.sink : undefined;
    const title = sinkPlugins.find((p) => p.name === sink)?.title ?? sink ?? 'a sink';
    log.fatal({ sink, err: err.message }, `${title} failed: stopping without acknowledging anything more (never retried)`);
    options.onFatal?.(err);
  };

  // /healthz from the very start (also while sinks are waited for); a port in use is one line, before anything connects
  const liveness = new Liveness(s.http.liveness, metrics.eventLoopWorstLag, (ms) =>
    log.warn({ stalledMs: ms, limitMs: s.http.liveness.maxStallMs }, 'the event loop stalled: /healthz fails for a while'),
  );
  const http = await startHttpServer(s.http.host, s.http.port, metrics.registry, { problems: () => health.problems() }, liveness).catch((err: unknown) => {
    liveness.stop();
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new ConfigError(
        `${config.configFile}: http.port ${s.http.port} on ${s.http.host} is in use (another sluice?): stop it, or set http.port (0 picks a free port)`,
      );
    }
    throw err;
  });
  const httpUrl = addressOf(http);
  log.info({ http: httpUrl }, 'serving /healthz, /readyz and /metrics');
  const closeHttp = async () => {
    liveness.stop();
    await new Promise((r) => http.close(r));
  };

  // the sinks the rules use, started (waited for while down: not ready, no crash loop)
  const commandsClientId = commandsClientIdOf(config);
  let sinks: WorkerSinks;
  try {
    sinks = health.sinks = await WorkerSinks.build(config, { commandsClientId, metrics, log, onFatal, starting: health.starting, signal: options.signal });
    await sinks.start(health.starting, options.signal);
  } catch (err) {
    await closeHttp();
    throw err;
  }

  const credentials = mqttCredentialsOf(s); // the password read once, for every connection
  const sparkplug = (health.sparkplug = !rules.usesSparkplug
    ? undefined
    : startSparkplug({
        settings: s.sparkplug,
        clientId: config.clientId,
        metrics,
        log,
        connection: {
          url: s.mqtt.url,
          ...credentials,
          keepalive: s.mqtt.keepalive,
          connectTimeoutMs: s.mqtt.connectTimeoutMs,
        },
      }));
  const pipeline = (health.pipeline = new Pipeline({
    rules: () => rules,
    queues: sinks.queues(),
    deadLetters: sinks.deadLetters(),
    metrics,
    log,
    onFatal,
    hook: sparkplug?.hook,
  }));
  const { source, commandSource } = createSessions(config, credentials, metrics, log, sinks.qos2());
  health.source = source;
  health.commandSource = commandSource;
  const sessions = [source, commandSource].filter((x) => x !== undefined);
  health.startGauges();
  health.starting.delete('mqtt'); // from now on the sessions say whether they are connected and subscribed
  source?.start((message, slot) => pipeline.dispatch(message, slot, config.clientId));
  if (commandSource && commandsClientId !== undefined) commandSource.start((message, slot) => pipeline.dispatch(message, slot, commandsClientId));
  log.info(
    {
      clientId: config.clientId,
      http: httpUrl,
      receiveMaximum: s.mqtt.receiveMaximum,
      routes: rules.routeNames,
      sinks: sinks.names,
      ...(commandSource ? { commandsClientId, commandsReceiveMaximum: s.mqtt.commands.receiveMaximum } : {}),
    },
    'sluice started',
  );
  const budget = memoryBudget(s.mqtt.maxInFlightBytes, sessions.length);
  if (!budget.ok) {
    log.warn(
      { heapLimitMiB: budget.heapLimitMiB, neededMiB: budget.neededMiB, maxInFlightBytes: s.mqtt.maxInFlightBytes, connections: sessions.length },
      'the heap limit is below what the messages in flight may need (mqtt.maxInFlightBytes per connection): raise --max-old-space-size (NODE_OPTIONS) or lower mqtt.maxInFlightBytes (docs/operations.md, Memory)',
    );
  }

  return {
    metrics,
    source,
    commandSource,
    httpUrl,
    reload(next) {
      checkReload(next, config.rulesFile, { sinks, source, commandSource, sparkplug });
      rules = next; // the pipeline reads it per message: the swap is between two messages
      const a = source?.updateSubscriptions(next.subscriptions.filter((x) => x.qos < 2)) ?? { added: [], removed: [] };
      const b = commandSource?.updateSubscriptions(next.subscriptions.filter((x) => x.qos === 2)) ?? { added: [], removed: [] };
      return { added: [...a.added, ...b.added], removed: [...a.removed, ...b.removed] };
    },
    async stop() {
      const started = Date.now();
      const inFlight = sessions.reduce((n, x) => n + x.window.inFlight, 0);
      log.info({ inFlight, deadlineMs: s.shutdown.deadlineMs }, 'shutting down: no new messages, flushing');
      const left = await Promise.all(sessions.map((x) => x.stop(s.shutdown.deadlineMs)));
      const unsettled = left.reduce((a, b) => a + b, 0);
      if (unsettled > 0) {
        metrics.unsettledAtShutdown.inc(unsettled);
        log.error(
          { unsettled, oldestMs: Math.max(...sessions.map((x) => x.window.oldestAgeMs())) },
          'shutdown deadline passed with messages not yet durable: they stay unacked and the broker redelivers them',
        );
      }
      health.stop();
      await sparkplug?.stop();
      await sinks.close();
      await closeHttp();
      log.info({ tookMs: Date.now() - started, unsettled }, 'stopped');
      return unsettled;
    },
  };
}

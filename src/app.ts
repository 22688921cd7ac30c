// The composition root: builds one worker (sessions -> pipeline -> sinks, the ack window
// closing the loop, metrics and HTTP at the edge) from a loaded config, in the order it must
// start: HTTP (so /healthz answers while sinks are waited for), the sinks, Sparkplug, the
// pipeline, the broker connections. The parts are in src/worker/ and src/sparkplug/. No
// module-level state: a test can run several workers in one process.
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { type LoadedConfig, mqttCredentialsOf } from './config/load.ts';
import { createMetrics, type Metrics } from './observability/metrics.ts';
import { Pipeline } from './pipeline/pipeline.ts';
import type { RuleSet } from './router/rule-set.ts';
import type { Session } from './source/session.ts';
import { startSparkplug } from './sparkplug/index.ts';
import { WorkerHealth } from './worker/health.ts';
import { startWorkerHttp } from './worker/http.ts';
import { checkReload, commandsClientIdOf, createSessions, sessionsOf, startSessions, stopSessions, updateSubscriptions } from './worker/sessions.ts';
import { WorkerSinks } from './worker/sinks.ts';
import { logStarted, warnIfHeapShort } from './worker/started.ts';

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
  const onFatal = health.fatalHandler(log, options.onFatal);
  const http = await startWorkerHttp(config, metrics, health, log);

  // the sinks the rules use, started (waited for while down: not ready, no crash loop)
  const commandsClientId = commandsClientIdOf(config);
  let sinks: WorkerSinks;
  try {
    sinks = health.sinks = await WorkerSinks.build(config, { commandsClientId, metrics, log, onFatal, starting: health.starting, signal: options.signal });
    await sinks.start(health.starting, options.signal);
  } catch (err) {
    await http.close();
    throw err;
  }

  const credentials = mqttCredentialsOf(s); // the password read once, for every connection
  const { url, failover, keepalive, connectTimeoutMs } = s.mqtt;
  const sparkplug = (health.sparkplug = rules.usesSparkplug
    ? startSparkplug({
        settings: s.sparkplug,
        clientId: config.clientId,
        metrics,
        log,
        connection: { url, failover, keepalive, connectTimeoutMs, ...credentials },
      })
    : undefined);
  const pipeline = (health.pipeline = new Pipeline({
    rules: () => rules,
    queues: sinks.queues(),
    deadLetters: sinks.deadLetters(),
    metrics,
    log,
    onFatal,
    hook: sparkplug?.hook,
  }));
  const sessions = createSessions(config, credentials, metrics, log, sinks.qos2());
  health.source = sessions.source;
  health.commandSource = sessions.commandSource;
  health.startGauges();
  health.starting.delete('mqtt'); // from now on the sessions say whether they are connected and subscribed
  startSessions(sessions, pipeline);
  logStarted(config, { ...sessions, httpUrl: http.url, sinks: sinks.names }, log);

  return {
    metrics,
    ...sessions,
    httpUrl: http.url,
    reload(next) {
      checkReload(next, config.rulesFile, { sinks, sparkplug, ...sessions });
      rules = next; // the pipeline reads it per message: the swap is between two messages
      warnIfHeapShort(s.mqtt.maxInFlightBytes, sessionsOf(sessions).length, next.outputsKeepingTopics, log);
      return updateSubscriptions(sessions, next);
    },
    async stop() {
      const started = Date.now();
      const unsettled = await stopSessions(sessions, s.shutdown.deadlineMs, s.shutdown.leaveGroup, metrics, log);
      health.stop();
      await sparkplug?.stop();
      await sinks.close();
      await http.close();
      log.info({ tookMs: Date.now() - started, unsettled }, 'stopped');
      return unsettled;
    },
  };
}

// The composition root: builds one worker (sessions -> pipeline -> sinks, the ack window
// closing the loop, metrics and HTTP at the edge) from a loaded config. Sinks are built,
// started, checked and stopped from the registry, with no per-sink code here. No module-level
// state: a test can run several workers in one process. QoS 2 subscriptions get a session of
// their own (the command connection), so its window, broker session and exactly-once state
// stand apart from telemetry's.
import type { Server } from 'node:http';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Gauge, Registry } from 'prom-client';
import { backoffMs } from './backoff.ts';
import { secretOf, type LoadedConfig } from './config/load.ts';
import { ConfigError } from './config/yaml-file.ts';
import { addressOf, startHttpServer } from './observability/http-server.ts';
import { Liveness } from './observability/liveness.ts';
import { memoryBudget } from './observability/memory-budget.ts';
import { createMetrics, type Metrics } from './observability/metrics.ts';
import { Pipeline } from './pipeline/pipeline.ts';
import { BatchQueue } from './sinks/batch-queue.ts';
import { sectionKey, type BuiltSink } from './sinks/plugin.ts';
import { sinkPlugins } from './sinks/registry.ts';
import { SinkError } from './sinks/sink.ts';
import type { RuleSet } from './router/rule-set.ts';
import { decodeSparkplugHead } from './router/sparkplug/sparkplug-payload.ts';
import { SparkplugState } from './router/sparkplug/sparkplug-state.ts';
import { parseSparkplugTopic } from './router/sparkplug/sparkplug-topic.ts';
import { MqttSession, type MqttSessionOptions } from './source/mqtt/mqtt-session.ts';
import { SparkplugFeed } from './source/mqtt/sparkplug-feed.ts';
import type { Session } from './source/session.ts';

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

interface RunningSink {
  readonly built: BuiltSink;
  readonly queue: BatchQueue<unknown>;
}

export async function startWorker(config: LoadedConfig, log: Logger, options: WorkerOptions = {}): Promise<Worker> {
  const s = config.service;
  const metrics = createMetrics(new Registry());
  let rules = config.rules;
  const telemetrySubscriptions = rules.subscriptions.filter((x) => x.qos < 2);
  const commandSubscriptions = rules.subscriptions.filter((x) => x.qos === 2);
  const commandsClientId = commandSubscriptions.length > 0 ? `${config.clientId}${s.mqtt.commands.clientIdSuffix}` : undefined;

  let fatal: Error | undefined;
  const onFatal = (err: Error) => {
    if (fatal) return;
    fatal = err;
    const sink = err instanceof SinkError ? err.sink : err.name === 'AuditFatalError' ? 'audit' : undefined;
    const title = sinkPlugins.find((p) => p.name === sink)?.title ?? sink ?? 'a sink';
    log.fatal({ sink, err: err.message }, `${title} failed: stopping without acknowledging anything more (never retried)`);
    options.onFatal?.(err);
  };

  // /healthz from the very start (also while sinks are waited for); a port in use is one line, before anything connects
  const starting = new Map<string, string>([['mqtt', 'not connected yet (the sinks start first)']]);
  const sinks = new Map<string, RunningSink>();
  let pipeline: Pipeline | undefined;
  let source: MqttSession | undefined;
  let commandSource: MqttSession | undefined;
  // declared before /readyz can first be asked (problems() reads it while sinks are awaited)
  let sparkplugFeed: SparkplugFeed | undefined;
  let http: Server;
  const liveness = new Liveness(s.http.liveness, metrics.eventLoopWorstLag,
    (ms) => log.warn({ stalledMs: ms, limitMs: s.http.liveness.maxStallMs }, 'the event loop stalled: /healthz fails for a while'));
  try {
    http = await startHttpServer(s.http.host, s.http.port, metrics.registry, { problems: () => problems() }, liveness);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new ConfigError(`${config.configFile}: http.port ${s.http.port} on ${s.http.host} is in use (another sluice?): stop it, or set http.port (0 picks a free port)`);
    }
    throw err;
  }
  const httpUrl = addressOf(http);
  log.info({ http: httpUrl }, 'serving /healthz, /readyz and /metrics');
  const problems = (): string[] => {
    const p: string[] = [];
    if (fatal) p.push(`fatal: ${fatal.message} (stopping)`);
    for (const [name, why] of starting) p.push(`starting: ${name}: ${why}`);
    if (source && !source.subscribed) p.push(source.connected ? 'mqtt: connected, subscribing' : 'mqtt: not connected');
    if (commandSource && !commandSource.subscribed) p.push(commandSource.connected ? 'mqtt commands: connected, subscribing' : 'mqtt commands: not connected');
    if (sparkplugFeed && !sparkplugFeed.connected) p.push('mqtt sparkplug state feed: not connected');
    const sinkProblems = new Map<string, string[]>();
    for (const [name, { built, queue }] of sinks) {
      const q: string[] = [];
      if (!queue.healthy) q.push(`${name}: last write failed${queue.lastError ? `: ${queue.lastError.slice(0, 300)}` : ''}`);
      q.push(...(built.sink.problems?.() ?? []));
      sinkProblems.set(name, q);
      p.push(...q);
    }
    for (const [route, ageMs] of pipeline?.oldestUnacked() ?? []) {
      if (ageMs < s.http.maxUnackedAgeMs) continue;
      const where = (rules.sinksByRoute.get(route) ?? []).map((x) => (sinkProblems.get(x)?.length ? `${x} (failing)` : x)).join(', ');
      p.push(`route ${route}: oldest unacknowledged message is ${Math.round(ageMs / 1000)} s old (http.maxUnackedAgeMs ${s.http.maxUnackedAgeMs}); it writes to ${where}`);
    }
    return p;
  };
  new Gauge({
    name: 'sluice_route_oldest_unacked_seconds',
    help: 'Age of the oldest message of each route not yet acknowledged (0 when none)',
    labelNames: ['route'],
    registers: [metrics.registry],
    collect() {
      this.reset();
      const ages = pipeline?.oldestUnacked();
      for (const route of rules.routeNames) this.set({ route }, (ages?.get(route) ?? 0) / 1000);
    },
  });

  // Build the sinks the rules use (and those always built), in registry order; a sink that
  // cannot even be built (a damaged audit log) stops the start.
  try {
    for (const plugin of sinkPlugins) {
      if (!plugin.always && !rules.uses(plugin.name)) continue;
      const sinkLog = log.child({ sink: plugin.name });
      const built = await plugin.create({
        section: (s as Record<string, unknown>)[sectionKey(plugin)],
        sections: s as Record<string, unknown>,
        clientIds: { telemetry: config.clientId, commands: commandsClientId },
        log: sinkLog,
        registry: metrics.registry,
        onFatal,
      });
      sinks.set(plugin.name, { built, queue: new BatchQueue(built.sink, built.batch, s.retry, sinkLog, metrics) });
    }
  } catch (err) {
    liveness.stop();
    await new Promise((r) => http.close(r));
    throw err;
  }
  // A sink that is down at start (Kafka, the dead-letter topic): wait for it, not ready
  // meanwhile, rather than crash-loop.
  for (const [name, { built }] of sinks) if (built.sink.start) metrics.sinkHealthy.set({ sink: name }, 0); // not started: cannot write
  for (const [name, { built }] of sinks) {
    if (!built.sink.start) continue;
    for (let attempt = 0; ; attempt++) {
      try {
        await built.sink.start();
        starting.delete(name);
        metrics.sinkHealthy.set({ sink: name }, 1);
        break;
      } catch (err) {
        if (options.signal?.aborted) {
          liveness.stop();
          await new Promise((r) => http.close(r));
          throw err;
        }
        const wait = backoffMs(attempt, 500, 10_000);
        starting.set(name, (err as Error).message);
        metrics.sinkHealthy.set({ sink: name }, 0); // it cannot write: SluiceSinkDown may fire
        log.error({ sink: name, err: (err as Error).message, retryInMs: wait }, 'sink not usable yet');
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  // Sparkplug routes: the alias state outlives reloads and restarts (its file); the state feed
  // shows every worker every birth, whichever worker the share group gives the data to
  const sp = s.sparkplug;
  const sparkplugLog = log.child({ component: 'sparkplug' });
  const gapsLogged = new Map<string, { at: number; since: number }>();
  const sparkplugState = !rules.usesSparkplug ? undefined : new SparkplugState({
    file: join(sp.stateDir, `sparkplug-${config.clientId}.json`),
    onGap: (topic, expected, got) => {
      metrics.sparkplugSeqGaps.inc();
      // the metric has no edge node label (cardinality): the log names it, once a minute per node
      const key = `${topic.group}/${topic.edgeNode}`;
      const seen = gapsLogged.get(key) ?? { at: 0, since: 0 };
      seen.since++;
      gapsLogged.set(key, seen);
      if (Date.now() - seen.at < 60_000) return;
      sparkplugLog.warn({ group: topic.group, edgeNode: topic.edgeNode, expected, got, gaps: seen.since }, 'Sparkplug seq gap: messages of this edge node were lost or reordered on the way (gaps: since the last such line)');
      seen.at = Date.now();
      seen.since = 0;
    },
    onFileError: (err, action) => sparkplugLog.error({ err: err.message, action }, `could not ${action} the Sparkplug state file (the state still works in memory)`),
  });
  if (sparkplugState) metrics.sparkplugEdgeNodes.set(sparkplugState.nodeCount);
  pipeline = new Pipeline({
    rules: () => rules,
    queues: new Map([...sinks].map(([name, x]) => [name, x.queue])),
    metrics,
    log,
    onFatal,
    sparkplug: sparkplugState && {
      state: sparkplugState,
      followSeq: !sp.stateFeed,
      aliasWaitMs: sp.aliasWaitMs,
      birthMayCome: (message) => {
        if (!sparkplugFeed) return false; // one connection: a birth would have come before its data
        const topic = parseSparkplugTopic(message.topic);
        return typeof topic !== 'string' && !sparkplugState.feedPassed(topic, decodeSparkplugHead(message.payload));
      },
      onUnknownAlias: !sp.rebirth ? undefined : (topicName) => {
        const topic = parseSparkplugTopic(topicName);
        if (typeof topic !== 'string') sparkplugFeed?.requestRebirth(topic);
      },
    },
  });
  const connection: Omit<MqttSessionOptions, 'clientId' | 'subscriptions' | 'receiveMaximum'> = {
    url: s.mqtt.url,
    group: s.mqtt.group,
    sessionExpiryInterval: s.mqtt.sessionExpiryInterval,
    keepalive: s.mqtt.keepalive,
    maxInFlightBytes: s.mqtt.maxInFlightBytes,
    connectTimeoutMs: s.mqtt.connectTimeoutMs,
    reconnect: s.mqtt.reconnect,
    username: s.mqtt.username,
    password: s.mqtt.password && secretOf(s.mqtt.password, 'mqtt.password'),
    tls: s.mqtt.tls,
  };
  source = telemetrySubscriptions.length === 0 ? undefined : new MqttSession({
    ...connection,
    clientId: config.clientId,
    subscriptions: telemetrySubscriptions,
    receiveMaximum: s.mqtt.receiveMaximum,
  }, log.child({ component: 'mqtt' }), metrics);
  const qos2 = [...sinks.values()].map((x) => x.built.qos2).find((x) => x !== undefined);
  commandSource = commandsClientId === undefined ? undefined : new MqttSession({
    ...connection,
    clientId: commandsClientId,
    subscriptions: commandSubscriptions,
    receiveMaximum: s.mqtt.commands.receiveMaximum,
    gauges: { connected: metrics.commandsConnected, receiveMaximum: metrics.commandsReceiveMaximum },
    exactlyOnce: qos2,
  }, log.child({ component: 'mqtt-commands' }), metrics);
  const sessions = [source, commandSource].filter((x) => x !== undefined);
  const running = pipeline;
  if (sparkplugState && sp.stateFeed) {
    sparkplugFeed = new SparkplugFeed({
      url: s.mqtt.url, username: connection.username, password: connection.password, tls: s.mqtt.tls,
      keepalive: s.mqtt.keepalive, connectTimeoutMs: s.mqtt.connectTimeoutMs,
      clientId: `${config.clientId}-sparkplug`, state: sparkplugState, rebirthIntervalMs: sp.rebirthIntervalMs,
      rebirth: sp.rebirth, onRebirthRequested: () => metrics.sparkplugRebirthRequests.inc(),
    }, sparkplugLog);
  }
  if (sp.rebirth && sparkplugState && !sp.stateFeed) sparkplugLog.warn('sparkplug.rebirth needs sparkplug.stateFeed (its connection sends the requests): no rebirth will be asked');

  const inFlightTimer = setInterval(() => {
    metrics.ready.set(problems().length === 0 ? 1 : 0);
    if (source) {
      metrics.inFlight.set(source.window.inFlight);
      metrics.inFlightBytes.set(source.window.inFlightBytes);
      metrics.inFlightMax.set(source.window.highWater);
    }
    if (commandSource) {
      metrics.commandsInFlight.set(commandSource.window.inFlight);
      metrics.commandsInFlightMax.set(commandSource.window.highWater);
    }
    if (sparkplugState) metrics.sparkplugEdgeNodes.set(sparkplugState.nodeCount);
    if (sparkplugFeed) metrics.sparkplugFeedConnected.set(sparkplugFeed.connected ? 1 : 0);
  }, 250);
  inFlightTimer.unref();

  const telemetryId = config.clientId;
  starting.delete('mqtt'); // from now on the sessions say whether they are connected and subscribed
  source?.start((message, slot) => running.dispatch(message, slot, telemetryId));
  if (commandSource && commandsClientId !== undefined) commandSource.start((message, slot) => running.dispatch(message, slot, commandsClientId));
  log.info({
    clientId: config.clientId, http: httpUrl, receiveMaximum: s.mqtt.receiveMaximum, routes: rules.routeNames, sinks: [...sinks.keys()],
    ...(commandSource ? { commandsClientId, commandsReceiveMaximum: s.mqtt.commands.receiveMaximum } : {}),
  }, 'sluice started');
  const budget = memoryBudget(s.mqtt.maxInFlightBytes, sessions.length);
  if (!budget.ok) {
    log.warn({ heapLimitMiB: budget.heapLimitMiB, neededMiB: budget.neededMiB, maxInFlightBytes: s.mqtt.maxInFlightBytes, connections: sessions.length },
      'the heap limit is below what the messages in flight may need (mqtt.maxInFlightBytes per connection): raise --max-old-space-size (NODE_OPTIONS) or lower mqtt.maxInFlightBytes (docs/operations.md, Memory)');
  }

  return {
    metrics,
    source,
    commandSource,
    httpUrl,
    reload(next) {
      const file = config.rulesFile;
      for (const plugin of sinkPlugins) {
        if (next.uses(plugin.name) && !sinks.has(plugin.name)) {
          throw new ConfigError(`${file}: a route now writes to ${plugin.name}, which this worker did not start with: restart it to use the new rules (the old rules stay)`);
        }
      }
      const telemetry = next.subscriptions.filter((x) => x.qos < 2);
      const commands = next.subscriptions.filter((x) => x.qos === 2);
      if (telemetry.length > 0 && !source) throw new ConfigError(`${file}: QoS 0/1 filters added, but this worker started without a telemetry connection: restart it to use the new rules (the old rules stay)`);
      if (commands.length > 0 && !commandSource) throw new ConfigError(`${file}: QoS 2 filters added, but this worker started without a command connection: restart it to use the new rules (the old rules stay)`);
      if (next.usesSparkplug && !sparkplugState) throw new ConfigError(`${file}: a sparkplug route added, but this worker started without Sparkplug state: restart it to use the new rules (the old rules stay)`);
      rules = next; // the pipeline reads it per message: the swap is between two messages
      const a = source?.updateSubscriptions(telemetry) ?? { added: [], removed: [] };
      const b = commandSource?.updateSubscriptions(commands) ?? { added: [], removed: [] };
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
        log.error({ unsettled, oldestMs: Math.max(...sessions.map((x) => x.window.oldestAgeMs())) },
          'shutdown deadline passed with messages not yet durable: they stay unacked and the broker redelivers them');
      }
      clearInterval(inFlightTimer);
      sparkplugState?.flush();
      await sparkplugFeed?.stop();
      for (const { queue } of sinks.values()) queue.close();
      await Promise.allSettled([...sinks.values()].map(({ built }) => built.sink.close()));
      liveness.stop();
      await new Promise((r) => http.close(r));
      log.info({ tookMs: Date.now() - started, unsettled }, 'stopped');
      return unsettled;
    },
  };
}

// The worker's broker connections: telemetry (QoS 0/1 filters) on the worker's client id, and
// commands (QoS 2 filters) on a connection of their own, so its window, broker session and
// exactly-once state stand apart. Their start, what a rules reload may change on them without a
// restart, and their stop (drained within the shutdown deadline).
import type { Logger } from 'pino';
import type { LoadedConfig } from '../config/load.ts';
import { ConfigError } from '../config/yaml-file.ts';
import type { MqttCredentials } from '../mqtt-credentials.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Pipeline } from '../pipeline/pipeline.ts';
import type { RuleSet } from '../router/rule-set.ts';
import type { BuiltSink } from '../sinks/plugin.ts';
import { sinkPlugins } from '../sinks/registry.ts';
import { MqttSession, type MqttSessionOptions } from '../source/mqtt/mqtt-session.ts';

export interface WorkerSessions {
  readonly source: MqttSession | undefined;
  readonly commandSource: MqttSession | undefined;
}

/** The command connection's client id, when the rules have QoS 2 filters. */
export function commandsClientIdOf(config: LoadedConfig): string | undefined {
  return config.rules.subscriptions.some((x) => x.qos === 2) ? `${config.clientId}${config.service.mqtt.commands.clientIdSuffix}` : undefined;
}

/** The connections the rules need (not yet started). */
export function createSessions(config: LoadedConfig, credentials: MqttCredentials, metrics: Metrics, log: Logger, qos2: BuiltSink['qos2']): WorkerSessions {
  const m = config.service.mqtt;
  const connection: Omit<MqttSessionOptions, 'clientId' | 'subscriptions' | 'receiveMaximum'> = {
    url: m.url,
    failover: m.failover,
    group: m.group,
    sessionExpiryInterval: m.sessionExpiryInterval,
    keepalive: m.keepalive,
    maxInFlightBytes: m.maxInFlightBytes,
    connectTimeoutMs: m.connectTimeoutMs,
    reconnect: m.reconnect,
    ...credentials,
  };
  const telemetry = config.rules.subscriptions.filter((x) => x.qos < 2);
  const commands = config.rules.subscriptions.filter((x) => x.qos === 2);
  const commandsClientId = commandsClientIdOf(config);
  return {
    source:
      telemetry.length === 0
        ? undefined
        : new MqttSession(
            {
              ...connection,
              clientId: config.clientId,
              subscriptions: telemetry,
              receiveMaximum: m.receiveMaximum,
            },
            log.child({ component: 'mqtt' }),
            metrics,
          ),
    commandSource:
      commandsClientId === undefined
        ? undefined
        : new MqttSession(
            {
              ...connection,
              clientId: commandsClientId,
              subscriptions: commands,
              receiveMaximum: m.commands.receiveMaximum,
              gauges: { connected: metrics.commandsConnected, receiveMaximum: metrics.commandsReceiveMaximum },
              exactlyOnce: qos2,
            },
            log.child({ component: 'mqtt-commands' }),
            metrics,
          ),
  };
}

/**
 * Whether this worker can take `next` in place: every sink it writes to built, a connection for
 * each kind of filter, Sparkplug state for a Sparkplug route. A ConfigError says what needs a
 * restart (the old rules stay).
 */
export function checkReload(
  next: RuleSet,
  file: string,
  worker: WorkerSessions & { readonly sinks: { has(name: string): boolean }; readonly sparkplug: unknown },
): void {
  const restart = 'restart it to use the new rules (the old rules stay)';
  for (const plugin of sinkPlugins) {
    if (next.uses(plugin.name) && !worker.sinks.has(plugin.name))
      throw new ConfigError(`${file}: a route now writes to ${plugin.name}, which this worker did not start with: ${restart}`);
  }
  if (next.subscriptions.some((x) => x.qos < 2) && !worker.source)
    throw new ConfigError(`${file}: QoS 0/1 filters added, but this worker started without a telemetry connection: ${restart}`);
  if (next.subscriptions.some((x) => x.qos === 2) && !worker.commandSource)
    throw new ConfigError(`${file}: QoS 2 filters added, but this worker started without a command connection: ${restart}`);
  if (next.usesSparkplug && !worker.sparkplug)
    throw new ConfigError(`${file}: a sparkplug route added, but this worker started without Sparkplug state: ${restart}`);
}

/** Both connections (those the rules have). */
export function sessionsOf(s: WorkerSessions): MqttSession[] {
  return [s.source, s.commandSource].filter((x) => x !== undefined);
}

/** Reads from each connection into the pipeline, every message under its connection's client id. */
export function startSessions(s: WorkerSessions, pipeline: Pipeline): void {
  const windowFull = () => pipeline.windowFull();
  for (const session of sessionsOf(s)) session.start((message, slot) => pipeline.dispatch(message, slot, session.clientId), windowFull);
}

/** A reload's filters subscribed or unsubscribed on the live connections (checkReload first). */
export function updateSubscriptions(s: WorkerSessions, next: RuleSet): { added: string[]; removed: string[] } {
  const a = s.source?.updateSubscriptions(next.subscriptions.filter((x) => x.qos < 2)) ?? { added: [], removed: [] };
  const b = s.commandSource?.updateSubscriptions(next.subscriptions.filter((x) => x.qos === 2)) ?? { added: [], removed: [] };
  return { added: [...a.added, ...b.added], removed: [...a.removed, ...b.removed] };
}

/**
 * Stops reading and waits, until the deadline, for what is in flight to be acked (`leave`: after
 * leaving the share group, see Session.stop). Resolves to the number left unacked.
 */
export async function stopSessions(s: WorkerSessions, deadlineMs: number, leave: boolean, metrics: Metrics, log: Logger): Promise<number> {
  const sessions = sessionsOf(s);
  const inFlight = sessions.reduce((n, x) => n + x.window.inFlight, 0);
  log.info(
    { inFlight, deadlineMs, leaveGroup: leave },
    leave ? 'shutting down: leaving the share group, then flushing' : 'shutting down: no new messages, flushing',
  );
  const left = await Promise.all(sessions.map((x) => x.stop(deadlineMs, leave)));
  const unsettled = left.reduce((a, b) => a + b, 0);
  if (unsettled > 0) {
    metrics.unsettledAtShutdown.inc(unsettled);
    log.error(
      { unsettled, oldestMs: Math.max(...sessions.map((x) => x.window.oldestAgeMs())) },
      'shutdown deadline passed with messages not yet durable: they stay unacked and the broker redelivers them',
    );
  }
  return unsettled;
}

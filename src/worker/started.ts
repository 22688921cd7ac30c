// The one line a worker logs once its connections start, and the warning when the heap limit is
// below what the messages in flight and the rules' kept topics may need (at start and on a reload).
import type { Logger } from 'pino';
import type { LoadedConfig } from '../config/load.ts';
import { memoryBudget } from '../observability/memory-budget.ts';
import { sessionsOf, type WorkerSessions } from './sessions.ts';

export function logStarted(config: LoadedConfig, worker: WorkerSessions & { readonly httpUrl: string; readonly sinks: readonly string[] }, log: Logger): void {
  const s = config.service;
  const { commandSource } = worker;
  log.info(
    {
      clientId: config.clientId,
      http: worker.httpUrl,
      receiveMaximum: s.mqtt.receiveMaximum,
      routes: config.rules.routeNames,
      sinks: worker.sinks,
      ...(commandSource ? { commandsClientId: commandSource.clientId, commandsReceiveMaximum: s.mqtt.commands.receiveMaximum } : {}),
    },
    'sluice started',
  );
  warnIfHeapShort(s.mqtt.maxInFlightBytes, sessionsOf(worker).length, config.rules.outputsKeepingTopics, log);
}

/**
 * Warns when V8's heap limit is below what the config may hold: at start, and after each rules
 * reload, since the rules' kept topics count (each InfluxDB output that keeps its series).
 */
export function warnIfHeapShort(maxInFlightBytes: number, connections: number, outputsKeepingTopics: number, log: Logger): void {
  const budget = memoryBudget(maxInFlightBytes, connections, outputsKeepingTopics);
  if (budget.ok) return;
  log.warn(
    { heapLimitMiB: budget.heapLimitMiB, neededMiB: budget.neededMiB, maxInFlightBytes, connections, outputsKeepingTopics },
    'the heap limit is below what the config may need (mqtt.maxInFlightBytes per connection, the topics the rules keep): raise --max-old-space-size (NODE_OPTIONS) or lower mqtt.maxInFlightBytes (docs/operations.md, Memory)',
  );
}

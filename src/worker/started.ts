// The one line a worker logs once its connections start, and the warning when the heap limit is
// below what the messages in flight may need.
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
  const connections = sessionsOf(worker).length;
  const budget = memoryBudget(s.mqtt.maxInFlightBytes, connections, config.rules.outputsKeepingTopics);
  if (!budget.ok) {
    log.warn(
      {
        heapLimitMiB: budget.heapLimitMiB,
        neededMiB: budget.neededMiB,
        maxInFlightBytes: s.mqtt.maxInFlightBytes,
        connections,
        outputsKeepingTopics: config.rules.outputsKeepingTopics,
      },
      'the heap limit is below what the messages in flight may need (mqtt.maxInFlightBytes per connection): raise --max-old-space-size (NODE_OPTIONS) or lower mqtt.maxInFlightBytes (docs/operations.md, Memory)',
    );
  }
}

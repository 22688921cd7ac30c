// What a worker's config lets it hold, against the heap V8 was given: the in-flight bytes are
// bounded by mqtt.maxInFlightBytes per connection, and a message's payload is held a few times
// over while in flight (the buffer, its parsed JSON, the encoded records). A heap limit below
// that could end a worker with "heap out of memory" under large payloads, so the start says so.
import v8 from 'node:v8';

/** The worker's own memory beside its messages: code, clients, buffers (measured: about 60 MiB of heap). */
export const baselineHeapMiB = 64;
/**
 * The rules' per-topic maps at their bound (router/kept-topics.ts), 10,000 topics of 256
 * characters, measured: 7.3 MiB for the routes and levels, 3.6 MiB more for each InfluxDB output
 * that keeps its series. Two rule sets are alive while a reload swaps them.
 */
export const keptRoutesMiB = 8;
export const keptSeriesMiB = 4;
export function keptTopicsMiB(outputsKeepingTopics: number): number {
  return 2 * (keptRoutesMiB + keptSeriesMiB * outputsKeepingTopics);
}
/** How many times a payload's bytes are held while in flight, at most (buffer, parsed JSON, encoded outputs). */
export const copiesInFlight = 6;

export interface MemoryBudget {
  /** The heap the config may need at most (MiB). */
  readonly neededMiB: number;
  /** V8's heap limit (MiB): --max-old-space-size plus the young generation. */
  readonly heapLimitMiB: number;
  readonly ok: boolean;
}

export function memoryBudget(
  maxInFlightBytes: number,
  connections: number,
  outputsKeepingTopics: number,
  heapLimitBytes = v8.getHeapStatistics().heap_size_limit,
): MemoryBudget {
  const neededMiB = Math.ceil(baselineHeapMiB + keptTopicsMiB(outputsKeepingTopics) + (copiesInFlight * maxInFlightBytes * connections) / 2 ** 20);
  const heapLimitMiB = Math.floor(heapLimitBytes / 2 ** 20);
  return { neededMiB, heapLimitMiB, ok: heapLimitMiB >= neededMiB };
}

// The retry schedule shared by the sinks (retry until durable) and the source (reconnect):
// exponential backoff with full jitter, so a fleet of workers does not retry in step.

export function backoffMs(attempt: number, minMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return Math.max(minMs, Math.round(ceiling * random()));
}

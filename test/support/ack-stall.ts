// Watches a sluice process's acknowledgements: the longest stretch acked_total stood still while
// messages were in flight (a stalled window), sampled from /metrics.
import { setTimeout as sleep } from 'node:timers/promises';
import type { SluiceProcess } from './sluice-process.ts';

export function ackStall(sluice: SluiceProcess, pollMs = 200): { stop(): Promise<number> } {
  let last = -1;
  let movedAt = Date.now();
  let longest = 0;
  let stopped = false;
  const run = (async () => {
    while (!stopped) {
      const m = await sluice.metrics().catch(() => undefined); // restarting
      const acked = m?.get('sluice_messages_acked_total') ?? last;
      if (acked !== last) {
        last = acked;
        movedAt = Date.now();
      } else if ((m?.get('sluice_inflight_messages') ?? 0) > 0) {
        longest = Math.max(longest, Date.now() - movedAt);
      }
      await sleep(pollMs);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await run;
      return longest;
    },
  };
}

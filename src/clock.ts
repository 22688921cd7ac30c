// Two clocks. How long something has taken or waited (a message held, a backoff, a topic's
// recheck, a log line's throttle) is measured on a monotonic clock, which an NTP step or an
// operator's `date -s` does not move: a wall clock stepped an hour forward would otherwise make
// every waiting item look an hour old at once (dead-lettered as stuck, a route reported held).
// What leaves the process as a time (a record's receive time, a metric's epoch seconds, the
// payload's own time for end-to-end latency) stays wall time: Date.now().
import { performance } from 'node:perf_hooks';

const origin = performance.timeOrigin;

/** Milliseconds on a monotonic clock, epoch-like at start and never stepped: for durations only. */
export function monotonicMs(): number {
  return origin + performance.now();
}

// Liveness: whether the event loop turns. A frozen process (SIGSTOP, a stuck loop) cannot
// answer /healthz at all, so a probe with a timeout fails on it; a loop that stalls and comes
// back answers again at once, so a watchdog timer measures how late it fires and /healthz
// reports a stall past the limit for a while after it (the probe catches an intermittent
// freeze too). The watchdog is unref'd: it never keeps the process alive.
import type { Gauge } from 'prom-client';

export interface LivenessOptions {
  /** A loop late by more than this is a stall. */
  readonly maxStallMs: number;
  /** /healthz reports a stall for this long after it ended. */
  readonly reportForMs: number;
}

const tickMs = 250;

export class Liveness {
  private readonly options: LivenessOptions;
  private last = performance.now();
  private stall: { readonly endedAt: number; readonly ms: number } | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(options: LivenessOptions, worstLag?: Gauge, onStall?: (ms: number) => void) {
    this.options = options;
    let worst = 0;
    this.timer = setInterval(() => {
      const now = performance.now();
      const lag = Math.max(0, now - this.last - tickMs);
      this.last = now;
      if (lag > worst) {
        worst = lag;
        worstLag?.set(lag / 1000);
      }
      if (lag > options.maxStallMs) {
        this.stall = { endedAt: now, ms: Math.round(lag) };
        onStall?.(Math.round(lag));
      }
    }, tickMs);
    this.timer.unref();
  }

  /** A problem while a stall past the limit ended less than reportForMs ago; undefined when live. */
  problem(): string | undefined {
    const s = this.stall;
    if (!s || performance.now() - s.endedAt > this.options.reportForMs) return undefined;
    return `event loop stalled for ${s.ms} ms (limit ${this.options.maxStallMs} ms), ${Math.round((performance.now() - s.endedAt) / 1000)} s ago`;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

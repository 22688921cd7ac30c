// Topics with a fault now (a topic failing on its own, a lookup the cluster cannot answer), for
// /readyz and the dead letter: since when, seen last when, and the cluster's words. A fault not
// seen again for a minute is forgotten: nothing has asked for its topic since (its records were
// written, dead-lettered or refused), so it no longer holds /readyz at 503 until a restart.
import { monotonicMs } from '../../clock.ts';

interface TopicFault {
  readonly since: number;
  at: number;
  reason: string;
}

/** How long a fault is kept after it was last seen. */
export const faultForgottenAfterMs = 60_000;

export class TopicFaults {
  private readonly faults = new Map<string, TopicFault>();
  private readonly now: () => number;

  constructor(now: () => number = monotonicMs) {
    this.now = now;
  }

  /** Any fault kept (a cheap test for the write path; `reason` says whether one is still current). */
  get any(): boolean {
    return this.faults.size > 0;
  }

  get size(): number {
    return this.faults.size;
  }

  /** The topic failed again, or for the first time (returns true then). */
  seen(topic: string, reason: string): boolean {
    const now = this.now();
    const f = this.faults.get(topic);
    if (f && now - f.at <= faultForgottenAfterMs) {
      f.at = now;
      f.reason = reason;
      return false;
    }
    this.faults.set(topic, { since: now, at: now, reason });
    return true;
  }

  /** The topic's fault, while it is current. */
  reason(topic: string): string | undefined {
    const f = this.faults.get(topic);
    if (f === undefined) return undefined;
    if (this.now() - f.at <= faultForgottenAfterMs) return f.reason;
    this.faults.delete(topic);
    return undefined;
  }

  /** The topic works again: how long it had failed, if it had. */
  clear(topic: string): number | undefined {
    const f = this.faults.get(topic);
    if (f === undefined) return undefined;
    this.faults.delete(topic);
    return this.now() - f.since;
  }

  /** For /readyz: the first few current faults, each with its topic, for how many seconds, and why. */
  lines(line: (topic: string, seconds: number, reason: string) => string): string[] {
    const now = this.now();
    const lines: string[] = [];
    for (const [topic, f] of this.faults) {
      if (now - f.at > faultForgottenAfterMs) this.faults.delete(topic);
      else if (lines.length < 5) lines.push(line(topic, Math.round((now - f.since) / 1000), f.reason));
    }
    return lines;
  }
}

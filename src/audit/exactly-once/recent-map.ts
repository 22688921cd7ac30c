// A map that remembers recent entries only: at most maxEntries (the oldest go first) and none
// older than maxAgeMs. Entries are kept in the order they were set (a Map keeps insertion
// order), so both bounds drop from the front. The released history of the exactly-once ledger
// and the idempotency-key index are both one.
export class RecentMap<V> {
  private readonly entries = new Map<string, { readonly value: V; readonly at: number }>();
  private readonly maxEntries: number;
  private readonly maxAgeMs: number;
  private readonly now: () => number;

  constructor(bounds: { readonly maxEntries: number; readonly maxAgeMs: number }, now: () => number = Date.now) {
    this.maxEntries = bounds.maxEntries;
    this.maxAgeMs = bounds.maxAgeMs;
    this.now = now;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The value, unless it is past the age bound. */
  get(key: string): V | undefined {
    this.expire();
    return this.entries.get(key)?.value;
  }

  /** Sets it as the newest (`at`: when it happened, epoch ms; entries are set in time order). */
  set(key: string, value: V, at: number = this.now()): void {
    this.entries.delete(key);
    this.entries.set(key, { value, at });
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  /** Entries within the bounds, oldest first. */
  *[Symbol.iterator](): IterableIterator<[string, V, number]> {
    this.expire();
    for (const [key, e] of this.entries) yield [key, e.value, e.at];
  }

  /** Forgets the entries older than the age bound. */
  expire(): void {
    const oldest = this.now() - this.maxAgeMs;
    for (const [key, e] of this.entries) {
      if (e.at >= oldest) break;
      this.entries.delete(key);
    }
  }
}

// A timestamp read from a payload (a route's `time:` for InfluxDB, `timestamp:` for Kafka):
// a number in a unit (or guessed from its magnitude), a digit string, or ISO-8601.

const unitNanos = { s: 1_000_000_000n, ms: 1_000_000n, us: 1_000n, ns: 1n } as const;

/** A payload timestamp in nanoseconds: a number (or digit string) in `unit`, or ISO-8601. */
export function toNanos(v: unknown, unit: 'auto' | 's' | 'ms' | 'us' | 'ns'): bigint | undefined {
  if (typeof v === 'string' && !/^-?\d+(\.\d+)?$/.test(v)) {
    const ms = Date.parse(v);
    return Number.isNaN(ms) ? undefined : BigInt(ms) * 1_000_000n;
  }
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  if (!Number.isFinite(n) || n < 0) return undefined;
  const u = unit !== 'auto' ? unit : n < 1e11 ? 's' : n < 1e14 ? 'ms' : n < 1e17 ? 'us' : 'ns';
  if (Number.isInteger(n) && typeof v === 'string') return BigInt(v) * unitNanos[u];
  if (Number.isInteger(n) && Number.isSafeInteger(n)) return BigInt(n) * unitNanos[u];
  // fractional (e.g. 1700000000.123 s): microsecond resolution is what a double holds here
  return BigInt(Math.round((n * Number(unitNanos[u])) / 1000)) * 1000n;
}

// Exactly once by the application's own key: a command that its publisher retried (a new
// PUBLISH, a new packet id) carries the same key, in a user property, the correlation data or
// a field of its JSON payload, and is recorded once. Each record carries its key
// (`idempotencyKey`), so the log itself is the durable index: at open the segments that cover
// the window are read back, newest first, and the keys of records received within it are
// indexed again. One index per audit directory (one writer), whatever connection took the
// message; keys are not shared between workers (each has its own log).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileJsonPath } from '../../mapping/json-path.ts';
import { numberText, parseKeepingNumbers } from '../../mapping/payload-text.ts';
import type { Message } from '../../message.ts';
import { type AuditRecord, readFrames, segmentFiles, segmentMagic } from '../log/format.ts';
import { RecentMap } from './recent-map.ts';

/** Where a route's commands carry their key. */
export type KeySource = { readonly userProperty: string } | { readonly correlationData: true } | { readonly jsonPath: string };

export interface IdempotencyOptions {
  /** How long a key is remembered after its record was received. */
  readonly windowMs: number;
  /** At most this many keys (the oldest go first). */
  readonly maxKeys: number;
  readonly now?: () => number;
}

export const defaultIdempotency = { windowMs: 24 * 3_600_000, maxKeys: 1_000_000 } as const;

/** A key longer than this is not used as one: the command is recorded without a key, and counted. */
export const maxKeyLength = 1024;

/** Compiles a key source into the function that reads a message's key (undefined: it has none). */
export function keyReader(source: KeySource): (message: Message) => string | undefined {
  const fit = (key: string | undefined) => (key === undefined || key === '' || key.length > maxKeyLength ? undefined : key);
  if ('userProperty' in source) {
    return (m) => {
      const v = m.properties.userProperties?.[source.userProperty];
      return fit(Array.isArray(v) ? v[0] : v);
    };
  }
  if ('correlationData' in source) return (m) => fit(m.properties.correlationData?.toString('base64'));
  const path = compileJsonPath(source.jsonPath);
  return (m) => {
    let body: unknown;
    try {
      // a number is the key as written: a double would make two ids past 2^53 one key, and the
      // second command a "redelivery" of the first
      body = parseKeepingNumbers(m.payload);
    } catch {
      return undefined;
    }
    const v = path.get(body);
    return fit(typeof v === 'string' ? v : typeof v === 'number' ? String(v) : numberText(v));
  };
}

export class IdempotencyIndex {
  /** key -> its record's seq (or the write under way), oldest first. */
  private readonly keys: RecentMap<Promise<number>>;

  private constructor(options: IdempotencyOptions) {
    this.keys = new RecentMap({ maxEntries: options.maxKeys, maxAgeMs: options.windowMs }, options.now);
  }

  /** Rebuilds the index from the records of `dir` received within the window. */
  static open(dir: string, options: IdempotencyOptions): IdempotencyIndex {
    const index = new IdempotencyIndex(options);
    const oldest = (options.now ?? Date.now)() - options.windowMs;
    const found: Array<{ key: string; seq: number; at: number }> = [];
    // newest segment first; a segment whose first record is older than the window is the last read
    for (const name of segmentFiles(dir).reverse()) {
      let first: number | undefined;
      // the writer's recovery vetted the log before this opens: reading stops only at its end
      for (const { body } of readFrames(readFileSync(join(dir, name)), segmentMagic.length)) {
        const record = JSON.parse(body.toString()) as AuditRecord;
        if (record.type !== 'command') continue;
        const at = Date.parse(record.receivedAt);
        first ??= at;
        if (record.idempotencyKey !== undefined && at >= oldest) found.push({ key: record.idempotencyKey, seq: record.seq, at });
      }
      if (first !== undefined && first < oldest) break;
    }
    found.sort((a, b) => a.seq - b.seq);
    const seen = new Set<string>();
    for (const f of found) {
      if (seen.has(f.key)) continue; // the first record of a key is the one
      seen.add(f.key);
      index.keys.set(f.key, Promise.resolve(f.seq), f.at);
    }
    index.keys.expire();
    return index;
  }

  get size(): number {
    return this.keys.size;
  }

  /** The record of a command with this key already recorded (or being recorded) within the window. */
  recorded(key: string): Promise<number> | undefined {
    return this.keys.get(key);
  }

  /** A command with this key is being recorded; a failed write forgets it again. */
  recording(key: string, seq: Promise<number>): void {
    this.keys.set(key, seq);
    seq.catch(() => {
      if (this.keys.get(key) === seq) this.keys.delete(key);
    });
  }
}

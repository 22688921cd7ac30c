// The Merkle tree over the audit log's records, as Certificate Transparency defines it (RFC 9162
// §2.1): leaf = SHA-256(0x00 || record body), node = SHA-256(0x01 || left || right), the tree of
// n leaves split at the largest power of two below n. A signed checkpoint carries the tree head
// over every record before it, so one record can be proven in O(log n) hashes (inclusion), and
// a later checkpoint proven to extend an earlier one (consistency). docs/audit-log.md specifies
// both well enough to check them without sluice.
import { createHash } from 'node:crypto';

const leafPrefix = Buffer.from([0]);
const nodePrefix = Buffer.from([1]);

export function leafHash(body: Uint8Array): Buffer {
  return createHash('sha256').update(leafPrefix).update(body).digest();
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash('sha256').update(nodePrefix).update(left).update(right).digest();
}

/** The head of the empty tree: SHA-256 of nothing. */
export const emptyTreeHead = createHash('sha256').digest();

/** The largest power of two strictly below n (n >= 2). */
function splitOf(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * The tree grown one leaf at a time, keeping only the roots of its perfect subtrees (one per
 * bit of the size: at most 53 hashes). The writer keeps one; a checkpoint stores it, so a
 * restarted writer goes on from the last checkpoint instead of reading the whole log.
 */
export class MerkleFrontier {
  private readonly roots: Buffer[];
  private readonly heights: number[];
  private count: number;

  constructor(size = 0, roots: readonly Buffer[] = []) {
    this.count = size;
    this.roots = [...roots];
    this.heights = [];
    // the perfect subtrees of a tree of `size` leaves, largest first: one per set bit
    for (let bit = 52; bit >= 0; bit--) if (Math.floor(size / 2 ** bit) % 2 === 1) this.heights.push(bit);
    if (this.heights.length !== this.roots.length) throw new Error(`a tree of ${size} leaves has ${this.heights.length} subtree roots, not ${roots.length}`);
  }

  get size(): number {
    return this.count;
  }

  append(leaf: Buffer): void {
    let hash = leaf;
    let height = 0;
    while (this.heights.length > 0 && this.heights.at(-1) === height) {
      this.heights.pop();
      hash = nodeHash(this.roots.pop() as Buffer, hash);
      height++;
    }
    this.roots.push(hash);
    this.heights.push(height);
    this.count++;
  }

  /** The tree head of everything appended so far. */
  head(): Buffer {
    if (this.roots.length === 0) return emptyTreeHead;
    let acc = this.roots.at(-1) as Buffer;
    for (let i = this.roots.length - 2; i >= 0; i--) acc = nodeHash(this.roots[i] as Buffer, acc);
    return acc;
  }

  /** The subtree roots, largest first, as hex (what a checkpoint stores). */
  toHex(): string[] {
    return this.roots.map((r) => r.toString('hex'));
  }

  static fromHex(size: number, hex: readonly string[]): MerkleFrontier {
    return new MerkleFrontier(
      size,
      hex.map((h) => Buffer.from(h, 'hex')),
    );
  }
}

/** The leaf hashes of a log, 32 bytes each, in one growing buffer (a million records: 32 MB). */
export class LeafHashes {
  private buffer = Buffer.allocUnsafe(32 * 1024);
  private count = 0;

  get size(): number {
    return this.count;
  }

  push(leaf: Buffer): void {
    if ((this.count + 1) * 32 > this.buffer.length) {
      const grown = Buffer.allocUnsafe(this.buffer.length * 2);
      this.buffer.copy(grown, 0, 0, this.count * 32);
      this.buffer = grown;
    }
    leaf.copy(this.buffer, this.count * 32);
    this.count++;
  }

  at(i: number): Buffer {
    return this.buffer.subarray(i * 32, i * 32 + 32);
  }

  /** MTH(D[lo:hi]), RFC 9162 §2.1.1. */
  head(lo: number, hi: number): Buffer {
    const n = hi - lo;
    if (n === 0) return emptyTreeHead;
    if (n === 1) return this.at(lo);
    const k = splitOf(n);
    return nodeHash(this.head(lo, lo + k), this.head(lo + k, hi));
  }

  /** PATH(m, D[0:n]), RFC 9162 §2.1.3.1: the inclusion proof of leaf m (0-based) in the tree of n leaves. */
  inclusionPath(m: number, n: number): Buffer[] {
    if (m < 0 || m >= n || n > this.count) throw new RangeError(`leaf ${m} is not in a tree of ${n} leaves`);
    const path: Buffer[] = [];
    const walk = (m: number, lo: number, hi: number) => {
      const size = hi - lo;
      if (size <= 1) return;
      const k = splitOf(size);
      if (m < k) {
        walk(m, lo, lo + k);
        path.push(this.head(lo + k, hi));
      } else {
        walk(m - k, lo + k, hi);
        path.push(this.head(lo, lo + k));
      }
    };
    walk(m, 0, n);
    return path;
  }

  /** PROOF(m, D[0:n]), RFC 9162 §2.1.4.1: that the tree of m leaves is a prefix of the tree of n. */
  consistencyPath(m: number, n: number): Buffer[] {
    if (m < 1 || m > n || n > this.count) throw new RangeError(`no consistency proof from ${m} to ${n} leaves`);
    const path: Buffer[] = [];
    const sub = (m: number, lo: number, hi: number, whole: boolean) => {
      const size = hi - lo;
      if (m === size) {
        if (!whole) path.push(this.head(lo, hi));
        return;
      }
      const k = splitOf(size);
      if (m <= k) {
        sub(m, lo, lo + k, whole);
        path.push(this.head(lo + k, hi));
      } else {
        sub(m - k, lo + k, hi, false);
        path.push(this.head(lo, lo + k));
      }
    };
    sub(m, 0, n, true);
    return path;
  }
}

/** RFC 9162 §2.1.3.2: whether `path` proves leaf `m` (0-based) in the tree of n leaves with head `root`. */
export function inclusionHolds(leaf: Buffer, m: number, n: number, path: readonly Buffer[], root: Buffer): boolean {
  if (m >= n) return false;
  let fn = m;
  let sn = n - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && r.equals(root);
}

/** RFC 9162 §2.1.4.2: whether `path` proves the tree of m leaves (head `first`) a prefix of the tree of n (head `second`). */
export function consistencyHolds(m: number, n: number, first: Buffer, second: Buffer, path: readonly Buffer[]): boolean {
  if (m < 1 || m > n) return false;
  if (m === n) return path.length === 0 && first.equals(second);
  if (path.length === 0) return false;
  // m a power of two: the first tree is a whole subtree, its head the proof's first node
  const proof = 2 ** Math.round(Math.log2(m)) === m ? [first, ...path] : [...path];
  let fn = m - 1;
  let sn = n - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = proof[0] as Buffer;
  let sr = proof[0] as Buffer;
  for (const c of proof.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && fr.equals(first) && sr.equals(second);
}

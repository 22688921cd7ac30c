// An audit proof checker written from docs/audit-log.md ("Proofs") and RFC 9162 alone: it
// imports nothing from sluice, and rebuilds the tree heads recursively from the path (where
// sluice runs RFC 9162's iterative algorithms), so the two only agree when the format is what
// the docs say.
import { createHash, type KeyObject, verify } from 'node:crypto';

type Head = { seq: number; prev: string; treeSize: number; treeHead: string; signature: string };

const sha = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const leaf = (body: Buffer) => sha(Buffer.from([0]), body);
const node = (l: Buffer, r: Buffer) => sha(Buffer.from([1]), l, r);
const split = (n: number) => 2 ** Math.ceil(Math.log2(n) - 1);

function signed(c: Head, key: KeyObject): boolean {
  if (c.treeSize !== c.seq - 1) return false;
  const message = Buffer.from(`sluice-audit-checkpoint-2\n${c.seq}\n${c.prev}\n${c.treeSize}\n${c.treeHead}\n`, 'ascii');
  return verify(null, message, key, Buffer.from(c.signature, 'base64'));
}

/** The head of the tree of n leaves, leaf m known, the path's last element the top sibling. */
function rootFrom(m: number, n: number, hash: Buffer, path: Buffer[]): Buffer {
  if (n === 1) return hash;
  const k = split(n);
  const sibling = path.pop();
  if (sibling === undefined) throw new Error('path too short');
  return m < k ? node(rootFrom(m, k, hash, path), sibling) : node(sibling, rootFrom(m - k, n - k, hash, path));
}

/** [old head, new head] of the tree of m leaves inside the tree of n, from the path. */
function headsFrom(m: number, n: number, whole: boolean, first: Buffer, path: Buffer[]): [Buffer, Buffer] {
  if (m === n) {
    if (whole) return [first, first];
    const h = path.pop();
    if (h === undefined) throw new Error('path too short');
    return [h, h];
  }
  const k = split(n);
  const other = path.pop();
  if (other === undefined) throw new Error('path too short');
  if (m <= k) {
    const [o, s] = headsFrom(m, k, whole, first, path);
    return [o, node(s, other)];
  }
  const [o, s] = headsFrom(m - k, n - k, false, first, path);
  return [node(other, o), node(other, s)];
}

export function independentlyValid(proof: Record<string, any>, key: KeyObject): boolean {
  try {
    const path = (proof.path as string[]).map((h) => Buffer.from(h, 'hex'));
    if (proof.type === 'inclusion') {
      const c = proof.checkpoint as Head;
      const body = Buffer.from(proof.record as string, 'base64');
      if (!signed(c, key) || JSON.parse(body.toString()).seq !== proof.seq || proof.seq > c.treeSize) return false;
      const root = rootFrom(proof.seq - 1, c.treeSize, leaf(body), path);
      return path.length === 0 && root.toString('hex') === c.treeHead;
    }
    if (proof.type === 'consistency') {
      const a = proof.first as Head;
      const b = proof.second as Head;
      if (!signed(a, key) || !signed(b, key) || a.treeSize >= b.treeSize) return false;
      const first = Buffer.from(a.treeHead, 'hex');
      const [o, s] = headsFrom(a.treeSize, b.treeSize, true, first, path);
      return path.length === 0 && o.equals(first) && s.toString('hex') === b.treeHead;
    }
    return false;
  } catch {
    return false;
  }
}

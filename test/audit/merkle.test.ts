import assert from 'node:assert/strict';
import { test } from 'node:test';
import { consistencyHolds, emptyTreeHead, inclusionHolds, LeafHashes, leafHash, MerkleFrontier } from '../../src/audit/log/merkle.ts';

// RFC 6962 / 9162 reference data (Certificate Transparency's test vectors): 8 leaves, the tree
// head for each size, and some proofs
const leaves = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map((h) => Buffer.from(h, 'hex'));
const roots = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];

function tree(bodies: readonly Buffer[]): { hashes: LeafHashes; frontier: MerkleFrontier } {
  const hashes = new LeafHashes();
  const frontier = new MerkleFrontier();
  for (const b of bodies) {
    hashes.push(leafHash(b));
    frontier.append(leafHash(b));
  }
  return { hashes, frontier };
}

test('tree heads match the Certificate Transparency vectors for 1 to 8 leaves, grown one leaf at a time or all at once', () => {
  assert.equal(emptyTreeHead.toString('hex'), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  for (let n = 1; n <= 8; n++) {
    const { hashes, frontier } = tree(leaves.slice(0, n));
    assert.equal(frontier.head().toString('hex'), roots[n - 1], `frontier, ${n} leaves`);
    assert.equal(hashes.head(0, n).toString('hex'), roots[n - 1], `whole tree, ${n} leaves`);
    const again = MerkleFrontier.fromHex(n, frontier.toHex());
    assert.equal(again.head().toString('hex'), roots[n - 1], 'a frontier restored from its hex');
  }
});

test('inclusion and consistency proofs match the vectors', () => {
  const { hashes } = tree(leaves);
  const hex = (b: Buffer[]) => b.map((x) => x.toString('hex'));
  assert.deepEqual(hex(hashes.inclusionPath(0, 8)), [
    '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
  ]);
  assert.deepEqual(hex(hashes.inclusionPath(5, 8)), [
    'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  ]);
  assert.deepEqual(hex(hashes.consistencyPath(1, 8)), [
    '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
  ]);
  assert.deepEqual(hex(hashes.consistencyPath(6, 8)), [
    '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
    'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  ]);
  assert.deepEqual(hex(hashes.consistencyPath(2, 5)).slice(0, 1), ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e']);
});

test('every proof for every size up to 70 verifies, and none verifies for another leaf, size or head', () => {
  const bodies = Array.from({ length: 70 }, (_, i) => Buffer.from(`record ${i}`));
  const { hashes } = tree(bodies);
  const heads = [emptyTreeHead, ...Array.from({ length: 70 }, (_, n) => hashes.head(0, n + 1))];
  for (let n = 1; n <= 70; n++) {
    for (let m = 0; m < n; m++) {
      const path = hashes.inclusionPath(m, n);
      assert.ok(inclusionHolds(hashes.at(m), m, n, path, heads[n] as Buffer), `leaf ${m} in ${n}`);
      assert.ok(!inclusionHolds(hashes.at((m + 1) % n), m, n, path, heads[n] as Buffer) || n === 1, `another leaf at ${m} in ${n}`);
      if (n > 1) assert.ok(!inclusionHolds(hashes.at(m), m, n, path, heads[n - 1] as Buffer), `leaf ${m} against the head of ${n - 1}`);
    }
    for (let m = 1; m <= n; m++) {
      const path = hashes.consistencyPath(m, n);
      assert.ok(consistencyHolds(m, n, heads[m] as Buffer, heads[n] as Buffer, path), `${m} -> ${n}`);
      if (m < n) {
        assert.ok(!consistencyHolds(m, n, heads[m] as Buffer, heads[n - 1] as Buffer, path), `${m} -> ${n} against another second head`);
        assert.ok(!consistencyHolds(m, n, leafHash(Buffer.from('forged')), heads[n] as Buffer, path), `${m} -> ${n} from a forged first head`);
      }
    }
  }
});

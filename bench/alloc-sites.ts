// Where a stage's bytes go: the allocation sites of one stage of `npm run bench -- --stages`,
// garbage included (V8's sampling heap profiler, keeping the samples of objects a GC collected).
//   scripts/node bench/alloc-sites.ts mqtt [top]
// Each line: the share of the bytes sampled, the allocating function and its two callers. What
// the harness itself allocates (frames in bench/stages.ts: the recorded traffic it builds) is
// left out; the stage table gives the bytes per message, this says which code allocates them.
import '../src/source/mqtt/quiet-debug.ts'; // as src/cli.ts: first, before mqtt-packet loads
import { Session } from 'node:inspector/promises';
import { runStages } from './stages.ts';

interface Node {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: Node[];
}

const stage = process.argv[2] ?? 'mqtt';
const top = Number(process.argv[3] ?? 25);
const session = new Session();
session.connect();
await runStages(5_000, 1, () => {}, new Set([stage])); // the JIT warmed before sampling
await session.post('HeapProfiler.startSampling', {
  samplingInterval: 4096,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
});
await runStages(50_000, 1, () => {}, new Set([stage]));
const { profile } = (await session.post('HeapProfiler.stopSampling')) as unknown as { profile: { head: Node } };
session.disconnect();

const bySite = new Map<string, number>();
let total = 0;
const frame = (n: Node) =>
  `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(src|bench)\//, '$1/')}:${n.callFrame.lineNumber + 1}`;
const walk = (n: Node, callers: string[]) => {
  const here = frame(n);
  // the harness's own allocations (the recorded traffic it builds) are not the stage's
  if (n.selfSize > 0 && !here.includes('bench/stages.ts')) {
    const site = [here, ...callers.slice(-2).reverse()].join(' <- ');
    bySite.set(site, (bySite.get(site) ?? 0) + n.selfSize);
    total += n.selfSize;
  }
  for (const c of n.children) walk(c, [...callers, here]);
};
walk(profile.head, []);
console.log(`stage ${stage}: ${(total / 2 ** 20).toFixed(0)} MiB sampled`);
for (const [site, bytes] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${((bytes / total) * 100).toFixed(1).padStart(5)}%  ${site}`);
}

// Reads sluice's own /metrics text back: for the demo's summary, the benchmark and the tests.
// One sample per line, `name{labels} value`; comments skipped.

export type Samples = Map<string, number>;

export function parseSamples(text: string): Samples {
  const out: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/**
 * The upper bound of the bucket holding quantile q of a histogram; undefined when it is empty.
 * With `since` (an earlier scrape), of what was observed between the two scrapes only; with
 * `label` (e.g. `sink="kafka"`), of the series that carry it only.
 */
export function histogramQuantile(m: Samples, name: string, q: number, since?: Samples, label?: string): number | undefined {
  const buckets = [...m]
    .filter(([k]) => k.startsWith(`${name}_bucket{`) && (label === undefined || k.includes(label)))
    .map(([k, v]) => ({ le: k.includes('le="+Inf"') ? Infinity : Number(/le="([^"]+)"/.exec(k)?.[1]), v: v - (since?.get(k) ?? 0) }))
    .sort((a, b) => a.le - b.le);
  const total = buckets.at(-1)?.v ?? 0;
  if (total <= 0) return undefined;
  return buckets.find((b) => b.v >= q * total)?.le;
}

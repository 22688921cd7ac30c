// src/ reads as the flow, and the imports prove it: each module sits in a layer, and no import
// runs from a lower layer up to a higher one (source and sinks never import the pipeline, the
// router never imports a sink, nothing below config reads the config). Each sink's folder
// imports only the shared sink contract and its own files (the dead letter also the Kafka
// producer it writes through, the audit log its Kafka witness's), so a new sink is a folder and
// a registry line.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';

const src = join(import.meta.dirname, '../../src');

/**
 * Lower first. A module may import from its own layer or any below it. Each folder sits in
 * one layer, whole: the mapping toolkit (topic patterns, templates, JSON paths, timestamps)
 * under the router, the sinks and the audit library that all use it; the audit library beside
 * the router; the engine (pipeline, batch queues) above the plugins it drives.
 */
const layers: ReadonlyArray<readonly string[]> = [
  ['message.ts', 'outcome.ts', 'backoff.ts', 'secrets.ts', 'addresses.ts', 'write-fully.ts', 'clock.ts', 'mqtt-credentials.ts'],
  ['observability/', 'mapping/', 'sparkplug/'],
  ['router/', 'audit/'],
  ['source/', 'sinks/'],
  ['pipeline/'],
  ['config/', 'simulator/'],
  ['app.ts', 'worker/', 'cli/', 'cli.ts'],
];

function layerOf(file: string): number {
  let best = -1;
  let bestLength = -1;
  layers.forEach((prefixes, i) => {
    for (const p of prefixes) {
      if ((file === p || (p.endsWith('/') && file.startsWith(p))) && p.length > bestLength) {
        best = i;
        bestLength = p.length;
      }
    }
  });
  return best;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Relative imports of a file, as paths under src/. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gms), ...text.matchAll(/import\(\s*'([^']+)'\s*\)/g)].map(
    (m) => m[1] as string,
  );
  return specs.filter((s) => s.startsWith('.')).map((s) => relative(src, resolve(dirname(file), s)));
}

const files = sourceFiles(src).map((f) => relative(src, f));

test('every module of src/ has a layer', () => {
  assert.deepEqual(
    files.filter((f) => layerOf(f) < 0),
    [],
  );
});

test('no import runs from a lower layer up to a higher one', () => {
  const upward: string[] = [];
  for (const file of files) {
    for (const target of importsOf(join(src, file))) {
      if (target.startsWith('..')) upward.push(`${file} -> ${target} (outside src/)`);
      else if (layerOf(target) > layerOf(file)) upward.push(`${file} (layer ${layerOf(file)}) -> ${target} (layer ${layerOf(target)})`);
    }
  }
  assert.deepEqual(upward, []);
});

test('a sink folder imports only the sink contract, its own files, and what it declares it writes through', () => {
  // the dead letter writes through the Kafka or file sink; the audit log's Kafka witness through a Kafka producer
  const writesThrough: Record<string, readonly string[]> = { 'dead-letter': ['kafka', 'file'], audit: ['kafka'] };
  const crossing: string[] = [];
  for (const file of files.filter((f) => /^sinks\/[^/]+\//.test(f))) {
    const own = file.split('/')[1] as string;
    for (const target of importsOf(join(src, file))) {
      const m = /^sinks\/([^/]+)\//.exec(target);
      if (m && m[1] !== own && !writesThrough[own]?.includes(m[1] as string)) crossing.push(`${file} -> ${target}`);
    }
  }
  assert.deepEqual(crossing, []);
  // and only the registry (and those that write through) name a sink's folder
  const naming = files
    .filter((f) => !f.startsWith('sinks/'))
    .flatMap((f) =>
      importsOf(join(src, f))
        .filter((t) => /^sinks\/(kafka|influx|file|audit)\/(index|kafka-route|influx-route)\.ts$/.test(t))
        .map((t) => `${f} -> ${t}`),
    );
  assert.deepEqual(naming, [], 'plugins are reached through the registry');
});

test('no import circles: the modules form a tree of dependencies, not a loop', () => {
  const graph = new Map(files.map((f) => [f, importsOf(join(src, f)).filter((t) => !t.startsWith('..'))]));
  const state = new Map<string, 'open' | 'done'>();
  const circles: string[] = [];
  const visit = (file: string, path: string[]) => {
    if (state.get(file) === 'done') return;
    if (state.get(file) === 'open') {
      circles.push([...path.slice(path.indexOf(file)), file].join(' -> '));
      return;
    }
    state.set(file, 'open');
    for (const next of graph.get(file) ?? []) visit(next, [...path, file]);
    state.set(file, 'done');
  };
  for (const f of files) visit(f, []);
  assert.deepEqual(circles, []);
});

// The Kafka client as the worker loads it: @platformatic/kafka and sluice's replacements for a
// few of its modules, bundled by esbuild into one ES module, vendor/platformatic-kafka.js. The
// library is ~330 files; loaded as they are, each keeps a module record, a scope and its source
// text in the V8 heap. One file, its whitespace dropped, takes ~4-14 MiB off a worker's RSS
// (docs/benchmarks.md). Names stay the library's, so stack traces read as before; esbuild's
// keepNames stays off: it wraps every function expression in a call made each time one is
// created, and the library makes closures per send (+15% CPU per message in a drain, measured).
//
// The replacements, applied here at build time (each module says why):
// - the library's utils module's `ajv/dist/2020.js` → lazy-ajv.ts (option schemas compiled on
//   first use, not all at import);
// - its own schema registry's ajv, ajv-draft-04 and avsc → lazy-registry-ajv.ts, lazy-avsc.ts
//   (loaded when a registry of the library's is first used; sluice has its own and never makes one);
// - its produce requests' `../../protocol/records.js` → lean-records.ts (a record batch written
//   into one buffer, with the library's bytes);
// - in its producer's send, a list of headers (the adapter's) is passed on to the encoder as it
//   is: the send made two Maps of every record's headers (its own copy, then one serialized);
// - in its connection, the in-flight requests' Map is replaced by a new one when its last
//   request is answered, not emptied: V8 gives an emptied Map a new table, and once the Map
//   lives in the old generation that table is allocated there, so a connection with one
//   request at a time left old-generation garbage with every answer (~2 MiB a minute at 1,000
//   msg/s; a young Map that is let go of dies young instead).
// Native and optional modules, ajv and avsc stay outside, loaded from node_modules as before.
//
// `npm run build` (and so `npm pack`), `npm run sluice`, the tests' global setup, the bench and
// the demo run it, so the bundle follows the sources; vendor/platformatic-kafka.json says what
// was replaced.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { kafkaClientBundleUrl } from '../src/sinks/kafka/client/platformatic-bundle.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const client = join(root, 'src/sinks/kafka/client');
/** Where the worker loads it from (platformatic-bundle.ts owns the path). */
const kafkaClientBundle = fileURLToPath(kafkaClientBundleUrl);
const manifestFile = fileURLToPath(new URL('./platformatic-kafka.json', kafkaClientBundleUrl));

/** The library file whose `ajv/dist/2020.js` import is replaced. */
const libraryUtils = '/@platformatic/kafka/dist/utils.js';
/** The library file whose ajv, ajv-draft-04 and avsc imports are replaced. */
const libraryRegistry = '/@platformatic/kafka/dist/registries/confluent-schema-registry.js';
const registryAjv = new Set(['ajv', 'ajv/dist/2020.js', 'ajv-draft-04']);
/** The library files whose `../../protocol/records.js` import is replaced: the produce requests. */
const produceRequest = /\/@platformatic\/kafka\/dist\/apis\/producer\/(?:produce-v\d+|utils)\.js$/;

/** The library file whose in-flight requests' Map is replaced when emptied, and the statement that empties it. */
const libraryConnection = '/@platformatic/kafka/dist/network/connection.js';
const inflightDelete = /this\.#inflightRequests\.delete\(([\w.]+)\);/g;
/** The places the library deletes an answered or timed-out request: the build fails if that changes. */
const inflightDeletes = 2;

/**
 * The library file whose send makes two Maps of each record's headers, and where it does: a
 * list of headers (the adapter's, for lean-records.ts) is passed on as it is instead.
 */
const libraryProducer = '/@platformatic/kafka/dist/clients/producer/producer.js';
const headerMaps =
  /let headers = new Map\(\);\s*const serializedHeaders = new Map\(\);(\s*const metadata = message\.metadata;\s*try \{\s*)if \(message\.headers\) \{/g;

/**
 * What the bundle replaced: library file (relative to the library) -> specifier -> sluice's
 * module, or, for an edit of the library's own code, what was edited -> what it does now.
 */
export type BundleManifest = { readonly library: string; readonly replaced: Record<string, Record<string, string>> };

export async function bundleKafkaClient(): Promise<BundleManifest> {
  const replaced: Record<string, Record<string, string>> = {};
  const libraryDir = dirname(dirname(fileURLToPath(import.meta.resolve('@platformatic/kafka'))));
  const replace = (importer: string, specifier: string, module: string) => {
    (replaced[relative(libraryDir, importer)] ??= {})[specifier] = module;
    return { path: join(client, module) };
  };
  const lean: Plugin = {
    name: 'sluice-lean-platformatic',
    setup(b) {
      b.onResolve({ filter: /^(?:ajv|ajv-draft-04|avsc|\.\.\/\.\.\/protocol\/records\.js)/ }, (args) => {
        const from = args.importer;
        if (args.path === 'ajv/dist/2020.js' && from.endsWith(libraryUtils)) return replace(from, args.path, 'lazy-ajv.ts');
        if (from.endsWith(libraryRegistry)) {
          if (registryAjv.has(args.path)) return replace(from, args.path, 'lazy-registry-ajv.ts');
          if (args.path === 'avsc') return replace(from, args.path, 'lazy-avsc.ts');
        }
        if (args.path === '../../protocol/records.js' && produceRequest.test(from)) return replace(from, args.path, 'lean-records.ts');
        return undefined;
      });
      b.onLoad({ filter: new RegExp(`${libraryConnection.replaceAll('.', '\\.')}$`) }, (args) => {
        const source = readFileSync(args.path, 'utf8');
        const found = source.match(inflightDelete)?.length ?? 0;
        if (found !== inflightDeletes) {
          throw new Error(`${args.path}: expected ${inflightDeletes} deletes of #inflightRequests, found ${found}; the library changed, review the edit`);
        }
        (replaced[relative(libraryDir, args.path)] ??= {})['#inflightRequests.delete'] = 'a new Map when the last request is deleted';
        const contents = source.replace(
          inflightDelete,
          (_, id: string) =>
            `if (this.#inflightRequests.size === 1 && this.#inflightRequests.has(${id})) this.#inflightRequests = new Map(); else this.#inflightRequests.delete(${id});`,
        );
        return { contents, loader: 'js' };
      });
      b.onLoad({ filter: new RegExp(`${libraryProducer.replaceAll('.', '\\.')}$`) }, (args) => {
        const source = readFileSync(args.path, 'utf8');
        const found = source.match(headerMaps)?.length ?? 0;
        if (found !== 1) throw new Error(`${args.path}: expected the send's two header Maps once, found ${found}; the library changed, review the edit`);
        (replaced[relative(libraryDir, args.path)] ??= {})['headers = new Map(); serializedHeaders = new Map()'] = 'a list of headers passed on as it is';
        const contents = source.replace(
          headerMaps,
          (_, between: string) =>
            `const headerList = Array.isArray(message.headers); let headers = headerList ? undefined : new Map(); const serializedHeaders = headerList ? message.headers : new Map();${between}if (message.headers && !headerList) {`,
        );
        return { contents, loader: 'js' };
      });
    },
  };
  await build({
    entryPoints: [join(client, 'platformatic-kafka.ts')],
    outfile: kafkaClientBundle,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    // native, optional or loaded on demand by the lazy modules: resolved from node_modules at run time
    external: ['@node-rs/crc32', '@platformatic/wasm-utils', 'protobufjs', 'ajv', 'ajv/*', 'ajv-draft-04', 'avsc'],
    plugins: [lean],
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'eof',
    // the library's CommonJS dependencies (debug) call require
    banner: { js: "import { createRequire as sluiceCreateRequire } from 'node:module'; const require = sluiceCreateRequire(import.meta.url);" },
    logLevel: 'warning',
  });
  const version = (JSON.parse(readFileSync(join(libraryDir, 'package.json'), 'utf8')) as { version: string }).version;
  const sorted = Object.fromEntries(
    Object.keys(replaced)
      .sort()
      .map((file) => [file, replaced[file] as Record<string, string>]),
  );
  const manifest: BundleManifest = { library: `@platformatic/kafka ${version}`, replaced: sorted };
  writeFileSync(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

if (import.meta.main) await bundleKafkaClient();

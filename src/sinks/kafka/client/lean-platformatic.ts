// @platformatic/kafka, loaded with less and encoding with less. These imports are redirected:
// - its utils module's `ajv/dist/2020.js` resolves to lazy-ajv.ts, which compiles an option schema
//   when it is first used instead of all of them at import. Measured on an idle worker with the
//   default config: ~126 → ~119 MiB RSS with no server answering, 131.8 → 124.4 connected to the
//   local stack (live heap -1.7 MiB).
// - its own schema registry module's ajv, ajv-draft-04 and avsc resolve to lazy-registry-ajv.ts
//   and lazy-avsc.ts, which load the real ones when a registry of the library first uses them
//   (sluice has its own registry client and never makes one).
// - its produce requests' `protocol/records.js` resolves to lean-records.ts, which writes a
//   RecordBatch into one buffer with the library's exact bytes (the library's readers and
//   everything else keep the original module).
// The hook sees only those imports of those modules; everything else, sluice's own ajv included,
// resolves as it would. It must run before the library is first imported (create-client.ts
// calls it).
import { registerHooks } from 'node:module';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';

let installed = false;
/** The library's produce-request modules that resolved lean-records.ts. */
let leanRequests = 0;

/** True once the library's produce requests encode with lean-records.ts (the adapter then hands it strings and numbers). */
export function leanRecordsResolved(): boolean {
  return leanRequests > 0;
}

/** How many of the library's modules had their records.js import redirected (a test compares it with the files). */
export function leanRequestModules(): number {
  return leanRequests;
}

/** The library file whose `ajv/dist/2020.js` import is redirected. */
const libraryUtils = '/@platformatic/kafka/dist/utils.js';
/** The library file whose ajv, ajv-draft-04 and avsc imports are redirected. */
const libraryRegistry = '/@platformatic/kafka/dist/registries/confluent-schema-registry.js';
const registryAjv = new Set(['ajv', 'ajv/dist/2020.js', 'ajv-draft-04']);
/** The library files whose `../../protocol/records.js` import is redirected: the produce requests. */
const produceRequest = /\/@platformatic\/kafka\/dist\/apis\/producer\/(?:produce-v\d+|utils)\.js$/;

export function leanPlatformatic(): void {
  if (installed) return;
  installed = true;
  // the modules beside this file: .ts when run from the sources, .js from dist/
  const ext = extname(fileURLToPath(import.meta.url));
  const lazyAjv = new URL(`./lazy-ajv${ext}`, import.meta.url).href;
  const leanRecords = new URL(`./lean-records${ext}`, import.meta.url).href;
  const lazyRegistryAjv = new URL(`./lazy-registry-ajv${ext}`, import.meta.url).href;
  const lazyAvsc = new URL(`./lazy-avsc${ext}`, import.meta.url).href;
  registerHooks({
    resolve(specifier, context, nextResolve) {
      if (specifier === 'ajv/dist/2020.js' && context.parentURL?.endsWith(libraryUtils)) return { url: lazyAjv, shortCircuit: true };
      if (context.parentURL?.endsWith(libraryRegistry)) {
        if (registryAjv.has(specifier)) return { url: lazyRegistryAjv, shortCircuit: true };
        if (specifier === 'avsc') return { url: lazyAvsc, shortCircuit: true };
      }
      if (specifier === '../../protocol/records.js' && context.parentURL && produceRequest.test(context.parentURL)) {
        leanRequests++;
        return { url: leanRecords, shortCircuit: true };
      }
      return nextResolve(specifier, context);
    },
  });
}

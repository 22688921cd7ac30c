// @platformatic/kafka, loaded with less: its utils module's `ajv/dist/2020.js` resolves to
// lazy-ajv.ts, which compiles an option schema when it is first used instead of all of them at
// import. Measured on an idle worker with the default config: ~126 → ~119 MiB RSS with no
// server answering, 131.8 → 124.4 connected to the local stack (live heap -1.7 MiB). The hook sees
// only that one import of that one module; everything else, sluice's own ajv included, resolves
// as it would. It must run before the library is first imported (create-client.ts calls it).
import { registerHooks } from 'node:module';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';

let installed = false;

/** The library file whose `ajv/dist/2020.js` import is redirected. */
const libraryUtils = '/@platformatic/kafka/dist/utils.js';

export function leanPlatformatic(): void {
  if (installed) return;
  installed = true;
  // lazy-ajv.ts beside this file: .ts when run from the sources, .js from dist/
  const lazyAjv = new URL(`./lazy-ajv${extname(fileURLToPath(import.meta.url))}`, import.meta.url).href;
  registerHooks({
    resolve(specifier, context, nextResolve) {
      if (specifier === 'ajv/dist/2020.js' && context.parentURL?.endsWith(libraryUtils)) return { url: lazyAjv, shortCircuit: true };
      return nextResolve(specifier, context);
    },
  });
}

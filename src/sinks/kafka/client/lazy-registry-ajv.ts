// What @platformatic/kafka's own schema registry module gets for 'ajv', 'ajv/dist/2020.js' and
// 'ajv-draft-04' (scripts/bundle-kafka-client.ts bundles it in their place). The library imports that module
// with everything else, and it loads ajv and its draft-04 build at import, though only a
// ConfluentSchemaRegistry of the library's uses them; sluice has its own registry client
// (schema-registry/) and never makes one. Each class here loads the real one when first
// constructed and returns a real instance, so a library registry works exactly as before.
import { createRequire } from 'node:module';
import type { Options, Ajv as RealAjv } from 'ajv';
import type { Ajv2020 as RealAjv2020 } from 'ajv/dist/2020.js';

// the ajv the library itself resolves
const require = createRequire(import.meta.resolve('@platformatic/kafka'));

let loads = 0;

/** How many of the real classes were loaded (for the tests). */
export function lazyRegistryAjvLoads(): number {
  return loads;
}

type Made<T> = new (options?: Options) => T;

function real<T>(id: string, name: string): Made<T> {
  loads++;
  return (require(id) as Record<string, Made<T>>)[name] as Made<T>;
}

export class Ajv {
  constructor(options?: Options) {
    // biome-ignore lint/correctness/noConstructorReturn: the real instance is what the caller gets
    return new (real<RealAjv>('ajv', 'Ajv'))(options);
  }
}

export class Ajv2020 {
  constructor(options?: Options) {
    // biome-ignore lint/correctness/noConstructorReturn: the real instance is what the caller gets
    return new (real<RealAjv2020>('ajv/dist/2020.js', 'Ajv2020'))(options);
  }
}

/** ajv-draft-04's default export. */
export default class AjvDraft04 {
  constructor(options?: Options) {
    // biome-ignore lint/correctness/noConstructorReturn: the real instance is what the caller gets
    return new (real<RealAjv>('ajv-draft-04', 'default'))(options);
  }
}

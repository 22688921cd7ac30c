// What @platformatic/kafka's own schema registry module gets for 'avsc' (scripts/bundle-kafka-client.ts
// bundles it in place of the real one): avsc, loaded when that registry first reads an Avro schema instead of
// when the library is imported (see lazy-registry-ajv.ts for why).
import { createRequire } from 'node:module';
import type avro from 'avsc';

// the avsc the library itself resolves
const require = createRequire(import.meta.resolve('@platformatic/kafka'));

let loads = 0;

/** How many times avsc was asked for (for the tests). */
export function lazyAvscLoads(): number {
  return loads;
}

export default {
  get Type(): typeof avro.Type {
    loads++;
    return (require('avsc') as typeof avro).Type;
  },
};

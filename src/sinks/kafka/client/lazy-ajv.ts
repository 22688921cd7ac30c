// The Ajv2020 that @platformatic/kafka's utils module gets (scripts/bundle-kafka-client.ts bundles
// it in place of the real one). The library makes one Ajv2020 when it is imported and compiles 38 option schemas
// with it at once, for its producer, consumer and admin calls alike: ~8 MiB of a worker's memory.
// It runs them only for a client made with `strict: true`, which sluice does not set. This one
// compiles a schema the first time its validator runs, with the real Ajv2020 and the same options
// and keywords, so a strict client checks every option as before and fails with the same words.
import { createRequire } from 'node:module';
import type { ErrorObject, KeywordDefinition, Options, Ajv2020 as RealAjv2020, ValidateFunction } from 'ajv/dist/2020.js';

// the ajv the library itself resolves
const require = createRequire(import.meta.resolve('@platformatic/kafka'));

let made = 0;
let compiled = 0;

/** How many instances were made and how many schemas they compiled (for the tests). */
export function lazyAjvCounts(): { instances: number; compiled: number } {
  return { instances: made, compiled };
}

/** A validator whose schema is compiled when it first validates; `errors` as ajv sets them. */
type LazyValidate = ((data: unknown) => boolean) & { errors: ErrorObject[] | null | undefined };

export class Ajv2020 {
  readonly #options: Options;
  readonly #keywords: KeywordDefinition[] = [];
  #real: RealAjv2020 | undefined;

  constructor(options: Options = {}) {
    this.#options = options;
    made++;
  }

  /** The real instance, made with the options and keywords given so far. */
  #ajv(): RealAjv2020 {
    if (this.#real === undefined) {
      const { Ajv2020: Real } = require('ajv/dist/2020.js') as typeof import('ajv/dist/2020.js');
      this.#real = new Real(this.#options);
      for (const keyword of this.#keywords) this.#real.addKeyword(keyword);
    }
    return this.#real;
  }

  addKeyword(definition: KeywordDefinition): this {
    if (this.#real === undefined) this.#keywords.push(definition);
    else this.#real.addKeyword(definition);
    return this;
  }

  compile(schema: object): LazyValidate {
    let real: ValidateFunction | undefined;
    const validate = ((data: unknown): boolean => {
      if (real === undefined) {
        real = this.#ajv().compile(schema);
        compiled++;
      }
      const valid = real(data);
      validate.errors = real.errors;
      return valid;
    }) as LazyValidate;
    validate.errors = null;
    return validate;
  }

  errorsText(errors?: ErrorObject[] | null, options?: { separator?: string; dataVar?: string }): string {
    return this.#ajv().errorsText(errors, options);
  }
}

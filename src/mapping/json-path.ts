// A small JSON path for picking fields out of payloads: `$.a.b`, `$.a[0]`, `$['odd key']`.
// Compiled once per rule into a list of steps; evaluation never throws.

export interface JsonPath {
  readonly source: string;
  /**
   * The member of an object that the path reads within: its first step, when that is a name
   * (`$.name`, `$.name.x[0]`, `$['name']`); undefined for `$` and `$[n]…`.
   */
  readonly member: string | undefined;
  get(value: unknown): unknown;
}

export function compileJsonPath(source: string): JsonPath {
  if (!source.startsWith('$')) throw new Error(`a JSON path starts with "$": "${source}"`);
  const steps: Array<string | number> = [];
  let i = 1;
  while (i < source.length) {
    const c = source[i];
    if (c === '.') {
      const m = /^[A-Za-z0-9_$@-]+/.exec(source.slice(i + 1));
      if (!m) throw new Error(`expected a field name at offset ${i + 1} of "${source}"`);
      steps.push(m[0]);
      i += 1 + m[0].length;
    } else if (c === '[') {
      const rest = source.slice(i);
      const index = /^\[(\d+)\]/.exec(rest);
      const quoted = /^\['((?:[^'\\]|\\.)*)'\]/.exec(rest) ?? /^\["((?:[^"\\]|\\.)*)"\]/.exec(rest);
      if (index) {
        steps.push(Number(index[1]));
        i += index[0].length;
      } else if (quoted) {
        steps.push((quoted[1] as string).replace(/\\(.)/g, '$1'));
        i += quoted[0].length;
      } else {
        throw new Error(`expected [n] or ['name'] at offset ${i} of "${source}"`);
      }
    } else {
      throw new Error(`unexpected "${c}" at offset ${i} of "${source}"`);
    }
  }
  return {
    source,
    member: typeof steps[0] === 'string' ? steps[0] : undefined,
    get(value) {
      let v: unknown = value;
      for (const step of steps) {
        if (v === null || typeof v !== 'object') return undefined;
        if (typeof step === 'number') {
          if (!Array.isArray(v)) return undefined;
          v = v[step];
        } else {
          if (Array.isArray(v) || !Object.hasOwn(v, step)) return undefined;
          v = (v as Record<string, unknown>)[step];
        }
      }
      return v;
    },
  };
}

/** An `each` path, "$.readings[*]": the array's path, without its [*] (the rules schema checked the [*]). */
export function compileEachPath(source: string): JsonPath {
  return compileJsonPath(source.endsWith('[*]') ? source.slice(0, -3) : source);
}

/** "$$.x" under each: the whole payload's x. */
export function outerPath(source: string): { source: string; outer: boolean } {
  return source.startsWith('$$') ? { source: source.slice(1), outer: true } : { source, outer: false };
}

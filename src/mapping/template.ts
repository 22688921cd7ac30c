// String templates over named topic levels ("telemetry.{site}"), compiled once per rule.
// A reference to a level the route's pattern does not capture is a compile error.

export type Levels = Readonly<Record<string, string>>;

export interface Template {
  readonly source: string;
  /** Level names it uses. */
  readonly uses: readonly string[];
  render(levels: Levels): string;
}

const refRe = /\{([^{}]*)\}/g;

export function compileTemplate(source: string, known: readonly string[]): Template {
  const parts: Array<string | { name: string }> = [];
  const uses: string[] = [];
  let last = 0;
  for (const m of source.matchAll(refRe)) {
    const name = m[1] as string;
    if (!known.includes(name)) {
      throw new Error(`unknown level {${name}}; known: ${known.length ? known.join(', ') : '(the match pattern captures none)'}`);
    }
    if (m.index > last) parts.push(source.slice(last, m.index));
    parts.push({ name });
    uses.push(name);
    last = m.index + m[0].length;
  }
  if (last < source.length) parts.push(source.slice(last));
  const rest = source.replace(refRe, '');
  if (rest.includes('{') || rest.includes('}')) throw new Error(`unbalanced braces in "${source}"`);

  if (parts.length === 1 && typeof parts[0] === 'string') {
    const constant = parts[0];
    return { source, uses, render: () => constant };
  }
  return {
    source,
    uses,
    render: (levels) => {
      let out = '';
      for (const p of parts) out += typeof p === 'string' ? p : (levels[p.name] ?? '');
      return out;
    },
  };
}

// Route patterns over MQTT topic levels: `{name}` captures one level, `+` matches one level,
// `#` (last only) matches any rest, anything else is literal. MQTT's rule that a leading
// wildcard never matches a `$`-topic holds. A trie over the patterns finds the candidates for a
// topic without scanning every rule.

export type PatternLevel =
  | { readonly kind: 'literal'; readonly value: string }
  | { readonly kind: 'capture'; readonly name: string }
  | { readonly kind: 'plus' }
  | { readonly kind: 'hash' };

export interface CompiledPattern {
  readonly source: string;
  readonly levels: readonly PatternLevel[];
  /** Captured level names and their position in the topic. */
  readonly captures: ReadonlyArray<{ readonly name: string; readonly index: number }>;
}

const captureRe = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/;

/** Parses a pattern; throws an Error whose message says what is wrong with it. */
export function compilePattern(source: string): CompiledPattern {
  if (source.length === 0) throw new Error('empty pattern');
  const parts = source.split('/');
  const levels: PatternLevel[] = [];
  const captures: Array<{ name: string; index: number }> = [];
  for (const [index, part] of parts.entries()) {
    if (part === '#') {
      if (index !== parts.length - 1) throw new Error(`"#" must be the last level in "${source}"`);
      levels.push({ kind: 'hash' });
    } else if (part === '+') {
      levels.push({ kind: 'plus' });
    } else if (part.startsWith('{') || part.endsWith('}')) {
      const name = captureRe.exec(part)?.[1];
      if (!name) throw new Error(`level "${part}" in "${source}" is not a valid {name} capture`);
      if (captures.some((c) => c.name === name)) throw new Error(`level name {${name}} is used twice in "${source}"`);
      captures.push({ name, index });
      levels.push({ kind: 'capture', name });
    } else if (part.includes('+') || part.includes('#')) {
      throw new Error(`wildcards must fill a whole level: "${part}" in "${source}"`);
    } else {
      levels.push({ kind: 'literal', value: part });
    }
  }
  return { source, levels, captures };
}

/** Whether an MQTT subscription filter covers a topic, as a broker decides: `+` one level, `#` the rest (the parent too), no leading wildcard on a `$`-topic. */
export function filterMatches(filter: string, topic: string): boolean {
  return levelsOverlap(topic.split('/'), filter.split('/'));
}

/**
 * Whether some topic matches both a route pattern ({name} captures a level) and a subscription
 * filter: the same walk, a capture taking any level as + does.
 */
export function patternsOverlap(pattern: string, filter: string): boolean {
  return levelsOverlap(wildcards(pattern), filter.split('/'));
}

/** Whether every topic the route pattern `inner` matches, `outer` matches too ({name} as +). */
export function patternCovers(outer: string, inner: string): boolean {
  const o = wildcards(outer);
  const n = wildcards(inner);
  if ((o[0] === '+' || o[0] === '#') && n[0]?.startsWith('$')) return false; // a wildcard-led pattern never takes a $-topic
  for (let i = 0; ; i++) {
    const a = o[i];
    const b = n[i];
    if (a === '#') return true; // the parent level too, as the trie matches it
    if (b === '#') return false;
    if (a === undefined || b === undefined) return a === b;
    if (a !== '+' && (b === '+' || a !== b)) return false;
  }
}

function wildcards(pattern: string): string[] {
  return pattern.split('/').map((l) => (/^\{.*\}$/.test(l) ? '+' : l));
}

/** Level by level: a literal must equal a literal, + takes any level, # the rest; a wildcard-led filter never reaches a $-topic. */
function levelsOverlap(p: readonly string[], f: readonly string[]): boolean {
  if ((f[0] === '+' || f[0] === '#') && p[0]?.startsWith('$')) return false;
  for (let i = 0; ; i++) {
    const a = p[i];
    const b = f[i];
    if (a === '#' || b === '#') return true;
    if (a === undefined || b === undefined) return a === b;
    if (a !== '+' && b !== '+' && a !== b) return false;
  }
}

/** An MQTT subscription filter (`a/+/b/#`), validated like a broker would. */
export function validateFilter(filter: string): void {
  if (filter.includes('{') || filter.includes('}')) {
    throw new Error(`a subscription filter takes + and #, not {name}: "${filter}"`);
  }
  compilePattern(filter);
}

interface TrieNode {
  readonly literal: Map<string, TrieNode>;
  plus: TrieNode | undefined;
  /** Entries whose pattern ends with `#` at this depth. */
  readonly hash: number[];
  /** Entries whose pattern ends exactly here. */
  readonly exact: number[];
}

const newNode = (): TrieNode => ({ literal: new Map(), plus: undefined, hash: [], exact: [] });

/** Maps topics to the ids (insertion order) of every pattern that matches them. */
export class PatternTrie {
  private readonly root = newNode();
  private size = 0;

  /** Adds a pattern; returns its id. */
  add(pattern: CompiledPattern): number {
    const id = this.size++;
    let node = this.root;
    for (const level of pattern.levels) {
      if (level.kind === 'hash') {
        node.hash.push(id);
        return id;
      }
      if (level.kind === 'literal') {
        let next = node.literal.get(level.value);
        if (!next) node.literal.set(level.value, (next = newNode()));
        node = next;
      } else {
        node = node.plus ??= newNode();
      }
    }
    node.exact.push(id);
    return id;
  }

  /** Ids of the matching patterns, ascending. `levels` is the topic split on "/" (if the caller has it). */
  match(topic: string, levels: readonly string[] = topic.split('/')): number[] {
    const hits = new Hits();
    this.matchInto(topic, levels, hits);
    return Array.from(hits.ids.subarray(0, hits.n));
  }

  /** The same into `hits` (emptied first): the router reuses one for every message, so a match allocates nothing. */
  matchInto(topic: string, levels: readonly string[], hits: Hits): void {
    hits.n = 0;
    walk(this.root, 0, levels, topic.startsWith('$'), hits);
    if (hits.n > 1) hits.ids.subarray(0, hits.n).sort();
  }
}

/** Pattern ids found by a match: the first `n` of `ids`. */
export class Hits {
  ids = new Int32Array(8);
  n = 0;
  push(id: number): void {
    if (this.n === this.ids.length) {
      const grown = new Int32Array(this.ids.length * 2);
      grown.set(this.ids);
      this.ids = grown;
    }
    this.ids[this.n++] = id;
  }
}

/** The ids under `node` matching the topic's levels from `depth` on, into `out` (index loops: nothing allocated per level). */
function walk(node: TrieNode, depth: number, levels: readonly string[], dollar: boolean, out: Hits): void {
  // a topic starting with $ is matched by no wildcard at its first level
  const wildcardAllowed = !(dollar && depth === 0);
  if (wildcardAllowed) for (let i = 0; i < node.hash.length; i++) out.push(node.hash[i] as number);
  if (depth === levels.length) {
    for (let i = 0; i < node.exact.length; i++) out.push(node.exact[i] as number);
    return;
  }
  const next = node.literal.get(levels[depth] as string);
  if (next) walk(next, depth + 1, levels, dollar, out);
  if (node.plus && wildcardAllowed) walk(node.plus, depth + 1, levels, dollar, out);
}

// Reading sluice's JSON log lines in tests: parsed lines, and the top-level keys a line holds
// more than once (JSON.parse keeps the last silently; a log pipeline may keep either).

/** The log's JSON lines, parsed (other lines skipped). */
export function jsonLines(text: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      /* a line cut by a kill */
    }
  }
  return out;
}

/** Top-level keys that occur more than once in one JSON object line. */
export function duplicateKeys(line: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '"') {
      let j = i + 1;
      while (j < line.length && line[j] !== '"') j += line[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) keys.push(line.slice(i + 1, j));
      expectKey = false;
      i = j;
    } else if (c === '{' || c === '[') {
      depth++;
      expectKey = c === '{' && depth === 1;
    } else if (c === '}' || c === ']') {
      depth--;
    } else if (c === ',' && depth === 1) {
      expectKey = true;
    }
  }
  return keys.filter((k, i) => keys.indexOf(k) !== i);
}

/** Lines of the log with a key twice, with the keys. */
export function linesWithDuplicateKeys(text: string): string[] {
  return text.split('\n').filter((l) => l.startsWith('{') && duplicateKeys(l).length > 0);
}

// The user docs read as docs, not as a lab notebook: no commit hashes, issue numbers or files
// outside the repository, and every relative link leads to a file that is there.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../../deploy/local/stack-config.ts';

/** README.md, docs/, and the READMEs beside the code and the deploy files. */
function userDocs(): string[] {
  const out = [join(repoRoot, 'README.md')];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.md')) out.push(path);
    }
  };
  for (const dir of ['docs', 'src', 'deploy']) walk(join(repoRoot, dir));
  return out;
}

const notForUsers: Array<[RegExp, string]> = [
  [/\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,12}\b/, 'a commit hash'],
  [/\bissues? #?\d+\b|\(#\d+\)/i, 'an issue number'],
  [/DESIGN\.md|design card|STYLE\.md/, 'a file outside the repository'],
];

test('user docs name no commit, no issue and no file outside the repository', () => {
  const found: string[] = [];
  for (const file of userDocs()) {
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        for (const [re, what] of notForUsers) {
          const m = re.exec(line);
          if (m) found.push(`${relative(repoRoot, file)}:${i + 1}: ${what}: "${m[0]}"`);
        }
      });
  }
  assert.deepEqual(found, []);
});

test('every relative link in the user docs leads to a file or folder that exists', () => {
  const dead: string[] = [];
  for (const file of userDocs()) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = (m[1] as string).split('#')[0] as string;
      if (target === '' || /^[a-z]+:/i.test(target)) continue; // an anchor in the page, or a URL
      if (!existsSync(join(dirname(file), target))) dead.push(`${relative(repoRoot, file)}: ${m[1]}`);
    }
  }
  assert.deepEqual(dead, []);
});

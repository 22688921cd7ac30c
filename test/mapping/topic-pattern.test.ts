import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compilePattern, filterMatches, PatternTrie, patternCovers, patternsOverlap, validateFilter } from '../../src/mapping/topic-pattern.ts';

function trieOf(...patterns: string[]): PatternTrie {
  const trie = new PatternTrie();
  for (const p of patterns) trie.add(compilePattern(p));
  return trie;
}

test('MQTT wildcard semantics', () => {
  const cases: Array<[string, string, boolean]> = [
    ['a/+/c', 'a/b/c', true],
    ['a/+/c', 'a//c', true], // + matches an empty level
    ['a/+/c', 'a/b/c/d', false],
    ['a/+', 'a', false],
    ['a/#', 'a', true], // # also matches the parent level
    ['a/#', 'a/b/c', true],
    ['#', 'a/b', true],
    ['#', '$SYS/broker', false], // a leading wildcard never matches a $-topic
    ['+/broker', '$SYS/broker', false],
    ['$SYS/#', '$SYS/broker', true],
    ['{org}/{site}/x', 'acme/malta/x', true],
    ['{org}/{site}/x', 'acme/malta/y', false],
    ['a/b', 'a/b/', false],
    ['a/b/', 'a/b/', true],
    ['a/b', 'A/b', false], // case-sensitive
  ];
  for (const [pattern, topic, expected] of cases) {
    assert.equal(trieOf(pattern).match(topic).length === 1, expected, `${pattern} vs ${topic}`);
  }
});

test('the trie returns every matching pattern in insertion order', () => {
  const trie = trieOf('a/#', 'a/b/c', '+/b/+', 'x/y', '#');
  assert.deepEqual(trie.match('a/b/c'), [0, 1, 2, 4]);
  assert.deepEqual(trie.match('x/y'), [3, 4]);
  assert.deepEqual(trie.match('q'), [4]);
});

test('thousands of rules: a lookup visits only the matching branch', () => {
  const trie = new PatternTrie();
  for (let i = 0; i < 5000; i++) trie.add(compilePattern(`org-${i}/{site}/{deviceId}/telemetry`));
  assert.deepEqual(trie.match('org-4321/s/d/telemetry'), [4321]);
  assert.deepEqual(trie.match('org-9999/s/d/telemetry'), []);
});

test('bad patterns say what is wrong', () => {
  assert.throws(() => compilePattern('a/#/b'), /"#" must be the last level/);
  assert.throws(() => compilePattern('a/b+/c'), /wildcards must fill a whole level/);
  assert.throws(() => compilePattern('{x}/{x}'), /used twice/);
  assert.throws(() => compilePattern('{x-y}/a'), /not a valid \{name\} capture/);
  assert.throws(() => validateFilter('a/{x}'), /takes \+ and #/);
  assert.doesNotThrow(() => validateFilter('acme/+/+/#'));
});

test('filterMatches: what a broker delivers for a subscription filter', () => {
  const cases: Array<[string, string, boolean]> = [
    ['a/+/c', 'a/b/c', true],
    ['a/+/c', 'a/b/d', false],
    ['a/+/c', 'a/b/c/d', false],
    ['a/#', 'a', true],
    ['a/#', 'a/b/c', true],
    ['#', 'x/y', true],
    ['+/+', 'x/y', true],
    ['+', 'x/y', false],
    ['#', '$SYS/broker', false],
    ['+/broker', '$SYS/broker', false],
    ['$SYS/#', '$SYS/broker', true],
    ['a/b', 'a/b', true],
    ['a/b', 'a/b/', false],
    ['a/+', 'a/', true],
  ];
  for (const [filter, topic, covered] of cases) assert.equal(filterMatches(filter, topic), covered, `${filter} ~ ${topic}`);
});

test('patternsOverlap: a route pattern and a filter share a topic, or not', () => {
  const cases: Array<[string, string, boolean]> = [
    ['acme/{site}/{zone}/{type}/{id}/telemetry', 'acme/+/+/+/+/telemetry', true],
    ['acme/{site}/{zone}/{type}/{id}/telemetry', 'acme/+/+/+/+/command', false],
    ['acme/{site}/#', 'acme/malta/+', true],
    ['acme/{site}', 'acme/#', true],
    ['acme', 'acme/#', true],
    ['other/{x}', 'acme/#', false],
    ['a/{x}/c', 'a/b', false],
    ['a/b', 'a/b/c', false],
    ['$SYS/{x}', '#', false],
    ['$SYS/{x}', '$SYS/+', true],
    ['spBv1.0/{group}/#', 'spBv1.0/+/+/+', true],
  ];
  for (const [pattern, filter, overlap] of cases) assert.equal(patternsOverlap(pattern, filter), overlap, `${pattern} ~ ${filter}`);
});

test('patternCovers: every topic the inner pattern matches, the outer matches too', () => {
  const covers: Array<[string, string, boolean]> = [
    ['#', 'acme/+/t', true],
    ['acme/#', 'acme', true], // the trie gives a/# its parent
    ['acme/{site}/#', 'acme/malta/z1/t', true],
    ['{org}/{site}/{zone}/{type}/{id}/telemetry', 'acme/malta/+/sensor/{id}/telemetry', true],
    ['acme/+/t', 'acme/{site}/t', true],
    ['acme/malta/t', 'acme/{site}/t', false],
    ['acme/+/t', 'acme/+/t/x', false],
    ['acme/+/t', 'acme/#', false],
    ['acme/+', 'acme', false],
    ['+/status', '$SYS/status', false],
    ['$SYS/+', '$SYS/status', true],
    ['{a}/{b}', '{x}/{y}', true],
  ];
  for (const [outer, inner, want] of covers) assert.equal(patternCovers(outer, inner), want, `${outer} covers ${inner}`);
});

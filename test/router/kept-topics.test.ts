// The per-topic maps' policy: bounded in count and length, never emptied to make room, and a
// topic not looked up in a whole generation let go, so a fleet whose devices change keeps the
// devices it has.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KeptTopics, keptGenerationLookups, maxKeptTopicLength, maxKeptTopics } from '../../src/router/kept-topics.ts';

/** Looks `topic` up, and keeps it when it was not kept: what the router and the InfluxDB output do per message. */
function see(kept: KeptTopics<string>, topic: string): 'hit' | 'kept' | 'not kept' {
  if (kept.get(topic) !== undefined) return 'hit';
  return kept.keep(topic, topic) ? 'kept' : 'not kept';
}

test('the first topics are kept up to the bound, none longer than the longest kept; nothing is emptied to make room', () => {
  const kept = new KeptTopics<string>();
  for (let i = 0; i < maxKeptTopics; i++) assert.equal(see(kept, `d${i}`), 'kept');
  assert.equal(see(kept, 'one-more'), 'not kept');
  assert.equal(see(kept, 'd0'), 'hit', 'a topic seen first is still kept');
  assert.equal(kept.size, maxKeptTopics);

  const room = new KeptTopics<string>();
  assert.equal(see(room, 'x'.repeat(maxKeptTopicLength + 1)), 'not kept');
  assert.equal(see(room, 'x'.repeat(maxKeptTopicLength)), 'kept');
});

test('a fleet larger than the bound, in turn: the topics kept stay kept, generation after generation', () => {
  const kept = new KeptTopics<string>();
  const fleet = 2 * maxKeptTopics;
  let keptLater = 0;
  let hits = 0;
  // five generations: each kept topic is looked up five times in each
  for (let i = 0; i < 5 * keptGenerationLookups; i++) {
    const seen = see(kept, `d${i % fleet}`);
    if (seen === 'hit') hits++;
    if (seen === 'kept' && i >= fleet) keptLater++;
  }
  assert.equal(keptLater, 0, 'no topic let go to make room for another');
  assert.equal(hits, (5 * keptGenerationLookups) / 2 - maxKeptTopics);
  assert.equal(kept.size, maxKeptTopics);
});

test("a topic not looked up in a whole generation is let go, and its room goes to the fleet's new devices", () => {
  const kept = new KeptTopics<string>();
  for (let i = 0; i < maxKeptTopics; i++) see(kept, `old${i}`);
  // the old devices are gone; a new fleet of the same size arrives, with one old device still there
  assert.equal(see(kept, 'new0'), 'not kept', 'no room while the old devices are kept');
  let lookups = maxKeptTopics + 1;
  const newKept = new Set<string>();
  for (let i = 0; lookups <= 3 * keptGenerationLookups; i++, lookups += 2) {
    const topic = `new${i % maxKeptTopics}`;
    if (see(kept, topic) !== 'not kept') newKept.add(topic);
    assert.notEqual(see(kept, 'old7'), 'not kept', 'a device that still sends stays kept');
  }
  assert.equal(newKept.size, maxKeptTopics - 1, 'every new device but one is kept (the old one still sending holds its place)');
  assert.equal(kept.size, maxKeptTopics);
  assert.equal(see(kept, 'old8'), 'not kept', 'a device gone for a generation is let go');
});

test('a topic is let go only after a whole generation without it, counted in lookups, not in time', () => {
  const lookups = (kept: KeptTopics<string>, n: number) => {
    for (let i = 0; i < n; i++) see(kept, 'b');
  };
  const once = new KeptTopics<string>();
  see(once, 'a');
  lookups(once, keptGenerationLookups - 1);
  assert.equal(see(once, 'a'), 'hit', 'looked up in the generation before: still kept');

  const twice = new KeptTopics<string>();
  see(twice, 'a');
  lookups(twice, 2 * keptGenerationLookups - 1);
  assert.equal(see(twice, 'a'), 'kept', 'a whole generation without it: let go, and kept again as new');
});

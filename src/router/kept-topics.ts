// What depends on a topic alone (a topic's routes and levels, an output's rendering of them),
// kept by topic: a fleet's devices each repeat theirs in every message, so it is worked out
// once per topic, not per message. Bounded in count and length, aged by use.

/** Topics kept at most, per map. */
export const maxKeptTopics = 10_000;
/** The longest topic kept, in characters. */
export const maxKeptTopicLength = 256;
/**
 * Lookups per generation: a topic not looked up in a whole generation is let go at its end.
 * 200,000 against 100,000, measured: a 50,000-topic fleet in random order 1-4 MiB more RSS than
 * with no ageing, against 7-13 MiB (fewer of its kept topics miss a whole generation).
 */
export const keptGenerationLookups = 200_000;

/**
 * Up to `maxKeptTopics` topics of at most `maxKeptTopicLength` characters, the first seen; a
 * topic past them is worked out per message, as if nothing were kept.
 * - Never emptied to make room: with more topics than that in turn, every topic would leave
 *   before it came again, each message paying for an entry that became old-generation garbage
 *   (the bench's route-fleet stage, 50,000 topics: 7-12 µs a message emptied when full,
 *   5.3-6.1 kept, 4.6-7.0 with nothing kept).
 * - Bounded in length too: MQTT allows 65,535-byte topics, and 10,000 of them would hold over a
 *   GiB; real hierarchies and Sparkplug's are well under 256.
 * - Aged by use, so that a fleet whose devices change (replaced, renamed, moved) keeps the
 *   devices it has, not the first it saw: lookups are counted in generations of
 *   `keptGenerationLookups`, and a topic not looked up in a whole generation is let go at its
 *   end (after 200,000-400,000 lookups without it), which makes room for new ones. A stable
 *   fleet's entries stay put: each is marked with its last generation, not moved. A fleet
 *   larger than the bound arriving in random order loses the few kept topics that drew no
 *   message in a generation (2% at 50,000 topics). Nothing is let go while no message comes.
 */
export class KeptTopics<V> {
  private readonly kept = new Map<string, Kept<V>>();
  private generation = 0;
  private lookups = 0;

  get(topic: string): V | undefined {
    if (++this.lookups > keptGenerationLookups) this.endGeneration();
    const entry = this.kept.get(topic);
    if (entry === undefined) return undefined;
    entry.generation = this.generation;
    return entry.value;
  }

  /** Keeps `value` for `topic` if there is room and the topic is short enough; says whether it did. */
  keep(topic: string, value: V): boolean {
    if (this.kept.size >= maxKeptTopics || topic.length > maxKeptTopicLength) return false;
    this.kept.set(topic, { value, generation: this.generation });
    return true;
  }

  get size(): number {
    return this.kept.size;
  }

  /** Lets go of the topics not looked up (nor kept) in the generation that ends; a stable fleet's entries stay where they are. */
  private endGeneration(): void {
    for (const [topic, entry] of this.kept) if (entry.generation !== this.generation) this.kept.delete(topic);
    this.generation++;
    this.lookups = 1;
  }
}

interface Kept<V> {
  readonly value: V;
  /** The last generation it was looked up (or kept) in. */
  generation: number;
}

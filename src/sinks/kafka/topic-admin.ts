// Which topics can be written now, decided off the write path. A topic the sink has not seen is
// checked (and created, when allowed) in a bounded-concurrency, rate-limited queue (p-queue);
// meanwhile its records wait (the sink defers them) while records for known topics flow. A
// topic that answered "unknown" while we wrote is forgotten and checked again, so a deleted
// topic that comes back, or that createTopics can recreate, is used again without a restart.
// The topic budget (kafka.maxTopics) is per route template: the topics in the cluster that the
// template can name, counted from the cluster's own topic list, so it survives restarts and is
// shared by every worker; once a template has used it up, only that template's new topics are
// refused. The list is metadata for every topic in the cluster, whose cost grows with the
// cluster, not with what this worker writes (1,789 topics here: 49 ms of the main thread and
// ~7.7 MiB allocated, which a worker then kept as RSS): it is read for a template's topics, where
// one list answers the many new names a template can bring at once (and counts its budget), and
// not at connect. A fixed topic, one a rule names as it is, is looked up alone.
import PQueue from 'p-queue';
import type { Logger } from 'pino';
import { monotonicMs } from '../../clock.ts';
import type { KafkaAdminPort } from './client/kafka-client.ts';
import { TopicFaults } from './topic-faults.ts';

export type TopicState = { readonly state: 'ready' } | { readonly state: 'pending' } | { readonly state: 'missing'; readonly reason: string };

export interface TopicAdminOptions {
  readonly createTopics: { readonly enabled: boolean; readonly partitions: number; readonly replicationFactor: number };
  /** Topics a route template may name, at most (counted per template). */
  readonly maxTopics: number;
  /** Checks and creations at once, and per second at most. */
  readonly concurrency?: number;
  readonly perSecond?: number;
  /** A missing topic is looked for again after this long. */
  readonly recheckMs?: number;
}

const ready: TopicState = Object.freeze({ state: 'ready' });
const pending: TopicState = Object.freeze({ state: 'pending' });

/** Whether a route's topic names levels: its topics are many, read from the cluster's list and held to a budget. */
function templated(template: string | undefined): template is string {
  return template?.includes('{') === true;
}

/** The topics a template can name: its literal parts as they are, each {level} one or more legal characters. */
export function templatePattern(template: string): RegExp {
  const parts = template.split(/\{[^{}]*\}/).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('[A-Za-z0-9._-]+')}$`);
}

export class TopicAdmin {
  private readonly admin: KafkaAdminPort;
  private readonly reason: (err: unknown) => string;
  private readonly options: TopicAdminOptions;
  private readonly log: Logger;
  private readonly queue: PQueue;
  private readonly known = new Set<string>();
  private readonly missing = new Map<string, { at: number; reason: string }>();
  private readonly checking = new Set<string>();
  /** Topics Kafka called unknown while we wrote: checked against the cluster before any budget. */
  private readonly forgotten = new Set<string>();
  private readonly patterns = new Map<string, RegExp>();
  /** Topics each template names now (from the last topic list, plus those created since). */
  private readonly usedBy = new Map<string, number>();
  /** Topics being created now, with their template: they hold a place in its budget. */
  private readonly creating = new Map<string, string>();
  private listedAt = 0;
  /** The cluster's list has been read at least once: a template's budget can be counted. */
  private listed = false;
  /**
   * Each fixed topic's first lookup: under way (settled when it answers or fails), or 'done'
   * (answered or not): a write waits only for a first lookup.
   */
  private readonly firstLookups = new Map<string, PromiseWithResolvers<void> | 'done'>();
  /** Topics whose last check failed (the cluster could not answer for them): since when, last when, why. */
  private readonly failedChecks: TopicFaults;
  private lastFailureLoggedAt = -Infinity;
  private listing: Promise<void> | undefined;

  constructor(admin: KafkaAdminPort, options: TopicAdminOptions, log: Logger, reason: (err: unknown) => string) {
    this.admin = admin;
    this.failedChecks = new TopicFaults();
    this.reason = reason;
    this.options = options;
    this.log = log;
    this.queue = new PQueue({ concurrency: options.concurrency ?? 2, intervalCap: options.perSecond ?? 20, interval: 1000 });
  }

  /** At (re)connect: the next budget check reads the cluster's list again; a fixed topic is looked up alone. */
  load(): void {
    this.listedAt = 0;
  }

  /** The topic's state now; an unknown topic is checked (and created when allowed) in the background. */
  state(topic: string, template?: string): TopicState {
    if (this.known.has(topic)) return ready;
    const m = this.missing.get(topic);
    if (m && monotonicMs() - m.at < (this.options.recheckMs ?? 10_000)) return { state: 'missing', reason: m.reason };
    if (this.creating.has(topic)) return pending; // being created: never refused meanwhile (it holds its place)
    // a template that has used its budget is refused at once, with no call to Kafka; not a topic
    // Kafka just called unknown, which may well exist (and count in the budget): that one is checked
    // (counted only once the cluster's list was read: before that, the check below reads it)
    const over = template === undefined || this.forgotten.has(topic) || !this.listed ? undefined : this.overBudget(topic, template);
    if (over) {
      this.missing.set(topic, { at: monotonicMs(), reason: over });
      return { state: 'missing', reason: over };
    }
    if (!this.checking.has(topic)) {
      this.checking.add(topic);
      if (!templated(template) && !this.firstLookups.has(topic)) this.firstLookups.set(topic, Promise.withResolvers());
      void this.queue
        .add(() => this.check(topic, template))
        .finally(() => {
          this.checking.delete(topic);
          if (!templated(template)) this.lookedUpFirst(topic); // also a check that ended before its lookup
        });
    }
    return pending;
  }

  /** Waits for the topic's check to finish (start-up checks: the dead-letter topic). */
  async checked(topic: string, template?: string): Promise<TopicState> {
    let s = this.state(topic, template);
    while (s.state === 'pending') {
      await this.queue.onIdle();
      s = this.state(topic, template);
      if (s.state === 'pending' && !this.checking.has(topic)) await new Promise((r) => setTimeout(r, 50));
    }
    return s;
  }

  /**
   * Waits, at most `ms`, for the first lookup of these fixed topics (one metadata request each),
   * so a first write to one is not deferred. Not for a later one: a topic whose lookup failed (a
   * cluster that cannot describe it) must not hold up every write that carries it, nor while it
   * is being created (seconds).
   */
  async lookedUp(topics: Iterable<string>, ms: number): Promise<void> {
    const lookups: Promise<void>[] = [];
    for (const topic of topics) {
      if (this.state(topic).state !== 'pending') continue;
      const first = this.firstLookups.get(topic);
      if (first !== undefined && first !== 'done') lookups.push(first.promise);
    }
    if (lookups.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(lookups), new Promise((done) => (timer = setTimeout(done, ms)))]);
    clearTimeout(timer);
  }

  /** Kafka answered "unknown topic" for it: check it again before the next write. */
  forget(topic: string): void {
    this.listedAt = 0; // the next check asks the cluster
    this.forgotten.add(topic);
    if (this.known.delete(topic)) this.log.warn({ topic }, 'kafka says the topic is unknown: looking for it again (recreating it if createTopics allows)');
  }

  /** The cluster's topic list, asked at most every 500 ms (one answer serves every check waiting). */
  private async refresh(): Promise<void> {
    if (monotonicMs() - this.listedAt < 500) return;
    this.listing ??= this.admin
      .listTopics()
      .then((topics) => {
        // added to, never replaced: a list asked for before a topic we just created may lack it
        // (a deleted topic leaves through forget(), when Kafka says it is unknown)
        for (const t of topics) this.known.add(t);
        this.usedBy.clear();
        this.listedAt = monotonicMs();
        this.listed = true;
      })
      .finally(() => {
        this.listing = undefined;
      });
    await this.listing;
  }

  private async check(topic: string, template: string | undefined): Promise<void> {
    // refused (its template's budget used up) while this check waited in the queue
    const m = this.missing.get(topic);
    if (m && monotonicMs() - m.at < (this.options.recheckMs ?? 10_000)) return;
    try {
      if (templated(template)) await this.refresh();
      else if (await this.admin.hasTopic(topic)) this.known.add(topic);
    } catch (err) {
      // the cluster cannot answer now: try again on the next write (the records wait)
      this.checkFailed(topic, this.reason(err));
      return;
    } finally {
      if (!templated(template)) this.lookedUpFirst(topic);
    }
    this.failedChecks.clear(topic);
    if (this.known.has(topic)) {
      this.missing.delete(topic);
      this.forgotten.delete(topic);
      return;
    }
    const { enabled, partitions, replicationFactor } = this.options.createTopics;
    if (!enabled) {
      this.missing.set(topic, { at: monotonicMs(), reason: `topic "${topic}" does not exist (kafka.createTopics.enabled is off)` });
      return;
    }
    const over = template === undefined ? undefined : this.overBudget(topic, template);
    if (over) {
      this.missing.set(topic, { at: monotonicMs(), reason: over });
      return;
    }
    // its place in the budget is taken now, before the call: two checks at once cannot both take the last one
    if (template !== undefined) this.creating.set(topic, template);
    try {
      // 'exists': another worker made it
      if ((await this.admin.createTopic(topic, partitions, replicationFactor)) === 'created')
        this.log.info({ topic, partitions, replicationFactor }, 'kafka topic created');
      this.addKnown(topic, template);
      this.forgotten.delete(topic);
      this.missing.delete(topic);
    } catch (err) {
      // Kafka's own reason (a name colliding with another's, a policy, a quota), kept for the dead
      // letter. kafkajs drops the broker's error message, so a collision is explained here, from
      // the cluster's list (read now, if it was not: a refusal is rare, and this is its only use)
      await this.refresh().catch(() => {});
      const collides = [...this.known].find((t) => t !== topic && t.replaceAll('.', '_') === topic.replaceAll('.', '_'));
      const reason = `topic "${topic}" could not be created: ${this.reason(err)}${collides ? `: it collides with existing topic ${collides} (Kafka treats "." and "_" in topic names as the same)` : ''}`;
      this.log.warn({ topic, err: reason }, 'kafka topic not created');
      this.missing.set(topic, { at: monotonicMs(), reason });
    } finally {
      this.creating.delete(topic);
    }
  }

  /** Why the topic's last check failed, while it keeps failing (its records wait, then are dead-lettered with this). */
  checkFailure(topic: string): string | undefined {
    return this.failedChecks.reason(topic);
  }

  /**
   * For /readyz: the first few topics whose checks keep failing, with how long and why. A topic
   * no record has asked for in a minute is no longer counted: nothing is waiting for it.
   */
  problems(sink: string): string[] {
    return this.failedChecks.lines((topic, seconds, reason) => `${sink}: topic ${topic} cannot be looked up for ${seconds} s: ${reason}`);
  }

  /**
   * A check the cluster could not answer (an ACL without Describe, a cluster down): kept for the
   * dead letter and /readyz, and logged as a warning at most every 10 s whatever the number of
   * topics (a template's new topics during an outage are many), else at debug.
   */
  private checkFailed(topic: string, reason: string): void {
    const now = monotonicMs();
    if (this.failedChecks.seen(topic, reason) && now - this.lastFailureLoggedAt >= 10_000) {
      this.lastFailureLoggedAt = now;
      this.log.warn(
        { topic, err: reason, topicsFailing: this.failedChecks.size },
        'kafka topic lookup failed: its records wait (looked up again on the next write) and are dead-lettered if it keeps failing',
      );
    } else this.log.debug({ topic, err: reason }, 'kafka topic lookup failed');
  }

  /** A fixed topic's first lookup is over, answered or not: no write waits for its lookups again. */
  private lookedUpFirst(topic: string): void {
    const first = this.firstLookups.get(topic);
    if (first !== 'done') first?.resolve();
    this.firstLookups.set(topic, 'done');
  }

  /** A topic now in the cluster: counted once in its template's budget. */
  private addKnown(topic: string, template: string | undefined): void {
    if (this.known.has(topic)) return;
    if (template !== undefined && this.usedBy.has(template)) this.usedBy.set(template, (this.usedBy.get(template) as number) + 1);
    this.known.add(topic);
  }

  /** Whether a budget applies to the template's topics: it names more than one, and sluice creates them. */
  private budgeted(template: string | undefined): template is string {
    return templated(template) && this.options.createTopics.enabled;
  }

  /** Why the template may not get this new topic, or undefined when it may. */
  private overBudget(topic: string, template: string): string | undefined {
    if (!this.budgeted(template)) return undefined;
    const known = this.usedBy.get(template) ?? this.used(template);
    this.usedBy.set(template, known);
    let creating = 0;
    for (const [t, tpl] of this.creating) if (tpl === template && t !== topic && !this.known.has(t)) creating++;
    const used = known + creating;
    return used >= this.options.maxTopics
      ? `topic "${topic}" not created: the template "${template}" has used its kafka.maxTopics budget (${used} of ${this.options.maxTopics} topics)`
      : undefined;
  }

  /** Topics in the cluster the template can name. */
  private used(template: string): number {
    const pattern = this.patternOf(template);
    let n = 0;
    for (const t of this.known) if (pattern.test(t)) n++;
    return n;
  }

  private patternOf(template: string): RegExp {
    let p = this.patterns.get(template);
    if (!p) this.patterns.set(template, (p = templatePattern(template)));
    return p;
  }
}

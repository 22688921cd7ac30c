// The routing rules compiled once: a topic trie over the routes' patterns, and each route's
// outputs compiled by the sinks that own them (route-output.ts). route() finds the matching
// routes, names the topic's levels and decodes the payload once; what each sink writes is the
// sink's business. Topic levels and payloads are untrusted: a refusal (empty level, bad JSON,
// no route) is data, never an exception.

import { isJsonPayload, JsonProjection } from '../mapping/json-check.ts';
import { payloadText } from '../mapping/payload-text.ts';
import { RuleError } from '../mapping/rule-error.ts';
import type { Levels } from '../mapping/template.ts';
import { type CompiledPattern, compilePattern, Hits, PatternTrie, patternCovers, patternsOverlap, validateFilter } from '../mapping/topic-pattern.ts';
import type { Message } from '../message.ts';
import type { Refusal } from '../outcome.ts';
import type { SparkplugMessage } from '../sparkplug/sparkplug-message.ts';
import { decodeSparkplug, type SparkplugPayload } from '../sparkplug/sparkplug-payload.ts';
import { SparkplugState } from '../sparkplug/sparkplug-state.ts';
import { parseSparkplugTopic, type SparkplugTopic, sparkplugLevels } from '../sparkplug/sparkplug-topic.ts';
import { KeptTopics } from './kept-topics.ts';
import type { OutputCompiler, RouteOutput } from './route-output.ts';

export { RuleError };

/** The parts of the rules file the router reads; each output key is compiled by its sink. */
export interface RulesSpec {
  readonly subscriptions: ReadonlyArray<{ readonly filter: string; readonly qos: 0 | 1 | 2 }>;
  readonly unmatched: 'dead-letter' | 'drop';
  readonly routes: ReadonlyArray<RouteSpec>;
}

export type PayloadKind = 'json' | 'raw' | 'sparkplug';

/** What routing needs besides the message: the Sparkplug alias state (kept by the worker across reloads). */
export interface RouteOptions {
  readonly sparkplug?: SparkplugState | undefined;
  /** Follow seq on the data path (no state feed sees the whole stream). Default true. */
  readonly followSeq?: boolean | undefined;
  /** A message routed again (it waited for a birth): births, deaths and seq were taken in already. */
  readonly again?: boolean | undefined;
}

export interface RouteSpec {
  readonly name: string;
  readonly match: string;
  readonly continue: boolean;
  readonly payload: PayloadKind;
  readonly [output: string]: unknown;
}

interface CompiledRoute {
  readonly name: string;
  readonly pattern: CompiledPattern;
  readonly continue: boolean;
  /**
   * A json route's payload: parsed for outputs that read its values; only the members they read
   * built, when those are all they read (`pick`); only checked to be JSON when its outputs
   * forward the bytes (a Kafka output without schema, timestamp or fan-out); or neither.
   */
  readonly decodes: 'parse' | 'pick' | 'check' | 'none';
  /** The members a `pick` route's outputs read. */
  readonly projection: JsonProjection | undefined;
  readonly sparkplug: boolean;
  readonly outputs: readonly RouteOutput[];
}

/** One matching route: the neutral match every output encodes from. */
export interface Match {
  readonly route: string;
  /** The topic's named levels. Let go (`{}`) once every output is encoded: see Delivery. */
  levels: Levels;
  /** The decoded payload. Let go (`undefined`) once every output is encoded: see Delivery. */
  payload: unknown;
  readonly outputs: readonly RouteOutput[];
  /** The payload could not be decoded or a level is empty: outputs that read the payload are skipped, and this is dead-lettered. */
  readonly problem?: Refusal | undefined;
}

export interface Routed {
  readonly outcome: 'routed' | 'expired' | 'unmatched-dropped';
  readonly matches: readonly Match[];
  /** Refusals that concern no route (unmatched). */
  readonly refusals: readonly Refusal[];
}

const noMatches: readonly Match[] = Object.freeze([]);
/** Shared by every routing without a refusal of its own: read only, never added to. */
const noRefusals: readonly Refusal[] = Object.freeze([]);

/** A route a topic is routed to, with the topic's levels, as its first message found them. */
interface TopicRoute {
  readonly route: CompiledRoute;
  /** Shared by every message of the topic (read only; a Sparkplug route's are copied, its payload adds to them). */
  readonly levels: Readonly<Record<string, string>>;
  readonly emptyLevel: string | undefined;
}

const noOptions: RouteOptions = Object.freeze({});

export class RuleSet {
  readonly subscriptions: RulesSpec['subscriptions'];
  readonly unmatched: RulesSpec['unmatched'];
  readonly routeNames: readonly string[];
  /** The sinks some route writes to. */
  readonly sinksUsed: ReadonlySet<string>;
  /** The sinks each route writes to (/readyz names them for a stuck route). */
  readonly sinksByRoute: ReadonlyMap<string, readonly string[]>;
  /** Some route takes Sparkplug B payloads (the worker keeps their alias state). */
  readonly usesSparkplug: boolean;
  /** The outputs that keep a per-topic map of their own, beside the rules' (the start-up memory check counts them). */
  readonly outputsKeepingTopics: number;
  private readonly routes: readonly CompiledRoute[];
  private readonly trie = new PatternTrie();
  /** The trie's answer for the message being routed: one for every message (route() is not re-entered). */
  private readonly candidates = new Hits();
  /**
   * Each topic's routes, in order, up to the first that does not continue: what the trie and the
   * topic's levels give depends on the topic alone, and a fleet's devices each repeat theirs.
   */
  private readonly topics = new KeptTopics<readonly TopicRoute[]>();
  /** The state when the caller hands none (sluice rules test, tests). */
  private ownSparkplug: SparkplugState | undefined;

  /** Config keys the outputs need, per sink (kafka: schemaRegistry), with a route that needs each. */
  readonly requirements: ReadonlyArray<{ readonly sink: string; readonly key: string; readonly route: string }>;

  /** `baseDir`: the rules file's directory (schema files are relative to it). */
  constructor(file: RulesSpec, compilers: readonly OutputCompiler[], baseDir = process.cwd()) {
    this.subscriptions = file.subscriptions;
    this.unmatched = file.unmatched;
    // a filter the broker would refuse fails here, with its line, not at SUBACK
    file.subscriptions.forEach((sub, i) => {
      try {
        validateFilter(sub.filter);
      } catch (err) {
        throw new RuleError(['subscriptions', i, 'filter'], (err as Error).message);
      }
    });
    const seen = new Set<string>();
    this.routes = file.routes.map((r, i) => {
      if (seen.has(r.name)) throw new RuleError(['routes', i, 'name'], `duplicate route name "${r.name}"`);
      seen.add(r.name);
      const compiled = compileRoute(r, i, compilers, baseDir);
      this.trie.add(compiled.pattern);
      return compiled;
    });
    this.routeNames = this.routes.map((r) => r.name);
    this.sinksUsed = new Set(this.routes.flatMap((r) => r.outputs.map((o) => o.sink)));
    this.sinksByRoute = new Map(this.routes.map((r) => [r.name, r.outputs.map((o) => o.sink)]));
    this.usesSparkplug = this.routes.some((r) => r.sparkplug);
    this.outputsKeepingTopics = this.routes.reduce((n, r) => n + r.outputs.filter((o) => o.keepsTopics === true).length, 0);
    this.requirements = this.routes.flatMap((r) => r.outputs.flatMap((o) => (o.requires ?? []).map((key) => ({ sink: o.sink, key, route: r.name }))));
  }

  uses(sink: string): boolean {
    return this.sinksUsed.has(sink);
  }

  /** What the routes name for a sink to write to (Kafka topics and templates), each once. */
  destinations(sink: string): string[] {
    return [
      ...new Set(this.routes.flatMap((r) => r.outputs.filter((o) => o.sink === sink && o.destination !== undefined).map((o) => o.destination as string))),
    ];
  }

  /**
   * Routes an earlier route always takes first: it matches every topic they match and does not
   * continue, so they never see a message (a Sparkplug route skips STATE topics: never counted).
   */
  shadowedRoutes(): Array<{ readonly route: string; readonly match: string; readonly by: string }> {
    const shadowed: Array<{ route: string; match: string; by: string }> = [];
    for (const [i, r] of this.routes.entries()) {
      const by = this.routes.slice(0, i).find((earlier) => !earlier.continue && !earlier.sparkplug && patternCovers(earlier.pattern.source, r.pattern.source));
      if (by) shadowed.push({ route: r.name, match: r.pattern.source, by: by.name });
    }
    return shadowed;
  }

  /** Routes whose match no subscription filter can deliver a topic for: they never receive a message. */
  uncoveredRoutes(): Array<{ readonly route: string; readonly match: string }> {
    return this.routes
      .filter((r) => !this.subscriptions.some((s) => patternsOverlap(r.pattern.source, s.filter)))
      .map((r) => ({ route: r.name, match: r.pattern.source }));
  }

  route(message: Message, now = Date.now(), options: RouteOptions = noOptions): Routed {
    const expiry = message.properties.messageExpiryInterval;
    if (expiry !== undefined && message.receivedAt + expiry * 1000 < now) {
      return { outcome: 'expired', matches: noMatches, refusals: noRefusals };
    }
    let routes = this.topics.get(message.topic);
    if (routes === undefined) {
      routes = this.routesOf(message.topic);
      // kept: every message of the topic shares its levels, so none may change them
      if (this.topics.keep(message.topic, routes)) for (const r of routes) Object.freeze(r.levels);
    }
    if (routes.length === 0) return this.unmatchedOf(message);
    // one route (the usual case) makes an array of one: one that grows by push reserves 17
    // places, held with the delivery until the message is acked
    let matches: Match[] | undefined;
    let decoded: { ok: true; value: unknown } | { ok: false; refusal: Refusal } | undefined;
    let checked: { ok: true; value: unknown } | { ok: false; refusal: Refusal } | undefined;
    let picked: { ok: true; value: unknown } | { ok: false; refusal: Refusal } | undefined;
    let sparkplug: { ok: true; value: SparkplugMessage } | { ok: false; refusal: Refusal } | undefined;
    for (const { route, levels: topicLevels, emptyLevel } of routes) {
      const levels = route.sparkplug ? { ...topicLevels } : topicLevels;
      let payload: unknown;
      let problem: Refusal | undefined;
      if (emptyLevel !== undefined) {
        problem = { reason: 'empty-level', stage: 'route', route: route.name, error: `level {${emptyLevel}} is empty in "${message.topic}"` };
      } else if (route.sparkplug) {
        sparkplug ??= this.decodeSparkplug(message, options);
        if (sparkplug.ok) {
          payload = sparkplug.value;
          addSparkplugLevels(levels, sparkplug.value.topic);
        } else {
          problem = { ...sparkplug.refusal, route: route.name };
        }
      } else if (route.decodes === 'parse') {
        decoded ??= decodeJson(message.payload);
        if (decoded.ok) payload = decoded.value;
        else problem = { ...decoded.refusal, route: route.name };
      } else if (route.decodes === 'pick') {
        // each route's own members (another route may read others)
        const d = decoded ?? (picked = pickJson(message.payload, route.projection as JsonProjection));
        if (d.ok) payload = d.value;
        else problem = { ...d.refusal, route: route.name };
      } else if (route.decodes === 'check') {
        const d = decoded ?? picked ?? (checked ??= checkJson(message.payload));
        if (d.ok) payload = d.value;
        else problem = { ...d.refusal, route: route.name };
      }
      const match: Match = { route: route.name, levels, payload, outputs: route.outputs, problem };
      if (matches === undefined) matches = [match];
      else matches.push(match);
    }
    return { outcome: 'routed', matches: matches as Match[], refusals: noRefusals };
  }

  /** The routes a topic goes to, in order, up to the first that does not continue (none: unmatched). */
  private routesOf(topic: string): TopicRoute[] {
    const levelsOfTopic = topic.split('/');
    const candidates = this.candidates;
    this.trie.matchInto(topic, levelsOfTopic, candidates);
    const routes: TopicRoute[] = [];
    for (let k = 0; k < candidates.n; k++) {
      const route = this.routes[candidates.ids[k] as number] as CompiledRoute;
      // spBv1.0/STATE/{host}: a host application's state, not an edge node's data
      if (route.sparkplug && levelsOfTopic[1] === 'STATE') continue;
      const levels: Record<string, string> = {};
      let emptyLevel: string | undefined;
      for (const c of route.pattern.captures) {
        const v = levelsOfTopic[c.index] as string;
        if (v === '') emptyLevel ??= c.name;
        levels[c.name] = v;
      }
      routes.push({ route, levels, emptyLevel });
      if (!route.continue) break;
    }
    return routes;
  }

  private unmatchedOf(message: Message): Routed {
    return this.unmatched === 'drop'
      ? { outcome: 'unmatched-dropped', matches: noMatches, refusals: noRefusals }
      : { outcome: 'routed', matches: noMatches, refusals: [{ reason: 'unmatched', stage: 'route', error: `no route matches topic "${message.topic}"` }] };
  }

  /** Decodes once per message, takes births and deaths into the state, names alias-only metrics. */
  private decodeSparkplug(message: Message, options: RouteOptions): { ok: true; value: SparkplugMessage } | { ok: false; refusal: Refusal } {
    const topic = parseSparkplugTopic(message.topic);
    if (typeof topic === 'string') return { ok: false, refusal: { reason: 'sparkplug-invalid', stage: 'decode', error: topic } };
    let payload: SparkplugPayload;
    try {
      payload = decodeSparkplug(message.payload);
    } catch (err) {
      return { ok: false, refusal: { reason: 'sparkplug-invalid', stage: 'decode', error: `not a Sparkplug B payload: ${(err as Error).message}` } };
    }
    const state = options.sparkplug ?? (this.ownSparkplug ??= new SparkplugState());
    if (!options.again) state.observe(topic, payload, options.followSeq ?? true);
    if (topic.messageType !== 'NBIRTH' && topic.messageType !== 'DBIRTH') {
      const resolved = state.resolve(topic, payload);
      if (!resolved.ok) return { ok: false, refusal: { reason: 'sparkplug-unknown-alias', stage: 'decode', error: resolved.error } };
    }
    return { ok: true, value: { topic, payload } };
  }
}

function addSparkplugLevels(levels: Record<string, string>, topic: SparkplugTopic): void {
  levels.group = topic.group;
  levels.messageType = topic.messageType;
  levels.edgeNode = topic.edgeNode;
  levels.device = topic.device;
}

function compileRoute(r: RouteSpec, i: number, compilers: readonly OutputCompiler[], baseDir: string): CompiledRoute {
  let pattern: CompiledPattern;
  try {
    pattern = compilePattern(r.match);
  } catch (err) {
    throw new RuleError(['routes', i, 'match'], (err as Error).message);
  }
  const sparkplug = r.payload === 'sparkplug';
  const levels = pattern.captures.map((c) => c.name);
  if (sparkplug) {
    if (!r.match.startsWith('spBv1.0/') && r.match !== '#') throw new RuleError(['routes', i, 'match'], 'a sparkplug route matches spBv1.0/... topics');
    for (const name of sparkplugLevels) if (!levels.includes(name)) levels.push(name);
  }
  const outputs: RouteOutput[] = [];
  for (const compiler of compilers) {
    const part = r[compiler.key];
    if (part === undefined || part === false) continue;
    const path = ['routes', i, compiler.key];
    try {
      outputs.push(compiler.compile(part, { route: r.name, levels, payload: r.payload, path, baseDir }));
    } catch (err) {
      if (err instanceof RuleError) throw err;
      throw new RuleError(path, (err as Error).message);
    }
  }
  if (outputs.length === 0) {
    throw new RuleError(['routes', i], `route "${r.name}" has no output: give it ${compilers.map((c) => c.key).join(', ')}, or several`);
  }
  const reading = r.payload === 'json' ? outputs.filter((o) => o.readsPayload) : [];
  const decoding = reading.filter((o) => o.readsDecoded !== false);
  const members = decoding.every((o) => o.readsMembers !== undefined) ? decoding.flatMap((o) => o.readsMembers as readonly string[]) : undefined;
  const picks = members?.every(JsonProjection.takes) === true;
  const decodes = reading.length === 0 ? 'none' : decoding.length === 0 ? 'check' : picks ? 'pick' : 'parse';
  const projection = decodes === 'pick' ? new JsonProjection(members as string[]) : undefined;
  return { name: r.name, pattern, continue: r.continue, decodes, projection, sparkplug, outputs };
}

const checkedJson = { ok: true, value: undefined } as const;

/**
 * Whether the payload is JSON, without building its value; a payload the check does not take is
 * decoded after all, for JSON.parse's own refusal (or its value, should the two ever differ).
 */
function checkJson(payload: Buffer): { ok: true; value: unknown } | { ok: false; refusal: Refusal } {
  return isJsonPayload(payload) ? checkedJson : decodeJson(payload);
}

/** The members the route reads; a payload the projection does not take is decoded whole, for its value or JSON.parse's refusal. */
function pickJson(payload: Buffer, projection: JsonProjection): { ok: true; value: unknown } | { ok: false; refusal: Refusal } {
  const picked = projection.pick(payload);
  return picked !== undefined ? { ok: true, value: picked } : decodeJson(payload);
}

function decodeJson(payload: Buffer): { ok: true; value: unknown } | { ok: false; refusal: Refusal } {
  let text: string;
  try {
    text = payloadText(payload);
  } catch {
    return { ok: false, refusal: { reason: 'invalid-utf8', stage: 'decode', error: 'payload is not valid UTF-8' } };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, refusal: { reason: 'invalid-json', stage: 'decode', error: (err as Error).message } };
  }
}

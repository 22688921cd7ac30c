// The seam between the router and the sinks. The router matches a topic and names its levels;
// each sink compiles its own part of a route (what the rules file says under its key) into a
// RouteOutput, and encodes the neutral match into the item it writes. The router knows no sink:
// the compilers are handed to it (sinks/registry.ts, wired in config/load.ts).

import type { Levels } from '../mapping/template.ts';
import type { Message } from '../message.ts';
import type { Annotations, Refusal } from '../outcome.ts';

/** What one route made of one message: the input of every output's encoder. */
export interface MatchInput {
  readonly message: Message;
  readonly route: string;
  readonly levels: Levels;
  /** The decoded JSON payload on json routes, a SparkplugMessage on sparkplug routes (undefined on raw routes). */
  readonly payload: unknown;
  /** The client id of the connection that took the message (audit records name it). */
  readonly clientId: string;
  /** What the outputs of phase 0 handed on (e.g. sluice-audit-seq); undefined in phase 0. */
  readonly annotations: Annotations | undefined;
}

export type Encoded<Item> =
  | { readonly item: Item; readonly eventTimeMs?: number | undefined }
  | { readonly refusal: Refusal }
  /** Nothing of this message goes to this sink (a death without metrics): delivered, as filtered. */
  | { readonly skip: true };

/** One sink's part of one route, compiled once at load. */
export interface RouteOutput<Item = unknown> {
  /** The sink its items go to. */
  readonly sink: string;
  /**
   * true: it needs a decodable payload and non-empty levels (else the route's refusal stands
   * for it); false: it takes the message whatever came (the audit log: evidence first).
   */
  readonly readsPayload: boolean;
  /**
   * false: it forwards the payload's bytes and reads no value in them, so on a json route the
   * payload is only checked to be JSON for it, not parsed (absent: it reads the parsed payload).
   */
  readonly readsDecoded?: boolean;
  /**
   * The members of a JSON object payload it reads within, when it reads nothing else of the
   * decoded payload (`$.temperature`, `$.ts`, `$.data` for `$.data.v`): on a json route whose
   * outputs all say so, the router builds only those members (mapping/json-check.ts), and the
   * payload it hands over has no other. Absent: it reads the whole decoded payload.
   */
  readonly readsMembers?: readonly string[] | undefined;
  /** 0: written before the others, which are encoded with its annotations (the audit record first). */
  readonly phase: 0 | 1;
  /** Keys its sink's config section must have for it (kafka.schemaRegistry): the config load says so, naming the route. */
  readonly requires?: readonly string[] | undefined;
  /** Where it writes, as the rules name it (a Kafka topic or topic template): `sluice check --connect` looks for it. */
  readonly destination?: string | undefined;
  /** true: it keeps a per-topic map of its own (router/kept-topics.ts), which the start-up memory check counts. */
  readonly keepsTopics?: boolean;
  encode(input: MatchInput): Encoded<Item>;
}

export interface RouteContext {
  readonly route: string;
  /** The level names the route's pattern captures. */
  readonly levels: readonly string[];
  readonly payload: 'json' | 'raw' | 'sparkplug';
  /** Where the part is in the rules file (for RuleError: file:line). */
  readonly path: ReadonlyArray<string | number>;
  /** The rules file's directory: files a part names (a schema) are relative to it. */
  readonly baseDir: string;
}

export interface OutputCompiler {
  /** The key of the part in a route: kafka, influx, audit, file. */
  readonly key: string;
  /** Compiles a validated part; throws RuleError (with a path under context.path) when it cannot. */
  compile(part: unknown, context: RouteContext): RouteOutput;
}

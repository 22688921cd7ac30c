// A sink as a plugin: one folder (src/sinks/<name>/) exports one SinkPlugin, and one line in
// registry.ts adds it. The plugin owns its part of the rules (schema and compiler), its section
// of the service config (schema), how it is built, batched and checked; nothing outside its
// folder names it.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { z } from 'zod';
import type { OutputCompiler } from '../router/route-output.ts';
import type { BatchLimits, Sink } from './sink.ts';

export interface SinkContext {
  /** Its own config section, validated by its schema (undefined when the section is absent). */
  readonly section: unknown;
  /** Every section of the service config (the dead letter reads kafka's connection). */
  readonly sections: Readonly<Record<string, unknown>>;
  /** Client ids of this worker's connections (the audit log's exactly-once ledger keys on the command connection's). */
  readonly clientIds: { readonly telemetry: string; readonly commands: string | undefined };
  readonly log: Logger;
  /** Sink-specific metrics register here (generic ones come from the queue, labelled by sink). */
  readonly registry: Registry;
  /** The sink can never be trusted again (a failed fsync): stop now, ack nothing more. */
  readonly onFatal: (err: Error) => void;
  /** While create() waits for something outside (room on a disk): why the worker is not ready; undefined when it no longer waits. */
  readonly waiting: (reason: string | undefined) => void;
  /** The worker is stopping: a create() that waits gives up. */
  readonly signal?: AbortSignal | undefined;
}

export interface BuiltSink<Item = unknown> {
  readonly sink: Sink<Item>;
  readonly batch: BatchLimits;
  /**
   * QoS 2 state the sink keeps durably for the command connection (the audit log's
   * exactly-once ledger): PUBREL is made durable before PUBCOMP, a lost session voids the ids.
   */
  readonly qos2?:
    | {
        release(packetId: number): Promise<void>;
        sessionLost(): void;
        gate(): Promise<void> | undefined;
      }
    | undefined;
}

export interface SinkPlugin {
  readonly name: string;
  /** How logs name it ("audit log"); default its name. */
  readonly title?: string;
  /** Its part of a route: the key, the schema fragment (rules-schema.ts puts it in), the compiler. */
  readonly route?:
    | {
        readonly schema: z.ZodType;
        readonly compiler: OutputCompiler;
        /** How errors say a route uses it ("has audit: true"); default "writes to <name>". */
        readonly uses?: string;
      }
    | undefined;
  /** Its section of the service config, under `section` (default: the plugin's name). */
  readonly config?: z.ZodType | undefined;
  readonly section?: string;
  /** Keys that moved into its section: old dotted path -> key of its section (a config naming the old one is told where it went). */
  readonly movedKeys?: Readonly<Record<string, string>>;
  /** Keys of its section (dotted for a nested one) that are paths, relative to the config file's directory (resolved at load). */
  readonly paths?: readonly string[];
  /** Built only when a route uses it, unless always (the dead letter). */
  readonly always?: boolean;
  create(context: SinkContext): Promise<BuiltSink> | BuiltSink;
  /** An item as `rules test` and `tap` print it (JSON: bytes as text or base64, no internals); default as it is. */
  describe?(item: unknown): unknown;
  /** `sluice check --connect`: reach its server with the config's credentials, write nothing, say what was found. */
  probe?(context: ProbeContext): Promise<Probe>;
}

export interface ProbeContext {
  readonly section: unknown;
  readonly sections: Readonly<Record<string, unknown>>;
  /** What the routes name for it to write to (Kafka topics and topic templates). */
  readonly destinations: readonly string[];
  readonly timeoutMs: number;
}

/** One line of `sluice check --connect`: ok, or not, and what was found. */
export interface Probe {
  readonly ok: boolean;
  readonly detail: string;
}

/** The key of a plugin's section in the service config. */
export function sectionKey(plugin: SinkPlugin): string {
  return plugin.section ?? plugin.name;
}

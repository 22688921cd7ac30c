// The service config file (broker, sinks, HTTP, limits): the worker's own sections here, each
// sink's section from the sink registry. One zod schema gives the types, the validation with
// file and line, and the JSON schema (`sluice config schema`).
import { z } from 'zod';
import { urlProblem } from '../addresses.ts';
import { secretRef } from '../secrets.ts';
import { sectionKey } from '../sinks/plugin.ts';
import { sinkPlugins } from '../sinks/registry.ts';

/** Each sink's section under its name; its own schema validates it (and says when it may be absent). */
const sinkSections: Record<string, z.ZodType> = Object.fromEntries(sinkPlugins.flatMap((p) => (p.config ? [[sectionKey(p), p.config]] : [])));
/** Keys that moved, old dotted path -> new one: a config naming the old one is told where it went. */
export const movedServiceKeys: Readonly<Record<string, string>> = Object.fromEntries(
  sinkPlugins.flatMap((p) => Object.entries(p.movedKeys ?? {}).map(([old, key]) => [old, `${sectionKey(p)}.${key}`])),
);

const backoff = z.strictObject({
  minMs: z.int().min(1).default(200).describe('the first wait'),
  maxMs: z.int().min(1).default(10_000).describe('the longest wait'),
});

export const serviceConfig = z.strictObject({
  rules: z.string().default('rules.yaml').describe('routing rules file, relative to this file'),
  mqtt: z
    .strictObject({
      url: z
        .string()
        .default('mqtt://127.0.0.1:21883')
        .superRefine((v, ctx) => {
          const problem = urlProblem(v, ['mqtt:', 'mqtts:', 'ws:', 'wss:']);
          if (problem) ctx.addIssue({ code: 'custom', message: problem });
        })
        .describe('mqtt://, mqtts://, ws:// or wss:// URL of the broker'),
      failover: z
        .array(
          z.string().superRefine((v, ctx) => {
            const problem = urlProblem(v, ['mqtt:', 'mqtts:']);
            if (problem) ctx.addIssue({ code: 'custom', message: problem });
          }),
        )
        .default([])
        .describe(
          "more URLs of the same broker service (the other node of an HA pair, a cluster's nodes): after a lost connection each attempt goes to the next one in turn, url first. mqtt:// or mqtts://, the url's scheme, credentials and TLS settings; the session resumes only where the broker shares it (docs/operations.md, Broker failover)",
        ),
      group: z
        .string()
        .regex(/^[^/+#$]+$/, 'no /, +, # or $ in a share group name')
        .default('sluice')
        .describe('shared subscription group: filters are subscribed as $share/<group>/<filter>'),
      clientId: z.string().min(1).optional().describe('stable per worker, so a restart resumes its session; default sluice-<hostname>, or SLUICE_CLIENT_ID'),
      sessionExpiryInterval: z
        .int()
        .min(1)
        .max(0xffffffff)
        .default(3600)
        .describe('seconds the broker keeps the session (and queues messages) while the worker is away'),
      receiveMaximum: z.int().min(1).max(65535).default(1000).describe('messages in flight at most: advertised to the broker and enforced by sluice'),
      maxInFlightBytes: z
        .int()
        .min(1024)
        .default(16 * 1024 * 1024)
        .describe(
          "payload bytes in flight at most, per connection: past it the socket is not read until acks free room (the message that crosses it is still taken). With receiveMaximum it bounds a worker's memory whatever the payloads' sizes (docs/operations.md, Memory)",
        ),
      keepalive: z.int().min(1).max(65535).default(30).describe('seconds'),
      connectTimeoutMs: z.int().min(100).default(10_000).describe('a CONNECT not answered within this is an attempt failed'),
      reconnect: z
        .strictObject({
          fastMs: z
            .int()
            .min(10)
            .default(100)
            .describe(
              'during the first fastForMs of an outage, an attempt about this often (jittered 50-150%): a restarted broker finds its share group subscribed again within about this long',
            ),
          fastForMs: z.int().min(0).default(10_000).describe('how long the fast attempts last; then the exponential backoff'),
          minMs: z.int().min(1).default(500).describe('backoff after the fast phase: exponential from this, with full jitter'),
          maxMs: z.int().min(1).default(30_000).describe('...up to this'),
        })
        .prefault({})
        .describe('reconnecting after a lost connection: fast at first, then exponential backoff with full jitter'),
      username: z.string().optional().describe('MQTT username'),
      password: secretRef.optional().describe('MQTT password (a secret)'),
      commands: z
        .strictObject({
          clientIdSuffix: z
            .string()
            .min(1)
            .default('-commands')
            .describe('QoS 2 subscriptions run on a connection of their own, client id <clientId><suffix> (stable: its session holds the QoS 2 state)'),
          receiveMaximum: z.int().min(1).max(65535).default(100).describe('commands taken and not yet recorded (PUBREC) at most, on the command connection'),
        })
        .prefault({})
        .describe('the command connection (QoS 2 subscriptions)'),
      tls: z
        .strictObject({
          ca: z.string().optional().describe('CA certificate file (PEM)'),
          cert: z.string().optional().describe('client certificate file (PEM), for mTLS'),
          key: z.string().optional().describe('client key file (PEM), for mTLS'),
          rejectUnauthorized: z.boolean().default(true).describe("verify the broker's certificate (keep true outside tests)"),
        })
        .optional()
        .describe('TLS for mqtts:// and wss://'),
    })
    .refine((m) => m.failover.every((f) => URL.parse(f)?.protocol === URL.parse(m.url)?.protocol), {
      path: ['failover'],
      message: 'failover URLs take the scheme of url (mqtt:// or mqtts://; ws:// has no failover list)',
    })
    .prefault({})
    .describe('the broker connection'),
  sparkplug: z
    .strictObject({
      stateDir: z
        .string()
        .default('state')
        .describe(
          'where each worker keeps its Sparkplug alias state (sparkplug-<clientId>.json), relative to this file: a restarted worker still names alias-only data',
        ),
      stateFeed: z
        .boolean()
        .default(true)
        .describe(
          'a connection of its own per worker (<clientId>-sparkplug, not shared) that sees every Sparkplug message: births reach every worker of the share group, and seq is followed on the whole stream. false: one worker only, state and seq from its own messages',
        ),
      aliasWaitMs: z
        .int()
        .min(0)
        .max(60_000)
        .default(1000)
        .describe(
          'data naming an alias no birth defined wait, at most this long, while the state feed has not yet passed them (their birth may be on its way there); then, or at once when the feed has passed them, they are dead-lettered (sparkplug-unknown-alias). A wait holds the acks behind it (they leave in order)',
        ),
      rebirth: z
        .boolean()
        .default(false)
        .describe(
          'on an unknown alias, ask the edge node to publish its births again (NCMD Node Control/Rebirth), and at start ask every edge node of the saved state (it may have been born again, with other aliases, while this worker was down); off by default: it publishes to your edge nodes',
        ),
      rebirthIntervalMs: z.int().min(1000).default(30_000).describe('at most one rebirth request per edge node this often'),
    })
    .prefault({})
    .describe('Sparkplug B routes (payload: sparkplug): alias state, the state feed, rebirth requests'),
  ...sinkSections,
  retry: backoff.prefault({}).describe('sink retry backoff (a sink retries until durable; nothing is acked meanwhile)'),
  http: z
    .strictObject({
      host: z.string().default('127.0.0.1').describe('0.0.0.0 in a container'),
      port: z.int().min(0).max(65535).default(9464).describe('/metrics, /healthz, /readyz; 0 picks a free port'),
      maxUnackedAgeMs: z
        .int()
        .min(1000)
        .default(30_000)
        .describe("/readyz answers 503, naming the route, while a route's oldest unacknowledged message is older than this"),
      liveness: z
        .strictObject({
          maxStallMs: z
            .int()
            .min(100)
            .default(5_000)
            .describe('an event loop late by more than this is a stall: /healthz answers 503 (a frozen process cannot answer at all: probe with a timeout)'),
          reportForMs: z.int().min(0).default(30_000).describe('...for this long after the stall ended, so a periodic probe sees an intermittent freeze'),
        })
        .prefault({})
        .describe('/healthz: event-loop stalls'),
    })
    .prefault({})
    .describe('/metrics, /healthz, /readyz'),
  shutdown: z
    .strictObject({
      deadlineMs: z.int().min(100).default(15_000).describe('SIGTERM: stop reading, flush, ack, disconnect within this'),
      leaveGroup: z
        .boolean()
        .default(false)
        .describe(
          'SIGTERM: leave the share group for good first (unsubscribe, take what the broker still holds for this worker, end the session), so a worker that never comes back strands nothing on Mosquitto; only where other workers stay in the group, and not on HiveMQ (docs/operations.md, Scaling in)',
        ),
    })
    .prefault({})
    .describe('graceful shutdown'),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('pino level; SLUICE_LOG_LEVEL overrides'),
    })
    .prefault({})
    .describe('logging (pino JSON on stdout)'),
});

/** The worker's own sections, typed; the sinks' sections are each sink's to read. */
export type ServiceConfig = z.infer<typeof serviceConfig> & { readonly [sink: string]: unknown };

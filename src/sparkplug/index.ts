// Sparkplug B as one module, and its one entry point: the worker's alias state (kept in a file
// across restarts and reloads), the state feed that shows every worker every birth whichever
// worker the share group gives the data to, the seq-gap log, rebirth requests, and the hook the
// pipeline routes with (the state, and a short wait for a birth the feed may still bring).
import { join } from 'node:path';
import type { Logger } from 'pino';
import { monotonicMs } from '../clock.ts';
import type { MqttCredentials } from '../mqtt-credentials.ts';
import type { Metrics } from '../observability/metrics.ts';
import { SparkplugFeed } from './sparkplug-feed.ts';
import { decodeSparkplugHead } from './sparkplug-payload.ts';
import { SparkplugState } from './sparkplug-state.ts';
import { parseSparkplugTopic } from './sparkplug-topic.ts';

/** The service config's sparkplug section (docs/industrial-payloads.md). */
export interface SparkplugSettings {
  readonly stateDir: string;
  readonly stateFeed: boolean;
  readonly aliasWaitMs: number;
  readonly rebirth: boolean;
  readonly rebirthIntervalMs: number;
}

export interface SparkplugWorkerOptions {
  readonly settings: SparkplugSettings;
  /** The worker's client id: the state file's name, and the feed's client id (<clientId>-sparkplug). */
  readonly clientId: string;
  readonly connection: MqttCredentials & {
    readonly url: string;
    readonly failover?: readonly string[] | undefined;
    readonly keepalive: number;
    readonly connectTimeoutMs: number;
  };
  readonly metrics: Metrics;
  readonly log: Logger;
}

/** What the worker wires in: the state, the pipeline's hook, the feed's health, the gauges, the stop. */
export interface SparkplugWorker {
  readonly state: SparkplugState;
  readonly hook: {
    readonly first: { readonly sparkplug: SparkplugState; readonly followSeq: boolean; readonly again: false };
    readonly again: { readonly sparkplug: SparkplugState; readonly followSeq: boolean; readonly again: true };
    holdFor(
      message: { readonly topic: string; readonly payload: Buffer },
      matches: ReadonlyArray<{ readonly problem?: { readonly reason: string } | undefined }>,
      waitedMs: number,
    ): number | undefined;
  };
  /** undefined without a state feed. */
  readonly feedConnected: boolean | undefined;
  updateGauges(): void;
  stop(): Promise<void>;
}

export function startSparkplug(options: SparkplugWorkerOptions): SparkplugWorker {
  const { settings: sp, metrics, connection } = options;
  const log = options.log.child({ component: 'sparkplug' });
  const gapsLogged = new Map<string, { at: number; since: number }>();
  /** When the last write of the state file failed (0: the file is current). */
  let writeFailedAt = 0;
  const state = new SparkplugState({
    file: join(sp.stateDir, `sparkplug-${options.clientId}.json`),
    onGap: (topic, expected, got) => {
      metrics.sparkplugSeqGaps.inc();
      // the metric has no edge node label (cardinality): the log names it, once a minute per node
      const key = `${topic.group}/${topic.edgeNode}`;
      const seen = gapsLogged.get(key) ?? { at: 0, since: 0 };
      seen.since++;
      gapsLogged.set(key, seen);
      if (monotonicMs() - seen.at < 60_000) return;
      log.warn(
        { group: topic.group, edgeNode: topic.edgeNode, expected, got, gaps: seen.since },
        'Sparkplug seq gap: messages of this edge node were lost or reordered on the way (gaps: since the last such line)',
      );
      seen.at = monotonicMs();
      seen.since = 0;
    },
    onFileError: (err, action) => {
      if (action === 'read') {
        log.error({ err: err.message, action }, 'could not read the Sparkplug state file (the state starts empty, in memory)');
        return;
      }
      metrics.sparkplugStateFileOk.set(0);
      // a full disk fails every save (one per change): one line, then one every 5 minutes
      if (monotonicMs() - writeFailedAt < 300_000) return;
      writeFailedAt = monotonicMs();
      log.error({ err: err.message, action }, 'could not write the Sparkplug state file (the state works in memory; tried again at every change)');
    },
    onFileWritten: () => {
      if (writeFailedAt === 0) return;
      writeFailedAt = 0;
      metrics.sparkplugStateFileOk.set(1);
      log.info('the Sparkplug state file is written again');
    },
  });
  metrics.sparkplugStateFileOk.set(1);
  metrics.sparkplugEdgeNodes.set(state.nodeCount);
  const feed = !sp.stateFeed
    ? undefined
    : new SparkplugFeed(
        {
          ...connection,
          clientId: `${options.clientId}-sparkplug`,
          state,
          rebirthIntervalMs: sp.rebirthIntervalMs,
          rebirth: sp.rebirth,
          onRebirthRequested: () => metrics.sparkplugRebirthRequests.inc(),
        },
        log,
      );
  if (sp.rebirth && !feed) log.warn('sparkplug.rebirth needs sparkplug.stateFeed (its connection sends the requests): no rebirth will be asked');

  const first = { sparkplug: state, followSeq: !feed, again: false } as const;
  return {
    state,
    hook: {
      first,
      again: { ...first, again: true },
      holdFor(message, matches, waitedMs) {
        if (!matches.some((m) => m.problem?.reason === 'sparkplug-unknown-alias')) return undefined;
        // wait only while the state feed may still bring the birth (it has not passed this
        // message yet); one connection alone: the birth would have come before its data
        const topic = parseSparkplugTopic(message.topic);
        const mayCome = feed !== undefined && typeof topic !== 'string' && !state.feedPassed(topic, decodeSparkplugHead(message.payload));
        if (Math.max(waitedMs, 0) < sp.aliasWaitMs && mayCome) {
          if (waitedMs < 0) metrics.sparkplugAliasWaits.inc();
          return Math.min(20, sp.aliasWaitMs);
        }
        // still unknown: dead-lettered; ask the edge node for its births when configured
        if (sp.rebirth && typeof topic !== 'string') feed?.requestRebirth(topic);
        return undefined;
      },
    },
    get feedConnected() {
      return feed?.connected;
    },
    updateGauges() {
      metrics.sparkplugEdgeNodes.set(state.nodeCount);
      if (feed) metrics.sparkplugFeedConnected.set(feed.connected ? 1 : 0);
    },
    async stop() {
      state.flush();
      await feed?.stop();
    },
  };
}

// The worker's metrics (source, pipeline, the generic per-sink ones), on a registry that is
// passed in (no global); a sink adds its own beside its code (sinks/audit/audit-metrics.ts).
// Labels are low-cardinality by rule: qos, route, sink, reason; never a topic or a device id.
// What every message touches is a HotCounter or HotHistogram (a number add, rendered at scrape
// time); the rest, counted per batch, per fault or per connection, is prom-client's own.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { HotCounter, HotHistogram } from './hot-metrics.ts';

export function createMetrics(registry = new Registry(), options: { defaultMetrics?: boolean } = {}) {
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'sluice_' });
  const registers = [registry];
  // from 1 ms, fine where a healthy worker's latency is (a few ms to a linger of 50-100 ms)
  const latencyBuckets = [0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
  return {
    registry,
    received: new HotCounter({ name: 'sluice_messages_received_total', help: 'Messages read from the broker', labelNames: ['qos'], registers }),
    routed: new HotCounter({
      name: 'sluice_messages_routed_total',
      help: 'Outputs handed to a sink, by route and sink',
      labelNames: ['route', 'sink'],
      registers,
    }),
    acked: new HotCounter({ name: 'sluice_messages_acked_total', help: 'Messages settled (acknowledged to the broker for QoS >= 1)', registers }),
    deadLettered: new Counter({
      name: 'sluice_dead_letters_total',
      help: 'Messages dead-lettered (to the dead-letter topic or file), by reason',
      labelNames: ['reason'],
      registers,
    }),
    expired: new Counter({ name: 'sluice_messages_expired_total', help: 'Messages past their Message Expiry Interval: acked, not forwarded', registers }),
    unmatchedDropped: new Counter({
      name: 'sluice_messages_unmatched_dropped_total',
      help: 'Messages no route matched, acked and dropped (unmatched: drop)',
      registers,
    }),
    inFlight: new Gauge({ name: 'sluice_inflight_messages', help: 'Messages handed to the sinks and not yet acknowledged', registers }),
    inFlightBytes: new Gauge({
      name: 'sluice_inflight_bytes',
      help: 'Payload bytes of the messages in flight (never above mqtt.maxInFlightBytes but for the message that crossed it)',
      registers,
    }),
    inFlightMax: new Gauge({
      name: 'sluice_inflight_messages_max',
      help: 'Most messages in flight at once since start (never above Receive Maximum)',
      registers,
    }),
    receiveMaximum: new Gauge({ name: 'sluice_receive_maximum', help: 'In-flight limit (advertised Receive Maximum)', registers }),
    stalls: new Counter({ name: 'sluice_pump_stalls_total', help: 'Times reading from the broker paused because the in-flight window was full', registers }),
    keepaliveDuringStall: new Counter({
      name: 'sluice_keepalive_pings_during_stall_total',
      help: 'Keepalive timeouts answered with a PINGREQ while the socket was not being read',
      registers,
    }),
    staleAcksDropped: new Counter({
      name: 'sluice_stale_acks_dropped_total',
      help: 'Acks not sent because their connection had dropped (the broker redelivers)',
      registers,
    }),
    unsettledAtShutdown: new Counter({
      name: 'sluice_unsettled_at_shutdown_total',
      help: 'Messages still unacknowledged when the shutdown deadline passed',
      registers,
    }),
    sinkBatchSize: new Histogram({
      name: 'sluice_sink_batch_size',
      help: 'Items per sink write',
      labelNames: ['sink'],
      buckets: [1, 10, 50, 100, 250, 500, 1000, 2500, 5000],
      registers,
    }),
    sinkWriteSeconds: new Histogram({
      name: 'sluice_sink_write_seconds',
      help: 'Duration of one sink write (a batch)',
      labelNames: ['sink'],
      buckets: latencyBuckets,
      registers,
    }),
    sinkWriteErrors: new Counter({ name: 'sluice_sink_write_errors_total', help: 'Failed sink writes (retried)', labelNames: ['sink'], registers }),
    sinkDeferred: new Gauge({
      name: 'sluice_sink_deferred_items',
      help: 'Items a sink deferred (their destination failing on its own), waiting in their own lane',
      labelNames: ['sink'],
      registers,
    }),
    sinkHealthy: new Gauge({
      name: 'sluice_sink_healthy',
      help: '1 when the sink can write: it started and its last write succeeded',
      labelNames: ['sink'],
      registers,
    }),
    ackLatency: new HotHistogram({
      name: 'sluice_ack_latency_seconds',
      help: 'From reading a message to settling its ack',
      buckets: latencyBuckets,
      registers,
    }),
    sinkLatency: new HotHistogram({
      name: 'sluice_sink_latency_seconds',
      help: 'From reading a message to durable in this sink (the linger, the wait for a write and the write)',
      labelNames: ['sink'],
      buckets: latencyBuckets,
      registers,
    }),
    endToEnd: new HotHistogram({
      name: 'sluice_end_to_end_seconds',
      help: 'From the payload timestamp to durable in every sink (routes with a time field)',
      buckets: latencyBuckets,
      registers,
    }),
    ready: new Gauge({ name: 'sluice_ready', help: '1 while /readyz answers 200 (connected, every sink healthy, no route held too long)', registers }),
    rulesReloads: new Counter({ name: 'sluice_rules_reloads_total', help: 'Rules reloads (SIGHUP or --watch) that took effect', registers }),
    rulesReloadFailures: new Counter({
      name: 'sluice_rules_reload_failures_total',
      help: 'Rules reloads refused (a bad file, or rules this worker cannot take without a restart): the old rules stay',
      registers,
    }),
    rulesLastReloadSuccess: new Gauge({
      name: 'sluice_rules_last_reload_success_timestamp',
      help: 'When the rules in use were loaded (seconds since the epoch): the start or the last good reload',
      registers,
    }),
    eventLoopWorstLag: new Gauge({
      name: 'sluice_event_loop_worst_lag_seconds',
      help: 'The longest the event loop was late since start (a stall past http.liveness.maxStallMs fails /healthz for a while)',
      registers,
    }),
    connected: new Gauge({ name: 'sluice_mqtt_connected', help: '1 while connected to the broker', registers }),
    reconnects: new Counter({ name: 'sluice_mqtt_reconnects_total', help: 'Reconnect attempts to the broker', registers }),
    sessionsResumed: new Counter({
      name: 'sluice_mqtt_sessions_resumed_total',
      help: 'Connections on which the broker had kept our session',
      labelNames: ['present'],
      registers,
    }),
    // the command connection (QoS 2 subscriptions) has a window and a session of its own
    sparkplugSeqGaps: new Counter({
      name: 'sluice_sparkplug_seq_gaps_total',
      help: 'Sparkplug messages whose seq did not follow the last one of their edge node (lost or reordered on the way)',
      registers,
    }),
    sparkplugAliasWaits: new Counter({
      name: 'sluice_sparkplug_alias_waits_total',
      help: 'Sparkplug data that named an alias no birth had defined, held (sparkplug.aliasWaitMs at most) while the state feed might still bring the birth',
      registers,
    }),
    sparkplugRebirthRequests: new Counter({
      name: 'sluice_sparkplug_rebirth_requests_total',
      help: 'Rebirth requests (NCMD Node Control/Rebirth) sent to edge nodes',
      registers,
    }),
    sparkplugStateFileOk: new Gauge({
      name: 'sluice_sparkplug_state_file_ok',
      help: '0 while the Sparkplug state file could not be written (a full disk): the state works in memory, a restart would start from the older file',
      registers,
    }),
    sparkplugEdgeNodes: new Gauge({ name: 'sluice_sparkplug_edge_nodes', help: 'Edge nodes whose birth this worker has on record', registers }),
    sparkplugFeedConnected: new Gauge({ name: 'sluice_sparkplug_feed_connected', help: '1 while the Sparkplug state feed is connected', registers }),
    commandsConnected: new Gauge({
      name: 'sluice_commands_mqtt_connected',
      help: '1 while the command connection (QoS 2 subscriptions) is connected',
      registers,
    }),
    commandsInFlight: new Gauge({
      name: 'sluice_commands_inflight_messages',
      help: 'Commands taken and not yet acknowledged (PUBREC) on the command connection',
      registers,
    }),
    commandsInFlightMax: new Gauge({
      name: 'sluice_commands_inflight_messages_max',
      help: 'Most commands in flight at once since start (never above its Receive Maximum)',
      registers,
    }),
    commandsReceiveMaximum: new Gauge({ name: 'sluice_commands_receive_maximum', help: 'In-flight limit of the command connection', registers }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

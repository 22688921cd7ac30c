// The audit sink's own metrics (the queue adds the generic sink ones, labelled sink="audit").
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export function createAuditMetrics(registry: Registry) {
  const registers = [registry];
  return {
    records: new Counter({ name: 'sluice_audit_records_total', help: 'Command records made durable in the audit log', registers }),
    bytes: new Counter({ name: 'sluice_audit_bytes_total', help: 'Bytes appended to the audit log (frames, checkpoints included)', registers }),
    fsync: new Histogram({
      name: 'sluice_audit_fsync_seconds',
      help: 'Write + fdatasync of one group commit of the audit log',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    commitSize: new Histogram({
      name: 'sluice_audit_group_commit_records',
      help: 'Records per audit log fsync',
      buckets: [1, 2, 5, 10, 25, 50, 100, 250, 1000],
      registers,
    }),
    segments: new Counter({ name: 'sluice_audit_segments_total', help: 'Audit log segments started', registers }),
    diskFree: new Gauge({
      name: 'sluice_audit_disk_free_bytes',
      help: "Bytes free on the audit log's volume (for an unprivileged writer), sampled every 10 s",
      registers,
    }),
    minFree: new Gauge({ name: 'sluice_audit_min_free_bytes', help: 'audit.minFreeBytes: below it a worker does not start taking commands', registers }),
    checkpoints: new Counter({ name: 'sluice_audit_checkpoints_total', help: 'Signed checkpoints written', registers }),
    anchorsPublished: new Counter({
      name: 'sluice_audit_anchors_published_total',
      help: 'Signed checkpoints a witness (audit.anchors) accepted',
      labelNames: ['witness'],
      registers,
    }),
    anchorFailures: new Counter({
      name: 'sluice_audit_anchor_failures_total',
      help: 'Failed attempts to publish an anchor (retried; only the newest waits)',
      labelNames: ['witness'],
      registers,
    }),
    anchorFailing: new Gauge({
      name: 'sluice_audit_anchor_failing_seconds',
      help: 'How long a witness has failed (0: its last attempt worked); past audit.anchors.maxFailingMs /readyz names it',
      labelNames: ['witness'],
      registers,
    }),
    unanchored: new Gauge({
      name: 'sluice_audit_unanchored_records',
      help: 'Records of the log after the newest checkpoint a witness kept: what no anchor covers yet',
      labelNames: ['witness'],
      registers,
    }),
    archived: new Counter({
      name: 'sluice_audit_archived_segments_total',
      help: 'Sealed segments the archive (audit.archive) holds under Object Lock: uploaded, or found there from an earlier run',
      registers,
    }),
    archivedBytes: new Counter({ name: 'sluice_audit_archived_bytes_total', help: 'Bytes of sealed segments uploaded to the archive', registers }),
    archiveFailures: new Counter({
      name: 'sluice_audit_archive_failures_total',
      help: 'Failed attempts to upload a sealed segment (retried, in order)',
      registers,
    }),
    archiveBacklog: new Gauge({
      name: 'sluice_audit_archive_backlog_segments',
      help: 'Sealed segments not yet in the archive',
      registers,
    }),
    archiveFailing: new Gauge({
      name: 'sluice_audit_archive_failing_seconds',
      help: 'How long uploads to the archive have failed (0: the last one worked); past audit.archive.maxFailingMs /readyz names it',
      registers,
    }),
    redeliveries: new Counter({ name: 'sluice_audit_redeliveries_total', help: 'QoS 2 redeliveries recognised and not recorded again', registers }),
    rollbackRedeliveries: new Counter({
      name: 'sluice_audit_rollback_redeliveries_total',
      help: 'DUP redeliveries of QoS 2 commands already released (a broker restarted from an older save): resolved to the first record',
      registers,
    }),
    idempotentDuplicates: new Counter({
      name: 'sluice_audit_idempotent_duplicates_total',
      help: 'Commands whose idempotency key was already recorded within the window: resolved to the first record',
      registers,
    }),
    keyMissing: new Counter({
      name: 'sluice_audit_idempotency_key_missing_total',
      help: 'Commands of a route with an idempotency key that carried none (or one over 1,024 characters): recorded without one',
      registers,
    }),
    releasedHistory: new Gauge({
      name: 'sluice_audit_released_history',
      help: "Released QoS 2 commands remembered for a rolled-back broker's redelivery",
      registers,
    }),
    idempotencyKeys: new Gauge({ name: 'sluice_audit_idempotency_keys', help: 'Idempotency keys remembered within the window', registers }),
    idConflicts: new Counter({
      name: 'sluice_audit_packet_id_conflicts_total',
      help: 'A packet id still held arrived with other content: recorded as new (broker state not seen)',
      registers,
    }),
    awaitingRelease: new Gauge({
      name: 'sluice_audit_awaiting_release',
      help: 'QoS 2 packet ids recorded and not yet released by the broker (PUBREL)',
      registers,
    }),
    refused: new Counter({ name: 'sluice_audit_refused_total', help: 'Messages the audit log refused (too large): dead-lettered', registers }),
  };
}

export type AuditMetrics = ReturnType<typeof createAuditMetrics>;

// Metrics of one-shot commands (`sluice audit verify`, `audit replay`) for node_exporter's
// textfile collector: a cron'd verify becomes an alert. Written to a temporary file and renamed,
// so the collector never reads half a file.
import { renameSync, writeFileSync } from 'node:fs';
import { Gauge, Registry } from 'prom-client';
import type { VerifyResult } from './verify.ts';

export async function writeAuditMetrics(file: string, command: 'verify' | 'replay', dir: string, verify: VerifyResult, replayed?: number): Promise<void> {
  const registry = new Registry();
  const registers = [registry];
  const labels = { command, dir };
  const gauge = (name: string, help: string, value: number, extra: Record<string, string> = {}) => {
    const g = new Gauge({ name, help, labelNames: ['command', 'dir', ...Object.keys(extra)], registers });
    g.set({ ...labels, ...extra }, value);
  };
  gauge('sluice_audit_check_ok', '1 when the audit log verified (chain, CRC, sequence; signatures with a key)', verify.ok ? 1 : 0);
  gauge('sluice_audit_check_problem', 'The first problem found, by kind (absent when ok)', verify.problem ? 1 : 0, { kind: verify.problem?.kind ?? 'none' });
  gauge('sluice_audit_check_records', 'Records read (commands and checkpoints)', verify.records);
  gauge('sluice_audit_check_commands', 'Command records read', verify.commands);
  gauge('sluice_audit_check_last_seq', 'Last good sequence number', verify.lastSeq);
  gauge('sluice_audit_check_segments', 'Segment files', verify.segments);
  if (verify.unsignedTail !== undefined) gauge('sluice_audit_check_unsigned_tail', 'Records after the last valid signed checkpoint', verify.unsignedTail);
  if (replayed !== undefined) gauge('sluice_audit_replay_commands', 'Commands replayed', replayed);
  gauge('sluice_audit_check_timestamp_seconds', 'When the check ran', Math.floor(Date.now() / 1000));
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, await registry.metrics());
  renameSync(tmp, file);
}

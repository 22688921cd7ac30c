// Liveness as Kubernetes probes it: a frozen sluice (SIGSTOP) cannot answer /healthz within the
// probe's timeout; once it runs again, /healthz answers 503 naming the stall for
// http.liveness.reportForMs, so a periodic probe sees an intermittent freeze too; then 200.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { telemetryToKafka, waitFor } from '../support/e2e-helpers.ts';
import { sluiceFor } from '../support/sluice-process.ts';
import { printLogsOnFailure, unique } from '../support/stack.ts';

test('a frozen worker fails /healthz: no answer while stopped, 503 naming the stall after, then 200', { timeout: 60_000 }, async (t) => {
  printLogsOnFailure(t);
  const prefix = unique('live');
  const sluice = sluiceFor(t, { rules: telemetryToKafka(prefix, `${prefix}.t`), config: { http: { liveness: { maxStallMs: 1_000, reportForMs: 3_000 } } } });
  await sluice.start();
  assert.equal(await sluice.healthz(), 200);
  const url = await sluice.healthUrl();
  process.kill(sluice.pid as number, 'SIGSTOP');
  t.after(() => {
    try {
      process.kill(sluice.pid as number, 'SIGCONT');
    } catch {
      /* gone */
    }
  });
  await sleep(2_500);
  // the kubelet's httpGet with timeoutSeconds: 2
  const frozen = await fetch(url, { signal: AbortSignal.timeout(2_000) }).then(
    (r) => r.status,
    (err: Error) => err.name,
  );
  assert.equal(frozen, 'TimeoutError', 'no answer while the process is frozen');
  process.kill(sluice.pid as number, 'SIGCONT');
  const after = await fetch(url);
  const body = await after.text();
  t.diagnostic(`after SIGCONT: ${after.status} ${body.trim()}`);
  assert.equal(after.status, 503);
  assert.match(body, /event loop stalled for \d+ ms \(limit 1000 ms\)/);
  await waitFor('/healthz 200 again', async () => (await sluice.healthz()) === 200, 10_000);
  assert.match(sluice.logs, /"stalledMs":\d+.*"the event loop stalled: \/healthz fails for a while"/);
  assert.equal((await sluice.metrics()).get('sluice_event_loop_worst_lag_seconds')! > 1, true);
});

// Broker failover on a real HA pair: ActiveMQ Artemis 2.40, primary and backup with
// replication. sluice is given both (mqtt.url the primary, mqtt.failover the backup); the
// primary is SIGKILLed under telemetry and command load, the backup takes over with the
// replicated sessions, and sluice moves to it by itself. Asserted: every telemetry message a
// publisher had acknowledged is in Kafka, every acknowledged command is recorded, and none
// twice. A publisher whose QoS 2 command the primary took but had not yet answered sends it
// again to the backup, which does not know its session: a second command, on the broker's
// side. And the backup may deliver again a command sluice had already recorded from the
// primary (its replicated copy of sluice's session lacks the last QoS 2 exchanges), in a form
// sluice's ledger of packet ids does not match.
// The route's idempotency key resolves both; distinct commands are never merged by it (each
// acknowledged command must be recorded). Measured and reported: the backup's activation,
// sluice's time back, the publisher's resends and the duplicates the key resolved.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt from 'mqtt';
import { verifyAuditLog } from '../../src/audit/tools/verify.ts';
import { artemisPairFor } from '../support/artemis.ts';
import { commandsRecorded, publishUntilStopped, readTopic, seqCounts, waitFor } from '../support/e2e-helpers.ts';
import { jsonLines } from '../support/log-lines.ts';
import { sluiceFor } from '../support/sluice-process.ts';
import { config, kafkaTopic, printLogsOnFailure, unique } from '../support/stack.ts';

test('an Artemis primary SIGKILLed under load: sluice moves to the backup (mqtt.failover) with its session; 0 lost, no command recorded twice', {
  timeout: 300_000,
}, async (t) => {
  printLogsOnFailure(t);
  const pair = await artemisPairFor(t);
  const prefix = unique('failover');
  const telemetryTopic = await kafkaTopic(t, 1);
  const sluice = sluiceFor(t, {
    rules: {
      subscriptions: [
        { filter: `${prefix}/+/+/+/+/telemetry`, qos: 1 },
        { filter: `${prefix}/+/+/+/+/command`, qos: 2 },
      ],
      routes: [
        { name: 'telemetry', match: `${prefix}/{site}/{zone}/{deviceType}/{deviceId}/telemetry`, kafka: { topic: telemetryTopic } },
        // a publisher may send a command again after a failover (below): its key keeps the record single
        {
          name: 'commands',
          match: `${prefix}/{site}/{zone}/{deviceType}/{deviceId}/command`,
          audit: { idempotencyKey: { userProperty: 'commandId' } },
          payload: 'raw',
        },
      ],
    },
    config: { mqtt: { url: pair.url(pair.primary), failover: [pair.url(pair.backup)] }, audit: { dir: 'audit' } },
  });
  await sluice.start(60_000);

  const servers = [pair.primary, pair.backup].map((n) => ({ host: config.host, port: n.mqttPort }));
  const publisher = (id: string) =>
    mqtt.connectAsync({ servers, protocolVersion: 5, clientId: unique(id), clean: false, reconnectPeriod: 200, properties: { sessionExpiryInterval: 600 } });
  const telemetryClient = await publisher('telemetry');
  const commandClient = await publisher('commands');
  // how often the command publisher sent each command: a resend after the failover is the publisher's duplicate, not sluice's
  const sends = new Map<string, number>();
  commandClient.on('packetsend', (p) => {
    if (p.cmd === 'publish') sends.set(String(p.payload), (sends.get(String(p.payload)) ?? 0) + 1);
  });
  t.after(() => Promise.all([telemetryClient.endAsync(true), commandClient.endAsync(true)]));
  const telemetry = publishUntilStopped(telemetryClient, 1, 500, (n) => `${prefix}/plant/z/sensor/s-${n % 10}/telemetry`);
  const commands = publishUntilStopped(commandClient, 2, 20, (n) => `${prefix}/plant/z/valve/v-${n % 5}/command`, {
    body: (n) => `cmd-${n}`,
    properties: (n) => ({ userProperties: { commandId: `cmd-${n}` } }),
  });

  await sleep(8_000);
  const killedAt = await pair.kill(pair.primary);
  const activeAt = await pair.backupActive();
  await sleep(12_000);
  await Promise.all([telemetry.stop(), commands.stop()]);

  // every telemetry message the pair acknowledged is in Kafka
  const expected = telemetry.ackedAt.size;
  const records = await readTopic(t, telemetryTopic, (rs) => new Set(seqCounts(rs).keys()).size >= expected, 90_000);
  const counts = seqCounts(records);
  const lost = [...telemetry.ackedAt.keys()].filter((n) => !counts.has(n));
  const duplicates = [...counts.values()].reduce((d, c) => d + c - 1, 0);
  // every acknowledged command is recorded, once
  const auditDir = join(sluice.dir, 'audit');
  await waitFor('the acknowledged commands recorded', () => new Set(commandsRecorded(auditDir)).size >= commands.ackedAt.size, 60_000).catch(() => {});
  const recorded = commandsRecorded(auditDir);
  const recordedSet = new Set(recorded);
  const commandsLost = [...commands.ackedAt.keys()].filter((n) => !recordedSet.has(`cmd-${n}`));
  const recordedTwice = recorded.length - recordedSet.size;
  if (recordedTwice > 0) {
    const seen = new Map<string, unknown[]>();
    verifyAuditLog(auditDir, {
      onFrame: (f) => {
        if (f.record.type !== 'command') return;
        const p = Buffer.from(f.record.payload, 'base64').toString();
        seen.set(p, [...(seen.get(p) ?? []), { seq: f.record.seq, packetId: f.record.packetId, at: f.record.receivedAt }]);
      },
    });
    t.diagnostic(`twice: ${JSON.stringify([...seen].filter(([, v]) => v.length > 1).map(([p, v]) => [p, `sent ${sends.get(p)} times`, v]))}`);
  }

  // what sluice said, and when
  const lines = jsonLines(sluice.logs);
  const at = (l: Record<string, unknown> | undefined) => (l === undefined ? undefined : typeof l.time === 'number' ? l.time : Date.parse(String(l.time)));
  const lostLine = lines.find((l) => l.msg === 'broker connection lost; reconnecting');
  const backLine = lines.find((l) => l.msg === 'reconnected to the broker' && String(l.url).endsWith(`:${pair.backup.mqttPort}`));
  const resent = [...sends.values()].filter((n) => n > 1).length;
  const resolved = (await sluice.metrics(['sluice_audit_idempotent_duplicates_total'])).get('sluice_audit_idempotent_duplicates_total') ?? 0;
  const report = {
    telemetryAcked: expected,
    telemetryLost: lost.length,
    telemetryDuplicates: duplicates,
    commandsAcked: commands.ackedAt.size,
    commandsLost: commandsLost.length,
    commandsRecordedTwice: recordedTwice,
    commandsResentByPublisher: resent,
    commandsResolvedByKey: resolved,
    backupActiveMs: activeAt - killedAt,
    sluiceNoticedMs: (at(lostLine) ?? Number.NaN) - killedAt,
    sluiceBackMs: (at(backLine) ?? Number.NaN) - killedAt,
    sessionPresent: backLine?.sessionPresent,
    peakRssMiB: sluice.peakRssMiB(),
  };
  t.diagnostic(`artemis failover: ${JSON.stringify(report)}`);
  assert.ok(backLine, 'sluice reconnected to the backup');
  assert.equal(backLine.sessionPresent, true, 'the backup had the replicated session');
  assert.deepEqual(lost.slice(0, 20), [], `${lost.length} acknowledged telemetry messages not in Kafka`);
  assert.deepEqual(commandsLost.slice(0, 20), [], `${commandsLost.length} acknowledged commands not recorded`);
  assert.equal(recordedTwice, 0, 'no command recorded twice');
  assert.ok(expected > 5_000 && commands.ackedAt.size > 200, `load: ${expected} telemetry, ${commands.ackedAt.size} commands acknowledged`);
});

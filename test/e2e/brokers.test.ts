// The core promises on each MQTT 5 broker of the stack (Mosquitto 2 and HiveMQ CE): at least
// once across sluice SIGKILLs with two workers splitting a share group and in flight never
// above Receive Maximum, and QoS 2 exactly once across SIGKILLs. Then what each broker itself
// does, probed with raw and MQTT.js clients (no sluice), which docs/operations.md's per-broker
// table reports: does it respect a client's Receive Maximum, does a shared subscription restored
// from its persistence deliver before a member subscribes again, are a disconnected member's
// in-flight messages handed to another member or held for it, is an offline member of a share
// group given its turn, and does the rest of a group get a burst its holder unsubscribed from.
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import type { CommandRecord } from '../../src/audit/log/format.ts';
import { verifyAuditLog } from '../../src/audit/tools/verify.ts';
import { type BrokerKind, brokerFor, brokerKinds } from '../support/broker.ts';
import { publishNumbered, readTopic, seqCounts, telemetryToKafka, waitFor } from '../support/e2e-helpers.ts';
import { sluiceFor } from '../support/sluice-process.ts';
import { config, printLogsOnFailure, unique } from '../support/stack.ts';

const stackUrl: Record<BrokerKind, string> = {
  mosquitto: `mqtt://${config.host}:${config.mqtt.port}`,
  hivemq: `mqtt://${config.host}:${config.hivemq.port}`,
};

/** Below HiveMQ CE's ~1,100 msg/s delivery to one subscriber here (docs/operations.md). */
const rate: Record<BrokerKind, number> = { mosquitto: 2_000, hivemq: 500 };

for (const kind of brokerKinds) {
  const url = stackUrl[kind];

  test(`${kind}: two workers split a share group, one SIGKILLed twice: 0 lost, in flight never above Receive Maximum`, { timeout: 180_000 }, async (t) => {
    printLogsOnFailure(t);
    const prefix = unique('core');
    const topic = `${prefix}.telemetry`;
    const group = unique('group');
    const receiveMaximum = 100;
    const workers = [0, 1].map(() => sluiceFor(t, { rules: telemetryToKafka(prefix, topic), group, config: { mqtt: { url, receiveMaximum } } }));
    await Promise.all(workers.map((w) => w.start()));
    const pub = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: unique('pub'), reconnectPeriod: 0 });
    t.after(() => pub.endAsync(true));
    const total = rate[kind] * 8;
    const publishing = publishNumbered(pub, total, (seq) => `${prefix}/s/z/sensor/dev-${seq % 40}/telemetry`, { ratePerSecond: rate[kind] });
    const maxInFlight: number[] = [];
    const victim = workers[1] as (typeof workers)[number];
    let victimBefore = 0; // its counters start again at each restart
    for (let kill = 0; kill < 2; kill++) {
      await sleep(2_500);
      const m = await victim.metrics();
      maxInFlight.push(m.get('sluice_inflight_messages_max') ?? 0);
      victimBefore += m.get('sluice_messages_received_total{qos="1"}') ?? 0;
      await victim.stop('SIGKILL');
      await sleep(300);
      await victim.start();
    }
    await publishing;
    const records = await readTopic(t, topic, (r) => seqCounts(r).size >= total, 90_000, 15_000);
    const counts = seqCounts(records);
    for (const w of workers) maxInFlight.push((await w.metrics()).get('sluice_inflight_messages_max') ?? 0);
    const shares = await Promise.all(workers.map(async (w) => (await w.metrics()).get('sluice_messages_received_total{qos="1"}') ?? 0));
    shares[1] = (shares[1] ?? 0) + victimBefore;
    const missing = [...Array(total).keys()].filter((s) => !counts.has(s));
    t.diagnostic(
      `${kind}: ${total} published, ${counts.size} in Kafka (${records.length - counts.size} duplicates); in flight at most ${maxInFlight.join(', ')} (Receive Maximum ${receiveMaximum}); received ${shares.join(', ')}`,
    );
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} lost`);
    assert.ok(Math.max(...maxInFlight) <= receiveMaximum, `in flight ${Math.max(...maxInFlight)} > ${receiveMaximum}`);
    assert.ok(Math.min(...shares) > 0, `each worker takes a share (${shares.join(', ')})`);
  });

  // HiveMQ CE grants QoS 1 for a QoS 2 shared subscription: commands then arrive at least once,
  // sluice warns, and the route's idempotency key makes the record exactly once; the publish
  // order is asserted where the broker grants QoS 2 (what it does at QoS 1 is shown)
  test(`${kind}: QoS 2 commands, sluice SIGKILLed twice: each recorded exactly once, in publish order at QoS 2`, { timeout: 180_000 }, async (t) => {
    printLogsOnFailure(t);
    const prefix = unique('eo');
    const rules = (audit: unknown) => ({
      subscriptions: [{ filter: `${prefix}/+/+/+/+/command`, qos: 2 }],
      routes: [{ name: 'commands', match: `${prefix}/{site}/{zone}/{deviceType}/{deviceId}/command`, audit, payload: 'raw' }],
    });
    const sluice = sluiceFor(t, { rules: rules(true), config: { mqtt: { url, commands: { receiveMaximum: 20 } }, audit: { dir: 'audit' } } });
    await sluice.start();
    await sleep(500); // the grant's warning follows the "subscribed" line start() waits for
    const downgraded = sluice.logs.includes('the broker granted QoS 1 for a QoS 2 subscription');
    t.diagnostic(`${kind}: QoS 2 shared subscription granted ${downgraded ? 'QoS 1 (sluice warned; the route gets an idempotency key)' : 'QoS 2'}`);
    if (downgraded) {
      await sluice.stop('SIGTERM');
      sluice.writeRules(rules({ idempotencyKey: { jsonPath: '$.n' } }));
      await sluice.start();
    }
    const pub = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: unique('pub'), reconnectPeriod: 0 });
    t.after(() => pub.endAsync(true));
    const total = 600;
    const publishing = (async () => {
      for (let n = 0; n < total; n += 10) {
        await Promise.all(Array.from({ length: 10 }, (_, j) => pub.publishAsync(`${prefix}/p/z/valve/v-1/command`, JSON.stringify({ n: n + j }), { qos: 2 })));
        await sleep(100);
      }
    })();
    for (let kill = 0; kill < 2; kill++) {
      await sleep(2_000);
      await sluice.stop('SIGKILL');
      await sleep(300);
      await sluice.start();
    }
    await publishing;
    const records: CommandRecord[] = [];
    await waitFor(
      `${total} recorded`,
      () => {
        records.length = 0;
        const r = verifyAuditLog(join(sluice.dir, 'audit'), { onFrame: (f) => f.record.type === 'command' && records.push(f.record) });
        return (r.ok || r.problem?.kind === 'torn-tail') && records.length >= total;
      },
      60_000,
    ).catch(() => {});
    await sleep(1_500); // a second record would show now
    records.length = 0;
    const result = verifyAuditLog(join(sluice.dir, 'audit'), { onFrame: (f) => f.record.type === 'command' && records.push(f.record) });
    assert.equal(result.ok, true, `verify: ${result.problem?.message}`);
    const ns = records.map((r) => (JSON.parse(Buffer.from(r.payload, 'base64').toString()) as { n: number }).n);
    const m = await sluice.metrics();
    t.diagnostic(
      `${kind}: ${records.length} records of ${total} commands; since the last start, redeliveries recognised by packet id ${m.get('sluice_audit_redeliveries_total') ?? 0}, by key ${m.get('sluice_audit_idempotent_duplicates_total') ?? 0}`,
    );
    if (!downgraded) {
      assert.deepEqual(ns, [...Array(total).keys()], 'each once, in order');
      return;
    }
    // At QoS 1 the broker hands what was in flight to a dropped member back to the group, and
    // HiveMQ CE may send it behind what was queued meanwhile (seen on CI: 490-539 in flight at
    // the second SIGKILL came after 540-579, on the new connection). sluice records in arrival
    // order, so the log shows the broker's order; each command is still there exactly once.
    t.diagnostic(`${kind}: arrival order ${orderRuns(ns).join(', ')}`);
    assert.deepEqual(
      [...ns].sort((a, b) => a - b),
      [...Array(total).keys()],
      'each once',
    );
  });

  test(`${kind}: what the broker itself does (raw client, reported in docs/operations.md)`, { timeout: 120_000 }, async (t) => {
    const broker = await brokerFor(t, kind, { autosaveSeconds: 1 });
    const filter = 'probe/#';

    // 1. Receive Maximum 5, nothing acknowledged: how many PUBLISHes does it send?
    const held = await rawClient(broker.url, { clientId: unique('rm'), receiveMaximum: 5, clean: true });
    await held.subscribe(filter);
    const pub = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: unique('pub'), reconnectPeriod: 0 });
    await Promise.all(Array.from({ length: 50 }, (_, i) => pub.publishAsync('probe/rm', String(i), { qos: 1 })));
    await windowFilled(held);
    const sentPastMax = held.publishes.length;
    held.close();
    // ...and the same for QoS 2 (nothing PUBRECed)
    const held2 = await rawClient(broker.url, { clientId: unique('rm2'), receiveMaximum: 5, clean: true });
    await held2.subscribe('probe2/#', 2);
    await Promise.all(Array.from({ length: 15 }, (_, i) => pub.publishAsync('probe2/rm', String(i), { qos: 2 })));
    await windowFilled(held2);
    const sentPastMaxQos2 = held2.publishes.length;
    held2.close();

    // ...and for messages queued while a persistent member was away (an earlier measurement
    // on Mosquitto 2.0.11 saw ~1,400 sent to a client advertising 10 once messages had queued;
    // docs/operations.md, Per broker)
    const awayId = unique('away');
    const away = await rawClient(broker.url, { clientId: awayId, receiveMaximum: 5, clean: false, sessionExpiry: 600 });
    await away.subscribe('probe3/#');
    away.close();
    await sleep(200);
    await Promise.all(Array.from({ length: 50 }, (_, i) => pub.publishAsync('probe3/q', String(i), { qos: 1 })));
    const back = await rawClient(broker.url, { clientId: awayId, receiveMaximum: 5, clean: false, sessionExpiry: 600 });
    await windowFilled(back);
    const sentPastMaxQueued = back.publishes.length;
    back.close();

    // 2. A disconnected member's in-flight messages: A takes 5 and never acks, then drops;
    //    does B (same share group) get them, or are they held for A's session?
    const group = unique('g');
    const a = await rawClient(broker.url, { clientId: unique('a'), receiveMaximum: 5, clean: false, sessionExpiry: 600 });
    await a.subscribe(`$share/${group}/probe/handoff/#`);
    await Promise.all(Array.from({ length: 5 }, (_, i) => pub.publishAsync('probe/handoff/x', `h${i}`, { qos: 1 })));
    await waitFor('A holds 5', () => a.publishes.length >= 5, 5_000).catch(() => {});
    const b = await rawClient(broker.url, { clientId: unique('b'), receiveMaximum: 100, clean: true, ack: true });
    await b.subscribe(`$share/${group}/probe/handoff/#`);
    a.close();
    await sleep(2_000);
    const handedOn = b.publishes.length;
    b.close();

    // 3. A persistent shared subscriber; the broker killed and restarted from its save; 200
    //    published before the member reconnects, then it resumes without subscribing again.
    const sharedGroup = unique('g');
    const member = unique('m');
    const s1 = await rawClient(broker.url, { clientId: member, receiveMaximum: 1000, clean: false, sessionExpiry: 600, ack: true });
    await s1.subscribe(`$share/${sharedGroup}/probe/restart/#`);
    await sleep(kind === 'mosquitto' ? 2_500 : 500); // past Mosquitto's save (every second here)
    s1.close();
    await pub.endAsync(true);
    await broker.kill('SIGKILL');
    await broker.start();
    const pub2 = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: unique('pub'), reconnectPeriod: 0 });
    await Promise.all(Array.from({ length: 200 }, (_, i) => pub2.publishAsync('probe/restart/x', `r${i}`, { qos: 1 })));
    const s2 = await rawClient(broker.url, { clientId: member, receiveMaximum: 1000, clean: false, sessionExpiry: 600, ack: true });
    await sleep(1_500);
    const afterRestartWithoutSubscribe = s2.publishes.length;
    await Promise.all(Array.from({ length: 200 }, (_, i) => pub2.publishAsync('probe/restart/x', `q${i}`, { qos: 1 })));
    await sleep(1_500);
    const laterWithoutSubscribe = s2.publishes.length - afterRestartWithoutSubscribe;
    s2.close();
    await pub2.endAsync(true);

    t.diagnostic(
      `${kind}: Receive Maximum 5, nothing acked: QoS 1 ${sentPastMax} PUBLISHes sent (${sentPastMax > 5 ? 'over-sent' : 'respected'}), QoS 2 ${sentPastMaxQos2} (${sentPastMaxQos2 > 5 ? 'over-sent' : 'respected'}), queued while away ${sentPastMaxQueued} (${sentPastMaxQueued > 5 ? 'over-sent' : 'respected'})`,
    );
    t.diagnostic(
      `${kind}: a member dropped holding 5 unacked: ${handedOn} handed on to the other member (${handedOn >= 5 ? 'handed on' : 'held for its session'})`,
    );
    t.diagnostic(
      `${kind}: persistent shared subscription after a SIGKILL + restart, not subscribed again: ${afterRestartWithoutSubscribe} of 200 published before the member came back, ${laterWithoutSubscribe} of 200 after (${afterRestartWithoutSubscribe + laterWithoutSubscribe === 0 ? 'matches nothing until a member subscribes again' : 'delivers'})`,
    );
    // the figures are the broker's, not sluice's: this test asserts only that the probes ran
    assert.ok(sentPastMax >= 1 && sentPastMaxQos2 >= 1 && sentPastMaxQueued >= 1, 'the Receive Maximum probes received messages');
  });

  test(`${kind}: what a share group does when a member leaves (MQTT.js clients, reported in docs/operations.md)`, { timeout: 120_000 }, async (t) => {
    const pub = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: unique('pub'), reconnectPeriod: 0 });
    t.after(() => pub.endAsync(true));
    const member = async (clientId: string, group: string, filter: string) => {
      const c = await mqtt.connectAsync(url, { protocolVersion: 5, clientId, clean: false, reconnectPeriod: 0, properties: { sessionExpiryInterval: 600 } });
      const m = { c, n: 0 };
      c.on('message', () => m.n++);
      await c.subscribeAsync(`$share/${group}/${filter}`, { qos: 1 });
      return m;
    };

    // 1. One member online, one offline with its session kept: 100 published.
    const g1 = unique('g');
    const online = await member(unique('on'), g1, 'probe/offline/#');
    const offline = await member(unique('off'), g1, 'probe/offline/#');
    await offline.c.endAsync();
    await Promise.all(Array.from({ length: 100 }, (_, i) => pub.publishAsync('probe/offline/x', `o${i}`, { qos: 1 })));
    await waitFor('the online member to take its share', () => online.n >= 100, 3_000).catch(() => {});
    await online.c.endAsync(true);

    // 2. Two members, a burst of 1,000; the one holding it unsubscribes after 100 and stays
    //    connected: does the other get the rest? Repeated, as the broker splits a burst differently each time.
    const outcomes: string[] = [];
    for (let run = 0; run < 4; run++) {
      const g = unique('g');
      const filter = `probe/unsub${run}/#`;
      const [a, b] = await Promise.all([member(unique('a'), g, filter), member(unique('b'), g, filter)]);
      await Promise.all(Array.from({ length: 1_000 }, (_, i) => pub.publishAsync(`probe/unsub${run}/x`, `u${i}`, { qos: 1 })));
      await waitFor('100 taken', () => a.n + b.n >= 100, 10_000);
      const [busy, other] = a.n >= b.n ? [a, b] : [b, a];
      const otherBefore = other.n;
      await busy.c.unsubscribeAsync(`$share/${g}/${filter}`);
      await waitFor('the rest', () => a.n + b.n >= 1_000, 5_000).catch(() => {});
      outcomes.push(`${a.n + b.n} of 1,000 (the other member had ${otherBefore} at the unsubscribe)`);
      await Promise.all([a.c.endAsync(true), b.c.endAsync(true)]);
    }
    t.diagnostic(`${kind}: an offline member of a share group: the online member got ${online.n} of 100 (${online.n >= 100 ? 'skipped' : 'given its turn'})`);
    t.diagnostic(`${kind}: the member holding a burst unsubscribes part way: ${outcomes.join('; ')}`);
    // the figures are the broker's, not sluice's: this test asserts only that the probes ran
    assert.ok(online.n > 0, 'the online member received messages');
  });
}

const v5 = { protocolVersion: 5 } as const;

/** Until the client holds its window of 5 (a cold broker can be slow), then a while for any over-sending. */
async function windowFilled(client: RawClient): Promise<void> {
  await waitFor('the window filled', () => client.publishes.length >= 5, 10_000).catch(() => {});
  await sleep(1_500);
}

interface RawClient {
  readonly publishes: Array<{ topic: string; messageId?: number | undefined }>;
  subscribe(filter: string, qos?: 1 | 2): Promise<void>;
  close(): void;
}

/** A bare MQTT 5 client: acks only when asked to (ack: true), so a broker's own sending shows. */
async function rawClient(
  url: string,
  o: { clientId: string; receiveMaximum: number; clean: boolean; sessionExpiry?: number; ack?: boolean },
): Promise<RawClient> {
  const { hostname, port } = new URL(url);
  const sock: Socket = connect(Number(port), hostname);
  const parser = mqttPacket.parser({ protocolVersion: 5 });
  const publishes: RawClient['publishes'] = [];
  const connack = Promise.withResolvers<void>();
  let suback: PromiseWithResolvers<void> | undefined;
  parser.on('packet', (p) => {
    if (p.cmd === 'connack') connack.resolve();
    else if (p.cmd === 'suback') suback?.resolve();
    else if (p.cmd === 'publish') {
      publishes.push({ topic: p.topic, messageId: p.messageId });
      if (o.ack && p.qos === 1) sock.write(mqttPacket.generate({ cmd: 'puback', messageId: p.messageId as number }, v5));
    }
  });
  sock.on('data', (d) => parser.parse(d));
  sock.on('error', () => {});
  sock.write(
    mqttPacket.generate(
      {
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 5,
        clean: o.clean,
        clientId: o.clientId,
        keepalive: 60,
        properties: { receiveMaximum: o.receiveMaximum, ...(o.sessionExpiry ? { sessionExpiryInterval: o.sessionExpiry } : {}) },
      },
      v5,
    ),
  );
  await connack.promise;
  return {
    publishes,
    async subscribe(filter, qos = 1) {
      suback = Promise.withResolvers<void>();
      sock.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos }] }, v5));
      await suback.promise;
    },
    close() {
      sock.destroy();
    },
  };
}

/** 0-489, 540-579, 490-539, 580-599: the runs of consecutive numbers, in the order they came. */
function orderRuns(ns: readonly number[]): string[] {
  const runs: string[] = [];
  for (let i = 0; i < ns.length; ) {
    let j = i;
    while (j + 1 < ns.length && ns[j + 1] === (ns[j] ?? 0) + 1) j++;
    runs.push(i === j ? `${ns[i]}` : `${ns[i]}-${ns[j]}`);
    i = j + 1;
  }
  return runs;
}

// sluice audit verify | replay | prove | check-proof | keygen: the audit log's offline tools (src/audit/tools/).
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { fetchArchivedLogs } from '../audit/archive/fetch.ts';
import { parseS3Url, type S3Settings, S3Store, s3ErrorText } from '../audit/archive/s3.ts';
import { type Anchor, parseAnchors } from '../audit/log/anchors.ts';
import type { CheckpointRecord } from '../audit/log/format.ts';
import { segmentFiles } from '../audit/log/format.ts';
import { liveWriter } from '../audit/log/writer-lock.ts';
import { anchorsOfLog, checkAnchors } from '../audit/tools/anchor-check.ts';
import { CrossWorkerCheck, type CrossWorkerFinding, describeFinding, mergeAuditLogs } from '../audit/tools/merge.ts';
import { writeAuditMetrics } from '../audit/tools/metrics-file.ts';
import { checkProof, ProofRefusedError, proveConsistency, proveInclusion } from '../audit/tools/prove.ts';
import { crossWorkerWindowMs, parseBound, ReplayRefusedError, type ReplayTarget, replay } from '../audit/tools/replay.ts';
import { exitCodes as auditExitCodes, repairTail, verifyAuditLog } from '../audit/tools/verify.ts';
import { mqttCredentialsOf } from '../config/load.ts';
import { movedServiceKeys, serviceConfig } from '../config/service-schema.ts';
import { loadYamlFile } from '../config/yaml-file.ts';
import { credentialOptions } from '../mqtt-credentials.ts';
import { createKafkaClient } from '../sinks/kafka/client/create-client.ts';
import { kafkaConfig } from '../sinks/kafka/config.ts';
import { type Command, configFileOf, configHelp, flag, type Parsed, str, UsageError } from './command.ts';
import { jsonLinesTarget, kafkaTarget, mqttTarget } from './replay-targets.ts';

const s3EndpointHelp = 'for s3://bucket/prefix logs: an S3-compatible server (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS)';
const archiveNotes =
  "a log may be an archive, s3://bucket/prefix (audit.archive): read as the version first written under Object Lock; a prefix whose workers sit under it (prefix/worker/) is one log per worker; credentials from the AWS SDK's chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, a profile), region from AWS_REGION (default us-east-1)";
const exitNotes =
  'exit codes: 0 ok, 3 torn tail, 4 corrupt frame, 5 chain/sequence broken (missing, inserted, reordered, edited), 6 signature, 7 no audit log there, 8 shorter than an anchored checkpoint (truncated, or an older copy), 9 differs from an anchored checkpoint (a fork)';

type Values = Parsed['values'];

/** Why DIR holds no log to check, or undefined when it has segments. A path that is not a directory is a usage error. */
function noLogThere(dir: string, name = dir): string | undefined {
  if (!existsSync(dir)) return `${name} does not exist`;
  if (!statSync(dir).isDirectory()) throw new UsageError(`${name} is not a directory: give the audit log's directory (audit.dir)`);
  return segmentFiles(dir).length === 0 ? `${name} holds no audit log segments (a deleted log, or not the log's directory)` : undefined;
}

/** An Ed25519 public key file, or a usage error naming it. */
function publicKeyOf(file: string | undefined) {
  if (file === undefined) return undefined;
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    throw new UsageError(`--public-key ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    return createPublicKey(pem);
  } catch {
    throw new UsageError(`--public-key ${file}: not a public key in PEM (sluice audit keygen writes audit-signing.pub)`);
  }
}

/** The S3 connection for s3:// logs: --s3-endpoint or the AWS SDK's variables; credentials from the SDK's chain. */
function s3SettingsOf(values: Values): S3Settings {
  const endpoint = str(values, 's3-endpoint') ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
  return { endpoint, region: process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1', forcePathStyle: endpoint !== undefined };
}

interface NamedLogs {
  /** Local directories, in the order given; an archive address may stand for several (one per worker). */
  readonly dirs: string[];
  readonly names: string[];
  /** Removes the local copies of archived logs. */
  readonly cleanup: () => void;
}

/** Runs `use` on the logs named (archives fetched, what they show written to `out`), then removes the archives' local copies. */
async function withLogs(
  positionals: readonly string[],
  values: Values,
  out: NodeJS.WritableStream,
  use: (logs: NamedLogs) => Promise<number>,
): Promise<number> {
  const logs = await logsOf(positionals, values, (line) => out.write(`${line}\n`));
  try {
    return await use(logs);
  } finally {
    logs.cleanup();
  }
}

/** Directories as they are; each s3://bucket/prefix fetched from the archive into a private copy, its findings printed. */
async function logsOf(positionals: readonly string[], values: Values, say: (line: string) => void): Promise<NamedLogs> {
  const dirs: string[] = [];
  const names: string[] = [];
  const cleanups: Array<() => void> = [];
  const cleanup = () => {
    for (const c of cleanups) c();
  };
  try {
    for (const p of positionals) {
      if (!p.startsWith('s3://')) {
        dirs.push(p);
        names.push(p);
        continue;
      }
      const { bucket, prefix } = parseS3Url(p);
      const store = await S3Store.open(s3SettingsOf(values), bucket);
      try {
        const fetched = await fetchArchivedLogs(store, prefix).catch((err: unknown) => {
          throw new UsageError(`${p}: cannot read the archive: ${s3ErrorText(err)}`);
        });
        cleanups.push(fetched.cleanup);
        if (fetched.logs.length === 0) {
          dirs.push(fetched.root); // empty: reported as no log, under the address given
          names.push(p);
        }
        for (const log of fetched.logs) {
          say(`archive: ${log.name}: ${log.segments} segments read`);
          for (const n of log.notes) say(`archive: WARNING ${n}`);
          dirs.push(log.dir);
          names.push(log.name);
        }
      } finally {
        store.close();
      }
    }
    return { dirs, names, cleanup };
  } catch (err) {
    cleanup();
    throw err;
  }
}

export const auditVerifyCommand: Command = {
  name: 'audit verify',
  args: 'DIR [DIR...]',
  summary:
    "check an audit log: frames, CRC-32C, the SHA-256 chain, sequence, signed checkpoints and tree heads; several (every worker's) also as one: a command recorded by two workers is reported",
  options: {
    'public-key': { type: 'string' },
    anchors: { type: 'string' },
    worker: { type: 'string' },
    'repair-tail': { type: 'boolean' },
    'metrics-file': { type: 'string' },
    's3-endpoint': { type: 'string' },
  },
  help: {
    'public-key': 'Ed25519 public key (PEM): check the signed checkpoints',
    anchors: "a witness's anchors (JSON lines, audit.anchors.file): the log must reach and agree with every anchored checkpoint",
    worker: "whose anchors to compare (default: the only worker the anchors name, else the log's)",
    'repair-tail': 'cut a torn last record left by a crash (never while a writer is live)',
    'metrics-file': "write the results for node_exporter's textfile collector",
    's3-endpoint': s3EndpointHelp,
  },
  notes: `${exitNotes}\n${archiveNotes}`,
  async run({ values, positionals }) {
    if (positionals.length === 0) throw new UsageError('audit verify needs the log directory');
    if (flag(values, 'repair-tail') && positionals.some((p) => p.startsWith('s3://'))) {
      throw new UsageError('--repair-tail repairs a directory: an archive is never written to (and holds sealed segments only)');
    }
    return withLogs(positionals, values, process.stdout, (logs) => verifyLogs(logs, values));
  },
};

async function verifyLogs({ dirs, names }: NamedLogs, values: Values): Promise<number> {
  const [dir] = dirs as [string];
  const keyFile = str(values, 'public-key');
  const metricsFile = str(values, 'metrics-file');
  const publicKey = publicKeyOf(keyFile);
  if (dirs.length > 1) {
    for (const one of ['anchors', 'repair-tail', 'metrics-file']) {
      if (values[one] !== undefined && values[one] !== false) throw new UsageError(`--${one} takes one log: verify the logs one by one for it`);
    }
    return verifyMany(dirs, names, publicKey);
  }
  const anchorFile = str(values, 'anchors');
  let anchors: Anchor[] | undefined;
  if (anchorFile !== undefined) {
    try {
      anchors = parseAnchors(readFileSync(anchorFile, 'utf8'), anchorFile);
    } catch (err) {
      throw new UsageError(
        `--anchors ${(err as NodeJS.ErrnoException).code ? `${anchorFile}: cannot read it (${(err as NodeJS.ErrnoException).code})` : (err as Error).message}`,
      );
    }
  }
  const none = noLogThere(dir, names[0]);
  if (none !== undefined) {
    const newest = anchors && Math.max(0, ...anchors.map((a) => a.seq));
    process.stdout.write(`FAIL no-log: ${none}${newest ? `; the anchors say it held records up to seq ${newest}` : ''}\n`);
    // a scheduled check of a deleted log must raise its alert, not fall silent
    if (metricsFile) {
      await writeAuditMetrics(metricsFile, 'verify', names[0] as string, {
        ok: false,
        segments: 0,
        records: 0,
        commands: 0,
        checkpoints: 0,
        lastSeq: 0,
        head: '',
        problem: { kind: 'no-log', segment: '', offset: 0, seq: 0, message: none },
      });
    }
    return auditExitCodes['no-log'];
  }
  const writer = liveWriter(dir);
  // while verifying, what the anchors are compared with: the checkpoints at their places, and whose log this is
  const anchoredSeqs = new Set(anchors?.map((a) => a.seq));
  const checkpoints = new Map<number, CheckpointRecord>();
  let logWorker: string | undefined;
  const onFrame = ({ record }: { record: { seq: number; type: string; worker?: string } }) => {
    if (record.type === 'checkpoint' && anchoredSeqs.has(record.seq)) checkpoints.set(record.seq, record as CheckpointRecord);
    else if (record.worker !== undefined) logWorker = record.worker;
  };
  let result = verifyAuditLog(dir, { publicKey, onFrame });
  if (result.problem?.kind === 'torn-tail' && flag(values, 'repair-tail')) {
    if (writer !== undefined) {
      process.stdout.write(`refusing to repair: process ${writer} is writing this log (its last record may be a write in progress); stop it first\n`);
      return auditExitCodes['torn-tail'];
    }
    const cut = repairTail(dir, result.problem);
    process.stdout.write(`repaired: cut ${cut} bytes of a torn last record at ${result.problem.segment} offset ${result.problem.offset}\n`);
    checkpoints.clear();
    result = verifyAuditLog(dir, { publicKey, onFrame });
  }
  let anchored = '';
  if (anchors && !result.problem) {
    let mine: ReturnType<typeof anchorsOfLog>;
    try {
      mine = anchorsOfLog(anchors, str(values, 'worker'), logWorker);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const check = checkAnchors(mine.anchors, result.lastSeq, checkpoints, publicKey);
    if (check.finding)
      result = {
        ...result,
        ok: false,
        problem: { kind: check.finding.kind, segment: '', offset: 0, seq: check.finding.seq, message: check.finding.message },
      };
    else
      anchored =
        check.anchors === 0
          ? `; no anchor of worker ${mine.worker} in ${anchorFile}: nothing compared`
          : `; ${check.anchors} anchors of worker ${mine.worker} agree (the newest, checkpoint ${check.newest}; ${result.lastSeq - check.newest} records after it not anchored yet)`;
  }
  if (metricsFile) await writeAuditMetrics(metricsFile, 'verify', names[0] as string, result);
  const summary = `${result.records} records (${result.commands} commands, ${result.checkpoints} checkpoints) in ${result.segments} segments; last seq ${result.lastSeq}; head ${result.head}`;
  if (result.problem) {
    const p = result.problem;
    const where = p.segment === '' ? `anchors, at seq ${p.seq}` : `${p.segment} offset ${p.offset}, at seq ${p.seq}`;
    process.stdout.write(
      `FAIL ${p.kind}: ${where}: ${p.message}\n` +
        `${
          p.kind === 'torn-tail'
            ? writer !== undefined
              ? `process ${writer} is writing this log: the last record may be a write in progress, not a crash; verify again, or stop the writer first\n`
              : 'a crash cut the last record short; --repair-tail removes exactly that record\n'
            : ''
        }checked before it: ${summary}\n`,
    );
    return auditExitCodes[p.kind];
  }
  const unsigned = result.unsignedTail ? `; ${result.unsignedTail} records after the last signed checkpoint` : '';
  process.stdout.write(`ok: ${summary}${publicKey ? `; signatures valid${unsigned}` : '; signatures not checked (no --public-key)'}${anchored}\n`);
  return 0;
}

/** Several workers' logs: each verified, then read as one in receive order for what only that view shows. */
function verifyMany(dirs: readonly string[], names: readonly string[], publicKey: ReturnType<typeof publicKeyOf>): number {
  let exit = 0;
  const kept = [...dirs.keys()].filter((i) => {
    const none = noLogThere(dirs[i] as string, names[i]);
    if (none === undefined) return true;
    process.stdout.write(`${names[i]}: FAIL no-log: ${none}\n`);
    exit ||= auditExitCodes['no-log'];
    return false;
  });
  const present = kept.map((i) => dirs[i] as string);
  const presentNames = kept.map((i) => names[i] as string);
  const cross = new CrossWorkerCheck(crossWorkerWindowMs);
  const reader = mergeAuditLogs(present, { publicKey });
  let results: ReturnType<typeof verifyAuditLog>[];
  for (;;) {
    const next = reader.next();
    if (next.done) {
      results = next.value;
      break;
    }
    cross.add(next.value);
  }
  for (const [i, r] of results.entries()) {
    const p = r.problem;
    const summary = `${r.records} records (${r.commands} commands, ${r.checkpoints} checkpoints); last seq ${r.lastSeq}`;
    process.stdout.write(
      p ? `${presentNames[i]}: FAIL ${p.kind}: ${p.segment} offset ${p.offset}, at seq ${p.seq}: ${p.message}\n` : `${presentNames[i]}: ok: ${summary}\n`,
    );
    if (p) exit ||= auditExitCodes[p.kind];
  }
  const commands = results.reduce((n, r) => n + r.commands, 0);
  process.stdout.write(
    `${exit === 0 ? 'ok' : 'FAIL'}: ${present.length} logs, ${commands} commands read as one in receive order${crossWorkerNote(cross.findings)}\n`,
  );
  for (const f of cross.findings.slice(0, 20)) process.stdout.write(`  ${describeFinding(f)}\n`);
  if (cross.findings.length > 20) process.stdout.write(`  (and ${cross.findings.length - 20} more)\n`);
  return exit;
}

function crossWorkerNote(findings: readonly CrossWorkerFinding[]): string {
  if (findings.length === 0) return '; no command recorded in two logs';
  const same = findings.filter((f) => f.kind === 'same-command').length;
  const keys = findings.length - same;
  return `; ${same} command(s) recorded by two workers within ${crossWorkerWindowMs / 1000} s, ${keys} idempotency key(s) in two logs:`;
}

export const auditReplayCommand: Command = {
  name: 'audit replay',
  args: 'DIR [DIR...]',
  summary:
    'replay recorded commands in order: JSON lines on stdout (default), a Kafka topic, or republished under an MQTT prefix; verifies first and refuses a log that fails unless --force',
  options: {
    config: { type: 'string' },
    from: { type: 'string' },
    to: { type: 'string' },
    topic: { type: 'string' },
    'public-key': { type: 'string' },
    force: { type: 'boolean' },
    kafka: { type: 'string' },
    brokers: { type: 'string' },
    'mqtt-prefix': { type: 'string' },
    url: { type: 'string' },
    'metrics-file': { type: 'string' },
    's3-endpoint': { type: 'string' },
  },
  help: {
    config: `${configHelp.config}: Kafka and MQTT connection settings`,
    from: 'first sequence number or ISO-8601 time',
    to: 'last sequence number or ISO-8601 time',
    topic: 'only commands whose topic matches this MQTT filter',
    'public-key': 'Ed25519 public key (PEM): check the signed checkpoints first',
    force: 'replay what can be read from a log that fails verification',
    kafka: 'replay to this Kafka topic',
    brokers: "HOST:PORT,... (default: the config's kafka.brokers)",
    'mqtt-prefix': 'republish under PREFIX/<topic>',
    url: "broker URL (default: the config's mqtt.url)",
    'metrics-file': "write the results for node_exporter's textfile collector",
    's3-endpoint': s3EndpointHelp,
  },
  notes: `${exitNotes}\n${archiveNotes}`,
  async run({ values, positionals }) {
    if (positionals.length === 0) throw new UsageError('audit replay needs the log directory');
    if (str(values, 'kafka') !== undefined && str(values, 'mqtt-prefix') !== undefined) throw new UsageError('replay to --kafka or to --mqtt-prefix, not both');
    // stdout may carry the replayed commands: what the archive shows goes to stderr
    return withLogs(positionals, values, process.stderr, (logs) => replayLogs(logs, values));
  },
};

async function replayLogs({ dirs, names }: NamedLogs, values: Values): Promise<number> {
  const configFile = configFileOf(values);
  const kafkaTopic = str(values, 'kafka');
  const mqttPrefix = str(values, 'mqtt-prefix');
  const keyFile = str(values, 'public-key');
  const metricsFile = str(values, 'metrics-file');
  const bound = (v: string | undefined, what: string) => {
    if (v === undefined) return undefined;
    try {
      return parseBound(v, what);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  };
  const selection = { from: bound(str(values, 'from'), '--from'), to: bound(str(values, 'to'), '--to'), topic: str(values, 'topic') };
  if (dirs.length > 1 && metricsFile !== undefined) throw new UsageError('--metrics-file takes one log: replay the logs one by one for it');
  if (dirs.length > 1 && [selection.from, selection.to].some((b) => b !== undefined && 'seq' in b)) {
    throw new UsageError('a sequence number belongs to one log: with several, --from and --to take times (ISO-8601)');
  }
  const publicKey = publicKeyOf(keyFile);
  for (const [i, d] of dirs.entries()) {
    const none = noLogThere(d, names[i]);
    if (none !== undefined) {
      process.stderr.write(`sluice: nothing to replay: ${none}\n`);
      return auditExitCodes['no-log'];
    }
  }
  const service = () => loadYamlFile(configFile, serviceConfig, process.env, { moved: movedServiceKeys }).value;
  let target: ReplayTarget;
  let where: string;
  if (kafkaTopic !== undefined) {
    const k = kafkaConfig.parse((service() as Record<string, unknown>).kafka);
    const brokers = str(values, 'brokers')?.split(',') ?? k.brokers;
    target = await kafkaTarget(await createKafkaClient(k, { clientId: 'sluice-replay', brokers }), kafkaTopic);
    where = `Kafka topic ${kafkaTopic}`;
  } else if (mqttPrefix !== undefined) {
    const m = service().mqtt;
    const url = str(values, 'url') ?? m.url;
    const client = await mqtt.connectAsync(url, {
      protocolVersion: 5,
      clientId: `sluice-replay-${process.pid}`,
      reconnectPeriod: 0,
      ...credentialOptions(mqttCredentialsOf(service())),
    });
    target = mqttTarget(client, mqttPrefix);
    where = `${url} under ${mqttPrefix}/`;
  } else {
    target = jsonLinesTarget(process.stdout);
    where = 'stdout';
  }
  const tty = process.stderr.isTTY === true;
  const started = Date.now();
  let lastDraw = 0;
  const progress = (read: number, replayed: number, total: number, final = false) => {
    const now = Date.now();
    if (!tty || (!final && now - lastDraw < 100)) return;
    lastDraw = now;
    const rate = read / Math.max(0.001, (now - started) / 1000);
    const width = 30;
    const filled = Math.min(width, Math.round((width * read) / Math.max(1, total)));
    process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${read}/${total} commands read, ${replayed} replayed, ${rate.toFixed(0)}/s `);
  };
  try {
    const r = await replay(dirs, target, { ...selection, publicKey, force: flag(values, 'force'), onProgress: progress, names });
    if (metricsFile) await writeAuditMetrics(metricsFile, 'replay', names[0] as string, r.verify, r.replayed);
    progress(r.replayed + r.skipped, r.replayed, r.replayed + r.skipped, true);
    if (tty) process.stderr.write('\n');
    const secs = (Date.now() - started) / 1000;
    const forced = r.forcedPast
      ? `; FORCED past ${r.forcedPast.kind} at ${r.forcedPast.segment} offset ${r.forcedPast.offset}, seq ${r.forcedPast.seq}: ${r.forcedPast.message}`
      : '';
    const from = dirs.length > 1 ? ` from ${dirs.length} logs in receive order` : '';
    if (tty || where !== 'stdout' || dirs.length > 1)
      process.stderr.write(`replayed ${r.replayed} commands${from} to ${where} (${r.skipped} outside the selection) in ${secs.toFixed(1)} s${forced}\n`);
    if (dirs.length > 1) {
      process.stderr.write(`${crossWorkerNote(r.crossWorker).replace(/^; /, '').replace(/:$/, '')}\n`);
      for (const f of r.crossWorker.slice(0, 20)) process.stderr.write(`  ${describeFinding(f)}\n`);
    }
    return r.forcedPast ? auditExitCodes[r.forcedPast.kind] : 0;
  } catch (err) {
    if (err instanceof ReplayRefusedError) {
      if (metricsFile) await writeAuditMetrics(metricsFile, 'replay', names[0] as string, err.verify, 0);
      process.stderr.write(`sluice: ${err.message}\n`);
      return auditExitCodes[err.verify.problem?.kind ?? 'corrupt'];
    }
    throw err;
  } finally {
    await target.close();
  }
}

/** A record or checkpoint number given on the command line. */
function seqArg(v: string | undefined, what: string): number {
  const n = Number(v);
  if (v === undefined || !Number.isSafeInteger(n) || n < 1)
    throw new UsageError(`${what} must be a record number (1, 2, ...), got ${v === undefined ? 'nothing' : `"${v}"`}`);
  return n;
}

export const auditProveCommand: Command = {
  name: 'audit prove',
  args: 'DIR SEQ | DIR --consistency A B',
  summary: "a proof an auditor checks with the public key alone: record SEQ is in a signed checkpoint's Merkle tree, or checkpoint B's tree extends A's",
  options: { checkpoint: { type: 'string' }, consistency: { type: 'boolean' }, 'public-key': { type: 'string' } },
  help: {
    checkpoint: 'the checkpoint (its seq) to prove against; default the newest',
    consistency: 'prove that checkpoint B extends checkpoint A (both seqs of checkpoints)',
    'public-key': 'Ed25519 public key (PEM): check the signed checkpoints while reading',
  },
  notes:
    'the proof is JSON on stdout (docs/audit-log.md, Proofs); sluice audit check-proof checks it. Exit codes: 0 ok, 1 no such proof (a record after the newest checkpoint, a checkpoint without a tree), 3-7 the log fails verification (as verify)',
  async run({ values, positionals }) {
    const [dir, a, b] = positionals;
    if (dir === undefined) throw new UsageError('audit prove needs the log directory');
    const publicKey = publicKeyOf(str(values, 'public-key'));
    const none = noLogThere(dir);
    if (none !== undefined) {
      process.stderr.write(`sluice: nothing to prove: ${none}\n`);
      return auditExitCodes['no-log'];
    }
    try {
      const proof = flag(values, 'consistency')
        ? proveConsistency(dir, seqArg(a, 'A'), seqArg(b, 'B'), { publicKey })
        : proveInclusion(dir, seqArg(a, 'SEQ'), {
            publicKey,
            ...(str(values, 'checkpoint') === undefined ? {} : { checkpoint: seqArg(str(values, 'checkpoint'), '--checkpoint') }),
          });
      process.stdout.write(`${JSON.stringify(proof, null, 2)}\n`);
      return 0;
    } catch (err) {
      if (!(err instanceof ProofRefusedError)) throw err;
      process.stderr.write(`sluice: ${err.message}\n`);
      return err.verify?.problem ? auditExitCodes[err.verify.problem.kind] : 1;
    }
  },
};

export const auditCheckProofCommand: Command = {
  name: 'audit check-proof',
  args: 'FILE',
  summary: "check a proof from audit prove with the public key alone (no log needed): the checkpoints' signatures, then the hashes",
  options: { 'public-key': { type: 'string' } },
  help: { 'public-key': 'Ed25519 public key (PEM) the checkpoints were signed with (required)' },
  notes:
    'FILE - reads stdin. Exit codes: 0 the proof holds, 5 it does not (the record, the path or the log changed), 6 a checkpoint signature is invalid, 2 not a proof',
  async run({ values, positionals }) {
    const [file] = positionals;
    if (file === undefined) throw new UsageError('audit check-proof needs the proof file (- for stdin)');
    const keyFile = str(values, 'public-key');
    if (keyFile === undefined) throw new UsageError('audit check-proof needs --public-key: a proof is only as good as the key that signed its checkpoint');
    const publicKey = publicKeyOf(keyFile) as NonNullable<ReturnType<typeof publicKeyOf>>;
    let proof: unknown;
    try {
      proof = JSON.parse(readFileSync(file === '-' ? 0 : file, 'utf8'));
    } catch (err) {
      throw new UsageError(`${file}: not a proof (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    const r = checkProof(proof, publicKey);
    if (r.ok) {
      process.stdout.write(`ok: ${r.summary}\n`);
      return 0;
    }
    process.stdout.write(`FAIL ${r.kind}: ${r.message}\n`);
    return r.kind === 'signature' ? 6 : r.kind === 'proof' ? 5 : 2;
  },
};

export const auditKeygenCommand: Command = {
  name: 'audit keygen',
  args: 'DIR',
  summary: 'an Ed25519 key pair for signed checkpoints (audit-signing.key, audit-signing.pub)',
  options: {},
  help: {},
  async run({ positionals }) {
    const [dir] = positionals;
    if (dir === undefined) throw new UsageError('audit keygen needs a directory for the key files');
    const keyFile = join(dir, 'audit-signing.key');
    const pubFile = join(dir, 'audit-signing.pub');
    // never replace a key: checkpoints already signed would no longer verify against the new one
    for (const f of [keyFile, pubFile]) {
      if (existsSync(f))
        throw new UsageError(
          `${f} exists: refusing to replace a signing key pair (checkpoints signed with it verify only against its public key); move both files away first`,
        );
    }
    if (existsSync(dir) && !statSync(dir).isDirectory()) throw new UsageError(`${dir} is not a directory`);
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    mkdirSync(dir, { recursive: true });
    // wx: fails rather than overwrite, if another keygen wrote the file meanwhile
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
    writeFileSync(pubFile, publicKey.export({ type: 'spki', format: 'pem' }), { flag: 'wx' });
    process.stdout.write(`wrote ${join(dir, 'audit-signing.key')} (keep it secret) and ${join(dir, 'audit-signing.pub')} (for verify --public-key)\n`);
    return 0;
  },
};

// `npm run stack:up|stack:down|stack:status|stack:logs [server...]`: the local stack of real
// servers (Mosquitto, HiveMQ, Kafka, InfluxDB, VictoriaMetrics, Apicurio Registry, an S3 server) on loopback.
import { LocalStack } from './local-stack.ts';
import { PrerequisiteError } from './prerequisites.ts';
import { stackConfig } from './stack-config.ts';

const usage = `usage: stack.ts <up|down|status|logs> [server...]
  up       install what is missing, start the servers, wait until each answers a real client call
  down     stop the servers (data stays in the run directory)
  status   pid, readiness and endpoints of each server; exit 1 if one is not ready
  logs     the last lines of each server's log
servers: mosquitto, hivemq, kafka, influxdb, victoria-metrics, apicurio, s3 (default: all of these);
  kafka-1 kafka-2 kafka-3: the optional 3-node KRaft cluster (replication 3, min.insync.replicas 2),
  started only when named
environment: SLUICE_STACK_DIR (run dir), SLUICE_CACHE_DIR, SLUICE_MQTT_PORT, SLUICE_MQTTS_PORT,
  SLUICE_KAFKA_PORT, SLUICE_KAFKA_CONTROLLER_PORT, SLUICE_KAFKA_TLS_PORT, SLUICE_KAFKA_SASL_PORT,
  SLUICE_KAFKA_CLUSTER_PORT (29192-29194), SLUICE_KAFKA_CLUSTER_CONTROLLER_PORT (29292-29294),
  SLUICE_INFLUX_PORT, SLUICE_INFLUX_RPC_PORT, SLUICE_VM_PORT, SLUICE_REGISTRY_PORT, SLUICE_S3_PORT, SLUICE_KAFKA_HEAP (default 512m),
  SLUICE_KAFKA_CLUSTER_HEAP (384m per node), SLUICE_NO_INSTALL=1 (never apt-get install)`;

async function main(argv: string[]): Promise<number> {
  const [command, ...names] = argv;
  const stack = new LocalStack(stackConfig());
  switch (command) {
    case 'up': {
      const t0 = Date.now();
      await stack.up(names);
      process.stderr.write(`stack: up in ${((Date.now() - t0) / 1000).toFixed(1)}s; run dir ${stack.config.runDir}\n`);
      printStatus(await stack.status());
      return 0;
    }
    case 'down':
      await stack.down(names);
      return 0;
    case 'status': {
      const status = await stack.status();
      printStatus(status);
      return status.every((s) => s.ready) ? 0 : 1;
    }
    case 'logs':
      process.stdout.write(`${stack.logTails(40)}\n`);
      return 0;
    default:
      process.stderr.write(`${usage}\n`);
      return command === undefined || command === '--help' || command === '-h' ? 0 : 2;
  }
}

function printStatus(status: Awaited<ReturnType<LocalStack['status']>>): void {
  for (const s of status) {
    const head = `${s.ready ? 'up  ' : 'DOWN'} ${s.name.padEnd(17)} ${s.pid === undefined ? '' : `pid ${s.pid}  `}${s.ready ? '' : s.detail}`;
    process.stdout.write(`${head.trimEnd()}\n`);
    for (const e of s.endpoints) process.stdout.write(`     ${''.padEnd(17)} ${e}\n`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    // A missing prerequisite is one line; anything else keeps its stack for a bug report.
    const text = err instanceof PrerequisiteError ? `stack: ${err.message}` : `stack: ${(err as Error).stack ?? String(err)}`;
    process.stderr.write(`${text}\n`);
    process.exit(1);
  },
);

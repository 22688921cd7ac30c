// Apicurio Registry 3 (the Quarkus build from Maven Central, io.apicurio:apicurio-registry-app,
// tar.gz "all"), the stack's schema registry: it serves the Confluent-compatible API under
// /apis/ccompat/v7, in-memory storage, loopback only. It needs Java 21+ (found on PATH, in
// JAVA_HOME or under /usr/lib/jvm).
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { mavenUnpacked } from '../maven.ts';
import { findJava, PrerequisiteError } from '../prerequisites.ts';
import type { StackConfig } from '../stack-config.ts';
import type { LocalServer } from './local-server.ts';

export const apicurioVersion = '3.3.3';
const artifact = `io.apicurio:apicurio-registry-app:${apicurioVersion}:tar.gz:all`;

export function apicurioServer(config: StackConfig): LocalServer {
  const dir = join(config.runDir, 'apicurio');
  const home = join(config.cacheDir, `apicurio-registry-${apicurioVersion}`);
  const base = `http://${config.host}:${config.registry.port}`;
  return {
    name: 'apicurio',
    files: { pidFile: join(dir, 'apicurio.pid'), logFile: join(dir, 'apicurio.log'), marker: 'quarkus-run.jar' },
    ports: [{ port: config.registry.port, variable: 'SLUICE_REGISTRY_PORT' }],
    startTimeoutMs: 90_000,
    debianPackages: [],

    async prepare() {
      findJava(21, 'Apicurio Registry 3');
      mkdirSync(dir, { recursive: true });
      await mavenUnpacked(home, artifact, `Apicurio Registry ${apicurioVersion}`);
      if (!existsSync(join(home, 'quarkus-run.jar')))
        throw new PrerequisiteError(`${artifact} unpacked into ${home} without quarkus-run.jar: remove the directory and try again`);
    },

    launchSpec() {
      return {
        command: findJava(21, 'Apicurio Registry 3'),
        args: [
          '-Xms64m',
          '-Xmx256m',
          '-XX:+UseSerialGC',
          '-Djava.awt.headless=true',
          `-Dquarkus.http.host=${config.host}`,
          `-Dquarkus.http.port=${config.registry.port}`,
          // the management interface (health, metrics) binds 0.0.0.0:9000; "enabled" is fixed
          // when Apicurio is built (it stays on whatever is passed here), its host is not
          '-Dquarkus.management.enabled=false',
          `-Dquarkus.management.host=${config.host}`,
          '-Dquarkus.log.level=WARN',
          '-Dquarkus.log.category."io.apicurio".level=INFO',
          '-jar',
          join(home, 'quarkus-run.jar'),
        ],
        cwd: dir,
      };
    },

    async probe() {
      const res = await fetch(`${base}/apis/ccompat/v7/subjects`, { signal: AbortSignal.timeout(2_000) });
      if (!res.ok) throw new Error(`GET /apis/ccompat/v7/subjects answered ${res.status}`);
    },

    endpoints() {
      return [`${base}/apis/ccompat/v7 (Apicurio Registry ${apicurioVersion}, Confluent-compatible API, in memory)`];
    },
  };
}

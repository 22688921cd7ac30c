// Mosquitto 2 from Debian's package: plain MQTT and an mTLS listener on loopback, persistence on.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { requireExecutable } from '../prerequisites.ts';
import type { StackConfig } from '../stack-config.ts';
import { renderTemplate } from '../template.ts';
import { ensureCertificates, tlsFiles } from '../tls.ts';
import type { LocalServer } from './local-server.ts';
import { mqttProbe } from './mqtt-probe.ts';

export function mosquittoServer(config: StackConfig): LocalServer {
  const dir = join(config.runDir, 'mosquitto');
  const confFile = join(dir, 'mosquitto.conf');
  return {
    name: 'mosquitto',
    files: { pidFile: join(dir, 'mosquitto.pid'), logFile: join(dir, 'mosquitto.log'), marker: 'mosquitto' },
    ports: [
      { port: config.mqtt.port, variable: 'SLUICE_MQTT_PORT' },
      { port: config.mqtt.tlsPort, variable: 'SLUICE_MQTTS_PORT' },
      { port: config.mqtt.authPort, variable: 'SLUICE_MQTT_AUTH_PORT' },
    ],
    startTimeoutMs: 20_000,
    debianPackages: [
      { executable: 'mosquitto', pkg: 'mosquitto' },
      { executable: 'mosquitto_sub', pkg: 'mosquitto-clients' },
      { executable: 'openssl', pkg: 'openssl' },
    ],

    async prepare() {
      const tls = ensureCertificates(config.runDir);
      mkdirSync(join(dir, 'data'), { recursive: true });
      const passwordFile = join(dir, 'passwords');
      execFileSync(
        requireExecutable('mosquitto_passwd', '`apt-get install mosquitto`'),
        ['-c', '-b', passwordFile, config.mqtt.username, config.mqtt.password],
        { stdio: 'ignore' },
      );
      renderTemplate(join(config.repoRoot, 'deploy/local/mosquitto/mosquitto.conf.template'), confFile, {
        user: userInfo().username,
        dataDir: join(dir, 'data'),
        port: config.mqtt.port,
        tlsPort: config.mqtt.tlsPort,
        tlsDir: tls.dir,
        authPort: config.mqtt.authPort,
        passwordFile,
      });
    },

    launchSpec() {
      return { command: requireExecutable('mosquitto', '`apt-get install mosquitto`'), args: ['-c', confFile], cwd: dir };
    },

    probe() {
      return mqttProbe(config.host, config.mqtt.port);
    },

    endpoints() {
      const tls = tlsFiles(config.runDir);
      return [
        `mqtt://${config.host}:${config.mqtt.port}`,
        `mqtts://${config.host}:${config.mqtt.tlsPort} (mTLS: ca ${tls.ca}, client ${tls.clientCert})`,
        `mqtt://${config.host}:${config.mqtt.authPort} (user ${config.mqtt.username}, password ${config.mqtt.password})`,
      ];
    },
  };
}

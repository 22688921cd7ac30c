// A broker connection of the CLI's own: the config's credentials, a clean session that lives
// only as long as the command (no queued messages after it), never in the share group.
import mqtt from 'mqtt';
import { type LoadedConfig, mqttCredentialsOf } from '../config/load.ts';
import { credentialOptions } from '../mqtt-credentials.ts';

export function connectOwnSession(c: LoadedConfig, clientId: string, timeoutMs: number): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync(c.service.mqtt.url, {
    protocolVersion: 5,
    clientId,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: timeoutMs,
    properties: { sessionExpiryInterval: 0 },
    ...credentialOptions(mqttCredentialsOf(c.service)),
  });
}

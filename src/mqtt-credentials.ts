// How sluice's MQTT connections log in: the config's username, password (a secret, resolved by
// the caller) and TLS files, as MQTT.js takes them. Every connection uses it: the worker's
// sessions, the Sparkplug state feed, and the CLI's check, tap and replay.
import { readFileSync } from 'node:fs';
import type { IClientOptions } from 'mqtt';

export interface MqttCredentials {
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  readonly tls?:
    | { readonly ca?: string | undefined; readonly cert?: string | undefined; readonly key?: string | undefined; readonly rejectUnauthorized: boolean }
    | undefined;
}

/** Username, password and TLS files as MQTT.js takes them (the files read now). */
export function credentialOptions(o: MqttCredentials): IClientOptions {
  const options: IClientOptions = {};
  if (o.username !== undefined) options.username = o.username;
  if (o.password !== undefined) options.password = o.password;
  if (o.tls) {
    if (o.tls.ca) options.ca = readFileSync(o.tls.ca);
    if (o.tls.cert) options.cert = readFileSync(o.tls.cert);
    if (o.tls.key) options.key = readFileSync(o.tls.key);
    options.rejectUnauthorized = o.tls.rejectUnauthorized;
  }
  return options;
}

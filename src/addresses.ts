// Addresses in the config, checked at load so a typo is a file:line error and not a client that
// connects somewhere else or retries for ever (mqtt://host:notaport used to connect to :1883).

/** undefined when `url` is a URL with one of `protocols` and, if it names one, a port 1-65535; else why not. */
export function urlProblem(url: string, protocols: readonly string[]): string | undefined {
  const hint = `(${protocols.map((p) => `${p}//host:port`).join(', ')})`;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `"${url}" is not a URL ${hint}`;
  }
  if (!protocols.includes(u.protocol)) return `"${url}": the scheme must be ${protocols.map((p) => p.slice(0, -1)).join(', ')} ${hint}`;
  if (u.hostname === '') return `"${url}" names no host ${hint}`;
  return undefined;
}

/** undefined when `address` is host:port with a port 1-65535 (IPv6 as [::1]:9092); else why not. */
export function hostPortProblem(address: string): string | undefined {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]/]+):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) return `"${address}" is not host:port with a port 1-65535`;
  return undefined;
}

/** An MQTT connection's servers, url first then the failover URLs, as MQTT.js's `servers` takes them (it tries the next on each attempt). */
export function mqttServers(url: string, failover: readonly string[]): Array<{ host: string; port: number; protocol: 'mqtt' | 'mqtts' }> {
  return [url, ...failover].map((u) => {
    const parsed = new URL(u);
    const protocol = parsed.protocol === 'mqtts:' ? 'mqtts' : 'mqtt';
    return {
      host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: parsed.port === '' ? (protocol === 'mqtts' ? 8883 : 1883) : Number(parsed.port),
      protocol,
    };
  });
}

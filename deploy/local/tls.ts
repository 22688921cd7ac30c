// A throwaway CA with a server certificate (localhost, 127.0.0.1, ::1) and a client certificate,
// made with openssl once per run directory, for the broker's mTLS listener and its tests.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireExecutable } from './prerequisites.ts';

export interface TlsFiles {
  readonly dir: string;
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
}

export function tlsFiles(runDir: string): TlsFiles {
  const dir = join(runDir, 'tls');
  return {
    dir,
    ca: join(dir, 'ca.crt'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.crt'),
    clientKey: join(dir, 'client.key'),
  };
}

export function ensureCertificates(runDir: string): TlsFiles {
  const files = tlsFiles(runDir);
  if ([files.ca, files.serverCert, files.serverKey, files.clientCert, files.clientKey].every(existsSync)) return files;
  const openssl = requireExecutable('openssl', '`apt-get install openssl`');
  mkdirSync(files.dir, { recursive: true });
  const run = (...args: string[]) => execFileSync(openssl, args, { cwd: files.dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '3650',
    '-subj',
    '/CN=sluice local CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  const issue = (name: string, subject: string, ext: string) => {
    writeFileSync(join(files.dir, `${name}.ext`), ext);
    run('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
    run(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '825',
      '-extfile',
      `${name}.ext`,
    );
  };
  issue('server', '/CN=localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n');
  issue('client', '/CN=sluice-worker', 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n');
  return files;
}

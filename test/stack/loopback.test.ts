// Every server the local stack runs listens on loopback only: a port on 0.0.0.0 would expose a
// developer's broker, Kafka or registry to their whole network. Read from /proc: each running
// server's listening sockets (its own and its children's) and their local addresses.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { test } from 'node:test';
import { runningPid } from '../../deploy/local/daemon.ts';
import { stack } from '../support/stack.ts';

/** Listening TCP sockets by inode: their local address and port. */
function listening(): Map<string, string> {
  const found = new Map<string, string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] !== '0A') continue; // LISTEN
      const [hex, port] = (f[1] as string).split(':') as [string, string];
      found.set(f[9] as string, `${address(hex)}:${Number.parseInt(port, 16)}`);
    }
  }
  return found;
}

/** /proc/net's little-endian hex address as text (IPv4, or IPv6 in its four 32-bit words). */
function address(hex: string): string {
  const words = hex.match(/.{8}/g) as string[];
  const bytes = words.flatMap((w) => (w.match(/../g) as string[]).reverse().map((b) => Number.parseInt(b, 16)));
  if (bytes.length === 4) return bytes.join('.');
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return `::ffff:${bytes.slice(12).join('.')}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] as number) << 8) | (bytes[i + 1] as number)).toString(16));
  return groups.join(':');
}

function isLoopback(a: string): boolean {
  const host = a.slice(0, a.lastIndexOf(':'));
  return host.startsWith('127.') || host.startsWith('::ffff:127.') || host === '0:0:0:0:0:0:0:1';
}

/** The process and its descendants. */
function family(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const all = [pid];
  for (let i = 0; i < all.length; i++) all.push(...(children.get(all[i] as number) ?? []));
  return all;
}

function socketInodes(pid: number): string[] {
  const inodes: string[] = [];
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      const target = (() => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {
          return '';
        }
      })();
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m) inodes.push(m[1] as string);
    }
  } catch {
    // gone meanwhile
  }
  return inodes;
}

test('every running server of the local stack listens on loopback only', () => {
  const sockets = listening();
  const seen: string[] = [];
  const exposed: string[] = [];
  for (const server of stack.servers) {
    const pid = runningPid(server.files);
    if (pid === undefined) continue;
    for (const p of family(pid)) {
      for (const inode of socketInodes(p)) {
        const at = sockets.get(inode);
        if (at === undefined) continue;
        seen.push(`${server.name} ${at}`);
        if (!isLoopback(at)) exposed.push(`${server.name} (pid ${p}) listens on ${at}`);
      }
    }
  }
  assert.ok(seen.length >= 3, `listening sockets of the stack found: ${seen.join(', ') || 'none'}`);
  assert.deepEqual(exposed, [], `servers listening beyond loopback:\n${exposed.join('\n')}`);
});

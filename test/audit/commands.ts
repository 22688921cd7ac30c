// A command record for the audit tests: number i, received i ms after a fixed time, with a
// correlation id and a user property; a test overrides what it is about.
import type { NewCommand } from '../../src/audit/log/format.ts';

export function testCommand(i: number, overrides: Partial<NewCommand> = {}): NewCommand {
  return {
    receivedAt: new Date(1_700_000_000_000 + i).toISOString(),
    topic: `acme/malta/floor-3/valve/v-${i % 3}/command`,
    levels: { org: 'acme', deviceId: `v-${i % 3}` },
    qos: 2,
    retain: false,
    packetId: i,
    properties: { correlationData: Buffer.from(`c-${i}`).toString('base64'), userProperties: { issuedBy: 'op-7' } },
    payload: Buffer.from(JSON.stringify({ command: 'set-point', value: i })).toString('base64'),
    ...overrides,
  };
}

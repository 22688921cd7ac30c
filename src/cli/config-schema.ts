// sluice config schema: the JSON schema of the service config (for editors).
import { z } from 'zod';
import { serviceConfig } from '../config/service-schema.ts';
import type { Command } from './command.ts';

export const configSchemaCommand: Command = {
  name: 'config schema',
  summary: 'the JSON schema of the service config file (for editors)',
  options: {},
  help: {},
  async run() {
    process.stdout.write(`${JSON.stringify(z.toJSONSchema(serviceConfig, { io: 'input' }), null, 2)}\n`);
    return 0;
  },
};

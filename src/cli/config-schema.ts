// sluice config schema: the JSON schema of the service config (for editors).
import { jsonText, serviceJsonSchema } from '../config/reference.ts';
import type { Command } from './command.ts';

export const configSchemaCommand: Command = {
  name: 'config schema',
  summary: 'the JSON schema of the service config file (for editors)',
  options: {},
  help: {},
  async run() {
    process.stdout.write(jsonText(serviceJsonSchema()));
    return 0;
  },
};

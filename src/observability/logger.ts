// pino JSON logs, one line per event (never per message). Secrets are redacted by path as a
// second line of defence; the first is that no secret value is ever put in a log object.
import pino, { type Logger } from 'pino';

export function createLogger(level: string, destination: pino.DestinationStream | number = 1): Logger {
  return pino(
    {
      level,
      base: { service: 'sluice' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['password', '*.password', 'token', '*.token', 'sasl', '*.sasl'], censor: '[redacted]' },
    },
    typeof destination === 'number' ? pino.destination({ dest: destination, sync: false }) : destination,
  );
}

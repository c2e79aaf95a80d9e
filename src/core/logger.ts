import { pino, type DestinationStream, type Logger } from 'pino';
import { formatLogLine, type LogFormat } from './log-format.ts';

/**
 * Logs on stdout, secrets redacted wherever they appear: JSON lines, or readable lines (`pretty`, and
 * `auto` when stdout is a terminal, as when someone runs `npm start` by hand).
 */
export function createLogger(level: string, bindings: Record<string, unknown> = {}, format: LogFormat = 'json'): Logger {
  const pretty = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  const destination: DestinationStream | undefined = pretty ? { write: (line: string) => void process.stdout.write(formatLogLine(line)) } : undefined;
  const options = {
    level,
    base: { pid: process.pid, ...bindings },
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        'req.headers["x-metal-enroll-token"]',
        'req.headers["x-csrf-token"]',
        'res.headers["set-cookie"]',
        '*.current_password',
        '*.new_password',
        'password',
        '*.password',
        'token',
        '*.token',
        'config.adminPassword',
        'config.secretKey',
        'config.enrollToken',
        'config.metricsToken',
      ],
      censor: '[redacted]',
    },
  };
  return destination ? pino(options, destination) : pino(options);
}

export type { Logger };

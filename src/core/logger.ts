import { pino, type Logger } from 'pino';

/** Structured JSON logs on stdout; secrets are redacted wherever they appear. */
export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({
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
  });
}

export type { Logger };

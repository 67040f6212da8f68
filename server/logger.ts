/** The server's pino logger. Tokens and authorization headers never reach a log line. */
import { pino, type Logger } from 'pino';

// Paths are case-sensitive in pino: header maps are lowercased before they are logged.
const REDACT = [
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'headers.cookie',
  '*.headers.authorization',
  '*.headers.cookie',
  '*.headers["proxy-authorization"]',
];

export type { Logger };

/** JSON lines on stdout (or the given destination, for tests). */
export function createLogger(options: { level?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  const opts = { level: options.level ?? 'info', redact: { paths: REDACT, censor: '[redacted]' }, base: { service: 'flowtest' } };
  return options.destination ? pino(opts, options.destination) : pino(opts);
}

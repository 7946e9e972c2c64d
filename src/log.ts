/**
 * pino JSON logs on stdout. pino-pretty (a dev dependency, ~46 µs/line) is used only when stdout is a TTY
 * and it is installed; production and tests always get plain JSON lines.
 */
import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

export interface LogOptions {
  readonly level: string;
  /** Where lines go; default stdout (async SonicBoom, flushed on exit). Tests pass an in-memory stream. */
  readonly destination?: DestinationStream;
}

export function createLogger(opts: LogOptions): Logger {
  const base = {
    level: opts.level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Never log key material or passphrases, whatever object reaches a log call.
    redact: { paths: ['*.key', '*.passphrase', 'key', 'passphrase', '*.authorization', 'req.headers.authorization'], censor: '[redacted]' },
  };
  if (opts.destination) return pino(base, opts.destination);
  if (process.stdout.isTTY && prettyAvailable()) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } });
  }
  return pino(base, pino.destination({ dest: 1, sync: false }));
}

function prettyAvailable(): boolean {
  try {
    createRequire(import.meta.url).resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

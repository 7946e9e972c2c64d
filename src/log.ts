/**
 * pino logs on stdout. `log.format`: `json` (one JSON object a line), `pretty` (pino-pretty, a dev
 * dependency at ~46 µs/line — for people, not for production), or `auto` (pretty when stdout is a TTY
 * and pino-pretty is installed, else JSON). Tests always get JSON lines in memory.
 *
 * Also here: the per-key rate limiter that keeps a flood of failing handshakes from filling the disk.
 */
import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

export type LogFormat = 'auto' | 'json' | 'pretty';

export interface LogOptions {
  readonly level: string;
  /** Default `auto`. */
  readonly format?: LogFormat;
  /** Where lines go; default stdout (async SonicBoom, flushed on exit). Tests pass an in-memory stream. */
  readonly destination?: DestinationStream;
}

/**
 * Field names whose values are never written, whatever object reaches a log call: private keys,
 * passphrases, secrets, bearer tokens, PEM blobs. (Access lines carry no headers at all.)
 */
export const REDACTED_PATHS: readonly string[] = [
  'key', '*.key', 'passphrase', '*.passphrase', 'secret', '*.secret', 'pem', '*.pem', 'private_key', '*.private_key',
  'authorization', '*.authorization', 'req.headers.authorization', 'headers.authorization',
];

/**
 * pino's isoTime, its string made once per millisecond: every line written in the same millisecond (a
 * busy proxy writes several access lines in one) shares it. The same bytes as isoTime.
 */
export function isoTimeOncePerMs(): () => string {
  let at = -1;
  let field = '';
  return () => {
    const now = Date.now();
    if (now !== at) {
      at = now;
      field = `,"time":"${new Date(now).toISOString()}"`;
    }
    return field;
  };
}

export function createLogger(opts: LogOptions): Logger {
  const base = {
    level: opts.level,
    base: { pid: process.pid },
    timestamp: isoTimeOncePerMs(),
    redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' },
  };
  if (opts.destination) return pino(base, opts.destination);
  const format = opts.format ?? 'auto';
  const pretty = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  if (pretty && prettyAvailable()) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } });
  }
  // maxWrite 4096 (PIPE_BUF): every write(2) is whole lines of at most 4 KiB, which the kernel keeps
  // atomic on a pipe, so the lines of several workers sharing stdout never interleave mid-line.
  const log = pino(base, pino.destination({ dest: 1, sync: false, maxWrite: 4096 }));
  if (format === 'pretty') {
    log.warn({ msg: 'log.format is pretty but pino-pretty is not installed (it is a dev dependency): writing JSON lines' });
  }
  return log;
}

function prettyAvailable(): boolean {
  try {
    createRequire(import.meta.url).resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

export type LimitedLevel = 'debug' | 'info' | 'warn' | 'error';

/** Logs at most `burst` lines per key in each window; the rest are counted and summarised. */
export interface LogLimiter {
  /** Logs `line` at `level` unless `key` has used its burst in the current window; then counts it. */
  write(level: LimitedLevel, key: string, line: Record<string, unknown>): void;
  /** Writes one summary line per key with suppressed lines, now. */
  flush(): void;
  /** flush() and stop the timer. */
  close(): void;
}

export interface LogLimiterOptions {
  /** The summary line's msg, e.g. "TLS handshake failures suppressed". */
  readonly msg: string;
  /** The summary line's field naming the key, e.g. "reason". */
  readonly field: string;
  /** Lines per key per window (default 10). */
  readonly burst?: number;
  /** Window length (default 60 000 ms). */
  readonly windowMs?: number;
  readonly now?: () => number;
}

interface KeyState {
  windowStart: number;
  count: number;
  suppressed: number;
  level: LimitedLevel;
}

/**
 * A flood (a scanner, a client looping with an expired certificate) costs at most `burst` lines per key
 * per window plus one summary line `{msg, <field>: key, suppressed: N, window_ms}` at the window's end,
 * so the log shows that it happened and how much, without growing with the attack. Metrics count every
 * event regardless.
 */
export function createLogLimiter(log: Logger, opts: LogLimiterOptions): LogLimiter {
  const burst = opts.burst ?? 10;
  const windowMs = opts.windowMs ?? 60_000;
  const now = opts.now ?? Date.now;
  const keys = new Map<string, KeyState>();
  let timer: NodeJS.Timeout | undefined;

  const flush = (): void => {
    clearTimeout(timer);
    timer = undefined;
    for (const [key, s] of keys) {
      if (s.suppressed === 0) continue;
      log[s.level]({ msg: opts.msg, [opts.field]: key, suppressed: s.suppressed, window_ms: windowMs, burst });
      s.suppressed = 0;
    }
  };
  return {
    write(level, key, line) {
      const t = now();
      let s = keys.get(key);
      if (s === undefined) {
        s = { windowStart: t, count: 0, suppressed: 0, level };
        keys.set(key, s);
      } else if (t - s.windowStart >= windowMs) {
        if (s.suppressed > 0) flush();
        s.windowStart = t;
        s.count = 0;
      }
      s.count += 1;
      if (s.count <= burst) {
        log[level](line);
        return;
      }
      s.suppressed += 1;
      s.level = level;
      if (timer === undefined) {
        timer = setTimeout(flush, Math.max(1, s.windowStart + windowMs - t));
        timer.unref();
      }
    },
    flush,
    close: flush,
  };
}

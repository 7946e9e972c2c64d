/** An in-memory pino destination: every line parsed as JSON (pino's own sink() idea). */
import type { DestinationStream } from 'pino';

export interface LogSink extends DestinationStream {
  readonly lines: Record<string, unknown>[];
  /** Lines whose msg equals `msg`. */
  find(msg: string): Record<string, unknown>[];
}

export function logSink(): LogSink {
  const lines: Record<string, unknown>[] = [];
  return {
    lines,
    write(chunk: string) {
      for (const line of chunk.split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
    },
    find(msg: string) {
      return lines.filter((l) => l.msg === msg);
    },
  };
}

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

/** Parses a child process's stdout as JSON log lines as they arrive (a non-JSON line is kept as `unparsed`). */
export function collectJsonLines(stream: NodeJS.ReadableStream): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = [];
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (d: string) => {
    partial += d;
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      if (line.trim() === '') continue;
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ unparsed: line });
      }
    }
  });
  return lines;
}

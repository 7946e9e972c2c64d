/**
 * The load generators: ApacheBench (`ab`, the one common tool that presents a client certificate) and
 * `openssl s_time` (ab never resumes a TLS session; s_time -reuse does). Both are run as child processes
 * and their text output parsed here; nothing is asserted on the numbers.
 */
import { spawn } from 'node:child_process';

export interface LoadResult {
  /** Completed requests (ab) or connections (s_time). */
  readonly completed: number;
  /** Failed requests + non-2xx responses (ab) — or failed connections (s_time, when it says). */
  readonly failures: number;
  readonly perSecond: number;
  /** Whole milliseconds: ab prints integer percentiles. Undefined for s_time. */
  readonly p50Ms?: number;
  readonly p99Ms?: number;
  readonly wallSeconds: number;
  /** What the tool said about the TLS session (ab: "TLSv1.3,TLS_AES_256_GCM_SHA384,256,256"). */
  readonly tls?: string;
  /** s_time: connections that resumed / did a full handshake, when it printed them. */
  readonly raw: string;
  /** ab -k: requests that reused a kept-alive connection (0 when the server closes after each answer). */
  readonly keepAliveRequests?: number;
  /** ab's breakdown of failed requests, e.g. "Connect: 0, Receive: 0, Length: 3, Exceptions: 0". */
  readonly failureKinds?: string;
}

export interface AbOptions {
  readonly url: string;
  readonly clientPem: string;
  readonly concurrency: number;
  readonly seconds: number;
  readonly keepAlive: boolean;
  /** A file to POST (Content-Type application/octet-stream). */
  readonly postFile?: string;
}

export function abArgs(o: AbOptions): string[] {
  return [
    '-q', '-r', // no progress lines; a socket receive error is counted, not fatal
    ...(o.keepAlive ? ['-k'] : []),
    '-c', String(o.concurrency),
    // -t implies -n 50000 (reached in under 2 s on a fast proxy): -n after -t lifts that cap.
    '-t', String(o.seconds), '-n', '100000000',
    '-s', '10',
    '-E', o.clientPem,
    '-f', 'TLS1.3',
    ...(o.postFile !== undefined ? ['-p', o.postFile, '-T', 'application/octet-stream'] : []),
    o.url,
  ];
}

export async function runAb(o: AbOptions): Promise<LoadResult> {
  const started = process.hrtime.bigint();
  const { code, out } = await run('ab', abArgs(o));
  const wallSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  const result = parseAb(out, wallSeconds);
  if (code !== 0 && result.completed === 0) throw new Error(`ab exited ${code}:\n${out.slice(-2000)}`);
  return result;
}

/** Parses ab 2.3's report. Exported for its unit test. */
export function parseAb(out: string, wallSeconds: number): LoadResult {
  const num = (re: RegExp): number | undefined => {
    const m = re.exec(out);
    return m ? Number(m[1]) : undefined;
  };
  const completed = num(/^Complete requests:\s+(\d+)/m) ?? 0;
  const failed = num(/^Failed requests:\s+(\d+)/m) ?? 0;
  const non2xx = num(/^Non-2xx responses:\s+(\d+)/m) ?? 0;
  const tls = /^SSL\/TLS Protocol:\s+(\S+)/m.exec(out)?.[1];
  const kinds = /^\s+\((Connect: \d+, Receive: \d+, Length: \d+, Exceptions: \d+)\)/m.exec(out)?.[1];
  return {
    completed,
    failures: failed + non2xx,
    perSecond: num(/^Requests per second:\s+([\d.]+)/m) ?? 0,
    p50Ms: num(/^\s+50%\s+(\d+)/m),
    p99Ms: num(/^\s+99%\s+(\d+)/m),
    wallSeconds,
    ...(tls !== undefined && { tls }),
    ...(/^Keep-Alive requests:/m.test(out) && { keepAliveRequests: num(/^Keep-Alive requests:\s+(\d+)/m) ?? 0 }),
    ...(kinds !== undefined && { failureKinds: non2xx > 0 ? `${kinds}, non-2xx: ${non2xx}` : kinds }),
    raw: out,
  };
}

export interface STimeOptions {
  readonly host: string;
  readonly port: number;
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
  readonly seconds: number;
  readonly reuse: boolean;
  /** Parallel s_time processes (each runs one connection at a time). */
  readonly parallel: number;
}

/**
 * `openssl s_time -new` (full handshake per connection) or `-reuse` (session resumption), each
 * connection sending `GET / HTTP/1.0` (-www /) and reading the answer, so the proxy does its whole
 * per-connection work: handshake, verdict, one forwarded request.
 */
export async function runSTime(o: STimeOptions): Promise<LoadResult> {
  const args = [
    's_time', '-connect', `${o.host}:${o.port}`, '-cert', o.cert, '-key', o.key, '-CAfile', o.ca,
    '-www', '/', '-time', String(o.seconds), o.reuse ? '-reuse' : '-new',
  ];
  const started = process.hrtime.bigint();
  const runs = await Promise.all(Array.from({ length: o.parallel }, () => run('openssl', args)));
  const wallSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  let completed = 0;
  let failures = 0;
  for (const r of runs) {
    const parsed = parseSTime(r.out);
    completed += parsed.connections;
    if (r.code !== 0 || parsed.connections === 0) failures += 1;
  }
  return { completed, failures, perSecond: completed / wallSeconds, wallSeconds, raw: runs.map((r) => r.out).join('\n---\n') };
}

/** `N connections in 3.01s; …` — the last such line is the timed run (-reuse prints one). */
export function parseSTime(out: string): { connections: number } {
  const all = [...out.matchAll(/^(\d+) connections in [\d.]+s;/gm)];
  const last = all.at(-1);
  return { connections: last ? Number(last[1]) : 0 };
}

function run(cmd: string, args: readonly string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => chunks.push(c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, out: Buffer.concat(chunks).toString('utf8') }));
  });
}

/**
 * The HTTP/2 load generator (issue 16): h2load (Debian's nghttp2-client 1.52) cannot present a client
 * certificate, so this small node:http2 client stands in, the same for certgate and nginx: `sessions` TLS
 * connections with the client certificate, each keeping `streams` GET requests in flight for `seconds`.
 * Run as a child process (`node _h2load.js '<json options>'`, one JSON LoadResult on stdout) so that the
 * bench counts its CPU as the client's, like ab's.
 */
import { spawn } from 'node:child_process';
import http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import type { LoadResult } from './_load.js';

export interface H2Options {
  readonly url: string;
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
  readonly sessions: number;
  readonly streams: number;
  readonly seconds: number;
}

/** Runs the generator in a child process. */
export function runH2(o: H2Options): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [new URL(import.meta.url).pathname, JSON.stringify(o)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`h2 load generator exited ${code}: ${out.slice(-500)}`));
      else resolve(JSON.parse(out) as LoadResult);
    });
  });
}

async function generate(o: H2Options): Promise<LoadResult> {
  const tlsOpts = { cert: readFileSync(o.cert), key: readFileSync(o.key), ca: readFileSync(o.ca), servername: 'localhost' };
  const latencies: number[] = [];
  let completed = 0;
  let failures = 0;
  const deadline = process.hrtime.bigint() + BigInt(Math.round(o.seconds * 1e9));
  const started = process.hrtime.bigint();
  const path = new URL(o.url).pathname;
  const sessions = await Promise.all(Array.from({ length: o.sessions }, () => new Promise<http2.ClientHttp2Session>((resolve, reject) => {
    const s = http2.connect(o.url, tlsOpts);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  })));
  const loop = (s: http2.ClientHttp2Session): Promise<void> => new Promise((resolve) => {
    const next = (): void => {
      if (process.hrtime.bigint() >= deadline || s.destroyed) {
        resolve();
        return;
      }
      const t0 = process.hrtime.bigint();
      const req = s.request({ ':path': path });
      let status = 0;
      req.on('response', (h) => {
        status = Number(h[':status']);
      });
      req.on('data', () => {});
      req.on('end', () => {
        if (status >= 200 && status < 300) {
          completed += 1;
          latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
        } else {
          failures += 1;
        }
        next();
      });
      req.on('error', () => {
        failures += 1;
        next();
      });
    };
    next();
  });
  await Promise.all(sessions.flatMap((s) => Array.from({ length: o.streams }, () => loop(s))));
  const wallSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  for (const s of sessions) s.close();
  latencies.sort((a, b) => a - b);
  const pct = (q: number): number | undefined => (latencies.length === 0 ? undefined : Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!));
  const p50Ms = pct(0.5);
  const p99Ms = pct(0.99);
  return {
    completed, failures, perSecond: completed / wallSeconds, wallSeconds, raw: '',
    ...(p50Ms !== undefined && { p50Ms }), ...(p99Ms !== undefined && { p99Ms }),
  };
}

if (process.argv[1] !== undefined && new URL(import.meta.url).pathname === process.argv[1]) {
  generate(JSON.parse(process.argv[2]!) as H2Options).then((r) => {
    process.stdout.write(JSON.stringify(r));
  }, (err: Error) => {
    console.error(err.message);
    process.exit(1);
  });
}

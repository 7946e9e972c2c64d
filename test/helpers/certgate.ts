/**
 * Starts a real certgate (the product's startCertgate, real sockets on 127.0.0.1:0) from a config object
 * written to a temp YAML file, so the same loadConfig path as production runs. Logs go to memory.
 */
import { mkdtempSync, writeFileSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { stringify } from 'yaml';
import { loadConfig } from '../../dist/config/load.js';
import { startCertgate, type Certgate } from '../../dist/app/start.js';
import { createLogger } from '../../dist/log.js';
import { listenEchoUpstream } from '../../dist/echo-upstream.js';
import type { Config } from '../../dist/config/types.js';
import { logSink, type LogSink } from './logs.js';

export interface RunningCertgate {
  readonly app: Certgate;
  readonly url: string;
  readonly port: number;
  readonly adminUrl: string;
  readonly config: Config;
  readonly logs: LogSink;
  /** Prometheus text from /metrics. */
  metricsText(): Promise<string>;
  close(): Promise<void>;
}

/** `settings` is the YAML config as an object; listen/admin default to 127.0.0.1:0. */
export async function startTestCertgate(settings: Record<string, unknown>): Promise<RunningCertgate> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'certgate-cfg-'));
  const file = path.join(dir, 'certgate.yaml');
  writeFileSync(file, stringify({ listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, ...settings }));
  const config = await loadConfig(file);
  const logs = logSink();
  const app = await startCertgate(config, { log: createLogger({ level: 'debug', destination: logs }) });
  return {
    app, config, logs, url: app.url, port: Number(new URL(app.url).port), adminUrl: app.adminUrl,
    async metricsText() {
      const res = await fetch(`${app.adminUrl}/metrics`);
      return res.text();
    },
    async close() {
      await app.close(1000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Upstream {
  readonly url: string;
  close(): Promise<void>;
}

export async function startEchoUpstream(): Promise<Upstream> {
  return listenEchoUpstream('127.0.0.1', 0);
}

/** Reads one sample's value from Prometheus text, e.g. metricValue(text, 'x_total', {reason: 'expired'}). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([^{\s]+)(\{([^}]*)\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[4]);
  }
  return undefined;
}

export interface RecordedRequest {
  readonly method: string;
  readonly url: string;
  /** Name/value pairs exactly as received (duplicates kept). */
  readonly rawHeaders: readonly [string, string][];
  readonly headers: Record<string, string | string[] | undefined>;
  readonly remotePort: number;
  readonly body: string;
}

export interface RecordingUpstream extends Upstream {
  readonly requests: RecordedRequest[];
}

/**
 * An upstream that records every request it receives (to prove what did, and did not, reach it) and
 * answers 200 JSON. `behaviour` may replace the answer (e.g. never answer, reset).
 */
export async function startRecordingUpstream(
  behaviour?: (req: IncomingMessage, res: ServerResponse) => boolean,
): Promise<RecordingUpstream> {
  const requests: RecordedRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw: [string, string][] = [];
      for (let i = 0; i < req.rawHeaders.length; i += 2) raw.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!]);
      requests.push({
        method: req.method ?? '', url: req.url ?? '', rawHeaders: raw, headers: req.headers,
        remotePort: req.socket.remotePort ?? 0, body: Buffer.concat(chunks).toString('latin1'),
      });
      if (behaviour?.(req, res)) return;
      const body = JSON.stringify({ ok: true, url: req.url });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`, requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/**
 * Writes a running certgate's config file as an editor does (a temp file, then rename) and asks for a live
 * reload on its admin listener: the answer's status and JSON.
 */
export async function rewriteConfig(gate: RunningCertgate, body: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const tmp = `${gate.config.file}.tmp`;
  writeFileSync(tmp, body);
  renameSync(tmp, gate.config.file);
  const res = await fetch(`${gate.adminUrl}/-/reload`, { method: 'POST' });
  return { status: res.status, json: await res.json() as Record<string, unknown> };
}

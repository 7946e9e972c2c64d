/**
 * Starts a real certgate (the product's startCertgate, real sockets on 127.0.0.1:0) from a config object
 * written to a temp YAML file, so the same loadConfig path as production runs. Logs go to memory.
 */
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { loadConfig } from '../../dist/config/load.js';
import { startCertgate, type Certgate } from '../../dist/app.js';
import { createLogger } from '../../dist/log.js';
import { listenWhoami } from '../../dist/whoami.js';
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

export async function startWhoami(): Promise<Upstream> {
  return listenWhoami('127.0.0.1', 0);
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

/**
 * A bench-only prototype of `workers: N` (node:cluster), to measure what multi-core would buy before
 * src/ grows it. Not a product: no metrics aggregation, one file watcher per worker.
 *
 *   node bench/.build/cluster.js <dist dir> <config.yaml> <workers> <rr|none>
 *
 * rr   = SCHED_RR: the primary accepts every connection and hands it to a worker over IPC.
 * none = SCHED_NONE: every worker accepts on the shared listening socket itself (the kernel wakes one).
 *
 * Session tickets: certgate derives its ticket keys from a per-process random secret (src/tls/context.ts),
 * so a ticket issued by one worker would not resume on another. The prototype gives every worker the
 * same ticket keys (made by the primary) by wrapping https.createServer and setSecureContext, to measure
 * resumption as the real feature would behave.
 */
import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import tls from 'node:tls';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [distArg, configArg, workersArg, policyArg] = process.argv.slice(2);
if (distArg === undefined || configArg === undefined) {
  console.error('usage: cluster.js <dist dir> <config.yaml> [workers=2] [rr|none]');
  process.exit(2);
}
const workers = Number(workersArg ?? 2);
const policy = policyArg === 'rr' ? 'rr' : 'none';

if (cluster.isPrimary) {
  cluster.schedulingPolicy = policy === 'rr' ? cluster.SCHED_RR : cluster.SCHED_NONE;
  const ticketKeys = randomBytes(48).toString('hex');
  let stopping = false;
  const fork = (): void => {
    cluster.fork({ BENCH_TICKET_KEYS: ticketKeys });
  };
  for (let i = 0; i < workers; i++) fork();
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
      return;
    }
    console.error(`worker ${worker.process.pid} exited (${signal ?? code}); replacing it`);
    fork();
  });
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const keys = Buffer.from(process.env.BENCH_TICKET_KEYS ?? '', 'hex');
  const createServer = https.createServer;
  (https as { createServer: unknown }).createServer = (opts: https.ServerOptions, ...rest: unknown[]) =>
    (createServer as (...a: unknown[]) => https.Server)({ ...opts, ticketKeys: keys }, ...rest);
  const setSecureContext = tls.Server.prototype.setSecureContext;
  tls.Server.prototype.setSecureContext = function (this: tls.Server, options: tls.SecureContextOptions) {
    setSecureContext.call(this, { ...options, ticketKeys: keys });
  };
  const dist = resolve(distArg);
  const { loadConfig } = (await import(pathToFileURL(join(dist, 'config/load.js')).href)) as {
    loadConfig(file: string): Promise<unknown>;
  };
  const { startCertgate } = (await import(pathToFileURL(join(dist, 'app.js')).href)) as {
    startCertgate(config: unknown): Promise<{ close(): Promise<void>; log: { flush(cb: () => void): void } }>;
  };
  const app = await startCertgate(await loadConfig(resolve(configArg)));
  process.on('SIGTERM', () => {
    void app.close().then(() => app.log.flush(() => process.exit(0)));
  });
  process.on('SIGINT', () => undefined);
}

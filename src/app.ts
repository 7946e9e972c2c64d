/**
 * The composition root: the only module that wires everything together.
 * startCertgate(config) loads the TLS material, starts the admin listener and the TLS listener, and
 * returns a handle to stop them. If any part fails to start, the parts already started are closed.
 */
import type { Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Config, HostPort } from './config/types.js';
import { CertgateError } from './errors.js';
import { createLogger, type Logger } from './log.js';
import { createMetrics, type Metrics } from './admin/metrics.js';
import { createAdminServer } from './admin/server.js';
import { loadAdminToken } from './admin/auth.js';
import { adminExposure } from './admin/host.js';
import { createObservability } from './admin/observability.js';
import { loadTls } from './tls/material.js';
import { buildGeneration } from './proxy/generation.js';
import { createPipeline } from './proxy/pipeline.js';
import { createListener } from './proxy/listener.js';
import { createReloader, type Reloader, type ReloadResult } from './tls/reloader.js';
import { createTrustCheck } from './tls/trust.js';
import type { VerdictContext } from './proxy/verdict.js';
import type { ClientsView } from './proxy/clients.js';
import { ticketKeys, untilNextRotation } from './tls/context.js';

export interface Certgate {
  /** https://host:port of the TLS listener (the actual port when the config said 0). */
  readonly url: string;
  readonly adminUrl: string;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** The client certificates this process saw recently (the cluster primary merges every worker's). */
  readonly clients: ClientsView;
  /** Listening, TLS material loaded, not draining. */
  ready(): boolean;
  /** Re-reads and validates all TLS material; swaps it in only when valid (SIGHUP does this). */
  reload(reason: string, file?: string): Promise<ReloadResult>;
  /** Stops accepting, lets in-flight requests finish (up to drainMs), then closes everything. */
  close(drainMs?: number): Promise<void>;
}

export interface StartOptions {
  readonly log?: Logger;
  /**
   * `worker`: one of the cluster's proxy processes (workers: N; cluster/worker.ts). It has no admin
   * listener (the primary serves /metrics, /clients, the status page and /enroll for all) and does not
   * watch files itself: the primary's reloader validates each change first and then tells it to reload.
   */
  readonly role?: 'single' | 'worker';
}

export async function startCertgate(config: Config, opts: StartOptions = {}): Promise<Certgate> {
  const log = opts.log ?? createLogger({ level: config.log.level, format: config.log.format });
  const worker = opts.role === 'worker';
  const material = await loadTls(config.tls, { listenHost: config.listen.host });
  // A worker's primary has logged them already, once.
  if (!worker) for (const p of material.problems) log[p.severity === 'info' ? 'info' : 'warn']({ msg: p.message, code: p.code, file: p.file, hint: p.hint });
  const exposed = worker ? undefined : adminExposure(config);
  if (exposed !== undefined) log.warn({ msg: exposed.message, code: exposed.code, file: exposed.file, line: exposed.line, hint: exposed.hint });

  const metrics = createMetrics();
  const adminToken = config.admin.token_file === undefined ? undefined : await loadAdminToken(config.admin.token_file);
  // Before anything that needs closing: a bad CA/tokens/state file refuses start-up with file:line.
  // Imported only when configured: the CSR/PKI libraries cost ~10 MB of RSS per process.
  const enrollment = config.enrollment === undefined || worker ? undefined
    : await (await import('./enroll/handler.js')).createEnrollment(config, { counter: metrics.enrollments, log });
  let stopping = false;
  let listening = false;
  const started: Server[] = [];
  const closeStarted = async (): Promise<void> => {
    await Promise.all(started.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  };

  const generation = await buildGeneration(config, 1);
  const generations = { current: generation };
  // The reloader owns the serving material; verdicts read it through `trust` (the reloader needs the
  // server to publish, so it is created right after it).
  let reloader: Reloader | undefined;
  const trust = createTrustCheck(config.tls, () => ({ material: reloader?.current ?? material, generation: reloader?.generation ?? 0 }));
  const verdictContext: VerdictContext = {
    mode: config.tls.client_auth,
    needChain: config.headers.rfc9440 || (config.headers.xfcc && config.headers.forward_cert),
    trust,
  };
  let tlsUrl: string | undefined;
  // Per-request metrics, access log, X-Request-Id, /clients, reload history, the status page's data.
  const obs = createObservability({
    config, metrics, log, material: () => reloader?.current ?? material,
    ready: () => listening && !stopping, url: () => tlsUrl, ...(adminToken !== undefined && { token: adminToken }),
  });
  obs.telemetry.routes(generation.routes.map((r) => r.name));
  const pipeline = createPipeline({ verdicts: verdictContext, telemetry: obs.telemetry, metrics, log, generations, draining: () => stopping });
  const tlsServer = createListener({ limits: config.limits, tls: config.tls, material, pipeline, metrics, log });
  const openSockets = new Set<import('node:net').Socket>();
  tlsServer.on('connection', (socket: import('node:net').Socket) => {
    openSockets.add(socket);
    socket.once('close', () => openSockets.delete(socket));
  });
  reloader = createReloader({
    tls: config.tls, listenHost: config.listen.host, server: tlsServer, initial: material, metrics, log, onReload: obs.onReload,
    ownTriggers: !worker,
  });
  // Session-ticket keys rotate on wall-clock epochs (the same moment in every worker; tls/context.ts).
  let rotation: NodeJS.Timeout | undefined;
  const rotateTickets = (): void => {
    rotation = setTimeout(() => {
      tlsServer.setTicketKeys(ticketKeys(reloader!.current));
      rotateTickets();
    }, untilNextRotation() + 50);
    rotation.unref();
  };
  rotateTickets();
  const admin = worker ? undefined : createAdminServer({
    registry: metrics.registry, ready: () => listening && !stopping, ...(enrollment !== undefined && { enroll: enrollment.handle }),
    ...obs.admin, allowedHosts: config.admin.allowed_hosts,
  });

  let adminAddress: AddressInfo | undefined;
  let tlsAddress: AddressInfo;
  try {
    if (admin !== undefined) {
      adminAddress = await listen(admin, config.admin.listen, 'admin.listen');
      started.push(admin);
    }
    tlsAddress = await listen(tlsServer, config.listen, 'listen');
    // node:cluster hands every worker the first worker's ticket keys when it listens (Server._setServerData),
    // which for a worker started later (a replacement) would be keys of an older epoch and trust: ours again.
    tlsServer.setTicketKeys(ticketKeys(reloader.current));
    started.push(tlsServer);
  } catch (err) {
    clearTimeout(rotation);
    await closeStarted();
    await reloader.close();
    generation.close();
    obs.close();
    throw err;
  }
  await reloader.ready;
  listening = true;
  const url = `https://${hostForUrl(tlsAddress.address)}:${tlsAddress.port}`;
  tlsUrl = url;
  const adminUrl = adminAddress === undefined ? '' : `http://${hostForUrl(adminAddress.address)}:${adminAddress.port}`;
  if (worker) {
    log.info({ msg: 'worker listening', url });
  } else {
    log.info({ msg: 'certgate listening', url, admin: adminUrl, routes: config.routes.map((r) => `${r.name} -> ${r.upstream.href}`), client_auth: config.tls.client_auth });
  }

  return {
    url, adminUrl, metrics, log, clients: obs.clients,
    ready: () => listening && !stopping,
    reload: (reason, file) => reloader.reload(reason, file),
    async close(drainMs = config.shutdown.drain_timeout_ms) {
      if (stopping) return;
      stopping = true;
      clearTimeout(rotation);
      await reloader.close();
      const drained = new Promise<void>((resolve) => tlsServer.close(() => resolve()));
      tlsServer.closeIdleConnections();
      const timer = setTimeout(() => {
        // Past the drain budget: cut what is left, including upgraded (WebSocket) sockets, which the HTTP
        // server no longer tracks, and connections still in their handshake.
        tlsServer.closeAllConnections();
        for (const socket of openSockets) socket.destroy();
      }, drainMs);
      timer.unref();
      await drained;
      clearTimeout(timer);
      pipeline.tunnels.close();
      generation.close();
      obs.close();
      if (admin !== undefined) {
        admin.closeAllConnections();
        await new Promise<void>((resolve) => admin.close(() => resolve()));
      }
      log.info({ msg: worker ? 'worker stopped' : 'certgate stopped' });
    },
  };
}

function listen(server: Server, at: HostPort, key: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(new CertgateError('CG_LISTEN', `${key} ${at.host}:${at.port}: ${err.code ?? err.message}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(at.port, at.host, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

function hostForUrl(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}

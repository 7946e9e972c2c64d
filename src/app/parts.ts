/**
 * The parts every certgate process is assembled from, each built once, from the slice of config it uses.
 * Two assemblies use them: app/start.ts (one process serving TLS: `workers: 1`, or one worker of the
 * cluster) and cluster/primary.ts (the cluster's primary: the admin listener and the one watcher).
 *
 * Order, for every assembly: what can refuse start-up (TLS material, admin token, enrollment files,
 * upstream_ca) is loaded before anything that needs closing; the reloader exists before anything reads
 * the serving material (the trust check, the status page); it starts (publishes, watches) once the
 * listener it publishes to exists.
 */
import type http from 'node:http';
import type { AddressInfo, Server } from 'node:net';
import type tls from 'node:tls';
import type { Config, HostPort } from '../config/types.js';
import { CertgateError, logLevelOf, type Problem } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../admin/metrics.js';
import { createAdminServer, type AdminOptions } from '../admin/server.js';
import { loadAdminToken, type AdminToken } from '../admin/auth.js';
import { adminExposure } from '../admin/host.js';
import { keepAliveAdvice } from '../config/keepalive.js';
import { createStatus, type StatusSource } from '../admin/status.js';
import { ReloadHistory } from '../admin/reload-history.js';
import type { CounterSnapshot } from '../admin/counters.js';
import type { ClientsView } from '../admin/clients.js';
import type { VerdictContext, TrustCheck } from '../proxy/verdict.js';
import type { Enrollment, LoadedEnrollment } from '../enroll/handler.js';
import { loadTls, type TlsMaterial } from '../tls/material.js';
import type { ReloadResult } from '../tls/reloader.js';
import { untilNextRotation, type SessionTickets } from '../tls/context.js';
import type { ConfigReloadAnswer, LiveConfig, PreparedChange } from './live-config.js';
import type { JwksDocument } from '../tls/assertion-keys.js';

/**
 * The TLS material certgate starts with (refuses start-up with file:line when unusable). `report`: log its
 * problems (each at its own level), warn when limits.keepalive_timeout_ms is too short for Node.js clients
 * to reuse connections, and when the admin listener is exposed without a token (a cluster worker does
 * not: its primary has, once).
 */
export async function loadStartMaterial(
  config: Pick<Config, 'tls' | 'listen' | 'admin' | 'file' | 'limits'>, log: Logger, report: boolean,
): Promise<TlsMaterial> {
  const material = await loadTls(config.tls, { listenHost: config.listen.host });
  if (!report) return material;
  for (const p of material.problems) logProblem(log, p);
  const keepAlive = keepAliveAdvice(config);
  if (keepAlive !== undefined) logProblem(log, keepAlive);
  const exposed = adminExposure(config);
  if (exposed !== undefined) log.warn({ msg: exposed.message, code: exposed.code, file: exposed.file, line: exposed.line, hint: exposed.hint });
  return material;
}

function logProblem(log: Logger, p: Problem): void {
  log[logLevelOf(p)]({ msg: p.message, code: p.code, file: p.file, hint: p.hint });
}

/** What the admin listener needs from files: both refuse start-up with file:line, neither needs closing. */
export interface AdminInputs {
  readonly token?: AdminToken;
  readonly enrollment?: Enrollment;
}

export async function loadAdminInputs(config: Config, metrics: Metrics, log: Logger): Promise<AdminInputs> {
  const token = config.admin.token_file === undefined ? undefined : await loadAdminToken(config.admin.token_file);
  // Imported only when configured: the CSR/PKI libraries cost ~10 MB of RSS per process.
  const enrollment = config.enrollment === undefined ? undefined
    : await (await import('../enroll/handler.js')).createEnrollment(
      { file: config.file, enrollment: config.enrollment, tls: config.tls }, { counter: metrics.enrollments, log });
  return { ...(token !== undefined && { token }), ...(enrollment !== undefined && { enrollment }) };
}

/** The status page's reload history, starting with the material certgate started with. */
export function startupHistory(material: TlsMaterial): ReloadHistory {
  const history = new ReloadHistory(20);
  history.record({ time: Date.now(), trigger: 'startup', file: 'all', result: 'success', serial: material.leaf.serialNumber.toUpperCase() });
  return history;
}

/** The connection verdicts' context: the client_auth mode, whether the headers carry the chain, the trust. */
export function verdictContext(config: Pick<Config, 'tls' | 'headers'>, trust: TrustCheck): VerdictContext {
  return {
    mode: config.tls.client_auth,
    needChain: config.headers.rfc9440 || (config.headers.xfcc && config.headers.forward_cert),
    trust,
  };
}

export interface AdminSideOptions {
  readonly config: Pick<Config, 'routes' | 'tls' | 'admin'>;
  readonly inputs: AdminInputs;
  /** This process's registry, or the primary's aggregate of every worker's. */
  readonly registry: AdminOptions['registry'];
  readonly readCounters: () => Promise<CounterSnapshot>;
  readonly clients: ClientsView;
  readonly history: ReloadHistory;
  /** The material serving now (the reloader's current). */
  readonly material: () => TlsMaterial;
  readonly ready: () => boolean;
  /** The TLS listener's URL once listening. */
  readonly url: () => string | undefined;
  /** The live config (app/live-config.ts): POST /-/reload, the status page's routes and config state. */
  readonly live?: Pick<LiveConfig, 'reload' | 'status' | 'config'>;
  /**
   * Re-reads the TLS material (the reloader of this process, or the cluster primary's): POST /-/reload does
   * what SIGHUP does — the config first, then the TLS files — so an operator who cannot signal the process
   * (a container, another user) has the same trigger.
   */
  readonly reloadTls?: (reason: string) => Promise<ReloadResult>;
  /** headers.assertion's JWKS in force now (GET /.well-known/jwks.json); undefined = not set. */
  readonly jwks?: () => JwksDocument | undefined;
}

export interface AdminSide {
  /** The admin listener serving new connections (another one after a live admin.listen change). */
  readonly server: http.Server;
  /** Where it listens, once listening. */
  readonly address: AddressInfo | undefined;
  readonly status: StatusSource;
  /** Listens at admin.listen (start-up); CG_LISTEN naming the address and the OS error when it cannot. */
  listen(at: HostPort): Promise<AddressInfo>;
  /**
   * A live admin.listen change: a second admin listener binds `at` now (a failure throws CG_LISTEN: nothing
   * changed); commit makes it the admin listener and closes the old one (requests in flight on it finish,
   * within `drainMs`). Undefined when `at` is where it listens already.
   */
  prepareListen(at: HostPort, drainMs: number): Promise<PreparedChange | undefined>;
  /** Stops every admin listener (shutdown). */
  close(): Promise<void>;
  /** Puts another admin token in force (a live reload of admin.token_file or of its content); undefined = none. */
  setToken(token: AdminToken | undefined): void;
  /** Puts another admin.allowed_hosts in force (a live reload): the next admin request's Host is checked against it. */
  setAllowedHosts(hosts: readonly string[]): void;
  /** Puts another enrollment in force (a live reload; undefined = off): the next POST /enroll is served by it. */
  setEnrollment(enrollment: Enrollment | undefined): void;
}

/**
 * After a live reload: the enrollment its validation loaded (app/validate.ts), as a handler, or none when
 * the config has none. Imported only when configured (the CSR/PKI libraries cost ~10 MB of RSS).
 */
export async function enrollmentFor(loaded: LoadedEnrollment | undefined, metrics: Metrics, log: Logger): Promise<Enrollment | undefined> {
  if (loaded === undefined) return undefined;
  return (await import('../enroll/handler.js')).enrollmentFrom(loaded, { counter: metrics.enrollments, log });
}

/** The admin listener (not listening yet) and the status page's data behind it. */
export function createAdminSide(opts: AdminSideOptions): AdminSide {
  const { config, inputs } = opts;
  const status = createStatus({
    config, history: opts.history, readCounters: opts.readCounters, material: opts.material, ready: opts.ready, url: opts.url,
    auth: inputs.token !== undefined,
    ...(opts.live !== undefined && { routes: () => opts.live!.config.routes, clientsMax: () => opts.live!.config.admin.clients_max, liveConfig: () => opts.live!.status() }),
  });
  let token = inputs.token;
  let allowedHosts: ReadonlySet<string> = new Set(config.admin.allowed_hosts);
  let enrollment = inputs.enrollment;
  const makeServer = (): http.Server => createAdminServer({
    registry: opts.registry, ready: opts.ready, status, clients: opts.clients,
    currentAllowedHosts: () => allowedHosts, currentToken: () => token, currentEnroll: () => enrollment?.handle,
    ...(opts.live !== undefined && { reload: () => reloadBoth(opts.live!, opts.reloadTls) }),
    ...(opts.jwks !== undefined && { jwks: opts.jwks }),
  });
  let server = makeServer();
  let address: AddressInfo | undefined;
  let listeningAt: HostPort | undefined;
  const closing = new Set<Promise<void>>();
  return {
    get server() {
      return server;
    },
    get address() {
      return address;
    },
    status,
    async listen(at) {
      address = await listen(server, at, 'admin.listen');
      listeningAt = at;
      return address;
    },
    async prepareListen(at, drainMs) {
      if (listeningAt === undefined || listensAt(listeningAt, address?.port, at)) return undefined;
      const next = makeServer();
      const bound = await listen(next, at, 'admin.listen');
      return {
        commit() {
          const old = server;
          server = next;
          address = bound;
          listeningAt = at;
          const done = drainServer(old, drainMs);
          closing.add(done);
          void done.then(() => closing.delete(done));
        },
        abort: () => drainServer(next, 0),
      };
    },
    async close() {
      server.closeAllConnections();
      await Promise.all([new Promise<void>((resolve) => server.close(() => resolve())), ...closing]);
    },
    setToken(next) {
      token = next;
    },
    setAllowedHosts(hosts) {
      allowedHosts = new Set(hosts);
    },
    setEnrollment(next) {
      enrollment = next;
    },
  };
}

/** Stops accepting; idle connections close now, requests in flight finish within drainMs, then the rest is cut. */
export function drainServer(server: http.Server, drainMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), drainMs);
  timer.unref();
  return closed.finally(() => clearTimeout(timer));
}

/** Whether two configured addresses are the same (a live `listen`/`admin.listen` naming the current one is no change). */
export function sameHostPort(a: HostPort, b: HostPort): boolean {
  return a.host === b.host && a.port === b.port;
}

/**
 * Whether a live `listen`/`admin.listen` names where the listener is already: the address configured, or the
 * port it was given when the config said 0 (a file rewritten with the port a deployment saw is no move).
 */
export function listensAt(configured: HostPort, boundPort: number | undefined, next: HostPort): boolean {
  return sameHostPort(configured, next) || (configured.host === next.host && boundPort !== undefined && next.port === boundPort);
}

/**
 * Session-ticket keys rotate on wall-clock epochs (the same moment in every worker; tls/context.ts).
 * Returns the stop.
 */
export function rotateTicketKeys(server: tls.Server, tickets: SessionTickets, material: () => TlsMaterial): () => void {
  let rotation: NodeJS.Timeout | undefined;
  const next = (): void => {
    rotation = setTimeout(() => {
      server.setTicketKeys(tickets.keys(material()));
      next();
    }, untilNextRotation() + 50);
    rotation.unref();
  };
  next();
  return () => clearTimeout(rotation);
}

/** Listens; a failure is CG_LISTEN naming the config key (`listen`, `admin.listen`) and the address. */
export function listen(server: Server, at: HostPort, key: string): Promise<AddressInfo> {
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

/** `scheme://host:port` of a listening address (IPv6 in brackets). */
export function urlOf(scheme: 'https' | 'http', address: AddressInfo): string {
  const host = address.address.includes(':') ? `[${address.address}]` : address.address;
  return `${scheme}://${host}:${address.port}`;
}

/** The start-up line's description of the proxy: every route and where it goes, the client_auth mode. */
export function servingFields(config: Pick<Config, 'routes' | 'tls'>): { routes: string[]; client_auth: string } {
  return { routes: config.routes.map((r) => `${r.name} -> ${r.upstream.href}`), client_auth: config.tls.client_auth };
}

/**
 * POST /-/reload: the config, then the TLS material — SIGHUP's order, so a broken config still gets the TLS
 * files it serves re-read. The answer is the config's (its contract: result, generation, changes, problems)
 * with the TLS outcome beside it as `tls`; the endpoint answers 422 when either part failed.
 */
export async function reloadBoth(
  live: Pick<LiveConfig, 'reload'>, reloadTls: ((reason: string) => Promise<ReloadResult>) | undefined,
): Promise<ConfigReloadAnswer & { readonly tls?: ReloadResult }> {
  const config = await live.reload('admin');
  if (reloadTls === undefined) return config;
  return { ...config, tls: await reloadTls('admin') };
}

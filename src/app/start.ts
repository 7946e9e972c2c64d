/**
 * The composition root of a process that serves TLS: `workers: 1`, or one worker of the cluster
 * (cluster/worker.ts). startCertgate(config) assembles the parts (app/parts.ts), starts the admin
 * listener and the TLS listener, and returns a handle to stop them. If any part fails to start, the
 * parts already started are closed. The cluster's primary is assembled from the same parts
 * (cluster/primary.ts).
 */
import type https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Config } from '../config/types.js';
import { createLogger, type Logger } from '../log.js';
import { createMetrics, type Metrics } from '../admin/metrics.js';
import { localCounters } from '../admin/counters.js';
import { createSessionTickets, type SessionTickets } from '../tls/context.js';
import { createReloader, type ReloadResult } from '../tls/reloader.js';
import { createTrustCheck } from '../tls/trust.js';
import type { ClientsView } from '../admin/clients.js';
import { ClientStore } from '../proxy/clients.js';
import { createTelemetry } from '../proxy/telemetry.js';
import { buildGeneration, type Generation } from '../proxy/generation.js';
import { createPoolShelf } from '../proxy/upstreams.js';
import { createLiveConfig, generationTarget, prepareAll, type ConfigReloadAnswer, type PreparedChange } from './live-config.js';
import { createPipeline } from '../proxy/pipeline.js';
import { createListener, type Listener } from '../proxy/listener.js';
import {
  createAdminSide, enrollmentFor, listen, loadAdminInputs, loadStartMaterial, listensAt, rotateTicketKeys, servingFields, startupHistory, urlOf, verdictContext,
} from './parts.js';

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
  /** Re-reads and validates all TLS material; swaps it in only when valid. */
  reload(reason: string, file?: string): Promise<ReloadResult>;
  /**
   * Re-reads the config file and applies it live when valid (app/live-config.ts); absent for a cluster
   * worker (its primary reads the file).
   */
  reloadConfig?(reason: string): Promise<ConfigReloadAnswer>;
  /** A cluster worker: build generation `id` from a config its primary validated and swap it in. */
  applyConfig(next: Config, id: number): Promise<void>;
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
  /** This process's session-ticket keys: a worker's derive from the primary's secret. Default: a random secret. */
  readonly tickets?: SessionTickets;
  /** SHA-256 of the config file's bytes as loaded (status.json; a reload of the same bytes is "unchanged"). */
  readonly sha256?: string;
  /** The first generation's number (a cluster worker starts on its primary's serving generation). Default 1. */
  readonly generation?: number;
}

export async function startCertgate(config: Config, opts: StartOptions = {}): Promise<Certgate> {
  const log = opts.log ?? createLogger({ level: config.log.level, format: config.log.format });
  const worker = opts.role === 'worker';
  // Before anything that needs closing: bad TLS material, admin token, enrollment files or upstream_ca
  // refuse start-up with file:line. A worker's primary has checked and reported them already, once.
  const material = await loadStartMaterial(config, log, !worker);
  const metrics = createMetrics();
  const inputs = worker ? {} : await loadAdminInputs(config, metrics, log);
  // Upstream pools outlive a generation when the next one builds the same upstream (live reload).
  const pools = createPoolShelf();
  const generation = await buildGeneration(config, opts.generation ?? 1, pools);
  const generations: { current: Generation } = { current: generation };

  const tickets = opts.tickets ?? createSessionTickets();
  const history = startupHistory(material);
  // The one owner of the serving material: the trust check, the listener and the status page read it here.
  const reloader = createReloader({
    tls: config.tls, listenHost: config.listen.host, initial: material, tickets, metrics, log,
    onReload: (event) => history.record(event), ownTriggers: !worker,
  });
  // Live config (issue 17): the one writer of generations.current after start-up. A worker's primary reads the file.
  // Generation after generation: a live reload here, or (a worker) the primary's hand-over of the config it validated.
  let logLevel = config.log.level;
  /** The live limits in force (restart-to-apply ones stay as started: a new listener is built with those). */
  let limits = config.limits;
  /** proxy_protocol in force (a listener built for a new address takes it). */
  let proxyProtocol = config.proxy_protocol;
  const target = generationTarget(generations, {
    build: (next, id) => buildGeneration(next, id, pools),
    // A changed `listen`/`admin.listen`: the new address bound first (a failure fails the whole reload); tls
    // file paths: the new material read and validated. Both put in force with the swap.
    prepare: (next) => prepareAll([
      () => rebindTls(next),
      async () => admin?.prepareListen(next.admin.listen, config.shutdown.drain_timeout_ms),
      () => reloader.retarget(next.tls),
    ]),
    onApplied: (next) => {
      // Only a changed log.level moves the level (a logger given another level at start-up keeps it otherwise).
      if (next.log.level !== logLevel) log.level = logLevel = next.log.level;
      limits = next.limits;
      applyListenerLimits(current.listener, limits);
      // log.access: requests beginning from now on (a request in flight keeps the setting it began under).
      telemetry.setAccess(next.log.access);
      // admin.clients_max: this process's /clients store (a worker's too: the primary merges theirs).
      clients.setMax(next.admin.clients_max);
      // proxy_protocol: connections accepted from now on (one already past its header keeps its client address).
      proxyProtocol = next.proxy_protocol;
      current.listener.proxyProtocol.set(proxyProtocol);
    },
  });
  const assertionDigest = generation.assertion?.keys.digest;
  const live = worker ? undefined : createLiveConfig({ initial: config, ...(opts.sha256 !== undefined && { sha256: opts.sha256 }), target, metrics, log, history,
    ...(assertionDigest !== undefined && { assertionDigest }),
    onApplied: async (next, loaded) => {
      admin?.setToken(loaded.adminToken);
      admin?.setAllowedHosts(next.admin.allowed_hosts);
      admin?.setEnrollment(await enrollmentFor(loaded.enrollment, metrics, log));
    },
  });
  const trust = createTrustCheck(config.tls, () => ({ material: reloader.current, generation: reloader.generation }));
  const clients = new ClientStore(config.admin.clients_max);
  const telemetry = createTelemetry({ metrics, log, clients, access: config.log.access });
  telemetry.routes(generation.routes.map((r) => r.name));

  let stopping = false;
  let listening = false;
  let tlsUrl: string | undefined;
  const ready = (): boolean => listening && !stopping;
  /** TLS listeners whose connections finish their requests and close (a live `listen` change moved away). */
  const draining = new Set<https.Server>();
  const pipeline = createPipeline({
    verdicts: verdictContext(config, trust), telemetry, metrics, log, generations,
    draining: (socket) => stopping || draining.has((socket as { server?: https.Server }).server!),
  });
  /** Every TLS listener alive: the one accepting, and any still draining. */
  const serving = new Set<Serving>();
  const serve = (): Serving => {
    // Built with the limits as started (those a running server cannot change), then given the live ones.
    const listener = createListener({
      limits: config.limits, http2: config.http2, proxyProtocol: config.proxy_protocol, tls: config.tls, material: reloader.current, tickets, pipeline, metrics, log,
    });
    applyListenerLimits(listener, limits);
    listener.proxyProtocol.set(proxyProtocol);
    const sockets = new Set<Socket>();
    listener.server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    const s: Serving = { listener, sockets, stopRotation: rotateTicketKeys(listener.server, tickets, () => reloader.current) };
    serving.add(s);
    return s;
  };
  const drain = async (s: Serving, drainMs: number): Promise<void> => {
    const server = s.listener.server;
    draining.add(server);
    s.stopRotation();
    const drained = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    // HTTP/2 sessions: GOAWAY now, streams in flight finish (node:http does not track these connections).
    s.listener.http2?.close();
    const timer = setTimeout(() => {
      s.listener.http2?.destroy();
      // Past the drain budget: cut what is left, including upgraded (WebSocket) sockets, which the HTTP
      // server no longer tracks, and connections still in their handshake.
      server.closeAllConnections();
      for (const socket of s.sockets) socket.destroy();
    }, drainMs);
    timer.unref();
    await drained;
    clearTimeout(timer);
    serving.delete(s);
    draining.delete(server);
  };
  let current = serve();
  let listenAt = config.listen;
  /**
   * A live `listen` change: a second TLS listener binds the new address now (node:cluster's shared socket in
   * a worker); commit makes it the one accepting and drains the old as shutdown does (each connection's
   * request in flight finishes, then it closes; HTTP/2 sessions get GOAWAY).
   */
  async function rebindTls(next: Config): Promise<PreparedChange | undefined> {
    if (listensAt(listenAt, tlsUrl === undefined ? undefined : Number(new URL(tlsUrl).port), next.listen)) return undefined;
    const s = serve();
    let address: AddressInfo;
    try {
      address = await listen(s.listener.server, next.listen, 'listen');
    } catch (err) {
      s.stopRotation();
      serving.delete(s);
      throw err;
    }
    s.listener.server.setTicketKeys(tickets.keys(reloader.current));
    return {
      commit() {
        const old = current;
        current = s;
        listenAt = next.listen;
        tlsUrl = urlOf('https', address);
        log.info({ msg: 'listening at the new address; the old one drains', url: tlsUrl, setting: 'listen' });
        void drain(old, config.shutdown.drain_timeout_ms);
      },
      abort: () => drain(s, 0),
    };
  }
  // The reloader's material goes to every listener alive: one bound for a reload not yet committed must not
  // start accepting with material older than the one serving.
  const watching = reloader.start({
    setSecureContext: (options) => {
      for (const s of serving) s.listener.server.setSecureContext(options);
    },
  });
  const admin = worker ? undefined : createAdminSide({
    config, inputs, registry: metrics.registry, readCounters: localCounters(metrics), clients, history,
    material: () => reloader.current, ready, url: () => tlsUrl, ...(live !== undefined && { live }),
    reloadTls: (reason) => reloader.reload(reason),
    // The keys the generation serving new requests signs with, and publishes beside them.
    jwks: () => generations.current.assertion?.keys.jwks,
  });

  const started: (() => Promise<void>)[] = [];
  let tlsAddress: AddressInfo;
  try {
    if (admin !== undefined) {
      await admin.listen(config.admin.listen);
      started.push(() => admin.close());
    }
    tlsAddress = await listen(current.listener.server, config.listen, 'listen');
    // node:cluster hands every worker the first worker's ticket keys when it listens (Server._setServerData),
    // which for a worker started later (a replacement) would be keys of an older epoch and trust: ours again.
    current.listener.server.setTicketKeys(tickets.keys(reloader.current));
  } catch (err) {
    await Promise.all([...started.map((close) => close()), drain(current, 0)]);
    await reloader.close();
    await live?.close();
    generation.close();
    admin?.status.close();
    throw err;
  }
  await watching;
  await live?.start();
  listening = true;
  tlsUrl = urlOf('https', tlsAddress);
  const adminUrl = (): string => (admin?.address === undefined ? '' : urlOf('http', admin.address));
  if (worker) {
    // Its generation: the one its primary holds as serving (a worker started later begins on it).
    log.info({ msg: 'worker listening', url: tlsUrl, generation: generations.current.id });
  } else {
    log.info({ msg: 'certgate listening', url: tlsUrl, admin: adminUrl(), ...servingFields(config) });
  }

  return {
    get url() {
      return tlsUrl!;
    },
    get adminUrl() {
      return adminUrl();
    },
    metrics, log, clients, ready,
    reload: (reason, file) => reloader.reload(reason, file),
    ...(live !== undefined && { reloadConfig: (reason: string) => live.reload(reason) }),
    async applyConfig(next, id) {
      // The primary numbers the generations (a worker started later jumps to the primary's number).
      if (generations.current.id >= id) return;
      await target.apply(next, '', id);
    },
    async close(drainMs = config.shutdown.drain_timeout_ms) {
      if (stopping) return;
      stopping = true;
      await reloader.close();
      await live?.close();
      await Promise.all([...serving].map((s) => drain(s, drainMs)));
      pipeline.tunnels.close();
      generations.current.close();
      if (admin !== undefined) {
        admin.status.close();
        await admin.close();
      }
      log.info({ msg: worker ? 'worker stopped' : 'certgate stopped' });
    },
  };
}

/** One TLS listener with what belongs to it: its connections (cut past a drain budget), its ticket rotation. */
interface Serving {
  readonly listener: Listener;
  readonly sockets: Set<Socket>;
  readonly stopRotation: () => void;
}

/**
 * The limits Node reads from the running server (issue 17): node:http checks headersTimeout/requestTimeout
 * on every connectionsCheckingInterval tick, takes keepAliveTimeout per response and maxConnections per
 * accepted connection, so new values apply to the next check, response or connection. max_header_bytes is
 * a node:http constructor option (each connection's parser is sized from it) with no documented setter,
 * handshake_timeout_ms is tls.Server's private state: both stay restart to apply.
 */
function applyListenerLimits(listener: Listener, limits: Config['limits']): void {
  const server = listener.server;
  // Node's maxRequestsPerSocket, the backstop of limits.max_requests_per_connection (proxy/listener.ts), follows it.
  server.maxRequestsPerSocket = limits.max_requests_per_connection > 0 ? limits.max_requests_per_connection : 0;
  server.headersTimeout = limits.header_timeout_ms;
  server.requestTimeout = limits.request_timeout_ms;
  server.keepAliveTimeout = limits.keepalive_timeout_ms;
  server.maxConnections = limits.max_connections;
  listener.http2?.setLimits(limits);
}

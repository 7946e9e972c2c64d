/**
 * The pipeline's observe step: what the proxy records about its traffic, in one place — the per-request
 * metrics, the access-log line, X-Request-Id, the client-certificate expiry histogram and the /clients store.
 *
 * Per connection (once, from the connection's verdict: pipeline.ts connection()): TLS version, resumption,
 * the presented identity, its /clients entry, its time left. Per request: one small InFlight object hung on
 * the response under a symbol, and listeners that are module-level functions (no closure per request but
 * the body byte counter); labels objects are cached per route/method/code. Nothing here reads the peer
 * certificate again.
 *
 * The pipeline calls, in order: begin() → refused() | answered() | forwarding() → upstreamResponded() (the
 * hop, when the upstream's status and headers are in); the 'close' of the response ends it.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Http2ServerResponse } from 'node:http2';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import type { TLSSocket } from 'node:tls';
import type { ClientIdentity } from '../identity/types.js';
import type { Logger } from '../log.js';
import type { ConnectionVerdict } from './verdict.js';
import type { RequestView } from './request-view.js';
import { GRPC_STATUS } from './hop.js';
import type { UpstreamErrorKind } from './upstream-error.js';
import type { ClientEntry, ClientStore } from './clients.js';
import { methodLabel, type ProxyMetrics } from './metrics.js';
import { clientAddressOf, type ClientAddress } from './client-address.js';

/** proxy/upstream-error.ts's kinds, pre-created per route so a ratio over them is 0, not absent. */
const UPSTREAM_ERROR_KINDS = ['refused', 'reset', 'timeout', 'dns', 'tls', 'other'] as const satisfies readonly UpstreamErrorKind[];

/** Route label for requests that matched no route (bounded: never a client-chosen string). */
export const NO_ROUTE = '(none)';

/** The request id header, in and out. */
export const REQUEST_ID_HEADER = 'x-request-id';

/**
 * A client-sent X-Request-Id is kept only when it is a sane token: 1..128 printable ASCII characters
 * without spaces (no control bytes, nothing to break a log line or a header). Otherwise a fresh UUID
 * replaces it. Several X-Request-Id headers arrive joined by ", " and so are replaced too.
 */
const SANE_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

function grpcStatusOf(res: ServerResponse): string | undefined {
  const fromTrailers = (res as unknown as Record<symbol, unknown>)[GRPC_STATUS];
  if (typeof fromTrailers === 'string') return fromTrailers;
  const header = res.getHeader('grpc-status');
  return header === undefined ? undefined : String(header);
}

/** The `protocol` field and label: `http/1.0` | `http/1.1` | `h2` (bounded: Node parses only these). */
export function protocolLabel(httpVersion: string): string {
  if (httpVersion === '2.0') return 'h2';
  return httpVersion === '1.0' ? 'http/1.0' : 'http/1.1';
}

export function requestIdFor(sent: string | string[] | undefined): string {
  return typeof sent === 'string' && SANE_REQUEST_ID.test(sent) ? sent : randomUUID();
}

export interface TelemetryOptions {
  readonly metrics: ProxyMetrics;
  readonly log: Logger;
  readonly clients: ClientStore;
  /** log.access: one info line per request. */
  readonly access: boolean;
}

/** The pipeline's view of one Upgrade (WebSocket) request: what it learns, until the socket closes. */
export interface UpgradeRecord {
  readonly id: string;
  route: string;
  /** 101 when the upstream switched protocols; certgate's refusal, the upstream's answer, or 502/504 otherwise. */
  status: number;
  error: string | undefined;
}

export interface Telemetry {
  /**
   * Pre-creates the series of these routes (a rate() over a route that saw no error yet is 0, not absent).
   * Called for every configuration generation.
   */
  routes(names: readonly string[]): void;
  /** A new TLS connection and the verdict on it: its record for every request on it, and its /clients entry. */
  connection(socket: TLSSocket, verdict: ConnectionVerdict): void;
  /**
   * An Upgrade request arrived: X-Request-Id chosen (on req.headers, so the upstream sees it). Its metrics
   * and one access line follow when the client socket closes — for a tunnel, when the WebSocket ends.
   */
  upgrade(req: RequestView, socket: Duplex): UpgradeRecord;
  /** A request arrived: in-flight +1, X-Request-Id chosen (on req.headers and the response). Ends on the response's 'close'. */
  begin(req: RequestView, res: ServerResponse, configGeneration?: number): void;
  /**
   * An answer node:http's parser gave before any request existed (listener.ts clientError: 431 for headers
   * over max_header_bytes, 400 for a malformed request, 408 for one too slow to arrive): no method, path or
   * route. Counted in the request metrics (route (none), method OTHER) and logged with what is known — the
   * connection's fields, the status, the protocol, the error. Returns its request id (a fresh UUID) for the
   * answer. Only on that error path: nothing per request.
   */
  unparsed(socket: TLSSocket, status: number, error: string): string;
  /** certgate refuses this request itself (`status` with `body`) instead of forwarding it. */
  refused(res: ServerResponse, status: number, body: { readonly error: string; readonly reason?: unknown }, route: string | undefined): void;
  /** certgate answers this request itself on `route` (e.g. whoami_path). */
  answered(res: ServerResponse, route: string): void;
  /**
   * The request goes to `route`'s upstream now; call after the headers for the upstream are final. Counts
   * the request body's bytes from here on.
   */
  forwarding(req: RequestView & Pick<IncomingMessage, 'on'>, res: ServerResponse, route: string): void;
  /**
   * The upstream's status and headers are in and about to be relayed (hop.ts calls it): the upstream's
   * time, and certgate's X-Request-Id again (the upstream may have sent its own). No `this`: passed as is.
   */
  readonly upstreamResponded: (res: ServerResponse) => void;
  /**
   * log.access after a live reload (issue 17): requests that begin from now on write their access line or
   * not; a request already in flight keeps the setting it began under.
   */
  setAccess(on: boolean): void;
}

/** What is known about a TLS connection, computed once. */
interface ConnectionInfo {
  readonly version: string;
  readonly resumed: boolean;
  readonly identity: ClientIdentity | undefined;
  /** SAN URIs joined by ",", for the access line. */
  readonly sanUri: string | undefined;
  /** The client address (client-address.ts: behind a trusted load balancer, its PROXY header's). */
  readonly address: ClientAddress;
  client: ClientEntry | undefined;
  /**
   * The access logger with this connection's fields bound (connectionFields): pino serializes them once,
   * at the connection's first access line, instead of on every request's (subject and fingerprint are the
   * longest strings of the line). Undefined until then.
   */
  accessLog: Logger | undefined;
}

/** The access line's fields that are the connection's, not the request's (the same on every line of it). */
function connectionFields(conn: ConnectionInfo | undefined, address: ClientAddress): Record<string, unknown> {
  return {
    remote_address: address.address, remote_addr: address.address, proxy_address: address.via, tls_version: conn?.version, tls_resumed: conn?.resumed,
    client_subject: conn?.identity?.subject, client_fingerprint: conn?.identity?.fingerprint, client_san_uri: conn?.sanUri,
  };
}

/** One request's bookkeeping; lives on the response under IN_FLIGHT until 'close'. */
class InFlight {
  route = NO_ROUTE;
  bytesIn = 0;
  /**
   * An HTTP/2 stream's response body bytes (countedWrite). -1 on HTTP/1.1, whose bytes_out is the
   * connection's bytes written while the request was in flight: its responses never overlap there.
   */
  bytesOut = -1;
  upstreamStarted = 0;
  upstreamMs = -1;
  error: string | undefined = undefined;
  /** The configuration generation serving this request (proxy/generation.ts); on the access line. */
  configGeneration: number | undefined = undefined;
  /** log.access as it was when the request began (a live reload may change it while the request runs). */
  access = false;
  constructor(
    readonly telemetry: RequestTelemetry,
    readonly req: RequestView,
    readonly id: string,
    readonly started: number,
    readonly bytesOut0: number,
    readonly conn: ConnectionInfo | undefined,
  ) {}
}

const IN_FLIGHT = Symbol('certgate.in-flight');
type Observed = ServerResponse & { [IN_FLIGHT]?: InFlight };

const h2Write = Http2ServerResponse.prototype.write;

/**
 * An HTTP/2 response's write(), counting the stream's body bytes: the TLS socket is shared by every
 * stream of the session, so its bytesWritten while a stream is open includes the other streams' frames.
 * Node's compat end(chunk) writes through this.write (checked on Node 20, 24 and 26 by test/e2e/http2.test.ts);
 * gRPC's trailers-only refusal (respond.ts) has no body. A module function, set per response: no closure.
 */
function countedWrite(this: Observed, chunk: string | Uint8Array, encoding?: BufferEncoding | ((err?: Error | null) => void), cb?: (err?: Error | null) => void): boolean {
  const x = this[IN_FLIGHT];
  if (x !== undefined) x.bytesOut += typeof chunk === 'string' ? Buffer.byteLength(chunk, typeof encoding === 'string' ? encoding : 'utf8') : chunk.byteLength;
  return (h2Write as (this: unknown, ...args: unknown[]) => boolean).call(this, chunk, encoding, cb);
}

function onResponseClose(this: Observed): void {
  const x = this[IN_FLIGHT];
  if (x !== undefined) x.telemetry.end(x, this);
}

function upstreamResponded(res: ServerResponse): void {
  const x = (res as Observed)[IN_FLIGHT];
  if (x === undefined) return;
  x.upstreamMs = performance.now() - x.upstreamStarted;
  // The client gets certgate's id even when the upstream answered with its own.
  if (!res.headersSent && res.getHeader(REQUEST_ID_HEADER) !== x.id) res.setHeader(REQUEST_ID_HEADER, x.id);
}

type RequestLabels = { route: string; method: string; code: string; protocol: string };

interface RouteSeries {
  readonly labels: { readonly route: string };
  /** protocol → method → code → labels object, reused for every request with that combination. */
  readonly byProtocol: Map<string, Map<string, Map<number, RequestLabels>>>;
}

class RequestTelemetry implements Telemetry {
  readonly #metrics: ProxyMetrics;
  readonly #log: Logger;
  /** Access lines carry only the fixed fields below (no headers, no key material): redaction is skipped for them. */
  readonly #accessLog: Logger;
  readonly #clients: ClientStore;
  #access: boolean;
  readonly #connections = new WeakMap<TLSSocket, ConnectionInfo>();
  readonly #series = new Map<string, RouteSeries>();

  constructor(opts: TelemetryOptions) {
    this.#metrics = opts.metrics;
    this.#log = opts.log;
    this.#accessLog = opts.log.child({}, { redact: [] });
    this.#clients = opts.clients;
    this.#access = opts.access;
    opts.metrics.connectionsRejected.inc({ reason: 'max_connections' }, 0);
  }

  readonly upstreamResponded = upstreamResponded;

  setAccess(on: boolean): void {
    this.#access = on;
  }

  routes(names: readonly string[]): void {
    for (const route of names) {
      this.#metrics.authzDenied.inc({ route }, 0);
      for (const kind of UPSTREAM_ERROR_KINDS) this.#metrics.upstreamErrors.inc({ route, kind }, 0);
    }
  }

  connection(socket: TLSSocket, verdict: ConnectionVerdict): void {
    const now = Date.now();
    const identity = verdict.kind === 'anonymous' ? undefined : verdict.identity;
    const address = clientAddressOf(socket);
    let client: ClientEntry | undefined;
    if (identity !== undefined) {
      client = this.#clients.connection(identity, now, address.address);
      if (verdict.kind === 'refused') {
        client = this.#clients.refusal(client, verdict.reason, now);
      } else {
        this.#metrics.clientCertExpiry.observe((identity.notAfter.getTime() - now) / 1000);
      }
    }
    this.#connections.set(socket, {
      version: socket.getProtocol() ?? 'unknown', resumed: socket.isSessionReused(), identity, client, address,
      sanUri: identity !== undefined && identity.san.uri.length > 0 ? identity.san.uri.join(',') : undefined,
      accessLog: undefined,
    });
  }

  upgrade(req: RequestView, socket: Duplex): UpgradeRecord {
    const id = requestIdFor(req.headers[REQUEST_ID_HEADER]);
    req.headers[REQUEST_ID_HEADER] = id;
    const tls = req.socket as TLSSocket;
    const record: UpgradeRecord = { id, route: NO_ROUTE, status: 0, error: undefined };
    const access = this.#access;
    const started = performance.now();
    const bytesOut0 = tls.bytesWritten;
    const bytesIn0 = tls.bytesRead;
    socket.once('close', () => {
      const ms = performance.now() - started;
      const series = this.#seriesOf(record.route);
      this.#metrics.httpRequests.inc(this.#labels(series, methodLabel(req.method), record.status, protocolLabel(req.httpVersion)));
      this.#metrics.httpDuration.observe(series.labels, ms / 1000);
      const conn = this.#connections.get(tls);
      const address = conn?.address ?? clientAddressOf(tls);
      if (conn?.client !== undefined && record.status === 101) conn.client = this.#clients.request(conn.client, record.route, Date.now());
      if (!access || !this.#accessLog.isLevelEnabled('info')) return;
      this.#accessLog.info({
        msg: 'request', request_id: id, method: req.method, path: req.url, status: record.status, upgrade: String(req.headers.upgrade ?? ''),
        protocol: protocolLabel(req.httpVersion),
        duration_ms: Math.round(ms * 1000) / 1000, route: record.route, error: record.error,
        bytes_in: tls.bytesRead - bytesIn0, bytes_out: tls.bytesWritten - bytesOut0,
        remote_address: address.address, remote_addr: address.address, proxy_address: address.via, tls_version: conn?.version, tls_resumed: conn?.resumed,
        client_subject: conn?.identity?.subject, client_fingerprint: conn?.identity?.fingerprint, client_san_uri: conn?.sanUri,
      });
    });
    return record;
  }

  begin(req: RequestView, res: ServerResponse, configGeneration?: number): void {
    const id = requestIdFor(req.headers[REQUEST_ID_HEADER]);
    req.headers[REQUEST_ID_HEADER] = id;
    res.setHeader(REQUEST_ID_HEADER, id);
    const socket = req.socket as TLSSocket;
    const x = new InFlight(this, req, id, performance.now(), socket.bytesWritten, this.#connections.get(socket));
    x.configGeneration = configGeneration;
    x.access = this.#access;
    if (res instanceof Http2ServerResponse) {
      x.bytesOut = 0;
      (res as { write: unknown }).write = countedWrite;
    }
    (res as Observed)[IN_FLIGHT] = x;
    this.#metrics.httpInFlight.inc();
    // 'on', not 'once': each fires once per response anyway, and once() allocates a wrapper per call.
    res.on('close', onResponseClose);
  }

  unparsed(socket: TLSSocket, status: number, error: string): string {
    const id = randomUUID();
    // The connection's ALPN: there is no request line to read the version from.
    const protocol = socket.alpnProtocol === 'http/1.0' ? 'http/1.0' : 'http/1.1';
    this.#metrics.httpRequests.inc(this.#labels(this.#seriesOf(NO_ROUTE), methodLabel(undefined), status, protocol));
    const conn = this.#connections.get(socket);
    if (conn?.client !== undefined) conn.client = this.#clients.request(conn.client, NO_ROUTE, Date.now());
    if (!this.#access || !this.#accessLog.isLevelEnabled('info')) return id;
    const accessLog = conn !== undefined
      ? (conn.accessLog ??= this.#accessLog.child(connectionFields(conn, conn.address)))
      : this.#accessLog.child(connectionFields(undefined, clientAddressOf(socket)));
    accessLog.info({ msg: 'request', request_id: id, status, protocol, route: NO_ROUTE, error });
    return id;
  }

  answered(res: ServerResponse, route: string): void {
    const x = (res as Observed)[IN_FLIGHT];
    if (x !== undefined) x.route = route;
  }

  refused(res: ServerResponse, status: number, body: { readonly error: string; readonly reason?: unknown }, route: string | undefined): void {
    const x = (res as Observed)[IN_FLIGHT];
    if (x === undefined) return;
    x.route = route ?? NO_ROUTE;
    x.error = body.error;
    const client = x.conn?.client;
    if (client === undefined || x.conn === undefined) return;
    // Only refusals of the identity itself: not a 404 or a malformed request.
    const reason = status === 403 ? 'forbidden'
      : body.error.startsWith('client_certificate') ? (typeof body.reason === 'string' ? body.reason : body.error) : undefined;
    if (reason !== undefined) x.conn.client = this.#clients.refusal(client, reason, Date.now());
  }

  forwarding(req: RequestView & Pick<IncomingMessage, 'on'>, res: ServerResponse, route: string): void {
    const x = (res as Observed)[IN_FLIGHT];
    if (x === undefined) return;
    x.route = route;
    // Set again: the client's Connection header may have named it as hop-by-hop.
    req.headers[REQUEST_ID_HEADER] = x.id;
    x.upstreamStarted = performance.now();
    // Beside the hop's own reading of the body (both see every chunk; the hop keeps the backpressure).
    req.on('data', (chunk: Buffer) => {
      x.bytesIn += chunk.length;
    });
  }

  /** The response closed (sent, or the client went away). */
  end(x: InFlight, res: ServerResponse): void {
    (res as Observed)[IN_FLIGHT] = undefined;
    const ms = performance.now() - x.started;
    const code = res.headersSent ? res.statusCode : 0;
    const series = this.#seriesOf(x.route);
    this.#metrics.httpRequests.inc(this.#labels(series, methodLabel(x.req.method), code, protocolLabel(x.req.httpVersion)));
    this.#metrics.httpDuration.observe(series.labels, ms / 1000);
    if (x.upstreamMs >= 0) this.#metrics.upstreamDuration.observe(series.labels, x.upstreamMs / 1000);
    this.#metrics.httpInFlight.dec();
    const conn = x.conn;
    if (conn?.client !== undefined) conn.client = this.#clients.request(conn.client, x.route, Date.now());
    if (!x.access || !this.#accessLog.isLevelEnabled('info')) return;
    const socket = x.req.socket;
    let accessLog: Logger;
    if (conn !== undefined) {
      accessLog = conn.accessLog ??= this.#accessLog.child(connectionFields(conn, conn.address));
    } else {
      accessLog = this.#accessLog.child(connectionFields(undefined, clientAddressOf(socket)));
    }
    accessLog.info({
      msg: 'request', request_id: x.id, method: x.req.method, path: x.req.url, status: code, protocol: protocolLabel(x.req.httpVersion),
      duration_ms: Math.round(ms * 1000) / 1000, upstream_ms: x.upstreamMs >= 0 ? Math.round(x.upstreamMs * 1000) / 1000 : undefined,
      route: x.route, error: x.error, bytes_in: x.bytesIn, bytes_out: x.bytesOut >= 0 ? x.bytesOut : socket.bytesWritten - x.bytesOut0,
      completed: res.writableFinished, config_generation: x.configGeneration,
      // gRPC calls: their status (the upstream's trailers or headers, or certgate's refusal).
      grpc_status: x.req.httpVersion === '2.0' ? grpcStatusOf(res) : undefined,
    });
  }

  #seriesOf(route: string): RouteSeries {
    let s = this.#series.get(route);
    if (s === undefined) {
      s = { labels: Object.freeze({ route }), byProtocol: new Map() };
      this.#series.set(route, s);
    }
    return s;
  }

  #labels(s: RouteSeries, method: string, code: number, protocol: string): RequestLabels {
    let byMethod = s.byProtocol.get(protocol);
    if (byMethod === undefined) {
      byMethod = new Map();
      s.byProtocol.set(protocol, byMethod);
    }
    let byCode = byMethod.get(method);
    if (byCode === undefined) {
      byCode = new Map();
      byMethod.set(method, byCode);
    }
    let labels = byCode.get(code);
    if (labels === undefined) {
      labels = { route: s.labels.route, method, code: String(code), protocol };
      byCode.set(code, labels);
    }
    return labels;
  }
}

export function createTelemetry(opts: TelemetryOptions): Telemetry {
  return new RequestTelemetry(opts);
}

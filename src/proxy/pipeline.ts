/**
 * The request pipeline: one request, top to bottom, as named steps over a transport-neutral request view
 * (request-view.ts). Every request takes the current configuration generation once (generation.ts) and is
 * served by that snapshot to its end.
 *
 *   0 connection  once per TLS connection (listener.ts calls connection()): the verdict (verdict.ts) and
 *                 the connection's telemetry record
 *   1 admit       admit.ts: verdict → path → host → whoami_path → route → policy → guards
 *                 → 400 client_certificate_{required,invalid} | 421 (close) | 400 bad_request | 404 | 403 | 411 | 413
 *                 whoami_path, once verdict, path and Host passed: answered by certgate (whoami-endpoint.ts),
 *                 never forwarded; an upgrade there is refused (400 whoami_path)
 *   2 headers     request-headers.ts: hop-by-hop and client copies of certgate's headers out, identity and
 *                 X-Forwarded-* in; with headers.assertion, the connection's signed assertion for the route
 *                 (assertion.ts: cached per connection and route; a miss awaits jose's signature first)
 *   3 forward     hop.ts (HTTP, on the route's undici Pool) | tunnel.ts (WebSocket, one connection each,
 *                 re-checked against the current trust by tunnel-watch.ts) → 502/504 (upstream-error.ts)
 *   4 observe     telemetry.ts: begin (X-Request-Id) → refused | answered | forwarding → upstream responded;
 *                 metrics, one access line and /clients when the response (or the tunnel) closes
 *
 * A WebSocket upgrade goes through the same steps; before them, its own shape is checked (upgradeRefusal:
 * a bodiless GET with Upgrade: websocket, else 400 and close). Every step is called here, in this order:
 * nothing depends on the order listeners were registered in, or on events emitted for another module.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../log.js';
import type { ProxyMetrics } from './metrics.js';
import { http2StreamOf, sendError, sendErrorOnSocket, type ErrorBody } from '../respond.js';
import { connectionVerdict, type ConnectionVerdict, type VerdictContext } from './verdict.js';
import { admitRequest, verdictRefusal, type AdmitResult, type Admitted } from './admit.js';
import { prepareHeaders } from './request-headers.js';
import { createHop } from './hop.js';
import { openTunnel, upgradeRefusal, type TunnelErrorHandler } from './tunnel.js';
import { createTunnelWatch, type TunnelWatch } from './tunnel-watch.js';
import { upstreamFailureBody, type UpstreamErrorHandler } from './upstream-error.js';
import type { Telemetry } from './telemetry.js';
import type { Generation, Generations } from './generation.js';
import type { RequestView } from './request-view.js';
import { WHOAMI_ROUTE } from './whoami-endpoint.js';
import { clientAddressOf } from './client-address.js';

export interface PipelineOptions {
  readonly verdicts: VerdictContext;
  readonly telemetry: Telemetry;
  readonly metrics: ProxyMetrics;
  readonly log: Logger;
  /** The configuration generation each new request takes. */
  readonly generations: Generations;
  /**
   * True once the connection's listener drains — shutdown, or a live `listen` change moving to another
   * address: responses then close their connection (idle keep-alive must not linger).
   */
  readonly draining: (socket: TLSSocket) => boolean;
}

export interface Pipeline {
  /** Step 0, once per TLS connection when its handshake completes: the verdict on it, recorded. */
  connection(socket: TLSSocket): ConnectionVerdict;
  /** One HTTP request. */
  request(req: IncomingMessage, res: ServerResponse): void;
  /**
   * One request its transport refuses before step 1 (an HTTP/2 header list over max_header_bytes: http2.ts
   * measures it, node:http2 does not): answered `status` and observed like every refusal (step 4: access
   * line, request metrics, /clients), route (none) as admit's refusals before a route.
   */
  refuse(req: IncomingMessage, res: ServerResponse, status: number, body: ErrorBody): void;
  /**
   * node:http's parser refused the connection's next request before it existed (listener.ts clientError):
   * answered `status` on the socket, observed with what is known (telemetry.unparsed), and the socket ended.
   */
  unparsed(socket: TLSSocket, status: number, body: ErrorBody): void;
  /** One Upgrade request, on the raw socket Node handed over. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Open WebSocket tunnels, re-checked against the current trust. */
  readonly tunnels: TunnelWatch;
}

type Refused = Extract<ConnectionVerdict, { kind: 'refused' }>;

/** The client's Connection header asks to close after this response. */
const CONNECTION_CLOSE = /(^|,)\s*close\s*(,|$)/i;

/** The generation a request holds (pipeline.ts request()), on its response until 'close'. */
const HELD = Symbol('certgate.generation');
type Holding = ServerResponse & { [HELD]?: Generation };

/** A response's 'close' (once per response): its request no longer holds its generation. A module function, not a closure per request. */
function leaveGeneration(this: Holding): void {
  const gen = this[HELD];
  if (gen === undefined) return;
  this[HELD] = undefined;
  gen.leave();
}

/** An upgrade to whoami_path (certgate's own answer, plain GET only): never forwarded either. */
const WHOAMI_UPGRADE = { status: 400, body: { error: 'bad_request', reason: 'whoami_path', message: 'whoami_path answers plain GET only' } } as const;

/** What a request whose assertion could not be signed hears (it is never forwarded without one). */
const SIGNING_FAILED = { error: 'internal_error', reason: 'assertion_signing', message: 'certgate could not sign the identity assertion for this request; its log says why' } as const;

export function createPipeline(opts: PipelineOptions): Pipeline {
  const { verdicts, telemetry, metrics, log, generations, draining } = opts;

  /** Connections refused after their handshake, already logged. */
  const loggedLate = new WeakSet<TLSSocket>();
  function logLateRefusal(socket: TLSSocket, verdict: Refused, msg = 'client certificate no longer trusted'): void {
    if (verdict.late !== true || loggedLate.has(socket)) return;
    loggedLate.add(socket);
    log.warn({
      msg, reason: verdict.reason, detail: verdict.detail,
      remote_address: clientAddressOf(socket).address, client_subject: verdict.identity?.subject, client_fingerprint: verdict.identity?.fingerprint,
    });
  }

  /** Step 1 for both transports: the connection's verdict now, then the request's own checks. */
  function admit(req: RequestView, socket: TLSSocket, verdict: ConnectionVerdict, gen: Generation): AdmitResult {
    if (verdict.kind === 'refused') {
      logLateRefusal(socket, verdict);
      return verdictRefusal(verdict);
    }
    const a = admitRequest(req, verdict.kind === 'verified' ? verdict.identity : undefined, gen);
    if ('status' in a && a.step === 'policy') metrics.authzDenied.inc({ route: a.route! });
    return a;
  }

  /**
   * The assertion for an admitted request: undefined without headers.assertion or a verified identity, a
   * string when the connection has a fresh one for this route, else a Promise of a new signature.
   */
  function assertionFor(a: Admitted, verdict: ConnectionVerdict, gen: Generation): string | Promise<string> | undefined {
    if (gen.assertion === undefined || a.identity === undefined || verdict.kind !== 'verified') return undefined;
    return gen.assertion.token(a.identity, a.route, verdict.generation);
  }

  function signingFailed(err: unknown, route: string): void {
    log.error({ msg: 'assertion signing failed: request not forwarded', route, err: err instanceof Error ? err.message : String(err) });
  }

  /** limits.max_requests_per_connection, counted per connection. */
  const requestCounts = new WeakMap<object, number>();
  function lastRequestClosesConnection(req: IncomingMessage, res: ServerResponse, max: number): void {
    if (max === 0) return;
    const n = (requestCounts.get(req.socket) ?? 0) + 1;
    requestCounts.set(req.socket, n);
    if (n < max) return;
    // HTTP/2: the session's last stream; GOAWAY once its answer is out (streams already open finish).
    const stream = http2StreamOf(res);
    if (stream !== undefined) res.once('finish', () => stream.session?.close());
    else res.shouldKeepAlive = false;
  }

  /** Step 3's failures, once per request: counted, logged, and answered 502/504 (a tunnel answers its own). */
  const onUpstreamError: UpstreamErrorHandler = (err, failure, route, req, res) => {
    // Answered already (our own 504 timer, then the upstream's error for the same request): count once.
    if ('writeHead' in res && (res as ServerResponse).writableEnded) return;
    metrics.upstreamErrors.inc({ route, kind: failure.kind });
    log.warn({ msg: 'upstream failed', route, kind: failure.kind, code: err.code, path: req.url, detail: failure.body?.message });
    if ('writeHead' in res) sendError(res as ServerResponse, failure.status, upstreamFailureBody(failure));
  };
  const onTunnelError: TunnelErrorHandler = (err, failure, route, req) => onUpstreamError(err, failure, route, req, req.socket);
  const hop = createHop({
    onError: onUpstreamError, onResponse: telemetry.upstreamResponded, draining: (res) => draining(res.req.socket as TLSSocket),
  });

  /** Steps 2 and 3 of an admitted request (no closure per request: issue 19). */
  function forward(req: IncomingMessage, res: ServerResponse, a: Admitted, gen: Generation, clientWantsClose: boolean, assertion: string | undefined): void {
    prepareHeaders(req, a.identity, false, gen.dialect, (a.route.upstream_protocol ?? 'http1') !== 'http1', assertion);
    // Counts the body from here on. max_body_bytes: a declared length was checked by admit; a chunked
    // body is cut by the hop itself, before the chunk that crosses the limit reaches the upstream.
    telemetry.forwarding(req, res, a.route.name);
    hop(req, res, gen.upstreams.get(a.route.name).hop, clientWantsClose);
  }
  const tunnels = createTunnelWatch(verdicts, (socket, verdict) => {
    metrics.tunnelsClosed.inc({ reason: verdict.reason });
    logLateRefusal(socket, verdict, 'websocket tunnel closed: client certificate no longer trusted');
  });

  return {
    tunnels,
    connection(socket) {
      const verdict = connectionVerdict(socket, verdicts);
      telemetry.connection(socket, verdict);
      return verdict;
    },

    request(req, res) {
      const gen = generations.current;
      // Holds this generation's pools open until the answer has ended, even if a reload retires it meanwhile.
      gen.enter();
      (res as Holding)[HELD] = gen;
      res.on('close', leaveGeneration);
      telemetry.begin(req, res, gen.id);
      lastRequestClosesConnection(req, res, gen.maxRequestsPerConnection);
      const socket = req.socket as TLSSocket;
      const verdict = connectionVerdict(socket, verdicts);
      const a = admit(req, socket, verdict, gen);
      if ('status' in a) {
        telemetry.refused(res, a.status, a.body, a.route);
        sendError(res, a.status, a.body, { close: a.close === true || draining(socket) });
        return;
      }
      if ('whoami' in a) {
        telemetry.answered(res, WHOAMI_ROUTE);
        a.whoami.respond(req, res, a.identity, draining(socket));
        return;
      }
      const connection = req.headers.connection;
      const clientWantsClose = draining(socket) || (connection !== undefined && CONNECTION_CLOSE.test(String(connection)));
      const assertion = assertionFor(a, verdict, gen);
      if (typeof assertion !== 'object') {
        forward(req, res, a, gen, clientWantsClose, assertion);
        return;
      }
      // A new signature (once per connection, route and generation): the request waits for it, unread.
      assertion.then((jws) => {
        if (!res.destroyed) forward(req, res, a, gen, clientWantsClose, jws);
      }, (err: unknown) => {
        signingFailed(err, a.route.name);
        telemetry.refused(res, 500, SIGNING_FAILED, a.route.name);
        sendError(res, 500, SIGNING_FAILED, { close: true });
      });
    },

    refuse(req, res, status, body) {
      telemetry.begin(req, res, generations.current.id);
      telemetry.refused(res, status, body, undefined);
      sendError(res, status, body);
    },

    unparsed(socket, status, body) {
      sendErrorOnSocket(socket as never, status, body, telemetry.unparsed(socket, status, body.error));
    },

    upgrade(req, socket, head) {
      const gen = generations.current;
      socket.once('close', gen.hold());
      const record = telemetry.upgrade(req, socket);
      // Admission first (a client without a valid certificate, a bad path or Host hear that, whoami_path
      // included), then the upgrade's own shape: both answered before any upstream is contacted, and the
      // connection closed.
      const tls = req.socket as TLSSocket;
      const verdict = connectionVerdict(tls, verdicts);
      const a = admit(req, tls, verdict, gen);
      const refusal = 'status' in a ? a : 'whoami' in a ? WHOAMI_UPGRADE : upgradeRefusal(req.method, req.headers);
      if (refusal !== undefined) {
        if ('route' in refusal && refusal.route !== undefined) record.route = refusal.route;
        record.status = refusal.status;
        record.error = refusal.body.error;
        sendErrorOnSocket(socket as never, refusal.status, refusal.body);
        return;
      }
      const admitted = a as Admitted;
      record.route = admitted.route.name;
      const open = (assertion: string | undefined): void => {
        prepareHeaders(req, admitted.identity, true, gen.dialect, false, assertion);
        // Set again: the client's Connection header may have named it as hop-by-hop.
        req.headers['x-request-id'] = record.id;
        openTunnel(req, socket, head, gen.upstreams.get(admitted.route.name).tunnel, onTunnelError, {
          status(status) {
            record.status = status;
          },
          opened(close) {
            tunnels.add(tls, close);
          },
        });
      };
      const assertion = assertionFor(admitted, verdict, gen);
      if (typeof assertion !== 'object') {
        open(assertion);
        return;
      }
      // Bytes the client sends meanwhile wait in the socket. Never resume() here: an upgraded socket has no
      // 'data' listener until the tunnel pipes it after the 101 (pipe() resumes it), and a flowing socket
      // without one drops what it reads.
      socket.pause();
      assertion.then((jws) => {
        if (socket.destroyed) return;
        open(jws);
      }, (err: unknown) => {
        signingFailed(err, admitted.route.name);
        record.status = 500;
        record.error = SIGNING_FAILED.error;
        sendErrorOnSocket(socket as never, 500, SIGNING_FAILED);
      });
    },
  };
}

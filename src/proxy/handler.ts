/**
 * One request, top to bottom:
 *   0 connection verdict (once per TLS connection) → 400 client_certificate_{required,invalid}, close
 *     whoami_path (when set, admitted client): answered here by certgate (whoami-endpoint.ts), never forwarded
 *   1 path normalised for matching → 400 bad_request
 *   2 route = first match (host, path) → 404 no_route
 *   3 route policy (allow) → 400 client_certificate_required (optional mode) | 403 forbidden
 *   4 smuggling guard → 411 length_required
 *   5 strip client-controlled + hop-by-hop headers, set identity + X-Forwarded-* on req.headers
 *   6 forward (upstreams.ts: hop.ts for HTTP, tunnel.ts for WebSocket) → 502/504 on upstream failure
 *     (an upgrade first passes upgradeRefusal: bodiless GET + Upgrade: websocket, else 400 and close;
 *      an open tunnel is re-checked against the current trust by tunnel-watch.ts)
 *   7 telemetry (telemetry.ts): X-Request-Id at once; on close metrics + one access-log line + /clients
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Config, RouteConfig } from '../config/types.js';
import type { ClientIdentity } from '../identity/types.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../admin/metrics.js';
import type { Telemetry } from './telemetry.js';
import { identityHeaders, stripClientControlled } from '../identity/headers.js';
import { connectionVerdict, type ConnectionVerdict, type VerdictContext } from './verdict.js';
import { PATH_REFUSAL_MESSAGES, normalizeRequestPath } from './path.js';
import { parseHost } from './host.js';
import { createRouter } from './routes.js';
import { compileAllow, type PolicyDecision } from './policy.js';
import { sendError, sendErrorOnSocket, type ErrorBody } from '../respond.js';
import type { Forwarder } from './upstreams.js';
import { createWhoamiEndpoint, WHOAMI_ROUTE } from './whoami-endpoint.js';
import { upgradeRefusal } from './tunnel.js';
import { stripHopByHop } from './hop-by-hop.js';
import { createTunnelWatch, type TunnelWatch } from './tunnel-watch.js';
import { refusalHint } from '../probe/refusal-hints.js';

export interface RequestHandlers {
  onRequest(req: IncomingMessage, res: ServerResponse): void;
  onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Open WebSocket tunnels, re-checked against the current trust. */
  readonly tunnels: TunnelWatch;
}

interface Refusal {
  readonly status: number;
  readonly body: ErrorBody;
  readonly close?: boolean;
  readonly route?: string;
}

type Admitted = {
  readonly route: RouteConfig;
  readonly identity: ClientIdentity | undefined;
  readonly matched?: string;
};

export function createHandlers(
  config: Config, verdictContext: VerdictContext, forwarder: Forwarder, metrics: Metrics, log: Logger,
  /** True once shutdown began: responses then close their connection (idle keep-alive must not linger). */
  draining: () => boolean = () => false,
  /** Step 7: per-request metrics, the access line, X-Request-Id, /clients (telemetry.ts). */
  telemetry: Telemetry,
): RequestHandlers {
  const match = createRouter(config.routes);
  const policies = new Map(config.routes.map((r) => [r.name, compileAllow(r.allow)] as const));
  /**
   * limits.max_requests_per_connection: the last allowed response says Connection: close (Node's own
   * maxRequestsPerSocket would answer the request after it with a 503 instead; it stays as the backstop).
   */
  const maxRequests = config.limits.max_requests_per_connection;
  const requestCounts = new WeakMap<object, number>();
  function lastRequestClosesConnection(req: IncomingMessage, res: ServerResponse): void {
    if (maxRequests === 0) return;
    const n = (requestCounts.get(req.socket) ?? 0) + 1;
    requestCounts.set(req.socket, n);
    if (n >= maxRequests) res.shouldKeepAlive = false;
  }
  /** Connections refused after their handshake, already logged. */
  const loggedLate = new WeakSet<TLSSocket>();
  function logLateRefusal(socket: TLSSocket, verdict: ConnectionVerdict & { kind: 'refused' }, msg = 'client certificate no longer trusted'): void {
    if (verdict.late !== true || loggedLate.has(socket)) return;
    loggedLate.add(socket);
    log.warn({
      msg, reason: verdict.reason, detail: verdict.detail,
      remote_address: socket.remoteAddress, client_subject: verdict.identity?.subject, client_fingerprint: verdict.identity?.fingerprint,
    });
  }
  const tunnels = createTunnelWatch(verdictContext, (socket, verdict) => {
    metrics.tunnelsClosed.inc({ reason: verdict.reason });
    logLateRefusal(socket, verdict, 'websocket tunnel closed: client certificate no longer trusted');
  });
  // whoami_path (certgate probe): the headers of step 5 for this connection, computed on a copy.
  const whoami = config.whoami_path === undefined ? undefined : createWhoamiEndpoint({
    path: config.whoami_path, match, policies, verbose: config.errors.verbose,
    upstreamHeaders: (req, identity) => {
      const view = { headers: { ...req.headers }, socket: req.socket };
      prepareHeaders(view, identity, false);
      return view.headers;
    },
  });

  /** Steps 0–4: everything that decides whether this request may reach an upstream. */
  function admit(req: IncomingMessage): Admitted | Refusal {
    const socket = req.socket as TLSSocket;
    const verdict = connectionVerdict(socket, verdictContext);
    if (verdict.kind === 'refused') {
      logLateRefusal(socket, verdict);
      if (verdict.error === 'reauthentication_required') {
        return {
          status: 421, close: true,
          body: { error: verdict.error, message: 'the trusted CAs changed since this connection was opened: retry on a new connection' },
        };
      }
      return {
        status: 400, close: true,
        body: verdict.error === 'client_certificate_required'
          ? { error: verdict.error, message: 'this server requires a client certificate; none was presented', hint: refusalHint(verdict.reason) }
          : { error: verdict.error, reason: verdict.reason, message: `client certificate refused: ${verdict.detail}`, hint: refusalHint(verdict.reason) },
      };
    }
    const identity = verdict.kind === 'verified' ? verdict.identity : undefined;
    // strict_paths: also refuse names that upstreams fold into others (/admin., /admin%20, %252e; path.ts).
    const target = normalizeRequestPath(req.url ?? '', { strict: config.strict_paths });
    if (!target.ok) return { status: 400, close: true, body: { error: 'bad_request', reason: target.reason, message: PATH_REFUSAL_MESSAGES[target.reason] } };
    // RFC 9112 §3.2: more than one Host line is a 400. Node keeps the first and drops the rest, so routing
    // and the upstream would agree, but a front proxy that kept the last one would not.
    if (hostLines(req.rawHeaders) > 1) return { status: 400, close: true, body: { error: 'bad_request', reason: 'duplicate_host', message: 'a request may carry one Host header' } };
    // Same section: HTTP/1.1 requires Host. Node would answer a bare 400 itself (listener.ts turns that off).
    if (req.headers.host === undefined && req.httpVersion !== '1.0') return { status: 400, close: true, body: { error: 'bad_request', reason: 'missing_host', message: 'HTTP/1.1 requests need a Host header' } };
    // A Host that the upstream could read as another host (admin.example.com:1:2, x@admin.example.com, …)
    // would pass a host route's allow list by matching a laxer route: only name[:port] is accepted
    // (host.ts), on HTTP/1.0 too. The value is then forwarded, and copied to X-Forwarded-Host, unchanged.
    if (req.headers.host !== undefined && parseHost(req.headers.host) === undefined) {
      return { status: 400, close: true, body: { error: 'bad_request', reason: 'invalid_host', message: 'the Host header must be a host name, an IPv4 address or a bracketed IPv6 address, with an optional port 1-65535' } };
    }
    const route = match(req.headers.host, target.path);
    if (route === undefined) return { status: 404, body: { error: 'no_route', message: 'no route matches this host and path' } };
    const decision: PolicyDecision = policies.get(route.name)!(identity);
    if (!decision.allowed) {
      metrics.authzDenied.inc({ route: route.name });
      if (decision.error === 'client_certificate_required') {
        return { status: 400, route: route.name, body: { error: 'client_certificate_required', route: route.name, message: `route ${route.name} requires a client certificate` } };
      }
      const who = identity?.subject ?? '(none)';
      return {
        status: 403, route: route.name,
        body: {
          error: 'forbidden', route: route.name,
          message: `client ${who} is not allowed on route ${route.name}`,
          ...(config.errors.verbose && decision.rule !== undefined && { rule: decision.rule }),
        },
      };
    }
    const te = req.headers['transfer-encoding'];
    if (te !== undefined && req.headers['content-length'] === undefined && (req.method === 'DELETE' || req.method === 'OPTIONS')) {
      // http-proxy gives a DELETE/OPTIONS without Content-Length a Content-Length: 0; a chunked body streamed
      // after it is a second request upstream (CVE-2026-29057). hop.ts (undici) frames it correctly, but
      // WebSocket/edge paths still run http-proxy, and a client has no reason to send this: refused.
      return { status: 411, close: true, route: route.name, body: { error: 'length_required', message: 'send a Content-Length with a body on DELETE/OPTIONS' } };
    }
    const declared = req.headers['content-length'];
    if (route.max_body_bytes !== undefined && declared !== undefined && Number(declared) > route.max_body_bytes) {
      return { status: 413, close: true, route: route.name, body: { error: 'body_too_large', limit: route.max_body_bytes } };
    }
    return { route, identity, ...(decision.matched !== undefined && { matched: decision.matched }) };
  }

  /** Step 5: the headers the upstream sees. Mutates req.headers (the hop sends them as they are). */
  function prepareHeaders(req: Pick<IncomingMessage, 'headers' | 'socket'>, identity: ClientIdentity | undefined, upgrade: boolean): void {
    const h = req.headers;
    stripHopByHop(h, upgrade);
    stripClientControlled(h, config.headers.pass_through);
    Object.assign(h, identityHeaders(identity, config.headers));
    h['x-forwarded-for'] = req.socket.remoteAddress ?? '';
    h['x-forwarded-proto'] = 'https';
    if (h.host !== undefined) h['x-forwarded-host'] = h.host;
    // Defence in depth (httpxy #158): never reuse an upstream connection after a chunked request body.
    if (h['transfer-encoding'] !== undefined) h.connection = 'close';
  }

  return {
    tunnels,
    onRequest(req, res) {
      // Step 7 starts here: in-flight, X-Request-Id; metrics + the access line follow on the response's 'close'.
      const record = telemetry.begin(req, res);
      lastRequestClosesConnection(req, res);
      // whoami_path: certgate answers it itself, after the connection verdict (a refused client falls
      // through to admit's 400) and before any route; never forwarded.
      const v = whoami?.matches(req.url) === true ? connectionVerdict(req.socket as TLSSocket, verdictContext) : undefined;
      if (whoami !== undefined && v !== undefined && v.kind !== 'refused') {
        telemetry.answered(res, WHOAMI_ROUTE);
        whoami.respond(req, res, v, draining());
        return;
      }
      const a = admit(req);
      if ('status' in a) {
        telemetry.refused(res, a.status, a.body, a.route);
        sendError(res, a.status, a.body, { close: a.close === true || draining() });
        return;
      }
      const clientWantsClose = draining() || /(^|,)\s*close\s*(,|$)/i.test(String(req.headers.connection ?? ''));
      prepareHeaders(req, a.identity, false);
      telemetry.forwarding(req, res, a.route.name);
      // Counted beside the hop's own reading of the body (both see every chunk; the hop keeps the backpressure).
      // max_body_bytes: a declared length is checked in admit(); a chunked body is cut by the hop itself,
      // before the chunk that crosses the limit is handed to the upstream (hop.ts limitedBody).
      req.on('data', (chunk: Buffer) => {
        record.bytesIn += chunk.length;
      });
      forwarder.web(req, res, a.route, clientWantsClose);
    },
    onUpgrade(req, socket, head) {
      const record = telemetry.upgrade(req, socket);
      // whoami_path is certgate's own, plain GET only: an upgrade there is never forwarded either.
      if (whoami?.matches(req.url) === true) {
        record.status = 400;
        record.error = 'bad_request';
        sendErrorOnSocket(socket as never, 400, { error: 'bad_request', reason: 'whoami_path', message: 'whoami_path answers plain GET only' });
        return;
      }
      // Admission first (a client without a valid certificate hears that), then the upgrade's own shape:
      // both answered before any upstream is contacted, and the connection closed.
      const a = admit(req);
      const refusal = 'status' in a ? a : upgradeRefusal(req.method, req.headers);
      if (refusal !== undefined) {
        if ('route' in refusal && refusal.route !== undefined) record.route = refusal.route;
        record.status = refusal.status;
        record.error = refusal.body.error;
        sendErrorOnSocket(socket as never, refusal.status, refusal.body);
        return;
      }
      const admitted = a as Admitted;
      record.route = admitted.route.name;
      prepareHeaders(req, admitted.identity, true);
      // Set again: the client's Connection header may have named it as hop-by-hop.
      req.headers['x-request-id'] = record.id;
      forwarder.ws(req, socket, head, admitted.route, {
        status(status) {
          record.status = status;
        },
        opened(close) {
          tunnels.add(req.socket as TLSSocket, close);
        },
      });
    },
  };
}

function hostLines(raw: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') n += 1;
  }
  return n;
}

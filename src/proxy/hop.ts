/**
 * The HTTP hop to the upstream (issue #4): one node:http(s) request per client request over the route's
 * keep-alive agent, and our own response relay. WebSocket/Upgrade requests stay on http-proxy-3
 * (forward.ts picks). Why not http-proxy-3 here too: per request it re-parses the URL (twice), copies the
 * headers, runs its pass pipeline and emits events nobody listens to; this hop does only what certgate
 * needs. Measured on 8 interleaved rounds of 4000 keep-alive mTLS requests to a local upstream, certgate's
 * CPU per request (median new/old): GET 0.62 (211 → 134 µs), POST 4 KiB 0.69 (215 → 151 µs).
 *
 * What reaches the upstream is what http-proxy-3 1.23 sent with certgate's options (prependPath,
 * changeOrigin false, xfwd false, our agent):
 * - path: the upstream URL's path and query joined with req.url by http-proxy-3's rules (outgoingPath());
 * - headers: req.headers as handler.ts left them (identity set, spoofs and hop-by-hop fields removed,
 *   `trailer` included), so the client's Host is kept; Node adds `Connection: keep-alive` (agent) unless
 *   handler.ts set `Connection: close` (chunked body); a DELETE/OPTIONS without Content-Length gets
 *   `Content-Length: 0` (http-proxy's deleteLength; a chunked one never gets here: handler.ts answers 411);
 * - the body is piped; a request that can carry none (no Transfer-Encoding, no or zero Content-Length)
 *   is ended at once instead, which puts the same bytes on the wire.
 *
 * Failures: every upstream error, the route timeout (504 while no response headers arrived), socket
 * inactivity past the timeout (cuts a stalled body), an unsolicited 101, and a response cut mid-body
 * reach onError at most once per request. A client that goes away destroys its upstream request.
 *
 * Per request: one Exchange object, one timer, no closures (listeners are module functions that find
 * their Exchange through a symbol), no regex compiled, no Set unless the upstream's Connection header
 * names an end-to-end field.
 */
import http from 'node:http';
import https from 'node:https';
import type { RouteConfig } from '../config/types.js';
import { classifyUpstreamError, type UpstreamFailure } from './upstream-error.js';
import type { UpstreamErrorHandler } from './forward.js';

/** One route's upstream, prepared once. */
export interface HopTarget {
  readonly route: string;
  readonly agent: http.Agent;
  readonly timeoutMs: number;
  readonly request: typeof http.request;
  readonly hostname: string;
  readonly port: number;
  /** The upstream URL's path as http-proxy-3 reads it (at least "/"), and its query without "?" ("" when none). */
  readonly basePath: string;
  readonly baseQuery: string;
}

export function hopTarget(route: RouteConfig, agent: http.Agent): HopTarget {
  const url = route.upstream;
  const secure = url.protocol === 'https:';
  const base = requestPath(`${url.pathname}${url.search}`);
  const q = base.indexOf('?');
  return {
    route: route.name, agent, timeoutMs: route.timeout_ms,
    request: secure ? https.request : http.request,
    // WHATWG keeps IPv6 brackets in hostname; getaddrinfo wants them off (Node adds them back to Host).
    hostname: url.hostname.startsWith('[') && url.hostname.endsWith(']') ? url.hostname.slice(1, -1) : url.hostname,
    port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
    basePath: q === -1 ? base : base.slice(0, q),
    baseQuery: q === -1 ? '' : base.slice(q + 1),
  };
}

export type Hop = (req: http.IncomingMessage, res: http.ServerResponse, target: HopTarget, clientWantsClose: boolean) => void;

export function createHop(onError: UpstreamErrorHandler, draining: () => boolean): Hop {
  const ctx: HopContext = { onError, draining };
  return (req, res, target, clientWantsClose) => {
    const x = new Exchange(ctx, req, res, target, clientWantsClose);
    // timeout_ms without response headers: answer 504 ourselves (socket inactivity, below, only fires on
    // an idle socket and would report a plain "socket hang up").
    x.timer = setTimeout(onRouteTimeout, target.timeoutMs, x);
    x.timer.unref();
    (res as Carrier)[HOP] = x;
    res.on('close', onClientResponseClose);
    const h = req.headers;
    if ((req.method === 'DELETE' || req.method === 'OPTIONS') && !h['content-length']) {
      h['content-length'] = '0';
      delete h['transfer-encoding'];
    }
    let upstreamReq: http.ClientRequest;
    try {
      upstreamReq = target.request({
        hostname: target.hostname, port: target.port, method: req.method, path: outgoingPath(target, req.url ?? '/'),
        headers: h, agent: target.agent,
        // Socket inactivity: a stalled upstream (before or during its body) is destroyed (onInactive).
        timeout: target.timeoutMs + 1,
      });
    } catch (err) {
      // Node refused to build the request (a header or path it will not send): nothing left the process.
      x.fail(err as NodeJS.ErrnoException, classifyUpstreamError(err as NodeJS.ErrnoException, false));
      return;
    }
    x.upstreamReq = upstreamReq;
    (upstreamReq as Carrier)[HOP] = x;
    (req as Carrier)[HOP] = x;
    upstreamReq.on('error', onHopError);
    req.on('error', onHopError);
    upstreamReq.on('timeout', onInactive);
    upstreamReq.on('upgrade', onUnsolicitedUpgrade);
    upstreamReq.on('response', onUpstreamResponse);
    // After deleteLength above: a chunked DELETE/OPTIONS (handler.ts answers those 411) would go out as
    // Content-Length: 0 without its body, never with it (CVE-2026-29057's second request).
    const cl = h['content-length'];
    if (h['transfer-encoding'] === undefined && (cl === undefined || cl === '0')) upstreamReq.end();
    else req.pipe(upstreamReq);
  };
}

// ---------------------------------------------------------------------------------------------------
// the request target

/**
 * Characters, sequences and shapes that make http-proxy-3's `new URL()` pass change req.url: percent-
 * encoding (controls, space, non-ASCII, " # ' < > ` { }), `\` read as `/`, dot-segments (`/.`, `%2e`),
 * an empty query (`/x?` → `/x`). Conservative: a match only means "take the exact slow path".
 */
const URL_PARSER_CHANGES = /[^\x21-\x7e]|["#'<>\\`{}]|\/\.|%2e|\?$/i;

/**
 * The upstream request-target: http-proxy-3's `urlJoin(getPath(upstream path+query), getPath(req.url))`
 * (prependPath). The upstream's path comes first, one "/" at the seam (`/base` or `/base/` + `/x` →
 * `/base/x`; `/base` + `/` → `/base/`), the queries are joined with "&" (upstream's first). req.url goes
 * through WHATWG URL parsing as http-proxy-3 does, but only when that would change it (see
 * URL_PARSER_CHANGES); otherwise it is used byte for byte, and for an upstream without path or query it
 * is the target as is.
 */
export function outgoingPath(target: Pick<HopTarget, 'basePath' | 'baseQuery'>, url: string): string {
  const plain = url.charCodeAt(0) === 0x2f && !URL_PARSER_CHANGES.test(url);
  if (plain && target.basePath === '/' && target.baseQuery === '') return url;
  const own = plain ? url : requestPath(url);
  const q = own.indexOf('?');
  const path = q === -1 ? own : own.slice(0, q);
  const query = q === -1 ? '' : own.slice(q + 1);
  let out = target.basePath;
  if (path !== '') {
    if (out.endsWith('/')) out += path.charCodeAt(0) === 0x2f ? path.slice(1) : path;
    else out += path.charCodeAt(0) === 0x2f ? path : '/' + path;
  }
  const qs = target.baseQuery !== '' && query !== '' ? `${target.baseQuery}&${query}` : target.baseQuery + query;
  return qs === '' ? out : `${out}?${qs}`;
}

/** http-proxy-3's getPath(): pathname + search of the WHATWG parse against a dummy origin. */
function requestPath(url: string): string {
  if (url === '' || url.startsWith('?')) return url;
  const u = new URL(url.startsWith('//') ? `http://base.invalid${url}` : url, 'http://base.invalid');
  return `${u.pathname}${u.search}`;
}

// ---------------------------------------------------------------------------------------------------
// one exchange

interface HopContext {
  readonly onError: UpstreamErrorHandler;
  readonly draining: () => boolean;
}

const HOP = Symbol('certgate.hop');
type Carrier = { [HOP]?: Exchange };

class Exchange {
  upstreamReq: http.ClientRequest | undefined = undefined;
  timer: NodeJS.Timeout | undefined = undefined;
  /** The route timeout fired: errors and cuts from now on count as timeouts. */
  timedOut = false;
  reported = false;
  cut = false;

  constructor(
    readonly ctx: HopContext,
    readonly req: http.IncomingMessage,
    readonly res: http.ServerResponse,
    readonly target: HopTarget,
    /** The client asked to close the connection after the response (its Connection header is stripped). */
    readonly closeAfter: boolean,
  ) {}

  /** onError, once per request. */
  fail(err: NodeJS.ErrnoException, failure: UpstreamFailure): void {
    if (this.reported) return;
    this.reported = true;
    this.ctx.onError(err, failure, this.target.route, this.req, this.res);
  }
}

/** upstreamReq or req 'error' (http-proxy's createErrorHandler). */
function onHopError(this: Carrier, err: NodeJS.ErrnoException): void {
  const x = this[HOP]!;
  if (x.req.socket.destroyed && err.code === 'ECONNRESET') {
    // The client is gone (or the upstream request was destroyed because it went): not an upstream fault.
    x.upstreamReq!.destroy();
    return;
  }
  x.fail(err, classifyUpstreamError(err, x.timedOut));
}

function onRouteTimeout(x: Exchange): void {
  x.timedOut = true;
  if (!x.res.headersSent) x.fail(Object.assign(new Error('upstream response timeout'), { code: 'ETIMEDOUT' }), { status: 504, kind: 'timeout' });
}

function onInactive(this: http.ClientRequest): void {
  this.destroy();
}

/**
 * An upstream answering 101 to a request that asked for no upgrade: Node's client would wait forever
 * (it sets req.res, then finds no 'upgrade' listener). Fail it now, as a 502.
 */
function onUnsolicitedUpgrade(this: Carrier, _upstreamRes: http.IncomingMessage, socket: import('node:stream').Duplex): void {
  socket.destroy();
  const err = Object.assign(new Error('the upstream answered 101 to a request without Upgrade'), { code: 'ERR_UNSOLICITED_UPGRADE' });
  this[HOP]!.fail(err, { status: 502, kind: 'other' });
}

function onClientResponseClose(this: Carrier & http.ServerResponse): void {
  const x = this[HOP]!;
  clearTimeout(x.timer);
  // Closed before our response was complete: the client left (or we cut it); stop the upstream request.
  if (!this.writableFinished) x.upstreamReq?.destroy();
}

// ---------------------------------------------------------------------------------------------------
// the response

/** RFC 9110 §7.6.1 response fields that describe the upstream hop, not ours. */
const RESPONSE_HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'transfer-encoding',
]);

/**
 * The other fields the upstream's Connection header names, but never Content-Length/-Type (undefined
 * when there are none: the usual `keep-alive`, so no Set per response).
 */
function connectionNamed(connection: string): Set<string> | undefined {
  let named: Set<string> | undefined;
  for (const token of connection.split(',')) {
    const name = token.trim().toLowerCase();
    if (name === 'content-length' || name === 'content-type' || RESPONSE_HOP_BY_HOP.has(name)) continue;
    (named ??= new Set()).add(name);
  }
  return named;
}

/**
 * Writes the upstream's response ourselves, so that:
 * - the upstream's hop-by-hop fields (its keep-alive timeout, any field its Connection header names) never
 *   reach the client;
 * - Node alone decides whether the client connection stays open (HTTP/1.0 keep-alive, max requests per
 *   connection, shutdown) — setting `Connection: keep-alive` by hand would override that decision;
 * - an upstream that dies mid-body cuts the client's stream, so a truncated body is never mistaken for a
 *   complete one (a plain pipe would leave the client waiting).
 * The upstream's fields are appended (an X-Request-Id of its own does not replace ours; observe.ts sets
 * ours again on 'pipe').
 */
function onUpstreamResponse(this: Carrier & http.ClientRequest, upstreamRes: http.IncomingMessage): void {
  const x = this[HOP]!;
  const res = x.res;
  if (res.headersSent) {
    // Answered already (our 504, or handler.ts's 413): this response has nowhere to go.
    this.destroy();
    return;
  }
  const connection = upstreamRes.headers.connection;
  const named = typeof connection === 'string' ? connectionNamed(connection) : undefined;
  if (x.closeAfter || x.ctx.draining()) res.shouldKeepAlive = false;
  res.statusCode = upstreamRes.statusCode ?? 502;
  if (upstreamRes.statusMessage) res.statusMessage = upstreamRes.statusMessage;
  const raw = upstreamRes.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (!RESPONSE_HOP_BY_HOP.has(lower) && (named === undefined || !named.has(lower))) res.appendHeader(name, raw[i + 1]!);
  }
  (upstreamRes as Carrier)[HOP] = x;
  upstreamRes.on('aborted', onResponseCut);
  upstreamRes.on('error', onResponseCut);
  upstreamRes.on('close', onResponseCut);
  upstreamRes.pipe(res);
}

/** The upstream's response ended before its last byte: cut the client's stream and count it once. */
function onResponseCut(this: Carrier & http.IncomingMessage): void {
  const x = this[HOP]!;
  if (x.cut || this.complete) return;
  x.cut = true;
  // Stalled past the route's timeout (the inactivity timeout destroyed it), or the upstream went away.
  const kind = x.timedOut ? 'timeout' : 'reset';
  const res = x.res;
  if (!(res.destroyed && x.req.socket.destroyed)) { // else the client left first: not an upstream fault
    const err = Object.assign(new Error(`upstream response cut (${kind})`), { code: kind === 'timeout' ? 'ETIMEDOUT' : 'ECONNRESET' });
    x.fail(err, { status: kind === 'timeout' ? 504 : 502, kind });
  }
  res.destroy();
}

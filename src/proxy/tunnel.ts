/**
 * The WebSocket hop: one fresh upstream connection per Upgrade request, never pooled (issue #13).
 *
 * Why certgate's own and not http-proxy-3's ws(): an adversarial review found three holes there that the
 * library's shape makes hard to close from outside —
 * - its keep-alive agent put the upstream connection of a refused (non-101) upgrade back in the route's
 *   pool; an upgrade request that declared a body it never sent then made the upstream read the *next*
 *   request on that connection as this one's body (an allow-list bypass: the cut lands in a header);
 * - a non-101 answer was relayed without backpressure (one client grew RSS to 1.5 GB);
 * - a socket waiting for the upstream had no timeout at all.
 * Here: the request is refused before anything is contacted unless it is a bodiless GET with
 * `Upgrade: websocket` (upgradeRefusal, called by pipeline.ts); the upstream connection is opened for this
 * request alone (agent: false) and closed after any answer but a 101; every byte either way goes through
 * pipe() (backpressure); until a 101 is relayed the client socket is under the route's timeout_ms.
 */
import http from 'node:http';
import https from 'node:https';
import { isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { RouteConfig } from '../config/types.js';
import { classifyUpstreamError, upstreamFailureBody, type UpstreamFailure } from './upstream-error.js';
import type { HopTarget } from './hop.js';
import { outgoingPath, upstreamHostname } from './request-target.js';
import { RESPONSE_HOP_BY_HOP } from './hop-by-hop.js';
import { endSocketAnswer, sendErrorOnSocket, type ErrorBody } from '../respond.js';

/** What certgate answers an Upgrade request it will not forward (400, connection closed). */
export interface UpgradeRefusal {
  readonly status: 400;
  readonly body: ErrorBody;
}

/**
 * An Upgrade request certgate forwards is a GET with `Upgrade: websocket` and no body (RFC 6455 §4.1;
 * what http-proxy-3 checked). A declared body is never forwarded on this path: the upstream would wait
 * for it, or read the next request on its connection as it (the desync of issue #13, finding 1).
 * Pure; `headers` as Node parsed them (lower-case names).
 */
export function upgradeRefusal(method: string | undefined, headers: http.IncomingHttpHeaders): UpgradeRefusal | undefined {
  if (headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0')) {
    return { status: 400, body: { error: 'bad_request', reason: 'upgrade_with_body', message: 'an Upgrade request carries no body: send it without Content-Length or Transfer-Encoding' } };
  }
  const upgrade = headers.upgrade;
  if (method !== 'GET' || upgrade === undefined || upgrade.trim().toLowerCase() !== 'websocket') {
    return { status: 400, body: { error: 'bad_request', reason: 'upgrade_not_websocket', message: 'certgate forwards WebSocket upgrades only (GET with Upgrade: websocket); h2c and other protocols are not tunnelled' } };
  }
  return undefined;
}

/** One route's WebSocket upstream, prepared once per generation (upstreams.ts). */
export interface TunnelTarget {
  readonly route: string;
  readonly timeoutMs: number;
  readonly hop: Pick<HopTarget, 'basePath' | 'baseQuery'>;
  /** http.request options naming the upstream (host, port, TLS verification); agent: false. */
  readonly connect: http.RequestOptions & https.RequestOptions;
  readonly secure: boolean;
}

export function tunnelTarget(route: RouteConfig, hop: HopTarget, ca: Buffer | undefined): TunnelTarget {
  const url = route.upstream;
  const secure = url.protocol === 'https:';
  const hostname = upstreamHostname(url);
  const connect: http.RequestOptions & https.RequestOptions = {
    host: hostname, port: url.port === '' ? (secure ? 443 : 80) : Number(url.port), agent: false, setHost: false,
    // Verified against the URL's host name, never the client's Host header; none for an IP (RFC 6066).
    ...(secure && { servername: isIP(hostname) === 0 ? hostname : '', rejectUnauthorized: true, ...(ca !== undefined && { ca }) }),
  };
  return { route: route.name, timeoutMs: route.timeout_ms, hop, connect, secure };
}

export type TunnelErrorHandler = (err: NodeJS.ErrnoException, failure: UpstreamFailure, route: string, req: http.IncomingMessage) => void;

export interface TunnelEvents {
  /** The upstream's answer (101, or its refusal), or the 502/504 certgate answered instead. */
  status(status: number): void;
  /** A 101 was relayed: the two sockets are spliced; `close` ends the tunnel (both sockets destroyed). */
  opened(close: () => void): void;
}

/**
 * Forwards one admitted Upgrade request (headers final on req.headers, request-headers.ts) and splices the sockets
 * on a 101. The client socket is the raw TLS socket Node handed over with the 'upgrade' event.
 */
export function openTunnel(
  req: http.IncomingMessage, client: Duplex, head: Buffer, target: TunnelTarget, onError: TunnelErrorHandler, events: TunnelEvents,
): void {
  const socket = client as Socket;
  let path: string;
  try {
    path = outgoingPath(target.hop, req.url ?? '/');
  } catch (err) {
    fail(err as NodeJS.ErrnoException, classifyUpstreamError(err as NodeJS.ErrnoException, false));
    return;
  }
  const headers = { ...req.headers };
  // upgradeRefusal let through no body but an explicit `Content-Length: 0`: nothing to declare upstream.
  delete headers['content-length'];
  const upstream = (target.secure ? https : http).request({ ...target.connect, method: 'GET', path, headers });
  let answered = false;
  let spliced = false;
  // Until a 101 is relayed the client socket is an ordinary request's: the route's timeout covers the wait
  // for the upstream's answer (504) and a relay that makes no progress either way (cut).
  socket.setTimeout(target.timeoutMs);
  socket.on('timeout', onClientTimeout);
  socket.once('close', onClientClose);
  socket.on('error', ignore);

  upstream.on('upgrade', (res: http.IncomingMessage, upstreamSocket: Socket, upstreamHead: Buffer) => {
    answered = true;
    events.status(101);
    if (socket.destroyed) {
      upstreamSocket.destroy();
      return;
    }
    spliced = true;
    socket.setTimeout(0);
    socket.removeListener('timeout', onClientTimeout);
    socket.setNoDelay(true);
    upstreamSocket.setNoDelay(true);
    upstreamSocket.setTimeout(0);
    socket.write(responseHead(101, res.statusMessage ?? 'Switching Protocols', res.rawHeaders, false));
    if (upstreamHead.length > 0) socket.write(upstreamHead);
    if (head.length > 0) upstreamSocket.write(head);
    const close = (): void => {
      socket.destroy();
      upstreamSocket.destroy();
    };
    upstreamSocket.on('error', close);
    upstreamSocket.once('close', close);
    socket.on('error', close);
    socket.once('close', close);
    // pipe(): a side that stops reading stops the other side's reads (backpressure); half-closes propagate.
    socket.pipe(upstreamSocket);
    upstreamSocket.pipe(socket);
    events.opened(close);
  });

  upstream.on('response', (res: http.IncomingMessage) => {
    // A refusal of the upgrade (401, 403, 400 ...): relayed to the client, then both connections end. The
    // upstream connection was this request's alone (agent: false) and is never reused.
    answered = true;
    events.status(res.statusCode ?? 0);
    if (socket.destroyed) {
      upstream.destroy();
      return;
    }
    const length = res.headers['content-length'];
    const framed = res.headers['transfer-encoding'] === undefined && length !== undefined;
    // Node's parser has removed chunked framing: without a Content-Length the body is close-delimited.
    socket.write(responseHead(res.statusCode ?? 502, res.statusMessage ?? '', res.rawHeaders, true, framed ? undefined : 'drop-length'));
    res.on('error', () => socket.destroy());
    res.on('end', () => {
      endSocketAnswer(socket);
      upstream.destroy();
    });
    // pipe(): the upstream is read only as fast as the client takes the answer (finding 2).
    res.pipe(socket, { end: false });
  });

  upstream.on('error', (err: NodeJS.ErrnoException) => {
    if (spliced || socket.destroyed) return;
    if (answered) {
      // The answer broke off mid-body: a truncated answer must never look complete.
      socket.destroy();
      return;
    }
    fail(err, classifyUpstreamError(err, false));
  });
  upstream.end();

  function fail(err: NodeJS.ErrnoException, failure: UpstreamFailure): void {
    answered = true;
    events.status(failure.status);
    onError(err, failure, target.route, req);
    sendErrorOnSocket(socket, failure.status, upstreamFailureBody(failure));
  }

  function onClientTimeout(): void {
    if (spliced) return;
    if (!answered) {
      upstream.destroy();
      fail(Object.assign(new Error('upstream response timeout'), { code: 'ETIMEDOUT' }), { status: 504, kind: 'timeout' });
      return;
    }
    // The answer is being relayed but neither side moved for timeout_ms: cut both.
    upstream.destroy();
    socket.destroy();
  }

  function onClientClose(): void {
    socket.removeListener('timeout', onClientTimeout);
    if (!spliced) upstream.destroy();
  }
}

function ignore(): void {}

/**
 * The status line and headers relayed to the client. For a 101 every field is kept (Upgrade, Connection
 * and Sec-WebSocket-* make the handshake); for any other answer the upstream's hop-by-hop fields stay on
 * its hop and `Connection: close` ends this connection after it. Values come from Node's parser, which
 * refuses CR, LF and NUL in them.
 */
function responseHead(status: number, message: string, raw: readonly string[], close: boolean, framing?: 'drop-length'): string {
  let named: Set<string> | undefined;
  if (close) {
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.toLowerCase() !== 'connection') continue;
      for (const token of raw[i + 1]!.split(',')) (named ??= new Set()).add(token.trim().toLowerCase());
    }
  }
  let out = `HTTP/1.1 ${status} ${message}\r\n`;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (close && (RESPONSE_HOP_BY_HOP.has(lower) || (named?.has(lower) === true && lower !== 'content-length' && lower !== 'content-type'))) continue;
    if (framing === 'drop-length' && lower === 'content-length') continue;
    out += `${name}: ${raw[i + 1]!}\r\n`;
  }
  if (close) out += 'connection: close\r\n';
  return out + '\r\n';
}

/**
 * The hop to the upstream: one http-proxy-3 instance, keep-alive agents per upstream, and our own
 * timeout bookkeeping. Headers are already final on req.headers when forward() is called: http-proxy
 * skips its 'proxyReq' event for requests with `Expect:`, so nothing security-relevant happens there.
 */
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { readFile } from 'node:fs/promises';
import { createProxyServer } from 'http-proxy-3';
import type { RouteConfig } from '../config/types.js';
import { CertgateError } from '../errors.js';
import { classifyUpstreamError, type UpstreamFailure } from './upstream-error.js';

export type UpstreamErrorHandler = (
  err: NodeJS.ErrnoException, failure: UpstreamFailure, route: string, req: http.IncomingMessage, res: http.ServerResponse | Duplex,
) => void;

export interface Forwarder {
  /** @param clientWantsClose the client's own Connection: close (its Connection header is stripped before). */
  web(req: http.IncomingMessage, res: http.ServerResponse, route: RouteConfig, clientWantsClose: boolean): void;
  ws(req: http.IncomingMessage, socket: Duplex, head: Buffer, route: RouteConfig): void;
  close(): void;
}

interface RouteTarget {
  readonly target: URL;
  readonly agent: http.Agent;
  readonly timeoutMs: number;
}

/** Requests whose upstream timer fired; read by the error handler to answer 504 instead of 502. */
const timedOut = new WeakSet<http.IncomingMessage>();
/** The route each forwarded request took, for the error handler's labels. */
const routeOf = new WeakMap<http.IncomingMessage, string>();
/** Requests whose client asked to close the connection after the response. */
const closeAfter = new WeakSet<http.IncomingMessage>();

/** RFC 9110 §7.6.1 response fields that describe the upstream hop, not ours. */
const RESPONSE_HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'transfer-encoding',
]);

/**
 * Writes the upstream's response ourselves (http-proxy's selfHandleResponse), so that:
 * - the upstream's hop-by-hop fields (its keep-alive timeout, any field its Connection header names) never
 *   reach the client;
 * - Node alone decides whether the client connection stays open (HTTP/1.0 keep-alive, max requests per
 *   connection, shutdown) — setting `Connection: keep-alive` by hand would override that decision;
 * - an upstream that dies mid-body cuts the client's stream, so a truncated body is never mistaken for a
 *   complete one (http-proxy's plain pipe would leave the client waiting).
 */
function relayResponse(
  proxyRes: http.IncomingMessage, req: http.IncomingMessage, res: http.ServerResponse, draining: () => boolean,
  onCut: (kind: 'reset' | 'timeout') => void,
): void {
  const named = new Set<string>();
  const connection = proxyRes.headers.connection;
  if (typeof connection === 'string') {
    for (const name of connection.split(',')) named.add(name.trim().toLowerCase());
  }
  named.delete('content-length');
  named.delete('content-type');
  const raw = proxyRes.rawHeaders;
  const headers: [string, string][] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (!RESPONSE_HOP_BY_HOP.has(lower) && !named.has(lower)) headers.push([name, raw[i + 1]!]);
  }
  if (closeAfter.has(req) || draining()) res.shouldKeepAlive = false;
  res.statusCode = proxyRes.statusCode ?? 502;
  if (proxyRes.statusMessage) res.statusMessage = proxyRes.statusMessage;
  for (const [name, value] of headers) res.appendHeader(name, value);
  let cut = false;
  const cutStream = (): void => {
    if (cut || proxyRes.complete) return;
    cut = true;
    // The upstream stalled past the route's timeout (http-proxy's proxyTimeout destroyed it) or went away.
    onCut(timedOut.has(req) ? 'timeout' : 'reset');
    res.destroy();
  };
  proxyRes.on('aborted', cutStream);
  proxyRes.on('error', cutStream);
  proxyRes.on('close', cutStream);
  proxyRes.pipe(res);
}

export async function createForwarder(
  routes: readonly RouteConfig[], onError: UpstreamErrorHandler, draining: () => boolean = () => false,
): Promise<Forwarder> {
  const targets = new Map<string, RouteTarget>();
  const agents: http.Agent[] = [];
  for (const route of routes) {
    const agent = await agentFor(route);
    agents.push(agent);
    targets.set(route.name, { target: route.upstream, agent, timeoutMs: route.timeout_ms });
  }
  const proxy = createProxyServer({ xfwd: false, ws: true, prependPath: true, selfHandleResponse: true });
  proxy.on('proxyRes', (proxyRes, req, res) => relayResponse(proxyRes, req, res as http.ServerResponse, draining, (kind) => {
    if (res.destroyed && !proxyRes.complete && (req.socket.destroyed)) return; // the client left first: not an upstream fault
    const err: NodeJS.ErrnoException = Object.assign(new Error(`upstream response cut (${kind})`), { code: kind === 'timeout' ? 'ETIMEDOUT' : 'ECONNRESET' });
    onError(err, { status: kind === 'timeout' ? 504 : 502, kind }, routeOf.get(req) ?? 'unknown', req, res as http.ServerResponse);
  }));
  proxy.on('error', (err, req, res) => {
    const failure = classifyUpstreamError(err as NodeJS.ErrnoException, timedOut.has(req));
    onError(err as NodeJS.ErrnoException, failure, routeOf.get(req) ?? 'unknown', req, res as http.ServerResponse | Duplex);
  });
  // An upstream answering 101 to a request that asked for no upgrade: Node's client would wait forever
  // (it sets req.res, then finds no 'upgrade' listener). Fail it now, as a 502.
  proxy.on('proxyReq', (proxyReq, req, res) => {
    proxyReq.on('upgrade', (_upstreamRes, socket) => {
      socket.destroy();
      const err = Object.assign(new Error('the upstream answered 101 to a request without Upgrade'), { code: 'ERR_UNSOLICITED_UPGRADE' });
      onError(err, { status: 502, kind: 'other' }, routeOf.get(req) ?? 'unknown', req, res as http.ServerResponse);
    });
  });
  return {
    web(req, res, route, clientWantsClose) {
      if (clientWantsClose) closeAfter.add(req);
      const t = targets.get(route.name)!;
      routeOf.set(req, route.name);
      // timeout_ms without response headers: answer 504 ourselves. http-proxy's proxyTimeout (socket
      // inactivity, same value) reports a plain ECONNRESET, and does not fire when the upstream socket is
      // already gone without an error (an unsolicited 101 on an Expect: request, say).
      const timer = setTimeout(() => {
        timedOut.add(req);
        if (!res.headersSent) onError(Object.assign(new Error('upstream response timeout'), { code: 'ETIMEDOUT' }), { status: 504, kind: 'timeout' }, route.name, req, res);
      }, t.timeoutMs);
      timer.unref();
      res.once('close', () => clearTimeout(timer));
      proxy.web(req, res, { target: t.target, agent: t.agent, proxyTimeout: t.timeoutMs + 1 });
    },
    ws(req, socket, head, route) {
      const t = targets.get(route.name)!;
      routeOf.set(req, route.name);
      proxy.ws(req, socket, head, { target: t.target, agent: t.agent });
    },
    close() {
      proxy.close();
      for (const a of agents) a.destroy();
    },
  };
}

async function agentFor(route: RouteConfig): Promise<http.Agent> {
  const common = { keepAlive: true, keepAliveMsecs: 1000, maxSockets: 256, maxFreeSockets: 64, scheduling: 'lifo' as const };
  if (route.upstream.protocol !== 'https:') return new http.Agent(common);
  let ca: Buffer | undefined;
  if (route.upstream_ca !== undefined) {
    try {
      ca = await readFile(route.upstream_ca);
    } catch (err) {
      throw new CertgateError('CG_FILE_READ', `route ${route.name}: cannot read upstream_ca ${route.upstream_ca}`, { file: route.upstream_ca, cause: err });
    }
  }
  const hostname = route.upstream.hostname.replace(/^\[(.*)\]$/, '$1');
  // Verify the upstream against its URL's host name, not the client's Host header (which Node's https
  // agent would otherwise use for SNI and the identity check). Agent options override request options.
  return new https.Agent({ ...common, ...(ca !== undefined && { ca }), servername: isIP(hostname) ? '' : hostname, rejectUnauthorized: true });
}

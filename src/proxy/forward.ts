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
const RESPONSE_HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'proxy-authenticate'];

/**
 * The upstream's hop-by-hop fields (its keep-alive timeout, any field its Connection header names) must not
 * reach the client; the client's connection is ours and follows the client's own Connection header.
 * Runs in 'proxyRes', before http-proxy copies the headers (its setConnection pass fills `connection`).
 */
function stripResponseHopByHop(proxyRes: http.IncomingMessage, req: http.IncomingMessage, res: http.ServerResponse): void {
  const h = proxyRes.headers;
  if (typeof h.connection === 'string') {
    for (const name of h.connection.split(',')) {
      const n = name.trim().toLowerCase();
      if (n !== '' && n !== 'content-length' && n !== 'transfer-encoding' && n !== 'content-type') delete h[n];
    }
  }
  for (const n of RESPONSE_HOP_BY_HOP) delete h[n];
  // Node already decided whether the client connection stays open (HTTP/1.0 keep-alive included):
  // follow it, unless the client asked to close or we are draining.
  const connection = closeAfter.has(req) || !res.shouldKeepAlive ? 'close' : 'keep-alive';
  h.connection = connection;
  // http-proxy's setConnection pass answers HTTP/1.0 from the request's Connection header, which we
  // stripped before forwarding (the upstream request is already sent): give it our decision.
  if (req.httpVersion === '1.0') req.headers.connection = connection;
}

export async function createForwarder(routes: readonly RouteConfig[], onError: UpstreamErrorHandler): Promise<Forwarder> {
  const targets = new Map<string, RouteTarget>();
  const agents: http.Agent[] = [];
  for (const route of routes) {
    const agent = await agentFor(route);
    agents.push(agent);
    targets.set(route.name, { target: route.upstream, agent, timeoutMs: route.timeout_ms });
  }
  const proxy = createProxyServer({ xfwd: false, ws: true, prependPath: true });
  proxy.on('proxyRes', stripResponseHopByHop);
  proxy.on('error', (err, req, res) => {
    const failure = classifyUpstreamError(err as NodeJS.ErrnoException, timedOut.has(req));
    onError(err as NodeJS.ErrnoException, failure, routeOf.get(req) ?? 'unknown', req, res as http.ServerResponse | Duplex);
  });
  // Each route's timer: http-proxy's proxyTimeout destroys the upstream request without saying why.
  const optionsFor = (req: http.IncomingMessage, route: RouteConfig) => {
    const t = targets.get(route.name)!;
    routeOf.set(req, route.name);
    const timer = setTimeout(() => timedOut.add(req), t.timeoutMs - 1);
    timer.unref();
    return { opts: { target: t.target, agent: t.agent, proxyTimeout: t.timeoutMs }, timer };
  };
  return {
    web(req, res, route, clientWantsClose) {
      if (clientWantsClose) closeAfter.add(req);
      const { opts, timer } = optionsFor(req, route);
      // Once the upstream answered, a later stall is a cut stream, not "no response in time".
      const stop = (): void => clearTimeout(timer);
      res.once('pipe', stop);
      res.once('close', stop);
      proxy.web(req, res, opts);
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

/**
 * The hop to the upstream, one keep-alive agent per route, and the one place that picks the engine:
 * - web(): hop.ts, a hand-written node:http(s) client hop (issue #4): measured, about a third less certgate
 *   CPU per request than http-proxy-3's web() (GET 211 → 134 µs, 4 KiB POST 215 → 151 µs; hop.ts);
 * - ws(): http-proxy-3, which keeps the Upgrade handshake, socket splicing and its edge cases.
 * Headers are already final on req.headers when web() or ws() is called (handler.ts).
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
import { createHop, hopTarget, type HopTarget } from './hop.js';

export type UpstreamErrorHandler = (
  err: NodeJS.ErrnoException, failure: UpstreamFailure, route: string, req: http.IncomingMessage, res: http.ServerResponse | Duplex,
) => void;

export interface Forwarder {
  /** @param clientWantsClose the client's own Connection: close (its Connection header is stripped before). */
  web(req: http.IncomingMessage, res: http.ServerResponse, route: RouteConfig, clientWantsClose: boolean): void;
  /** @param onStatus told the upstream's answer (101, or its refusal) or the 502/504 certgate answers instead. */
  ws(req: http.IncomingMessage, socket: Duplex, head: Buffer, route: RouteConfig, onStatus?: (status: number) => void): void;
  close(): void;
}

interface RouteTarget {
  readonly target: URL;
  readonly agent: http.Agent;
  readonly hop: HopTarget;
}

/** The route each upgraded request took, for the error handler's labels. */
const routeOf = new WeakMap<http.IncomingMessage, string>();
/** Who wants to know how each upgrade ended (the access line). */
const statusListeners = new WeakMap<http.IncomingMessage, (status: number) => void>();

export async function createForwarder(
  routes: readonly RouteConfig[], onError: UpstreamErrorHandler, draining: () => boolean = () => false,
): Promise<Forwarder> {
  const targets = new Map<string, RouteTarget>();
  const agents: http.Agent[] = [];
  for (const route of routes) {
    const agent = await agentFor(route);
    agents.push(agent);
    targets.set(route.name, { target: route.upstream, agent, hop: hopTarget(route, agent) });
  }
  const hop = createHop(onError, draining);
  // WebSocket/Upgrade only: http-proxy-3 opens the upstream upgrade and splices the two sockets.
  const proxy = createProxyServer({ xfwd: false, ws: true, prependPath: true, selfHandleResponse: true });
  proxy.on('proxyReqWs', (proxyReq, req) => {
    const tell = statusListeners.get(req);
    if (tell === undefined) return;
    proxyReq.once('upgrade', () => tell(101));
    proxyReq.once('response', (upstreamRes: http.IncomingMessage) => tell(upstreamRes.statusCode ?? 0));
  });
  proxy.on('error', (err, req, res) => {
    const failure = classifyUpstreamError(err as NodeJS.ErrnoException, false);
    statusListeners.get(req)?.(failure.status);
    onError(err as NodeJS.ErrnoException, failure, routeOf.get(req) ?? 'unknown', req, res as http.ServerResponse | Duplex);
  });
  return {
    web(req, res, route, clientWantsClose) {
      hop(req, res, targets.get(route.name)!.hop, clientWantsClose);
    },
    ws(req, socket, head, route, onStatus) {
      const t = targets.get(route.name)!;
      routeOf.set(req, route.name);
      if (onStatus !== undefined) statusListeners.set(req, onStatus);
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

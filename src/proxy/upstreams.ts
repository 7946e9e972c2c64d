/**
 * The upstreams of a configuration generation, per route (issue #4): what the forward step needs to reach
 * them, built once per route —
 * - for plain HTTP (hop.ts): an undici Pool per route (created here); why undici: bench/README.md;
 * - for WebSocket upgrades (tunnel.ts): the connect options of one fresh upstream connection per upgrade,
 *   never pooled (it replaced http-proxy-3's ws(), whose pooled agent let a refused upgrade desync the
 *   upstream: issue #13).
 * Both verify an https upstream the same way: upstream_ca (else Node's CAs), against the URL's host name
 * (SNI too; none for an IP), never against the client's Host header.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Dispatcher, Pool as UndiciPool, buildConnector as UndiciBuildConnector } from 'undici';
import type { RouteConfig } from '../config/types.js';
import { CertgateError } from '../errors.js';
import { hopTarget, type HopTarget } from './hop.js';
import { upstreamHostname } from './request-target.js';
import { tunnelTarget, type TunnelTarget } from './tunnel.js';
import { h2OnlyConnector } from './upstream-h2.js';

// undici's own modules, not its index, which also loads fetch, WebSocket, EventSource, caches and mocks:
// certgate starts ~50 ms sooner and ~5 MB smaller (Node 20). undici is pinned exactly; test/unit/hop.test.ts
// checks these are what the index exports.
const require = createRequire(import.meta.url);
const Pool = require('undici/lib/dispatcher/pool.js') as typeof UndiciPool;
const buildConnector = require('undici/lib/core/connect.js') as typeof UndiciBuildConnector;
const { kQueue, kPendingIdx } = require('undici/lib/core/symbols.js') as { kQueue: symbol; kPendingIdx: symbol };

/**
 * undici 7 (and 8, nodejs/undici#5845) puts a request aborted mid-response back in the queue when
 * its connection closes, opens a new connection for it, and only then drops it: every upstream request
 * hop.ts gives up (client gone, 504) would leave a fresh idle upstream connection behind. Drop aborted
 * requests at the head of the queue on 'disconnect', which undici emits just before it looks for work.
 */
function onPoolDisconnect(_origin: URL, targets: readonly unknown[]): void {
  const client = targets[1] as Record<symbol, unknown> | undefined;
  const queue = client?.[kQueue] as ({ aborted: boolean } | null)[] | undefined;
  if (client === undefined || queue === undefined) return;
  const pending = client[kPendingIdx] as number;
  while (queue[pending]?.aborted === true) queue.splice(pending, 1);
}

/** One route's upstream, both ways. */
export interface UpstreamTarget {
  /** Plain HTTP requests (hop.ts, on the route's undici Pool). */
  readonly hop: HopTarget;
  /** WebSocket upgrades (tunnel.ts). */
  readonly tunnel: TunnelTarget;
}

export interface Upstreams {
  /** The target of an admitted route (every route has one). */
  get(route: string): UpstreamTarget;
  /**
   * This generation lets go of its pools: a pool no other generation holds is destroyed (like
   * agent.destroy(): connections closed now, requests still running fail; their onError counts them).
   */
  close(): void;
}

/**
 * The pools kept across configuration generations (issue 17): a live reload that leaves a route's upstream
 * as it was hands the new generation the same undici Pool, so its kept-alive upstream connections survive
 * the reload. A pool is identified by everything it was built from (poolKey); each generation holding it
 * counts once, and the last to let go destroys it.
 */
export interface PoolShelf {
  /** The pool built from `key`, shared while any holder keeps it; `make` builds it when none does. */
  take(key: string, make: () => Dispatcher): Dispatcher;
  /** One holder of `key` lets go; the last one destroys the pool. */
  release(key: string): void;
  /** Pools held now (tests, the status of a reload). */
  readonly size: number;
}

export function createPoolShelf(): PoolShelf {
  const pools = new Map<string, { pool: Dispatcher; holders: number }>();
  return {
    take(key, make) {
      let entry = pools.get(key);
      if (entry === undefined) {
        entry = { pool: make(), holders: 0 };
        pools.set(key, entry);
      }
      entry.holders += 1;
      return entry.pool;
    },
    release(key) {
      const entry = pools.get(key);
      if (entry === undefined) return;
      entry.holders -= 1;
      if (entry.holders > 0) return;
      pools.delete(key);
      entry.pool.destroy(null, ignore);
    },
    get size() {
      return pools.size;
    },
  };
}

/**
 * Everything a route's pool is built from (poolFor): the route (pools are per route), the upstream's
 * origin (scheme, host, port; the URL's path is the hop target's, not the pool's), upstream_protocol, the
 * upstream_ca's bytes (a rotated CA file is a new pool) and timeout_ms (the pool's timers). The pool's
 * other options are constants of poolFor.
 */
export function poolKey(route: RouteConfig, ca: Buffer | undefined): string {
  const caDigest = ca === undefined ? null : createHash('sha256').update(ca).digest('hex');
  return JSON.stringify([route.name, route.upstream.origin, route.upstream_protocol ?? null, caDigest, route.timeout_ms]);
}

/**
 * Reads every upstream_ca (a missing file refuses start-up with the route's name) and takes each route's
 * pool from `shelf` (a previous generation's, when built from the same; a fresh shelf opens them all).
 */
export async function createUpstreams(routes: readonly RouteConfig[], shelf: PoolShelf = createPoolShelf()): Promise<Upstreams> {
  const targets = new Map<string, UpstreamTarget>();
  const cas = await Promise.all(routes.map((route) => upstreamCa(route)));
  // Taken only once every upstream_ca was read: a failure above leaves the shelf as it was.
  const keys: string[] = [];
  routes.forEach((route, i) => {
    const ca = cas[i];
    const key = poolKey(route, ca);
    keys.push(key);
    const pool = shelf.take(key, () => poolFor(route, ca));
    const hop = hopTarget(route, pool);
    targets.set(route.name, { hop, tunnel: tunnelTarget(route, hop, ca) });
  });
  let closed = false;
  return {
    get: (route) => targets.get(route)!,
    close() {
      if (closed) return;
      closed = true;
      for (const key of keys) shelf.release(key);
    },
  };
}

function ignore(): void {}

async function upstreamCa(route: RouteConfig): Promise<Buffer | undefined> {
  if (route.upstream.protocol !== 'https:' || route.upstream_ca === undefined) return undefined;
  try {
    return await readFile(route.upstream_ca);
  } catch (err) {
    throw new CertgateError('CG_FILE_READ', `route ${route.name}: cannot read upstream_ca ${route.upstream_ca}`, { file: route.upstream_ca, cause: err });
  }
}

/**
 * The route's undici Pool for hop.ts: up to 256 connections (the agent's maxSockets), no pipelining,
 * idle connections kept 30 s unless the upstream's Keep-Alive says less (undici keeps timeout=N minus
 * 2 s). undici's headers timer is a backstop (hop.ts answers 504 at timeout_ms itself); its body timer
 * cuts a response stalled for timeout_ms; connecting may take timeout_ms too (undici's default is 10 s).
 */
function poolFor(route: RouteConfig, ca: Buffer | undefined): Dispatcher {
  const timeout = route.timeout_ms;
  const options = {
    connections: 256, pipelining: 1, keepAliveTimeout: 30_000,
    headersTimeout: timeout, bodyTimeout: timeout, connectTimeout: timeout,
  };
  const origin = route.upstream.origin;
  // upstream_protocol h2c / h2: undici's HTTP/2 client, one multiplexed session per connection, reused
  // across client streams (gRPC); trailers come back through the same handler (hop.ts onComplete).
  const h2 = route.upstream_protocol === 'h2c' || route.upstream_protocol === 'h2';
  let pool: UndiciPool;
  if (route.upstream.protocol !== 'https:') {
    // h2c: undici's Pool does not pass useH2c on to its connector (7.30): the connector is built here.
    pool = h2
      ? new Pool(origin, { ...options, allowH2: true, connect: buildConnector({ allowH2: true, useH2c: true, timeout } as Parameters<typeof buildConnector>[0]) })
      : new Pool(origin, options);
  } else {
    const hostname = upstreamHostname(route.upstream);
    const sni = isIP(hostname) === 0 ? hostname : undefined;
    // h2: ALPN offers h2 alone, and a connection that did not negotiate it fails (upstream-h2.ts): undici's
    // connector would fall back to HTTP/1.1 without a word.
    const connector = h2 ? h2OnlyConnector(route, ca, sni, timeout) : buildConnector({ ...(ca !== undefined && { ca }), rejectUnauthorized: true, timeout });
    pool = new Pool(origin, {
      ...options, ...(h2 && { allowH2: true }),
      // The servername undici hands the connector comes from the request (hop.ts sends the URL's host
      // name); an IP gets none (RFC 6066), so Node verifies the certificate against the IP.
      connect: (opts, callback) => connector({ ...opts, servername: sni }, callback),
    });
  }
  pool.on('disconnect', onPoolDisconnect);
  return pool;
}

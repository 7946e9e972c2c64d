/**
 * The admin listener (loopback by default):
 *   /healthz      the process answers                                     (always open)
 *   /readyz       listening with TLS material loaded, not shutting down   (always open)
 *   /metrics      Prometheus text format                                  (always open)
 *   /.well-known/jwks.json  headers.assertion's public keys (JWKS)        (always open; 404 when not set)
 *   /             the status page (self-contained HTML; admin/status-page.ts)
 *   /status.json  what the status page shows
 *   /clients      the client certificates seen recently, soonest-expiring first
 *   /-/reload     POST: re-read and apply the config live, then the TLS material; answer the outcome (app/parts.ts reloadBoth)
 *   /enroll       client certificate enrollment, when configured (its own tokens; enroll/handler.ts)
 * With admin.token_file set, everything but the first four and /enroll needs `Authorization: Bearer`.
 * Before any of that, a Host that is not an IP literal, localhost or in admin.allowed_hosts gets 421
 * (DNS rebinding; admin/host.ts).
 */
import http from 'node:http';
import type { Registry } from 'prom-client';
import { authorized, JWKS_PATH, type AdminToken } from './auth.js';
import type { JwksDocument } from '../tls/assertion-keys.js';
import { adminHostAllowed } from './host.js';
import type { ClientsView } from './clients.js';
import type { StatusSource } from './status.js';
import { STATUS_PAGE, STATUS_PAGE_HEADERS } from './status-page.js';
import { sendJson } from '../respond.js';

export interface AdminOptions {
  /** This process's Registry, or under workers: N the primary's aggregate of every worker's. */
  readonly registry: Pick<Registry, 'metrics' | 'contentType'>;
  /** True when the proxy should receive traffic. */
  readonly ready: () => boolean;
  /** `/enroll` (any method) when enrollment is configured; see enroll/handler.ts. */
  readonly enroll?: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>;
  /** When given, the enrollment in force now instead of `enroll` (a live config reload replaces it; undefined = off). */
  readonly currentEnroll?: () => ((req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>) | undefined;
  /** admin.token_file, loaded; absent = no token required. */
  readonly token?: AdminToken;
  /** When given, the token in force now instead of `token` (a live config reload replaces it). */
  readonly currentToken?: () => AdminToken | undefined;
  /** The status page's data; absent = no status page. */
  readonly status?: StatusSource;
  /** Recently seen clients; absent = no /clients. */
  readonly clients?: ClientsView;
  /** admin.allowed_hosts: Host names answered besides IP literals and localhost (lower case). */
  readonly allowedHosts?: readonly string[];
  /** When given, the names in force now instead of `allowedHosts` (a live config reload replaces them). */
  readonly currentAllowedHosts?: () => ReadonlySet<string>;
  /**
   * POST /-/reload: re-read and apply the config (app/live-config.ts), then re-read the TLS material; answers
   * the outcome (200 applied or unchanged, 422 when the config or the TLS material was refused: what was
   * serving keeps serving). Needs the token when admin.token_file is set.
   */
  readonly reload?: () => Promise<{ readonly result: string; readonly tls?: { readonly result: string } }>;
  /** headers.assertion's JWKS in force now; undefined = headers.assertion is not set (404). */
  readonly jwks?: () => JwksDocument | undefined;
}

const ENDPOINTS = 'admin endpoints: / (status page) /status.json /clients /healthz /readyz /metrics /.well-known/jwks.json';

const MISDIRECTED = {
  error: 'misdirected_request', reason: 'host_not_allowed',
  message: 'this admin listener answers an IP address, localhost or a name in admin.allowed_hosts as Host, not this name',
};

export function createAdminServer(opts: AdminOptions): http.Server {
  const fixed: ReadonlySet<string> = new Set(opts.allowedHosts ?? []);
  return http.createServer((req, res) => {
    // First, on every path and method: a DNS-rebinding page must not read anything, /enroll included.
    if (!adminHostAllowed(req.headers.host, opts.currentAllowedHosts !== undefined ? opts.currentAllowedHosts() : fixed)) {
      sendJson(res, 421, MISDIRECTED);
      return;
    }
    void route(req, res, opts).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendJson(res, 500, { error: 'internal', message: err instanceof Error ? err.message : String(err) });
    });
  });
}

async function route(req: http.IncomingMessage, res: http.ServerResponse, opts: AdminOptions): Promise<void> {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  // Enrollment authenticates with its own one-time tokens, not the admin token.
  const enroll = opts.currentEnroll !== undefined ? opts.currentEnroll() : opts.enroll;
  if (enroll !== undefined && path === '/enroll') return enroll(req, res);
  if (path === '/-/reload' && opts.reload !== undefined) {
    if (req.method !== 'POST') {
      sendJson(res, 405, { error: 'method_not_allowed', reason: 'reload_is_post', message: 'POST /-/reload re-reads and applies the config' }, { allow: 'POST' });
      return;
    }
    if (!authorized(opts.currentToken !== undefined ? opts.currentToken() : opts.token, path, req)) {
      sendJson(res, 401, { error: 'unauthorized', reason: 'admin_token', message: 'POST /-/reload needs Authorization: Bearer <token> (admin.token_file)' }, { 'www-authenticate': 'Bearer realm="certgate admin"' });
      return;
    }
    req.resume();
    const answer = await opts.reload();
    sendJson(res, answer.result === 'failure' || answer.tls?.result === 'failure' ? 422 : 200, answer);
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sendJson(res, 405, { error: 'method_not_allowed' }, { allow: 'GET, HEAD' });
    return;
  }
  if (!authorized(opts.currentToken !== undefined ? opts.currentToken() : opts.token, path, req)) {
    const challenge = { 'www-authenticate': 'Bearer realm="certgate admin"' };
    if (path === '/' && opts.status !== undefined) {
      // The page itself carries no data: it asks for the token and sends it with its own requests.
      page(res, 401, challenge);
      return;
    }
    sendJson(res, 401, { error: 'unauthorized', message: 'this admin endpoint needs Authorization: Bearer <token> (admin.token_file)' }, challenge);
    return;
  }
  switch (path) {
    case '/healthz':
      sendJson(res, 200, { status: 'ok' });
      return;
    case '/readyz': {
      const ready = opts.ready();
      sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not_ready' });
      return;
    }
    case '/metrics': {
      const body = await opts.registry.metrics();
      res.writeHead(200, { 'content-type': opts.registry.contentType, 'cache-control': 'no-store' });
      res.end(body);
      return;
    }
    case '/':
    case '/index.html':
      if (opts.status === undefined) break;
      page(res, 200);
      return;
    case '/status.json':
      if (opts.status === undefined) break;
      sendJson(res, 200, await opts.status.snapshot());
      return;
    case JWKS_PATH: {
      const jwks = opts.jwks?.();
      if (jwks === undefined) {
        sendJson(res, 404, { error: 'not_found', reason: 'assertion_off', message: 'no JWKS: headers.assertion is not set in the config' });
        return;
      }
      // Verifiers cache the set (PyJWKClient, jose's createRemoteJWKSet) and fetch again on an unknown kid;
      // a minute bounds how long a removed key stays trusted by a cache that honours it.
      sendJson(res, 200, jwks, { 'cache-control': 'public, max-age=60' });
      return;
    }
    case '/clients': {
      if (opts.clients === undefined) break;
      const clients = await opts.clients.list();
      sendJson(res, 200, { count: clients.length, clients });
      return;
    }
  }
  sendJson(res, 404, { error: 'not_found', message: ENDPOINTS });
}

function page(res: http.ServerResponse, status: number, extra: Record<string, string> = {}): void {
  res.writeHead(status, { ...STATUS_PAGE_HEADERS, 'content-length': Buffer.byteLength(STATUS_PAGE), ...extra });
  res.end(STATUS_PAGE);
}

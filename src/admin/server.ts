/**
 * The admin listener (loopback by default): /healthz (the process answers), /readyz (listening with TLS
 * material loaded, not shutting down), /metrics (Prometheus text format).
 */
import http from 'node:http';
import type { Registry } from 'prom-client';

export interface AdminOptions {
  readonly registry: Registry;
  /** True when the proxy should receive traffic. */
  readonly ready: () => boolean;
  /** `/enroll` (any method) when enrollment is configured; see enroll/handler.ts. */
  readonly enroll?: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>;
}

export function createAdminServer(opts: AdminOptions): http.Server {
  return http.createServer((req, res) => {
    void route(req, res, opts).catch((err: unknown) => {
      json(res, 500, { error: 'internal', message: err instanceof Error ? err.message : String(err) });
    });
  });
}

async function route(req: http.IncomingMessage, res: http.ServerResponse, opts: AdminOptions): Promise<void> {
  if (opts.enroll !== undefined && (req.url ?? '/').split('?')[0] === '/enroll') return opts.enroll(req, res);
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    json(res, 405, { error: 'method_not_allowed' }, { allow: 'GET, HEAD' });
    return;
  }
  const path = (req.url ?? '/').split('?')[0];
  switch (path) {
    case '/healthz':
      json(res, 200, { status: 'ok' });
      return;
    case '/readyz': {
      const ready = opts.ready();
      json(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not_ready' });
      return;
    }
    case '/metrics': {
      const body = await opts.registry.metrics();
      res.writeHead(200, { 'content-type': opts.registry.contentType, 'cache-control': 'no-store' });
      res.end(body);
      return;
    }
    default:
      json(res, 404, { error: 'not_found', message: 'admin endpoints: /healthz /readyz /metrics' });
  }
}

function json(res: http.ServerResponse, status: number, body: object, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...extra });
  res.end(text);
}

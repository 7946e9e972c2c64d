/**
 * The server side of `certgate probe`: with `whoami_path` set, certgate answers GET on that exact path
 * itself, before any route (never forwarded), with what the upstream would see for this client on this
 * connection — the identity and X-Forwarded-* headers — and which route a request would take.
 *
 * A step of admit (admit.ts: verdict → path → host → whoami_path): a refused client, a bad path or a bad
 * Host get the same 400 there as on any other path (the probe shows that reason); a client without a
 * certificate (client_auth: optional) gets a 400 saying so here.
 * `?path=/api/x` asks about another path than `/` (the probe passes the URL's path). Nothing here
 * names identities that *would* be allowed: only this client's own decision, and with
 * `errors.verbose` the rule kinds that refused it, as the 403 bodies do.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { ClientIdentity } from '../identity/types.js';
import { isClientControlledHeader } from '../identity/headers.js';
import type { Router } from './routes.js';
import type { Policy } from './policy.js';
import { normalizeRequestPath } from '../http/path.js';
import { sendJson } from '../respond.js';
import type { RequestView } from './request-view.js';
import { WHOAMI_MARK, type WhoamiAnswer } from '../answers/whoami.js';

/** Route label of whoami answers in metrics and access logs (bounded, never a client string). */
export const WHOAMI_ROUTE = '(whoami)';

export interface WhoamiOptions {
  readonly path: string;
  readonly match: Router;
  readonly policies: ReadonlyMap<string, Policy>;
  readonly verbose: boolean;
  /** Folded names the generation's dialect sends (a preset's, renamed ones): shown besides certgate's own. */
  readonly sent: ReadonlySet<string>;
  /** The request headers after certgate's own preparation for `identity` (the headers step, on a copy). */
  readonly upstreamHeaders: (req: RequestView, identity: ClientIdentity | undefined) => IncomingHttpHeaders;
}

export interface WhoamiEndpoint {
  /** The request targets whoami_path exactly (any query). */
  matches(url: string | undefined): boolean;
  /** Answers a request admit let through to it: `identity` undefined for an anonymous connection. */
  respond(req: RequestView, res: ServerResponse, identity: ClientIdentity | undefined, close: boolean): void;
}

export function createWhoamiEndpoint(opts: WhoamiOptions): WhoamiEndpoint {
  return {
    matches(url) {
      if (url === undefined) return false;
      const q = url.indexOf('?');
      return (q < 0 ? url : url.slice(0, q)) === opts.path;
    },
    respond(req, res, identity, close) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        send(res, 405, { error: 'method_not_allowed', message: `${opts.path} answers GET only` }, close, { allow: 'GET, HEAD' });
        return;
      }
      if (identity === undefined) {
        send(res, 400, {
          error: 'client_certificate_required',
          message: `${opts.path} answers clients that sent a verified certificate; none was presented on this connection`,
        }, close);
        return;
      }
      const { status, body } = answer(req, identity, opts);
      send(res, status, body, close);
    },
  };
}

function answer(req: RequestView, identity: ClientIdentity, opts: WhoamiOptions): { status: number; body: unknown } {
  const asked = new URL(req.url ?? '/', 'https://certgate.invalid').searchParams.get('path') ?? '/';
  const target = normalizeRequestPath(asked);
  if (!target.ok) {
    return { status: 400, body: { error: 'bad_request', reason: target.reason, message: `?path=${asked} is not a path certgate would route` } };
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(opts.upstreamHeaders(req, identity))) {
    if (value !== undefined && (isClientControlledHeader(name) || opts.sent.has(name))) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  const route = opts.match(req.headers.host, target.path);
  const decision = route === undefined ? undefined : opts.policies.get(route.name)?.(identity);
  const body: WhoamiAnswer = {
    certgate: WHOAMI_MARK,
    client: 'verified',
    headers,
    route: {
      path: asked,
      name: route?.name ?? null,
      ...(decision !== undefined && { allowed: decision.allowed }),
      ...(decision !== undefined && !decision.allowed && opts.verbose && decision.rule !== undefined && { rule: decision.rule }),
    },
  };
  return { status: 200, body };
}

function send(res: ServerResponse, status: number, body: unknown, close: boolean, extra?: Record<string, string>): void {
  sendJson(res, status, body, close ? { ...extra, connection: 'close' } : extra);
}

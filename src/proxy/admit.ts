/**
 * The pipeline's admit step: everything that decides whether a request may reach an upstream, in order —
 * verdict → path → host → whoami_path → route → policy → guards. The first refusal wins; each is a status
 * and a JSON body (written by respond.ts), tagged with the check that made it. certgate's own whoami_path
 * is a step here, not a shortcut before admit: a request to it passes the same verdict, path and Host
 * checks (same refusals, same JSON) as one to any route, on every transport. Pure: the request view,
 * the connection's verdict and the request's configuration generation in, a decision out.
 */
import type { RouteConfig } from '../config/types.js';
import type { ClientIdentity } from '../identity/types.js';
import type { ErrorBody } from '../respond.js';
import { refusalHint } from '../answers/refusal-hints.js';
import type { ConnectionVerdict } from './verdict.js';
import { PATH_REFUSAL_MESSAGES, normalizeRequestPath } from '../http/path.js';
import { parseHost } from '../http/host.js';
import { isGrpcContentType } from '../respond.js';
import type { PolicyDecision } from './policy.js';
import type { Generation } from './generation.js';
import type { RequestView } from './request-view.js';
import type { WhoamiEndpoint } from './whoami-endpoint.js';

/** Which check refused: the policy's refusals are counted (certgate_authz_denied_total). */
export type AdmitStep = 'verdict' | 'path' | 'host' | 'route' | 'policy' | 'guard';

export interface Refusal {
  readonly step: AdmitStep;
  readonly status: number;
  readonly body: ErrorBody;
  /** Close the connection after the answer (nothing later on it would be served either). */
  readonly close?: boolean;
  readonly route?: string;
}

export interface Admitted {
  readonly route: RouteConfig;
  readonly identity: ClientIdentity | undefined;
  readonly matched?: string;
}

/** A request for whoami_path that passed verdict, path and host: certgate answers it (never forwarded). */
export interface WhoamiAsked {
  readonly whoami: WhoamiEndpoint;
  /** undefined: an anonymous connection (client_auth: optional), which whoami tells it needs a certificate. */
  readonly identity: ClientIdentity | undefined;
}

export type AdmitResult = Admitted | Refusal | WhoamiAsked;

type Refused = Extract<ConnectionVerdict, { kind: 'refused' }>;

/** verdict: a connection refused (at its handshake, or since by a trust change or expiry) → 400, or 421. */
export function verdictRefusal(verdict: Refused): Refusal {
  if (verdict.error === 'reauthentication_required') {
    return {
      step: 'verdict', status: 421, close: true,
      body: { error: verdict.error, message: 'the trusted CAs changed since this connection was opened: retry on a new connection' },
    };
  }
  return {
    step: 'verdict', status: 400, close: true,
    body: verdict.error === 'client_certificate_required'
      ? { error: verdict.error, message: 'this server requires a client certificate; none was presented', hint: refusalHint(verdict.reason) }
      : { error: verdict.error, reason: verdict.reason, message: `client certificate refused: ${verdict.detail}`, hint: refusalHint(verdict.reason) },
  };
}

/** path → host → whoami_path → route → policy → guards, for a connection the verdict admitted (`identity` undefined: anonymous). */
export function admitRequest(req: RequestView, identity: ClientIdentity | undefined, gen: Generation): AdmitResult {
  // path: strict_paths also refuses names that upstreams fold into others (/admin., /admin%20, %252e; http/path.ts).
  const target = normalizeRequestPath(req.url ?? '', { strict: gen.strictPaths });
  if (!target.ok) return { step: 'path', status: 400, close: true, body: { error: 'bad_request', reason: target.reason, message: PATH_REFUSAL_MESSAGES[target.reason] } };
  const host = hostRefusal(req);
  if (host !== undefined) return host;
  // whoami_path: matched on the same request-target the path step accepted, and only once the Host is
  // known good (its answer shows X-Forwarded-Host and the route this Host would take). Before any route:
  // no route, allow list or guard applies to certgate's own answer.
  if (gen.whoami?.matches(req.url) === true) return { whoami: gen.whoami, identity };
  const route = gen.match(req.headers.host, target.path);
  if (route === undefined) return { step: 'route', status: 404, body: { error: 'no_route', message: 'no route matches this host and path' } };
  const decision = gen.policies.get(route.name)!(identity);
  if (!decision.allowed) return policyRefusal(route, identity, decision, gen.verboseErrors);
  return guardRefusal(req, route) ?? { route, identity, ...(decision.matched !== undefined && { matched: decision.matched }) };
}

/** host: one Host line, present on HTTP/1.1, and name[:port] only (http/host.ts). */
function hostRefusal(req: RequestView): Refusal | undefined {
  // RFC 9112 §3.2: more than one Host line is a 400. Node keeps the first and drops the rest, so routing
  // and the upstream would agree, but a front proxy that kept the last one would not.
  if (hostLines(req.rawHeaders) > 1) return { step: 'host', status: 400, close: true, body: { error: 'bad_request', reason: 'duplicate_host', message: 'a request may carry one Host header' } };
  // HTTP/2 (RFC 9113 §8.3.1): a Host header beside :authority must name the same authority; routing reads
  // one, an HTTP/1.1 upstream behind another proxy could read the other. Not the connection's fault: the
  // stream is refused, the session stays.
  if (req.httpVersion === '2.0' && authorityMismatch(req.rawHeaders)) {
    return { step: 'host', status: 400, body: { error: 'bad_request', reason: 'authority_mismatch', message: 'the Host header must equal :authority' } };
  }
  // Same section: HTTP/1.1 requires Host. Node would answer a bare 400 itself (listener.ts turns that off).
  if (req.headers.host === undefined && req.httpVersion !== '1.0') return { step: 'host', status: 400, close: true, body: { error: 'bad_request', reason: 'missing_host', message: 'HTTP/1.1 requests need a Host header' } };
  // A Host that the upstream could read as another host (admin.example.com:1:2, x@admin.example.com, …)
  // would pass a host route's allow list by matching a laxer route: only name[:port] is accepted
  // (http/host.ts), on HTTP/1.0 too. The value is then forwarded, and copied to X-Forwarded-Host, unchanged.
  if (req.headers.host !== undefined && parseHost(req.headers.host) === undefined) {
    return { step: 'host', status: 400, close: true, body: { error: 'bad_request', reason: 'invalid_host', message: 'the Host header must be a host name, an IPv4 address or a bracketed IPv6 address, with an optional port 1-65535' } };
  }
  return undefined;
}

/** policy: the route's allow list refused → 400 (no certificate, client_auth: optional) or 403. */
function policyRefusal(route: RouteConfig, identity: ClientIdentity | undefined, decision: Extract<PolicyDecision, { allowed: false }>, verbose: boolean): Refusal {
  if (decision.error === 'client_certificate_required') {
    return { step: 'policy', status: 400, route: route.name, body: { error: 'client_certificate_required', route: route.name, message: `route ${route.name} requires a client certificate` } };
  }
  const who = identity?.subject ?? '(none)';
  return {
    step: 'policy', status: 403, route: route.name,
    body: {
      error: 'forbidden', route: route.name,
      message: `client ${who} is not allowed on route ${route.name}`,
      ...(verbose && decision.rule !== undefined && { rule: decision.rule }),
    },
  };
}

/** guards: request shapes refused on an admitted route (smuggling, a declared body over max_body_bytes). */
function guardRefusal(req: RequestView, route: RouteConfig): Refusal | undefined {
  const te = req.headers['transfer-encoding'];
  if (te !== undefined && req.headers['content-length'] === undefined && (req.method === 'DELETE' || req.method === 'OPTIONS')) {
    // http-proxy gave a DELETE/OPTIONS without Content-Length a Content-Length: 0; a chunked body streamed
    // after it was a second request upstream (CVE-2026-29057). hop.ts (undici) frames it correctly, and a
    // client has no reason to send this: refused.
    return { step: 'guard', status: 411, close: true, route: route.name, body: { error: 'length_required', message: 'send a Content-Length with a body on DELETE/OPTIONS' } };
  }
  if ((route.upstream_protocol ?? 'http1') === 'http1' && isGrpcContentType(req.headers['content-type'])) {
    // gRPC needs HTTP/2 end to end (trailers): an HTTP/1.1 upstream cannot answer it. Told which route and
    // why (grpc-status 14 for a gRPC client, respond.ts).
    return {
      step: 'guard', status: 502, route: route.name,
      body: { error: 'upstream_protocol', route: route.name, message: `route ${route.name} forwards over HTTP/1.1 (upstream_protocol: http1); gRPC needs upstream_protocol h2c or h2` },
    };
  }
  const declared = req.headers['content-length'];
  if (route.max_body_bytes !== undefined && declared !== undefined && Number(declared) > route.max_body_bytes) {
    return { step: 'guard', status: 413, close: true, route: route.name, body: { error: 'body_too_large', limit: route.max_body_bytes } };
  }
  return undefined;
}

function hostLines(raw: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') n += 1;
  }
  return n;
}

/** An HTTP/2 request's raw headers carry both :authority and Host, with different values. */
export function authorityMismatch(raw: readonly string[]): boolean {
  let authority: string | undefined;
  let host: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name === ':authority') authority = raw[i + 1];
    else if (name.length === 4 && name.toLowerCase() === 'host') host = raw[i + 1];
  }
  return authority !== undefined && host !== undefined && authority.toLowerCase() !== host.toLowerCase();
}

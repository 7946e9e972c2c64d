/**
 * Upstream failures: one small function turns one into a status and a bounded `kind` label (caddy's
 * statusError idea; 504 only for timeouts, everything else the client sees as 502), and one answer says
 * so, for the hop and the tunnel alike.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ErrorBody } from '../respond.js';
import { UPSTREAM_NOT_H2, type UpstreamNotH2 } from './upstream-h2.js';

export type UpstreamErrorKind = 'refused' | 'reset' | 'timeout' | 'dns' | 'tls' | 'other';

export interface UpstreamFailure {
  readonly status: 502 | 504;
  readonly kind: UpstreamErrorKind;
  /** The answer, when this failure has its own (upstreamFailureBody's otherwise). */
  readonly body?: ErrorBody;
}

const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH|ERR_OSSL_)/;

/**
 * Codes from node:net/tls (connecting, both engines), http-proxy-3's node:http client (WebSocket
 * upgrades) and undici (UND_ERR_*, HPE_* from its parser; hop.ts).
 * @param timedOut true when certgate's own upstream timer fired (a destroyed upstream request reports a
 *   plain ECONNRESET "socket hang up", so the code alone cannot tell a timeout from a reset).
 */
export function classifyUpstreamError(err: NodeJS.ErrnoException, timedOut: boolean): UpstreamFailure {
  const code = err.code ?? '';
  if (code === UPSTREAM_NOT_H2) {
    // An upstream_protocol: h2 route whose upstream did not negotiate HTTP/2 (upstream-h2.ts): the same
    // `upstream_protocol` answer as a gRPC call to an http1 route, the message saying what the upstream did.
    // Counted as kind tls: ALPN is the TLS handshake's.
    const route = (err as Partial<UpstreamNotH2>).route;
    return { status: 502, kind: 'tls', body: { error: 'upstream_protocol', route, kind: 'tls', message: err.message } };
  }
  if (timedOut || code === 'ETIMEDOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return { status: 504, kind: 'timeout' };
  }
  if (code === 'ECONNREFUSED') return { status: 502, kind: 'refused' };
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ECONNABORTED' || code === 'UND_ERR_SOCKET') {
    return { status: 502, kind: 'reset' };
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME') return { status: 502, kind: 'dns' };
  if (TLS_CODE.test(code)) return { status: 502, kind: 'tls' };
  return { status: 502, kind: 'other' };
}

/**
 * Told of every upstream failure once per request (hop.ts) or upgrade (tunnel.ts): counts and logs it, and
 * for a plain request answers it (`res`; a tunnel answers on its raw socket itself).
 */
export type UpstreamErrorHandler = (
  err: NodeJS.ErrnoException, failure: UpstreamFailure, route: string, req: IncomingMessage, res: ServerResponse | Duplex,
) => void;

/** What the client is told (502/504 JSON; the hop on its response, the tunnel on its raw socket). */
export function upstreamFailureBody(failure: UpstreamFailure): ErrorBody {
  if (failure.body !== undefined) return failure.body;
  return failure.status === 504
    ? { error: 'upstream_timeout', kind: failure.kind, message: 'the upstream did not answer in time' }
    : { error: 'upstream_unavailable', kind: failure.kind, message: 'the upstream could not be reached' };
}

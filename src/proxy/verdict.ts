/**
 * What certgate decided about a TLS connection's client certificate, once per connection.
 * Node's strict mode (rejectUnauthorized: true) drops refused clients without a reason on either side,
 * so the server accepts every handshake, decides here, and answers refused clients over HTTP (400 JSON,
 * as nginx does). Nothing is ever forwarded on a connection whose verdict is "refused".
 */
import type { TLSSocket } from 'node:tls';
import type { ClientIdentity } from '../identity/types.js';
import { identityOf } from '../identity/identity.js';
import { refusalReason, type RefusalReason } from '../tls/handshake.js';

export type ConnectionVerdict =
  | { readonly kind: 'verified'; readonly identity: ClientIdentity }
  | { readonly kind: 'anonymous' }
  | {
      readonly kind: 'refused';
      readonly error: 'client_certificate_required' | 'client_certificate_invalid';
      readonly reason: RefusalReason;
      /** OpenSSL's verify code (e.g. CERT_HAS_EXPIRED), for logs. */
      readonly detail: string;
      readonly identity?: ClientIdentity;
    };

const verdicts = new WeakMap<TLSSocket, ConnectionVerdict>();

/** The verdict for this connection, computed on first use (normally at 'secureConnection'). */
export function connectionVerdict(socket: TLSSocket, mode: 'require' | 'optional', needChain: boolean): ConnectionVerdict {
  let v = verdicts.get(socket);
  if (v === undefined) {
    v = decide(socket, mode, needChain);
    verdicts.set(socket, v);
  }
  return v;
}

function decide(socket: TLSSocket, mode: 'require' | 'optional', needChain: boolean): ConnectionVerdict {
  let identity: ClientIdentity | undefined;
  try {
    identity = identityOf(socket, needChain);
  } catch {
    // A certificate OpenSSL accepted but our DER reader cannot print must not crash or pass unnamed.
    return { kind: 'refused', error: 'client_certificate_invalid', reason: 'bad_certificate', detail: 'UNPARSABLE_CERTIFICATE' };
  }
  // "No certificate" is told by the absence of a peer certificate, not by authorizationError, which
  // reads UNABLE_TO_GET_ISSUER_CERT in that case (measured on Node 20).
  if (identity === undefined) {
    if (mode === 'optional') return { kind: 'anonymous' };
    return { kind: 'refused', error: 'client_certificate_required', reason: 'no_certificate', detail: 'NO_CERTIFICATE' };
  }
  if (!socket.authorized) {
    const err = socket.authorizationError as unknown;
    const detail = typeof err === 'string' ? err : ((err as { code?: string } | null)?.code ?? String(err));
    return { kind: 'refused', error: 'client_certificate_invalid', reason: refusalReason(detail), detail, identity };
  }
  return { kind: 'verified', identity };
}

/**
 * A certificate valid at the handshake may expire while the connection (or a resumed session, which
 * skips verification) lives on: checked per request, a Date comparison.
 */
export function expiredSince(identity: ClientIdentity, now: number): boolean {
  return identity.notAfter.getTime() < now;
}

/**
 * What certgate decided about a TLS connection's client certificate — once per connection, and again
 * only when the trust inputs changed since (a reload of client_ca/crl, or a CRL going stale).
 *
 * Node's strict mode (rejectUnauthorized: true) drops refused clients without a reason on either side,
 * so the server accepts every handshake, decides here, and answers refused clients over HTTP (400 JSON,
 * as nginx does). Nothing is ever forwarded on a connection whose verdict is "refused".
 * nginx, Envoy and ghostunnel apply new revocation data to new handshakes only; certgate also re-checks
 * established keep-alive connections (and resumed sessions, which skip verification) on their next request.
 */
import type { TLSSocket } from 'node:tls';
import type { ClientIdentity } from '../identity/types.js';
import { identityOf, sentChainOf } from '../identity/identity.js';
import { refusalReason, type RefusalReason } from '../tls/handshake.js';
import type { HandshakeBasis, PeerChains, RecheckOutcome, TrustCheck } from '../tls/trust.js';

// The trust interface lives with its implementation (tls/trust.ts); re-exported for the pipeline's importers.
export type { HandshakeBasis, PeerChains, RecheckOutcome, TrustCheck } from '../tls/trust.js';

export type ConnectionVerdict =
  | {
      readonly kind: 'verified';
      readonly identity: ClientIdentity;
      readonly generation: number;
      readonly basis: HandshakeBasis;
    }
  | { readonly kind: 'anonymous' }
  | {
      readonly kind: 'refused';
      /**
       * reauthentication_required: trust changed and this connection's certificate cannot be re-verified
       * without a handshake (answered 421: retry on a new connection, where OpenSSL decides).
       */
      readonly error: 'client_certificate_required' | 'client_certificate_invalid' | 'reauthentication_required';
      readonly reason: RefusalReason;
      /** OpenSSL's verify code (e.g. CERT_HAS_EXPIRED) or certgate's own, for logs. */
      readonly detail: string;
      readonly identity?: ClientIdentity;
      /** True when decided after the handshake (a trust change or expiry on a live connection). */
      readonly late?: boolean;
    };

export interface VerdictContext {
  readonly mode: 'require' | 'optional';
  /** The identity headers carry the chain (RFC 9440 / XFCC): read it with the identity, once. */
  readonly needChain: boolean;
  readonly trust: TrustCheck;
}

const verdicts = new WeakMap<TLSSocket, ConnectionVerdict>();

/**
 * The verdict for this connection now. Computed at 'secureConnection'; afterwards a per-request read,
 * plus a Date comparison (a certificate may expire while its connection lives on).
 */
export function connectionVerdict(socket: TLSSocket, ctx: VerdictContext, now = Date.now()): ConnectionVerdict {
  let v = verdicts.get(socket);
  if (v === undefined) {
    v = decide(socket, ctx, now);
    verdicts.set(socket, v);
    return v;
  }
  if (v.kind !== 'verified') return v;
  if (v.identity.notAfter.getTime() < now) {
    v = { kind: 'refused', error: 'client_certificate_invalid', reason: 'expired', detail: 'CERT_HAS_EXPIRED', identity: v.identity, late: true };
    verdicts.set(socket, v);
    return v;
  }
  const generation = ctx.trust.generation(now);
  if (v.generation === generation) return v;
  const chains: PeerChains = { sent: () => sentChainOf(socket), validated: () => identityOf(socket, true)?.chain ?? [] };
  v = recheck(v.identity, v.basis, ctx.trust.recheck(v.identity, chains, v.basis, now), generation);
  verdicts.set(socket, v);
  return v;
}

function recheck(identity: ClientIdentity, basis: HandshakeBasis, outcome: RecheckOutcome, generation: number): ConnectionVerdict {
  switch (outcome) {
    case 'ok':
      return { kind: 'verified', identity, generation, basis };
    case 'inconclusive':
      return { kind: 'refused', error: 'reauthentication_required', reason: 'other', detail: 'TRUST_CHANGED', identity, late: true };
    case 'expired':
      return { kind: 'refused', error: 'client_certificate_invalid', reason: 'expired', detail: 'CERT_HAS_EXPIRED', identity, late: true };
    case 'revoked':
      return { kind: 'refused', error: 'client_certificate_invalid', reason: 'revoked', detail: 'CERT_REVOKED', identity, late: true };
    case 'crl_expired':
      return { kind: 'refused', error: 'client_certificate_invalid', reason: 'crl_expired', detail: 'CRL_HAS_EXPIRED', identity, late: true };
    case 'unknown_ca':
      return { kind: 'refused', error: 'client_certificate_invalid', reason: 'unknown_ca', detail: 'CA_NO_LONGER_TRUSTED', identity, late: true };
  }
}

function decide(socket: TLSSocket, ctx: VerdictContext, now: number): ConnectionVerdict {
  let identity: ClientIdentity | undefined;
  try {
    identity = identityOf(socket, ctx.needChain);
  } catch {
    // A certificate OpenSSL accepted but our DER reader cannot print must not crash or pass unnamed.
    return { kind: 'refused', error: 'client_certificate_invalid', reason: 'bad_certificate', detail: 'UNPARSABLE_CERTIFICATE' };
  }
  // "No certificate" is told by the absence of a peer certificate, not by authorizationError, which
  // reads UNABLE_TO_GET_ISSUER_CERT in that case (measured on Node 20).
  if (identity === undefined) {
    if (ctx.mode === 'optional') return { kind: 'anonymous' };
    return { kind: 'refused', error: 'client_certificate_required', reason: 'no_certificate', detail: 'NO_CERTIFICATE' };
  }
  if (!socket.authorized) {
    const err = socket.authorizationError as unknown;
    const detail = typeof err === 'string' ? err : ((err as { code?: string } | null)?.code ?? String(err));
    return { kind: 'refused', error: 'client_certificate_invalid', reason: refusalReason(detail), detail, identity };
  }
  // A resumed session skips OpenSSL's verification: its certificate may have expired since.
  if (identity.notAfter.getTime() < now) {
    return { kind: 'refused', error: 'client_certificate_invalid', reason: 'expired', detail: 'CERT_HAS_EXPIRED', identity };
  }
  const generation = ctx.trust.generation(now);
  const { status, basis } = ctx.trust.atHandshake(identity, () => identityOf(socket, true)?.chain ?? [], now);
  if (status === 'revoked') return { kind: 'refused', error: 'client_certificate_invalid', reason: 'revoked', detail: 'CERT_REVOKED', identity };
  if (status === 'crl_expired') return { kind: 'refused', error: 'client_certificate_invalid', reason: 'crl_expired', detail: 'CRL_HAS_EXPIRED', identity };
  return { kind: 'verified', identity, generation, basis };
}

/**
 * The TrustCheck the connection verdicts use (proxy/verdict.ts), over the reloader's current material:
 * certgate's own revocation check at the handshake, and re-verification of live connections after a
 * trust change. Built once per material (WeakMap), queried once per connection.
 */
import { X509Certificate } from 'node:crypto';
import type { TlsConfig } from '../config/types.js';
import type { ClientIdentity } from '../identity/types.js';
import type { TlsMaterial } from './material.js';
import { checkChainRevocation, type RevocationStatus } from './revocation/check.js';
import { buildRevocationIndex, type RevocationIndex } from './revocation/crl-index.js';
import { reverifyTrust } from './revocation/reverify.js';

export type RecheckOutcome = 'ok' | 'revoked' | 'crl_expired' | 'unknown_ca' | 'expired' | 'inconclusive';

/** What a later re-check needs to know about the handshake; opaque to the verdicts (proxy/verdict.ts). */
export type HandshakeBasis = unknown;

/** The current trust, as the connection verdicts (proxy/verdict.ts) need it; createTrustCheck implements it. */
export interface TrustCheck {
  /** Changes whenever a verdict made before may no longer hold. Cheap: read per request. */
  generation(now: number): number;
  /**
   * At the handshake, after OpenSSL verified the chain: certgate's own revocation check. `chain` gives
   * the intermediates OpenSSL validated with (read only when a CRL check needs them).
   */
  atHandshake(identity: ClientIdentity, chain: () => readonly Buffer[], now: number): { readonly status: 'ok' | 'revoked' | 'crl_expired'; readonly basis: HandshakeBasis };
  /**
   * For a connection verified under an older generation: trust path and revocation, no handshake.
   * `chains` gives the intermediates the client itself sent (sentChainOf; undefined where Node does not
   * tell) and those OpenSSL validated the handshake with (sent ones and client_ca's, identityOf's chain).
   */
  recheck(identity: ClientIdentity, chains: PeerChains, basis: HandshakeBasis, now: number): RecheckOutcome;
}

export interface PeerChains {
  sent(): readonly Buffer[] | undefined;
  validated(): readonly Buffer[];
}

export interface TrustState {
  readonly material: TlsMaterial;
  /** The reloader's trust generation (moves when client_ca or crl change). */
  readonly generation: number;
}

/** Per connection, a re-check later needs the trust the handshake was verified under. */
interface Basis {
  readonly material: TlsMaterial;
}

/** Revocation verdicts per material, by leaf fingerprint: a signature check per connection is the dominant cost. */
const MEMO_MAX = 4096;

export function createTrustCheck(tls: TlsConfig, state: () => TrustState): TrustCheck {
  const indexes = new WeakMap<TlsMaterial, RevocationIndex>();
  const memos = new WeakMap<TlsMaterial, Map<string, { generation: number; status: RevocationStatus }>>();
  const indexOf = (m: TlsMaterial): RevocationIndex => {
    let index = indexes.get(m);
    if (index === undefined) {
      index = buildRevocationIndex(m.crl ?? [], m.clientCas);
      indexes.set(m, index);
    }
    return index;
  };
  const memoOf = (m: TlsMaterial): Map<string, { generation: number; status: RevocationStatus }> => {
    let memo = memos.get(m);
    if (memo === undefined) {
      memo = new Map();
      memos.set(m, memo);
    }
    return memo;
  };
  const x509 = (der: Buffer): X509Certificate => new X509Certificate(der);
  const generationAt = (material: TlsMaterial, generation: number, now: number): number => {
    // A CRL passing its nextUpdate changes what holds for live connections too (crl_stale: refuse).
    let stale = 0;
    if (tls.crl_stale === 'refuse') for (const c of material.crls) if (c.nextUpdate.getTime() < now) stale += 1;
    return generation * 1024 + stale;
  };
  const revocation = (m: TlsMaterial, leaf: X509Certificate, chain: () => readonly Buffer[], now: number): RevocationStatus =>
    m.crls.length === 0 ? 'ok' : checkChainRevocation(leaf, tls.crl_mode === 'chain' ? chain().map(x509) : [], indexOf(m), now, tls.crl_stale, tls.crl_mode);

  return {
    generation(now) {
      const { material, generation } = state();
      return generationAt(material, generation, now);
    },
    atHandshake(identity, chain, now) {
      const { material, generation } = state();
      const basis: Basis = { material };
      if (material.crls.length === 0) return { status: 'ok', basis };
      const memo = memoOf(material);
      const gen = generationAt(material, generation, now);
      const hit = memo.get(identity.fingerprint);
      if (hit !== undefined && hit.generation === gen) return { status: hit.status, basis };
      const status = revocation(material, x509(identity.der), chain, now);
      if (memo.size >= MEMO_MAX) memo.delete(memo.keys().next().value!);
      memo.set(identity.fingerprint, { generation: gen, status });
      return { status, basis };
    },
    recheck(identity, chains, basisValue, now): RecheckOutcome {
      const { material } = state();
      const leaf = x509(identity.der);
      // Exactly what the client sent (Node 20/22): no path with it → unknown_ca. Where Node does not tell
      // (24): a path from client_ca alone decides; else, if even the intermediates OpenSSL validated with
      // (sent or from client_ca) reach no anchor now → unknown_ca; if they do, whether the client sent
      // them only a handshake can tell ("inconclusive" → 421, reconnect).
      const sentDer = chains.sent();
      let path = reverifyTrust(leaf, (sentDer ?? []).map(x509), material.clientCas, now);
      if (path === 'inconclusive' && sentDer !== undefined) path = 'unknown_ca';
      if (path === 'inconclusive' && sentDer === undefined) {
        const assumingSent = reverifyTrust(leaf, chains.validated().map(x509), material.clientCas, now);
        path = assumingSent === 'inconclusive' ? 'unknown_ca' : assumingSent === 'ok' ? 'inconclusive' : assumingSent;
      }
      if (path !== 'ok') return path;
      // The revocation walk takes intermediates from client_ca first, then from what the client sent.
      return revocation(material, leaf, () => sentDer ?? chains.validated(), now);
    },
  };
}

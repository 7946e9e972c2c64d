/**
 * The TrustCheck the connection verdicts use (proxy/verdict.ts), over the reloader's current material:
 * certgate's own revocation check at the handshake, and re-verification of live connections after a
 * trust change. Built once per material (WeakMap), queried once per connection.
 */
import { X509Certificate } from 'node:crypto';
import type { TlsConfig } from '../config/types.js';
import type { ClientIdentity } from '../identity/types.js';
import type { RecheckOutcome, TrustCheck } from '../proxy/verdict.js';
import type { TlsMaterial } from './material.js';
import { buildRevocationIndex, checkChainRevocation, reverifyTrust, type RevocationIndex, type RevocationStatus } from './revocation.js';

export interface TrustState {
  readonly material: TlsMaterial;
  /** The reloader's trust generation (moves when client_ca or crl change). */
  readonly generation: number;
}

export function createTrustCheck(tls: TlsConfig, state: () => TrustState): TrustCheck {
  const indexes = new WeakMap<TlsMaterial, RevocationIndex>();
  const caDers = new WeakMap<TlsMaterial, Set<string>>();
  const indexOf = (m: TlsMaterial): RevocationIndex => {
    let index = indexes.get(m);
    if (index === undefined) {
      index = buildRevocationIndex(m.crl ?? [], m.clientCas);
      indexes.set(m, index);
    }
    return index;
  };
  const caDersOf = (m: TlsMaterial): Set<string> => {
    let set = caDers.get(m);
    if (set === undefined) {
      set = new Set(m.clientCas.map((c) => c.raw.toString('base64')));
      caDers.set(m, set);
    }
    return set;
  };
  const x509 = (der: Buffer): X509Certificate => new X509Certificate(der);
  const revocation = (m: TlsMaterial, leaf: X509Certificate, chain: X509Certificate[], now: number): RevocationStatus =>
    m.crls.length === 0 ? 'ok' : checkChainRevocation(leaf, chain, indexOf(m), now, tls.crl_stale, tls.crl_mode);

  return {
    generation(now) {
      const { material, generation } = state();
      // A CRL passing its nextUpdate changes what holds for live connections too (crl_stale: refuse).
      let stale = 0;
      if (tls.crl_stale === 'refuse') for (const c of material.crls) if (c.nextUpdate.getTime() < now) stale += 1;
      return generation * 1024 + stale;
    },
    atHandshake(identity, now) {
      const { material } = state();
      const leaf = x509(identity.der);
      const chain = identity.chain.map(x509);
      // Node completes the peer chain from our trust store: what the client really sent is what is
      // not in client_ca. An empty chain whose leaf issuer is not in client_ca means Node did not
      // expose the sent chain (Node 24): a later re-check cannot rebuild the path without a handshake.
      const cas = caDersOf(material);
      const sent = identity.chain.filter((der) => !cas.has(der.toString('base64')));
      const chainKnown = chain.length > 0 || material.clientCas.some((ca) => leaf.checkIssued(ca));
      return { status: revocation(material, leaf, chain, now), basis: { sent, chainKnown } };
    },
    recheck(identity, basis, now): RecheckOutcome {
      const { material } = state();
      const leaf = x509(identity.der);
      const sent = basis.sent.map(x509);
      let path = reverifyTrust(leaf, sent, material.clientCas, now);
      if (path === 'inconclusive' && basis.chainKnown) path = 'unknown_ca';
      if (path === 'unknown_ca' && identity.chain.length > basis.sent.length) {
        // The path may run through an intermediate that was in client_ca at the handshake and is gone now.
        // Whether the client sent it too cannot be told afterwards (Node completes the chain from the
        // store): a new handshake decides, so this connection is not served further either way.
        if (reverifyTrust(leaf, identity.chain.map(x509), material.clientCas, now) === 'ok') return 'inconclusive';
      }
      if (path !== 'ok') return path;
      // The revocation walk takes intermediates from client_ca first, then from what the client sent.
      return revocation(material, leaf, sent, now);
    },
  };
}

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
import { buildRevocationIndex, checkChainRevocation, reverifyTrust, type RevocationIndex } from './revocation.js';

export interface TrustState {
  readonly material: TlsMaterial;
  /** The reloader's trust generation (moves when client_ca or crl change). */
  readonly generation: number;
}

export function createTrustCheck(tls: TlsConfig, state: () => TrustState): TrustCheck {
  const indexes = new WeakMap<TlsMaterial, RevocationIndex>();
  const indexOf = (m: TlsMaterial): RevocationIndex => {
    let index = indexes.get(m);
    if (index === undefined) {
      index = buildRevocationIndex(m.crl ?? [], m.clientCas);
      indexes.set(m, index);
    }
    return index;
  };
  const certsOf = (identity: ClientIdentity): { leaf: X509Certificate; chain: X509Certificate[] } => ({
    leaf: new X509Certificate(identity.der),
    chain: identity.chain.map((der) => new X509Certificate(der)),
  });
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
      if (material.crls.length === 0) return 'ok';
      const { leaf, chain } = certsOf(identity);
      return checkChainRevocation(leaf, chain, indexOf(material), now, tls.crl_stale, tls.crl_mode);
    },
    recheck(identity, now): RecheckOutcome {
      const { material } = state();
      const { leaf, chain } = certsOf(identity);
      const path = reverifyTrust(leaf, chain, material.clientCas, now);
      if (path !== 'ok') return path;
      if (material.crls.length === 0) return 'ok';
      return checkChainRevocation(leaf, chain, indexOf(material), now, tls.crl_stale, tls.crl_mode);
    },
  };
}

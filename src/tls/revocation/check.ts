/**
 * certgate's own revocation check (pure: a certificate, its chain and the index in, a verdict out): once per
 * connection at the handshake, and again on the next request after a CRL change. Per-connection work is a
 * few `checkIssued` (a name + key-id compare in OpenSSL) and a signature verification per CRL-covered issuer.
 */
import type { X509Certificate } from 'node:crypto';
import { issuedBy, serialOf } from '../../x509/certificate.js';
import { indexState, type CaCrls, type RevocationIndex } from './crl-index.js';

export type CrlMode = 'leaf' | 'chain';
export type CrlStalePolicy = 'refuse' | 'allow';
export type RevocationStatus = 'ok' | 'revoked' | 'crl_expired';

/** Certificates on a path, leaf included. Deeper paths are 'inconclusive', never a made-up refusal. */
export const MAX_PATH = 8;


/**
 * One certificate against the CRL of the client CA that issued it. No CA with a CRL issued it → 'ok'
 * (leaf mode: such a CA publishes no CRL). The CRL used is the CA's newest current one
 * (thisUpdate <= now <= nextUpdate), as OpenSSL picks; failing that, its newest. A serial listed there is
 * 'revoked' whatever that CRL's dates: a revocation the CA signed stands. Otherwise a CRL that is not
 * current gives 'crl_expired' under `refuse` and is used as it is under `allow`. That includes a CRL from
 * the future: our clock or the CA's is wrong and its freshness cannot be judged; OpenSSL says
 * CRL_NOT_YET_VALID, which handshake.ts also reports as crl_expired, so both modes name it alike.
 */
export function checkRevocation(cert: X509Certificate, index: RevocationIndex, now: number, stale: CrlStalePolicy): RevocationStatus {
  return statusAgainst(cert, indexState(index).withCrl, now, stale);
}

function statusAgainst(cert: X509Certificate, withCrl: readonly CaCrls[], now: number, stale: CrlStalePolicy): RevocationStatus {
  return statusIn(cert, withCrl.find((e) => issuedBy(cert, e.ca)), now, stale);
}

function statusIn(cert: X509Certificate, entry: CaCrls | undefined, now: number, stale: CrlStalePolicy): RevocationStatus {
  if (entry === undefined) return 'ok';
  // Only the CRLs whose issuingDistributionPoint covers this kind of certificate: an onlyContainsCACerts
  // CRL says nothing about a client's leaf (OpenSSL: crl_crldp_check). None of them: as a CA without a CRL.
  const ca = cert.ca;
  const crls = entry.crls.filter((c) => (ca ? c.ca : c.ee));
  const crl = crls.find((c) => c.thisUpdate <= now && now <= c.nextUpdate) ?? crls[0];
  if (crl === undefined) return 'ok';
  if (crl.revoked.has(serialOf(cert))) return 'revoked';
  const current = crl.thisUpdate <= now && now <= crl.nextUpdate;
  return current || stale === 'allow' ? 'ok' : 'crl_expired';
}

/**
 * The connection's certificates against the CRLs. `leaf`: the leaf only. `chain`: the leaf, then each
 * issuer up the path (from the client CAs first, then the certificates the client sent), up to the first
 * self-signed one (a root is not checked against its own CRL) — this covers intermediates that only
 * client_ca holds, and ignores extra certificates a client sent that are not on its path. An issuer
 * without a CRL is 'ok' here too: in chain mode OpenSSL already refused such a client at the handshake
 * (UNABLE_TO_GET_CRL), so this only matters for connections established before a CRL change.
 * 'revoked' wins over 'crl_expired'.
 */
export function checkChainRevocation(
  leaf: X509Certificate, chain: readonly X509Certificate[], index: RevocationIndex,
  now: number, stale: CrlStalePolicy, mode: CrlMode,
): RevocationStatus {
  const { cas, withCrl } = indexState(index);
  if (withCrl.length === 0) return 'ok';
  if (mode === 'leaf') return statusAgainst(leaf, withCrl, now, stale);
  let result: RevocationStatus = 'ok';
  let cert = leaf;
  // One signature verification per step: the issuer found is looked up among the CAs with a CRL by
  // identity; only an issuer the client sent (a copy of a client CA) needs the verifying scan.
  // The depth cap also ends a walk around a cross-signed loop (the walk keeps no visited set).
  for (let depth = 1; depth < MAX_PATH; depth++) {
    const issuer = cas.find((c) => c.ca && issuedBy(cert, c)) ?? chain.find((c) => c.ca && issuedBy(cert, c));
    // No issuer at all: every CA with a CRL is in `cas`, so none of them issued `cert` either.
    if (issuer === undefined) break;
    const entry = withCrl.find((e) => e.ca === issuer) ?? withCrl.find((e) => e.ca !== issuer && issuedBy(cert, e.ca));
    const s = statusIn(cert, entry, now, stale);
    if (s === 'revoked') return s;
    if (s === 'crl_expired') result = s;
    if (issuer.checkIssued(issuer)) break; // the root: a trust anchor is not on the path (RFC 5280 6.1)
    cert = issuer;
  }
  return result;
}

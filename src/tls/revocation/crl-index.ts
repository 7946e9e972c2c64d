/**
 * certgate's own revocation data (pure): once per material load, every CRL parsed (x509/crl.ts) and tied to
 * the client CA whose name matches and whose key verifies its signature, with the revoked serials kept for
 * the per-connection checks in check.ts. Nothing is re-parsed per connection.
 *
 * Why not leave revocation to OpenSSL: any `crl` in the secure context turns on CRL_CHECK_ALL (every CA of
 * a chain, the root included, needs a current CRL or all its clients fail UNABLE_TO_GET_CRL), a stale CRL
 * refuses every client with a bare reset, and revocation data only reaches NEW handshakes; keep-alive
 * connections and resumed sessions go on (DEPENDENCIES.md §3).
 */
import type { X509Certificate } from 'node:crypto';
import {
  crlDers, crlIssuerName, crlScope, crlSignatureSupported, crlSignedBy, parseCrl, sameName, subjectName, type Crl as ParsedCrl,
  type CrlSource,
} from '../../x509/crl.js';

/**
 * One client CA that has a CRL, as the index sees it. The published CRL gauges and /status.json come from
 * TlsMaterial.crls (x509/crl.ts crlIssuerLabel), not from here.
 */
export interface RevocationEntry {
  /** The CA's subject, RFC 4514 (as `openssl -nameopt RFC2253` prints it). */
  readonly issuer: string;
  /** Of the CA's newest CRL. */
  readonly thisUpdate: Date;
  /** Of the CA's newest CRL; without nextUpdate the largest Date (+275760-09-13), as TlsMaterial does. */
  readonly nextUpdate: Date;
  readonly revoked: number;
}

/** A CRL that takes no part in the checks. Anything but `delta` leaves a CA's clients unchecked: report it. */
export interface SkippedCrl {
  /** 0-based position among all CRLs given (PEM blocks counted one by one). */
  readonly index: number;
  readonly issuer?: string;
  readonly why: 'unparsable' | 'unsupported_signature' | 'unknown_issuer' | 'delta' | 'critical_extension' | 'partial' | 'out_of_scope';
}

export interface RevocationIndex {
  entries(): readonly RevocationEntry[];
  readonly skipped: readonly SkippedCrl[];
}

export interface IndexedCrl {
  readonly thisUpdate: number;
  readonly nextUpdate: number;
  readonly revoked: ReadonlySet<string>;
  /** Which certificates it covers (issuingDistributionPoint): end-entity (client) and CA certificates. */
  readonly ee: boolean;
  readonly ca: boolean;
}

export interface CaCrls {
  readonly ca: X509Certificate;
  readonly issuer: string;
  /** Newest thisUpdate first. */
  readonly crls: IndexedCrl[];
}

export interface IndexState {
  readonly cas: readonly X509Certificate[];
  readonly withCrl: readonly CaCrls[];
}

/** The state behind each index; a WeakMap keeps it out of the public type. */
const states = new WeakMap<RevocationIndex, IndexState>();
const NEVER = 8.64e15;

/**
 * Ties every CRL to the client CA whose subject is the CRL's issuer AND whose key verifies it, so two
 * CAs with one name and different keys never share a CRL. A CRL matching no CA, with an unsupported
 * signature, that is a delta CRL (OpenSSL also skips deltas unless told to use them), has a critical
 * extension certgate does not process, is partial or covers neither client nor CA certificates (its
 * issuingDistributionPoint) lands in `skipped`. One that covers only CA certificates (onlyContainsCACerts)
 * is kept for the CA certificates of a chain (crl_mode chain), never for a client's leaf.
 * Of several CRLs of one CA, a check uses the newest current one (as OpenSSL's get_crl_sk does).
 */
export function buildRevocationIndex(crls: readonly CrlSource[], clientCas: readonly X509Certificate[]): RevocationIndex {
  const skipped: SkippedCrl[] = [];
  const byCa = new Map<X509Certificate, CaCrls>();
  const caNames = clientCas.map((ca) => ({ ca, name: subjectName(ca) }));
  let index = 0;
  for (const der of crls.flatMap(crlDers)) {
    const at = index++;
    let crl: ParsedCrl;
    try {
      crl = parseCrl(der);
    } catch {
      skipped.push({ index: at, why: 'unparsable' });
      continue;
    }
    if (!crlSignatureSupported(crl)) { skipped.push({ index: at, why: 'unsupported_signature' }); continue; }
    const issuerName = crlIssuerName(crl);
    const label = issuerName.text !== undefined ? { issuer: issuerName.text } : {};
    if (crl.delta) { skipped.push({ index: at, ...label, why: 'delta' }); continue; }
    // RFC 5280 5.2/5.3: a CRL with a critical extension certgate does not process must not be used; a
    // partial one (IDP reasons, distribution point, indirect) cannot say "not revoked". The material
    // checks refuse both (tls/checks/crls.ts); skipping them here keeps the index from ever trusting one.
    if (crl.unprocessedCritical.length > 0) { skipped.push({ index: at, ...label, why: 'critical_extension' }); continue; }
    const scope = crlScope(crl);
    if (scope.partial !== undefined) { skipped.push({ index: at, ...label, why: 'partial' }); continue; }
    if (!scope.ee && !scope.ca) { skipped.push({ index: at, ...label, why: 'out_of_scope' }); continue; }
    const match = caNames.find((c) => sameName(c.name, issuerName) && crlSignedBy(crl, c.ca));
    if (match === undefined) { skipped.push({ index: at, ...label, why: 'unknown_issuer' }); continue; }
    let entry = byCa.get(match.ca);
    if (entry === undefined) {
      entry = { ca: match.ca, issuer: match.name.text ?? match.ca.subject, crls: [] };
      byCa.set(match.ca, entry);
    }
    entry.crls.push({
      thisUpdate: crl.thisUpdate.getTime(), nextUpdate: crl.nextUpdate?.getTime() ?? NEVER, revoked: crl.revoked,
      ee: scope.ee, ca: scope.ca,
    });
  }
  const withCrl = [...byCa.values()];
  for (const e of withCrl) e.crls.sort((a, b) => b.thisUpdate - a.thisUpdate);
  const info: RevocationEntry[] = withCrl.map((e) => {
    const newest = e.crls[0] as IndexedCrl;
    return {
      issuer: e.issuer, thisUpdate: new Date(newest.thisUpdate), nextUpdate: new Date(newest.nextUpdate),
      revoked: newest.revoked.size,
    };
  });
  const result: RevocationIndex = { entries: () => info, skipped };
  states.set(result, { cas: clientCas, withCrl });
  return result;
}

/** The index's state, for check.ts. */
export function indexState(index: RevocationIndex): IndexState {
  const s = states.get(index);
  if (s === undefined) throw new TypeError('not a RevocationIndex from buildRevocationIndex()');
  return s;
}

/**
 * certgate's own revocation and trust re-check (pure: certificates and CRLs in, a verdict out).
 *
 * Why not leave it to OpenSSL: any `crl` in the secure context turns on CRL_CHECK_ALL (every CA of a
 * chain, the root included, needs a current CRL or all its clients fail UNABLE_TO_GET_CRL), a stale CRL
 * refuses every client with a bare reset, and revocation data only reaches NEW handshakes; keep-alive
 * connections and resumed sessions go on (DEPENDENCIES.md §3). So:
 * - `buildRevocationIndex` runs once per material load: it parses the CRLs, ties each one to the client CA
 *   whose name matches and whose key verifies its signature, and keeps the revoked serials;
 * - `checkChainRevocation` runs once per connection (and again after a CRL change);
 * - `reverifyTrust` re-checks an established connection's certificate against the CURRENT client CAs
 *   after client_ca changed, without a handshake.
 * Per-connection work is a few `checkIssued` (a name + key-id compare in OpenSSL) and a signature
 * verification per CRL-covered issuer; nothing is re-parsed.
 */
import type { X509Certificate } from 'node:crypto';
import { issuedBy, sameCertificate, serialOf, signatureVerifies, validityOf } from '../x509/certificate.js';
import {
  crlDers, crlIssuerName, crlSignatureSupported, crlSignedBy, parseCrl, sameName, subjectName, type Crl as ParsedCrl,
  type CrlSource,
} from '../x509/crl.js';

export type { CrlSource } from '../x509/crl.js';

export type CrlMode = 'leaf' | 'chain';
export type CrlStalePolicy = 'refuse' | 'allow';
export type RevocationStatus = 'ok' | 'revoked' | 'crl_expired';
export type TrustStatus = 'ok' | 'unknown_ca' | 'expired' | 'inconclusive';

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
  readonly why: 'unparsable' | 'unsupported_signature' | 'unknown_issuer' | 'delta';
}

export interface RevocationIndex {
  entries(): readonly RevocationEntry[];
  readonly skipped: readonly SkippedCrl[];
}

interface Crl {
  readonly thisUpdate: number;
  readonly nextUpdate: number;
  readonly revoked: ReadonlySet<string>;
}

interface CaCrls {
  readonly ca: X509Certificate;
  readonly issuer: string;
  /** Newest thisUpdate first. */
  readonly crls: Crl[];
}

interface IndexState {
  readonly cas: readonly X509Certificate[];
  readonly withCrl: readonly CaCrls[];
}

/** The state behind each index; a WeakMap keeps it out of the public type. */
const states = new WeakMap<RevocationIndex, IndexState>();
const NEVER = 8.64e15;
/** Certificates on a path, leaf included. Deeper paths are 'inconclusive', never a made-up refusal. */
const MAX_PATH = 8;
/** Signature verifications one `reverifyTrust` may spend (a client controls its sent chain). */
const MAX_VERIFIES = 32;

// ---------------------------------------------------------------------------------------------
// The index

/**
 * Ties every CRL to the client CA whose subject is the CRL's issuer AND whose key verifies it, so two
 * CAs with one name and different keys never share a CRL. A CRL matching no CA, with an unsupported
 * signature, or that is a delta CRL (OpenSSL also skips deltas unless told to use them) lands in `skipped`.
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
    const match = caNames.find((c) => sameName(c.name, issuerName) && crlSignedBy(crl, c.ca));
    if (match === undefined) { skipped.push({ index: at, ...label, why: 'unknown_issuer' }); continue; }
    let entry = byCa.get(match.ca);
    if (entry === undefined) {
      entry = { ca: match.ca, issuer: match.name.text ?? match.ca.subject, crls: [] };
      byCa.set(match.ca, entry);
    }
    entry.crls.push({
      thisUpdate: crl.thisUpdate.getTime(), nextUpdate: crl.nextUpdate?.getTime() ?? NEVER, revoked: crl.revoked,
    });
  }
  const withCrl = [...byCa.values()];
  for (const e of withCrl) e.crls.sort((a, b) => b.thisUpdate - a.thisUpdate);
  const info: RevocationEntry[] = withCrl.map((e) => {
    const newest = e.crls[0] as Crl;
    return {
      issuer: e.issuer, thisUpdate: new Date(newest.thisUpdate), nextUpdate: new Date(newest.nextUpdate),
      revoked: newest.revoked.size,
    };
  });
  const result: RevocationIndex = { entries: () => info, skipped };
  states.set(result, { cas: clientCas, withCrl });
  return result;
}

function stateOf(index: RevocationIndex): IndexState {
  const s = states.get(index);
  if (s === undefined) throw new TypeError('not a RevocationIndex from buildRevocationIndex()');
  return s;
}

// ---------------------------------------------------------------------------------------------
// Revocation checks

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
  return statusAgainst(cert, stateOf(index).withCrl, now, stale);
}

function statusAgainst(cert: X509Certificate, withCrl: readonly CaCrls[], now: number, stale: CrlStalePolicy): RevocationStatus {
  return statusIn(cert, withCrl.find((e) => issuedBy(cert, e.ca)), now, stale);
}

function statusIn(cert: X509Certificate, entry: CaCrls | undefined, now: number, stale: CrlStalePolicy): RevocationStatus {
  if (entry === undefined) return 'ok';
  const crl = entry.crls.find((c) => c.thisUpdate <= now && now <= c.nextUpdate) ?? (entry.crls[0] as Crl);
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
  const { cas, withCrl } = stateOf(index);
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

// ---------------------------------------------------------------------------------------------
// Trust re-check

interface Search {
  readonly sent: readonly X509Certificate[];
  readonly cas: readonly X509Certificate[];
  readonly now: number;
  readonly path: X509Certificate[];
  verifies: number;
  /** A path reached client_ca, but a certificate on it is past its notAfter (before its notBefore). */
  expired: boolean;
  notYetValid: boolean;
  /** Some certificate's issuer is in neither set. */
  missingIssuer: boolean;
  /** The path grew past MAX_PATH or the search past MAX_VERIFIES. */
  gaveUp: boolean;
}

function windowProblem(path: readonly X509Certificate[], now: number): 'expired' | 'not_yet_valid' | undefined {
  for (const c of path) {
    const { notBefore, notAfter } = validityOf(c);
    if (notAfter.getTime() < now) return 'expired';
    if (notBefore.getTime() > now) return 'not_yet_valid';
  }
  return undefined;
}

/** Depth-first: a dead end (a removed root behind one cross-signed copy) backtracks to the next issuer. */
function extend(s: Search, cert: X509Certificate): boolean {
  if (s.cas.some((c) => sameCertificate(c, cert))) {
    const problem = windowProblem(s.path, s.now);
    if (problem === 'expired') s.expired = true;
    else if (problem === 'not_yet_valid') s.notYetValid = true;
    return problem === undefined;
  }
  if (s.path.length >= MAX_PATH) { s.gaveUp = true; return false; }
  let issuers = 0;
  for (const pool of [s.cas, s.sent]) {
    for (const c of pool) {
      if (!c.ca || s.path.some((p) => sameCertificate(p, c)) || !cert.checkIssued(c)) continue;
      if (s.verifies++ >= MAX_VERIFIES) { s.gaveUp = true; return false; }
      if (!signatureVerifies(cert, c)) continue;
      issuers++;
      s.path.push(c);
      if (extend(s, c)) return true;
      s.path.pop();
    }
  }
  // No certificate in either set signed this one, and it is not self-signed: its issuer is absent
  // (a same-named CA with another key does not count as present). Not checkIssued(cert, cert): that
  // also wants keyCertSign, which a self-signed client certificate lacks.
  if (issuers === 0 && !(cert.subject === cert.issuer && signatureVerifies(cert, cert))) s.missingIssuer = true;
  return false;
}

/**
 * Re-verifies an established connection's certificate against the CURRENT client CAs, without a
 * handshake: a path from the leaf over `clientCas` ∪ `sentChain` (checkIssued + signature) to any
 * certificate in `clientCas` (DER equality), every certificate on it inside its validity window.
 * - no path to client_ca → 'unknown_ca', except when an issuer is in neither set and `sentChain` is empty:
 *   Node may not expose the intermediates the client sent, so → 'inconclusive' (close the connection after
 *   the response; the next handshake verifies fully). Paths over MAX_PATH or the verify budget → 'inconclusive'.
 * - a path exists but a certificate on it is past its notAfter → 'expired'. One before its notBefore can
 *   only follow a backwards clock jump (it was valid at the handshake): 'inconclusive', so the fresh
 *   handshake names it (not_yet_valid) rather than this guessing.
 */
export function reverifyTrust(
  leaf: X509Certificate, sentChain: readonly X509Certificate[], clientCas: readonly X509Certificate[], now: number,
): TrustStatus {
  const s: Search = {
    sent: sentChain, cas: clientCas, now, path: [leaf], verifies: 0,
    expired: false, notYetValid: false, missingIssuer: false, gaveUp: false,
  };
  if (extend(s, leaf)) return 'ok';
  if (s.expired) return 'expired';
  if (s.notYetValid || s.gaveUp || (s.missingIssuer && sentChain.length === 0)) return 'inconclusive';
  return 'unknown_ca';
}

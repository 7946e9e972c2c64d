/**
 * Re-verifies an established connection's client certificate against the CURRENT client CAs after
 * client_ca changed, without a handshake (pure: certificates in, a verdict out).
 */
import type { X509Certificate } from 'node:crypto';
import { sameCertificate, signatureVerifies, validityOf } from '../../x509/certificate.js';
import { MAX_PATH } from './check.js';

export type TrustStatus = 'ok' | 'unknown_ca' | 'expired' | 'inconclusive';

/** Signature verifications one `reverifyTrust` may spend (a client controls its sent chain). */
const MAX_VERIFIES = 32;

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

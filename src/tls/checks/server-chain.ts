/**
 * The server's own chain (pure): find the leaf that matches the private key wherever it sits in the file,
 * order the rest by issuer links, and report mismatch, reordering, broken links, missing issuers, stray
 * certificates and intermediates out of their validity window.
 */
import { basename } from 'node:path';
import { problem, type Problem } from '../../errors.js';
import { isCa, isSelfSigned, issuedBy, notAfter, notBefore, sameCertificate } from '../../x509/certificate.js';
import { certText, day, displayName, missingIssuer, where, type CertRef, type KeyRef } from './refs.js';

/** certgate's own private key and the certificates of its cert file (tls.bundle, or tls.cert + tls.key), as loaded. */
export interface ServerBundle {
  readonly key: KeyRef;
  /** Certificates in file order (bundle, or the cert file). */
  readonly certs: readonly CertRef[];
  /** Certificates the clients are expected to trust anyway (used to tell "leaf issued by a root we know"). */
  readonly knownIssuers?: readonly CertRef[];
}

export interface ServerChainResult {
  readonly problems: Problem[];
  /** The certificate whose public key matches the private key. */
  readonly leaf?: CertRef;
  /** The intermediates, in issuing order (leaf's issuer first). Self-signed roots found in the bundle are kept. */
  readonly chain: CertRef[];
}

/** The certificates whose public key matches the private key; an end-entity one valid longest first. */
function findLeaf(key: KeyRef, certs: readonly CertRef[]): CertRef | undefined {
  const matching = certs.filter((c) => {
    try {
      return c.cert.checkPrivateKey(key.key);
    } catch {
      return false;
    }
  });
  // Several certificates for one key (a renewed certificate next to the old one): prefer an
  // end-entity certificate, then the one valid longest.
  return matching.sort((a, b) =>
    Number(isCa(a.cert)) - Number(isCa(b.cert)) || notAfter(b.cert).getTime() - notAfter(a.cert).getTime())[0];
}

/** Follow issuer links from the leaf through `pool`; what was used is removed from `pool`. */
function linkChain(leaf: CertRef, pool: CertRef[]): CertRef[] {
  const chain: CertRef[] = [];
  let current = leaf;
  while (!isSelfSigned(current.cert)) {
    const i = pool.findIndex((c) => issuedBy(current.cert, c.cert));
    if (i < 0) break;
    current = pool.splice(i, 1)[0] as CertRef;
    chain.push(current);
  }
  return chain;
}

/**
 * The chain stops below a root: either a certificate of the issuer's name did not sign it (broken,
 * error), or the issuer is absent (a warning for a lone leaf; info for an intermediate, whose
 * issuer is usually a root the clients have). `pool` loses the impostor, if any.
 */
function chainEndProblems(leaf: CertRef, last: CertRef, pool: CertRef[], knownIssuers: readonly CertRef[], file: string): Problem[] {
  if (isSelfSigned(last.cert)) return [];
  const issuerName = displayName(last.cert.issuer);
  const impostor = pool.find((c) => c.cert.subject === last.cert.issuer);
  if (impostor !== undefined) {
    pool.splice(pool.indexOf(impostor), 1);
    return [problem('error', 'CG_CHAIN_BROKEN',
      `${certText(last)} names ${issuerName} as its issuer, but ${certText(impostor)} with that name did not sign it (a different key: an old or re-created CA?)`,
      { file, hint: 'replace that certificate with the one that actually issued the certificate above it' })];
  }
  const root = pool.find((c) => isSelfSigned(c.cert));
  if (last === leaf && root !== undefined) {
    // The bundle names the root but skips what links the leaf to it: the issuer is surely an intermediate,
    // and clients trusting that root fail. An error (like a stray certificate), reported once: `pool` loses the root.
    pool.splice(pool.indexOf(root), 1);
    return [problem('error', 'CG_CHAIN_INCOMPLETE',
      `the file lacks the intermediate between the leaf ${certText(last)} and the root ${certText(root)}: the leaf's issuer ${missingIssuer(last.cert)} is not in it, so clients that trust only the root cannot verify the server ("unable to get local issuer certificate")`,
      { file, hint: `add the certificate of ${issuerName} after the leaf` })];
  }
  const known = knownIssuers.find((c) => issuedBy(last.cert, c.cert));
  const hint = `add the certificate of ${issuerName} after it, unless clients already have it`;
  if (known !== undefined && !isSelfSigned(known.cert)) {
    return [problem('warning', 'CG_CHAIN_INCOMPLETE',
      `the chain ends at ${certText(last)}, whose issuer ${missingIssuer(last.cert)} is an intermediate: it is in ${basename(known.file)} (client_ca) but not in the server chain, so clients that only trust the root cannot verify the server`,
      { file, hint })];
  }
  if (known !== undefined) return [];
  if (last === leaf) {
    return [problem('warning', 'CG_CHAIN_INCOMPLETE',
      `the file holds only the leaf ${certText(last)}; its issuer ${missingIssuer(last.cert)} is not in it. Clients that trust ${issuerName} itself verify the server; if it is an intermediate, clients that only trust the root cannot`,
      { file, hint })];
  }
  return [problem('info', 'CG_CHAIN_INCOMPLETE',
    `the chain ends at the intermediate ${certText(last)}; clients must trust its issuer ${missingIssuer(last.cert)} as a root`,
    { file, hint: `nothing to do if ${issuerName} is a root; otherwise add it after the intermediate` })];
}

/**
 * Find the leaf (the certificate matching the key, wherever it sits), order the rest by issuer
 * links, and report mismatch, reordering, broken links, missing issuers and stray certificates.
 */
export function checkServerChain(input: ServerBundle): ServerChainResult {
  const { key, certs } = input;
  const certFile = certs[0]?.file ?? key.file;
  const first = certs[0];
  if (first === undefined) return { problems: [], chain: [] };
  const leaf = findLeaf(key, certs);
  if (leaf === undefined) {
    const what = certs.length === 1 ? 'the certificate' : `any of the ${certs.length} certificates; the first is`;
    return {
      problems: [problem('error', 'CG_KEY_MISMATCH',
        `the private key${where(key, certFile)} does not match ${what} ${certText(first, key.file)}`, { file: key.file })],
      chain: [],
    };
  }
  const pool = certs.filter((c) => c !== leaf);
  const chain = linkChain(leaf, pool);
  const problems = chainEndProblems(leaf, chain.at(-1) ?? leaf, pool, input.knownIssuers ?? [], certFile);

  for (const stray of pool) {
    const dup = [leaf, ...chain].find((c) => sameCertificate(c.cert, stray.cert));
    // A certificate that links to nothing means the bundle was assembled from the wrong chain (or a
    // rotation wrote another CA's leaf): an error, so a reload keeps the material that works.
    problems.push(problem(dup !== undefined ? 'warning' : 'error', 'CG_CHAIN_BROKEN', dup !== undefined
      ? `${certText(stray)} is a duplicate of${where(dup)}; certgate sends it once`
      : `${certText(stray)} is not part of the chain of the leaf ${certText(leaf)}: the bundle mixes chains`,
    { file: certFile, hint: dup !== undefined ? 'remove the duplicate from the file' : 'put the leaf\'s own intermediates in the bundle and remove the others' }));
  }
  // Reordered: the chain's certificates did not appear leaf-first in issuing order.
  const ordered = [leaf, ...chain];
  const fileOrder = certs.filter((c) => ordered.includes(c));
  if (fileOrder.some((c, i) => c !== ordered[i])) {
    problems.push(problem('warning', 'CG_CHAIN_REORDERED',
      `the certificates are not in leaf-first order: found ${fileOrder.map((c) => certText(c)).join(', ')}; certgate serves ${ordered.map((c) => certText(c)).join(' → ')}`,
      { file: certFile }));
  }
  return { problems, leaf, chain };
}

/** Validity of the intermediates (warnings: clients may build another path). */
export function checkChainValidity(chain: readonly CertRef[], now: Date): Problem[] {
  const out: Problem[] = [];
  for (const c of chain) {
    if (notAfter(c.cert) < now) {
      out.push(problem('warning', 'CG_CERT_EXPIRED',
        `the chain certificate ${certText(c)} expired on ${day(notAfter(c.cert))}`, { file: c.file,
        hint: 'replace it with the current certificate of that CA' }));
    } else if (notBefore(c.cert) > now) {
      out.push(problem('warning', 'CG_CERT_NOT_YET_VALID',
        `the chain certificate ${certText(c)} is valid only from ${notBefore(c.cert).toISOString()}`, { file: c.file }));
    }
  }
  return out;
}

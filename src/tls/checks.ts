/**
 * Checks over parsed TLS material (pure: no I/O; `now` is passed in).
 *
 * Every function takes certificates/keys/CRLs together with where they came from (file and,
 * for multi-block files, the 1-based block number) and returns Problems that name that place.
 * Problem.file carries the file; messages mention block numbers and, when a finding involves
 * two files, the other file's name.
 */
import { isIP } from 'node:net';
import { basename } from 'node:path';
import type { KeyObject, X509Certificate } from 'node:crypto';
import { problem, type Problem } from '../errors.js';
import {
  authorityKeyId, isCa, isSelfSigned, issuedBy, keyUsageOf, notAfter, notBefore, sameCertificate,
} from '../x509/certificate.js';
import { crlIssuerLabel, crlIssuerName, crlSignedBy, sameName, subjectName, type Crl } from '../x509/crl.js';

export interface CertRef {
  readonly cert: X509Certificate;
  readonly file: string;
  /** 1-based PEM block number; set when the file holds more than one block. */
  readonly block?: number;
}

export interface KeyRef {
  readonly key: KeyObject;
  readonly file: string;
  readonly block?: number;
}

export interface CrlRef {
  readonly crl: Crl;
  readonly file: string;
  readonly block?: number;
}

const DAY_MS = 86_400_000;
/** A leaf expiring within this many days is a warning. */
export const EXPIRY_WARNING_DAYS = 7;
const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

// ---------------------------------------------------------------------------------------------
// Small helpers

/** "CN=localhost", or the whole subject on one line when it has no CN. */
export function displayName(dn: string): string {
  const parts = dn.split('\n').filter((l) => l !== '');
  const cn = parts.find((l) => l.startsWith('CN='));
  if (cn !== undefined) return cn;
  return parts.length > 0 ? parts.join(', ') : '(empty subject)';
}

/** " (block 2)", or " (cert.pem block 2)" / " (in cert.pem)" when `ref` lives in another file than `from`. */
export function where(ref: { file: string; block?: number }, from?: string): string {
  const other = from !== undefined && ref.file !== from;
  if (ref.block !== undefined) return other ? ` (${basename(ref.file)} block ${ref.block})` : ` (block ${ref.block})`;
  return other ? ` (in ${basename(ref.file)})` : '';
}

function certText(ref: CertRef, from?: string): string {
  return `${displayName(ref.cert.subject)}${where(ref, from)}`;
}

function day(d: Date): string {
  return d.toISOString().slice(0, 10);
}

/** "the issuer CN=Foo CA (authority key id AA:BB:…)". */
function missingIssuer(cert: X509Certificate): string {
  const aki = authorityKeyId(cert);
  return `${displayName(cert.issuer)}${aki !== undefined ? ` (authority key id ${aki})` : ''}`;
}

// ---------------------------------------------------------------------------------------------
// Server chain

export interface ServerChainInput {
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
export function checkServerChain(input: ServerChainInput): ServerChainResult {
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

// ---------------------------------------------------------------------------------------------
// Leaf

/** Validity window, CA flag, serverAuth EKU, SAN coverage of the listen host. */
export function checkLeaf(leaf: CertRef, now: Date, listenHost?: string): Problem[] {
  const out: Problem[] = [];
  const { cert, file } = leaf;
  const name = certText(leaf);
  const from = notBefore(cert);
  const to = notAfter(cert);
  if (to < now) {
    out.push(problem('error', 'CG_CERT_EXPIRED', `the leaf certificate ${name} expired on ${to.toISOString()}`, { file }));
  } else if (from > now) {
    out.push(problem('error', 'CG_CERT_NOT_YET_VALID',
      `the leaf certificate ${name} is valid only from ${from.toISOString()} (now ${now.toISOString()})`, { file }));
  } else {
    const days = Math.floor((to.getTime() - now.getTime()) / DAY_MS);
    if (days < EXPIRY_WARNING_DAYS) {
      out.push(problem('warning', 'CG_CERT_EXPIRES_SOON',
        `the leaf certificate ${name} expires in ${days} day${days === 1 ? '' : 's'} (${to.toISOString()})`, { file }));
    } else {
      out.push(problem('info', 'CG_CERT_VALIDITY',
        `the leaf certificate ${name} expires in ${days} days (${day(to)})`, { file,
        hint: `nothing to do now; renew it before ${day(to)}` }));
    }
  }
  if (isCa(cert)) {
    out.push(problem('error', 'CG_CERT_IS_CA',
      `the leaf certificate ${name} is a CA certificate (basicConstraints CA:TRUE); clients reject it as a server certificate`, { file }));
  }
  const eku = cert.keyUsage; // Node: this is the *extended* key usage list
  if (eku !== undefined && eku.length > 0 && !eku.includes(OID_SERVER_AUTH)) {
    out.push(problem('error', 'CG_CERT_EKU',
      `the leaf certificate ${name} has extendedKeyUsage ${eku.map(ekuName).join(', ')} without serverAuth; clients reject it`, { file,
      hint: 'reissue it with extendedKeyUsage serverAuth' }));
  }
  const san = cert.subjectAltName;
  if (san === undefined || san === '') {
    out.push(problem('warning', 'CG_CERT_NO_SAN',
      `the leaf certificate ${name} has no subjectAltName; clients ignore the CN and will reject it`, { file,
      hint: 'reissue it with subjectAltName DNS/IP entries for the names clients connect to' }));
  } else if (listenHost !== undefined && isDnsName(listenHost)
    && cert.checkHost(listenHost, { subject: 'never' }) === undefined) {
    out.push(problem('warning', 'CG_CERT_NO_SAN',
      `the listen host ${listenHost} is not covered by the leaf certificate ${name} (subjectAltName: ${san})`, { file }));
  }
  return out;
}

function isDnsName(host: string): boolean {
  return host !== '' && isIP(host) === 0 && host !== '*';
}

function ekuName(oid: string): string {
  const names: Record<string, string> = {
    '1.3.6.1.5.5.7.3.1': 'serverAuth', '1.3.6.1.5.5.7.3.2': 'clientAuth', '1.3.6.1.5.5.7.3.3': 'codeSigning',
    '1.3.6.1.5.5.7.3.4': 'emailProtection', '1.3.6.1.5.5.7.3.8': 'timeStamping', '1.3.6.1.5.5.7.3.9': 'OCSPSigning',
    '2.5.29.37.0': 'anyExtendedKeyUsage',
  };
  return names[oid] ?? oid;
}

// ---------------------------------------------------------------------------------------------
// Client CAs

export interface ClientCaInput {
  readonly cas: readonly CertRef[];
  /** The client_ca file, for findings about the file as a whole. */
  readonly file: string;
  readonly now: Date;
  /** The server's leaf + chain, to tell when client_ca only holds the server's own issuers. */
  readonly serverChain?: readonly X509Certificate[];
}

export function checkClientCas(input: ClientCaInput): Problem[] {
  const { cas, file, now } = input;
  const out: Problem[] = [];
  if (cas.length === 0) {
    out.push(problem('error', 'CG_CA_EMPTY', 'tls.client_ca holds no certificate', { file }));
    return out;
  }
  for (const ca of cas) {
    const usage = keyUsageOf(ca.cert);
    if (!isCa(ca.cert)) {
      out.push(problem('error', 'CG_CA_NOT_CA',
        `${certText(ca)} is not a CA certificate (no basicConstraints CA:TRUE); Node cannot use it to verify clients`, { file }));
    } else if (usage !== undefined && !usage.keyCertSign) {
      out.push(problem('error', 'CG_CA_NOT_CA',
        `${certText(ca)} has keyUsage without keyCertSign; OpenSSL will not accept certificates it signed`, { file }));
    }
    if (notAfter(ca.cert) < now) {
      out.push(problem('warning', 'CG_CERT_EXPIRED',
        `the client CA ${certText(ca)} expired on ${day(notAfter(ca.cert))}; clients it issued are refused (CERT_HAS_EXPIRED)`,
        { file, hint: 'replace it with the CA\'s current certificate' }));
    }
  }

  // Every non-self-signed CA must reach a self-signed root inside client_ca.
  for (const ca of cas) {
    if (!ca.cert.ca) continue;
    let top = ca;
    const seen = new Set<CertRef>([top]);
    while (!isSelfSigned(top.cert)) {
      const up = cas.find((c) => !seen.has(c) && issuedBy(top.cert, c.cert));
      if (up === undefined) break;
      seen.add(up);
      top = up;
    }
    if (!isSelfSigned(top.cert)) {
      out.push(problem('error', 'CG_CA_NO_ROOT',
        `${certText(ca)} is an intermediate CA and its root ${missingIssuer(top.cert)} is not in tls.client_ca; Node's TLS server cannot anchor trust at an intermediate, so every client would be refused`,
        { file, hint: `add the certificate of ${displayName(top.cert.issuer)} (the root) to tls.client_ca` }));
    }
  }

  const server = input.serverChain ?? [];
  if (server.length > 0) {
    const own = (c: X509Certificate): boolean =>
      server.some((s) => sameCertificate(s, c) || issuedBy(s, c));
    if (cas.every((c) => own(c.cert))) {
      out.push(problem('info', 'CG_CA_SELF_ONLY',
        `tls.client_ca holds only the CA(s) that issued the server certificate (${cas.map((c) => displayName(c.cert.subject)).join(', ')}); only clients issued by ${cas.length === 1 ? 'it' : 'them'} are accepted`,
        { file, hint: 'nothing to do if that is intended; otherwise add the CAs that issue your client certificates' }));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// CRLs

export interface CrlInput {
  readonly crls: readonly CrlRef[];
  readonly cas: readonly CertRef[];
  /** The crl file, for findings about CAs without a CRL. */
  readonly file: string;
  readonly now: Date;
  /**
   * chain (OpenSSL's CRL_CHECK_ALL): a stale CRL or a CA without one locks out all its clients — errors.
   * leaf (certgate's own check, the default): a CA without a CRL means "not revoked"; a stale CRL refuses
   * that CA's clients by name (crl_expired) unless crl_stale is allow — warnings, the rest keeps working.
   */
  readonly mode?: 'leaf' | 'chain';
  readonly stale?: 'refuse' | 'allow';
}

export interface CrlResult {
  readonly problems: Problem[];
  /** The client CA that issued each CRL (absent when none did). */
  readonly issuers: ReadonlyMap<CrlRef, CertRef>;
}

function crlText(ref: CrlRef): string {
  const label = crlIssuerLabel(ref.crl);
  const cn = label.split(', ').find((p) => p.startsWith('CN='));
  return `the CRL${where(ref)} of ${cn ?? label}`;
}

/**
 * Node switches on CRL_CHECK_ALL as soon as any CRL is loaded: every CA in a client's chain
 * needs a current CRL signed by itself, and one stale CRL refuses every client of that CA.
 */
export function checkCrls(input: CrlInput): CrlResult {
  const { crls, cas, file, now } = input;
  const mode = input.mode ?? 'chain';
  const problems: Problem[] = [];
  const issuers = new Map<CrlRef, CertRef>();

  for (const ref of crls) {
    const issuerName = crlIssuerName(ref.crl);
    const named = cas.filter((c) => sameName(subjectName(c.cert), issuerName));
    const issuer = named.find((c) => crlSignedBy(ref.crl, c.cert));
    if (issuer === undefined) {
      problems.push(problem('error', 'CG_CRL_ISSUER', named.length > 0
        ? `${crlText(ref)} does not verify with the key of ${certText(named[0] as CertRef, ref.file)}, the client CA of that name (a different key: an old or re-created CA?)`
        : `${crlText(ref)} is issued by ${crlIssuerLabel(ref.crl)}, which is not in tls.client_ca (${cas.map((c) => displayName(c.cert.subject)).join(', ') || 'empty'})`,
      { file: ref.file }));
      continue;
    }
    issuers.set(ref, issuer);
    const usage = keyUsageOf(issuer.cert);
    if (usage !== undefined && !usage.cRLSign) {
      problems.push(problem('error', 'CG_CRL_ISSUER',
        `${crlText(ref)} is signed by ${certText(issuer, ref.file)}, whose keyUsage lacks cRLSign; OpenSSL rejects the CRL and every client of that CA`,
        { file: ref.file, hint: 'reissue the CA certificate with keyUsage cRLSign, or sign CRLs with a CA that has it' }));
    }
  }

  // Freshness. With several CRLs of one CA, OpenSSL picks a current one; only a CA whose every
  // CRL is stale locks its clients out.
  const byCa = new Map<CertRef, CrlRef[]>();
  for (const [crl, ca] of issuers) byCa.set(ca, [...(byCa.get(ca) ?? []), crl]);
  const current = (r: CrlRef): boolean =>
    r.crl.thisUpdate <= now && (r.crl.nextUpdate === undefined || r.crl.nextUpdate >= now);
  for (const ref of crls) {
    const ca = issuers.get(ref);
    const fallback = ca !== undefined && (byCa.get(ca) ?? []).some((o) => o !== ref && current(o));
    const severity = fallback || mode === 'leaf' ? 'warning' : 'error';
    const consequence = fallback
      ? 'another CRL of that CA is current, so it is ignored'
      : mode === 'chain'
        ? 'Node refuses every client of that CA'
        : input.stale === 'allow'
          ? 'tls.crl_stale: allow keeps using it'
          : 'certgate refuses that CA\'s clients (crl_expired) until a fresh CRL arrives';
    const next = ref.crl.nextUpdate;
    if (next !== undefined && next < now) {
      problems.push(problem(severity, 'CG_CRL_EXPIRED',
        `${crlText(ref)} expired: its nextUpdate was ${next.toISOString()}; ${consequence} (CRL_HAS_EXPIRED)`, { file: ref.file }));
    } else if (ref.crl.thisUpdate > now) {
      problems.push(problem(severity, 'CG_CRL_NOT_YET_VALID',
        `${crlText(ref)} is not valid yet: its thisUpdate is ${ref.crl.thisUpdate.toISOString()} (now ${now.toISOString()}); ${consequence} (CRL_NOT_YET_VALID)`,
        { file: ref.file }));
    }
  }

  for (const ca of cas) {
    if (mode === 'chain' && !byCa.has(ca) && isCa(ca.cert)) {
      problems.push(problem('error', 'CG_CRL_MISSING_CA',
        `the client CA ${certText(ca, file)} has no CRL in this file; with tls.crl set Node checks every CA of a client's chain, so all its clients would be refused (UNABLE_TO_GET_CRL)`,
        { file, hint: `add the current CRL of ${displayName(ca.cert.subject)} to tls.crl` }));
    }
  }
  return { problems, issuers };
}

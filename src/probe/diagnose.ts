/**
 * The probe's explanations (pure: certificates, names and outcomes in, findings out).
 *
 * - serverChain: does the chain the server sent reach a CA the client trusts? If not, which
 *   certificate is missing (name and key id), or which root the CA file lacks; expiry; the name in
 *   the URL against the certificate's SANs; the serverAuth purpose.
 * - clientVersusCaNames: will the server accept this client certificate, judged by the CA names
 *   its CertificateRequest lists (what `openssl s_client` prints).
 * - outcome: what the verified connection's error or HTTP answer means, in plain words.
 */
import type { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { CODES, problem, type Problem } from '../errors.js';
import { isSelfSigned, issuedBy } from '../x509/certificate.js';
import type { Anchor } from './client-files.js';
import { namesOf, summarize } from './names.js';
import type { Attempt } from './connect.js';
import { refusalHint } from '../answers/refusal-hints.js';
import { REFUSAL_REASONS, type RefusalReason } from '../tls/handshake.js';

const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const OID_ANY_EKU = '2.5.29.37.0';

/** "CN=x,O=y (key id AA:…)" for a certificate that is missing: its name as the child names it. */
function missingText(child: X509Certificate, now: Date): string {
  const s = summarize(child, now);
  return `${s.issuer}${s.authorityKeyId !== undefined ? ` (key id ${s.authorityKeyId})` : ''}`;
}

const subjectOf = (c: X509Certificate): string => namesOf(c).subject;

// ---------------------------------------------------------------------------------------------
// The server's chain

/** The chain a server presented to the probe, and what the client trusts to verify it. */
export interface PresentedChain {
  /** As sent, leaf first. */
  readonly chain: readonly X509Certificate[];
  readonly anchors: readonly Anchor[];
  /** "ca.pem" or the built-in roots phrase. */
  readonly caLabel: string;
  /** The --ca path (for findings' file), absent with the built-in roots. */
  readonly caFile?: string;
  readonly host: string;
  readonly now: Date;
  /** The client certificate and what it sends: to tell "you passed your *client* CA as --ca". */
  readonly clientSent?: readonly X509Certificate[];
}

export interface ServerChainDiagnosis {
  readonly trusted: boolean;
  /** Leaf first up to the anchor (RFC 4514 subjects; the anchor marked "(in ca.pem)"). */
  readonly path: readonly string[];
  readonly problems: Problem[];
}

export function diagnoseServerChain(input: PresentedChain): ServerChainDiagnosis {
  const { chain, anchors, caLabel, now } = input;
  const leaf = chain[0];
  if (leaf === undefined) return { trusted: false, path: [], problems: [] };
  const problems: Problem[] = [...validity(chain, now), ...hostname(leaf, input.host), ...serverPurpose(leaf)];
  const path: string[] = [subjectOf(leaf)];
  const used = new Set<X509Certificate>([leaf]);
  let cur = leaf;
  for (let depth = 0; depth < 16; depth++) {
    const own = anchors.find((a) => a.cert.fingerprint256 === cur.fingerprint256);
    if (isSelfSigned(cur)) {
      if (own !== undefined) {
        path[path.length - 1] += ` (in ${own.source})`;
        return { trusted: true, path, problems };
      }
      problems.push(untrustedRoot(cur, cur === leaf, input));
      return { trusted: false, path, problems };
    }
    const anchor = anchors.find((a) => issuedBy(cur, a.cert));
    const sent = anchor === undefined ? chain.find((c) => !used.has(c) && issuedBy(cur, c)) : undefined;
    const next = anchor?.cert ?? sent;
    if (next === undefined) {
      problems.push(missingIssuer(cur, cur === leaf, path, input));
      return { trusted: false, path, problems };
    }
    used.add(next);
    path.push(`${subjectOf(next)}${anchor !== undefined ? ` (in ${anchor.source})` : ''}`);
    if (anchor !== undefined && isSelfSigned(anchor.cert)) return { trusted: true, path, problems };
    cur = next;
  }
  problems.push(problem('error', 'CG_PROBE_SERVER_UNTRUSTED', 'the server chain is longer than 16 certificates or loops'));
  return { trusted: false, path, problems };
}

function validity(chain: readonly X509Certificate[], now: Date): Problem[] {
  const out: Problem[] = [];
  chain.forEach((c, i) => {
    const s = summarize(c, now);
    const what = i === 0 ? `the server certificate ${s.subject}` : `the server's chain certificate ${s.subject}`;
    if (s.daysLeft < 0) {
      out.push(problem('error', 'CG_CERT_EXPIRED', `${what} expired on ${s.notAfter} (clients say: certificate has expired)`,
        { hint: 'nothing to fix on your side: the server\'s operator must renew it (certgate check --config on the server names it)' }));
    } else if (s.notYetValid) {
      out.push(problem('error', 'CG_CERT_NOT_YET_VALID', `${what} is valid only from ${s.notBefore} (clients say: certificate is not yet valid)`,
        { hint: 'check this machine\'s clock; otherwise the server\'s operator installed a certificate too early' }));
    }
  });
  return out;
}

function hostname(leaf: X509Certificate, host: string): Problem[] {
  const ok = isIP(host) === 0 ? leaf.checkHost(host, { subject: 'never' }) !== undefined : leaf.checkIP(host) !== undefined;
  if (ok) return [];
  const san = leaf.subjectAltName;
  return [problem('error', 'CG_PROBE_HOSTNAME',
    `the server certificate ${subjectOf(leaf)} does not name ${host}: it names ${san === undefined || san === '' ? 'no subjectAltName at all (clients ignore the CN)' : san} (clients say: Hostname mismatch / ERR_TLS_CERT_ALTNAME_INVALID / no alternative certificate subject name matches)`,
    { hint: `connect with a name the certificate lists${san !== undefined && san !== '' ? ` (e.g. ${firstName(san)})` : ''}, or have the server's certificate reissued with ${isIP(host) === 0 ? `DNS:${host}` : `IP:${host}`} in its subjectAltName` })];
}

function firstName(san: string): string {
  const m = /(?:DNS|IP Address):([^,\s]+)/.exec(san);
  return m?.[1] ?? san;
}

function serverPurpose(leaf: X509Certificate): Problem[] {
  const eku = leaf.keyUsage; // Node: the extended key usage list
  if (eku === undefined || eku.length === 0 || eku.includes(OID_SERVER_AUTH) || eku.includes(OID_ANY_EKU)) return [];
  return [problem('error', 'CG_CERT_EKU',
    `the server certificate ${subjectOf(leaf)} is not made for servers (extendedKeyUsage lacks serverAuth; clients say: unsupported certificate purpose)`,
    { hint: 'the server\'s operator must use a certificate with extendedKeyUsage serverAuth' })];
}

function caHolds(input: PresentedChain): string {
  if (input.caFile === undefined) return input.caLabel;
  const names = input.anchors.map((a) => subjectOf(a.cert));
  return `${input.caLabel} (which holds ${names.length === 0 ? 'no certificate' : names.join('; ')})`;
}

/** When the CA file holds the issuer of the client's own certificate: the classic two-CA mix-up. */
function clientCaNote(input: PresentedChain): string {
  const leaf = input.clientSent?.[0];
  if (leaf === undefined || input.caFile === undefined) return '';
  const mine = input.anchors.find((a) => issuedBy(leaf, a.cert) || (input.clientSent ?? []).some((c) => c !== leaf && issuedBy(c, a.cert)));
  return mine === undefined ? ''
    : `. ${input.caLabel} holds ${subjectOf(mine.cert)}, the CA of your client certificate: verifying the server needs the CA that issued the server's certificate, which may be a different one`;
}

function untrustedRoot(root: X509Certificate, isLeaf: boolean, input: PresentedChain): Problem {
  const what = isLeaf ? `the server certificate ${subjectOf(root)} is self-signed` : `the server's chain ends at the root ${subjectOf(root)}`;
  return problem('error', 'CG_PROBE_SERVER_UNTRUSTED',
    `${what}, which is not in ${caHolds(input)} (clients say: ${isLeaf ? 'self-signed certificate' : 'self-signed certificate in certificate chain'})${clientCaNote(input)}`,
    { file: input.caFile, hint: `if you trust it, pass that certificate with --ca (curl --cacert, requests verify=FILE, ssl.create_default_context(cafile=FILE)); never verify=False` });
}

function missingIssuer(cur: X509Certificate, isLeaf: boolean, path: readonly string[], input: PresentedChain): Problem {
  const name = namesOf(cur).issuer;
  const impostor = input.anchors.find((a) => subjectOf(a.cert) === name);
  if (impostor !== undefined) {
    return problem('error', 'CG_PROBE_SERVER_UNTRUSTED',
      `${input.caLabel} holds a certificate named ${name}, but it did not sign ${subjectOf(cur)} (a different key: the CA was re-created, or that is an old copy) (clients say: unable to get local issuer certificate)`,
      { file: input.caFile, hint: `get the current certificate of ${name} and pass it with --ca` });
  }
  // Python ssl/requests and curl say "unable to get local issuer certificate"; Node, for a leaf sent alone,
  // "unable to verify the first certificate" (measured with OpenSSL 3.0 and Node 20).
  const clientsSay = `clients say: unable to get local issuer certificate${input.chain.length === 1 ? '; Node: unable to verify the first certificate' : ''}`;
  if (isLeaf) {
    // The server sent nothing that links: most often the bundle lacks the intermediate (seed 004).
    return problem('error', 'CG_PROBE_CHAIN_INCOMPLETE',
      `the server certificate ${subjectOf(cur)} was issued by ${missingText(cur, input.now)}, which the server did not send and ${caHolds(input)} does not hold (${clientsSay})`,
      { hint: `if ${name} is an intermediate CA (the usual case), the server's certificate file lacks it: its operator must add it after the leaf (certgate: tls.bundle, and certgate check reports CG_CHAIN_INCOMPLETE); browsers hide this by fetching it themselves. Until then you can append it to your --ca file. If ${name} is your organisation's root CA, pass it with --ca` });
  }
  return problem('error', 'CG_PROBE_SERVER_UNTRUSTED',
    `the server's chain ${path.join(' <- ')} needs ${missingText(cur, input.now)}, which is not in ${caHolds(input)} (${clientsSay})${clientCaNote(input)}`,
    { file: input.caFile, hint: `pass the certificate of ${name} (the root that issued the server's chain) with --ca; requests: verify=FILE, or REQUESTS_CA_BUNDLE=FILE` });
}

// ---------------------------------------------------------------------------------------------
// The client certificate against the server's CertificateRequest

export interface ClientCaDiagnosis {
  /** The name in the server's list that this client chains to, when one does. */
  readonly acceptedBy?: string;
  /** Certificates an OpenSSL client adds from its CA file to what it sends (see below). */
  readonly completedFrom: readonly X509Certificate[];
  readonly problems: Problem[];
}

/**
 * What an OpenSSL-based client (Node, Python ssl/requests/aiohttp, curl) actually sends: a cert file
 * holding the leaf alone is completed from the CA store it verifies with (OpenSSL's automatic chain
 * building); a cert file with intermediates is sent as it is.
 */
export function effectiveClientChain(sent: readonly X509Certificate[], pool: readonly X509Certificate[]): X509Certificate[] {
  const chain = [...sent];
  if (chain.length !== 1) return chain;
  for (let last = chain[0]; last !== undefined && !isSelfSigned(last) && chain.length < 16;) {
    const up = pool.find((c) => !chain.includes(c) && issuedBy(last as X509Certificate, c));
    if (up === undefined) break;
    chain.push(up);
    last = up;
  }
  return chain;
}

/**
 * `sent`: leaf first, then the rest of the cert file. `pool`: the --ca file's certificates. Severity
 * is "warning": a server may trust more than it lists; the caller raises it when the server refuses.
 */
export function clientVersusCaNames(sent: readonly X509Certificate[], caNames: readonly string[], pool: readonly X509Certificate[], certFile: string | undefined): ClientCaDiagnosis {
  const leaf = sent[0];
  const chain = effectiveClientChain(sent, pool);
  const completedFrom = chain.slice(sent.length);
  if (leaf === undefined || caNames.length === 0) return { completedFrom, problems: [] };
  const names = new Set(caNames);
  for (const c of chain) {
    const { subject, issuer } = namesOf(c);
    if (names.has(issuer)) return { acceptedBy: issuer, completedFrom, problems: [] };
    if (c !== leaf && names.has(subject)) return { acceptedBy: subject, completedFrom, problems: [] };
  }
  const issuer = namesOf(leaf).issuer;
  const listed = caNames.join('; ');
  const lone = chain.length === 1;
  return {
    completedFrom,
    problems: [problem('warning', 'CG_PROBE_CLIENT_CA',
      `your certificate ${subjectOf(leaf)} is issued by ${issuer}; the server accepts client certificates issued by ${listed}, and ${lone ? 'you send your certificate alone' : 'nothing you send links to one of them'}`,
      { file: certFile,
      hint: `use a client certificate from one of those CAs; if ${issuer} is an intermediate below one of them, append its certificate to your cert file (cat client.crt intermediate.crt > client-chain.pem); otherwise the server's operator must trust ${issuer} (certgate: tls.client_ca)` })],
  };
}

/** The client certificate itself: validity and purpose (the server would refuse it). */
export function clientCertificate(leaf: X509Certificate, now: Date, certFile: string | undefined): Problem[] {
  const s = summarize(leaf, now);
  const out: Problem[] = [];
  if (s.daysLeft < 0) {
    out.push(problem('error', 'CG_CERT_EXPIRED', `your client certificate ${s.subject} expired on ${s.notAfter}`, { file: certFile, hint: 'get it renewed by its issuer' }));
  } else if (s.notYetValid) {
    out.push(problem('error', 'CG_CERT_NOT_YET_VALID', `your client certificate ${s.subject} is valid only from ${s.notBefore}`,
      { file: certFile, hint: 'check this machine\'s clock, or wait until that date' }));
  }
  const eku = leaf.keyUsage;
  if (eku !== undefined && eku.length > 0 && !eku.includes(OID_CLIENT_AUTH) && !eku.includes(OID_ANY_EKU)) {
    out.push(problem('error', 'CG_CERT_EKU',
      `your certificate ${s.subject} is not made for client authentication (extendedKeyUsage lacks clientAuth); servers refuse it (unsupported certificate purpose)`,
      { file: certFile, hint: 'get a certificate issued with extendedKeyUsage clientAuth' }));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// What the verified connection's outcome means

/** The server's alerts (as Node names them) after our handshake, in plain words. */
const ALERTS: Readonly<Record<string, string>> = {
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: 'the server requires a client certificate and none was sent (alert certificate_required)',
  ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE: 'the server ended the handshake (alert handshake_failure): a server that asks for client certificates sends this when it got none, or one it cannot use',
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: 'the server does not trust the CA of your client certificate (alert unknown_ca): it was issued by a CA the server does not know, or you did not send the intermediate',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED: 'the server says your client certificate has expired (alert certificate_expired)',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED: 'the server says your client certificate was revoked (alert certificate_revoked)',
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: 'the server rejected your client certificate (alert bad_certificate): wrong purpose, not yet valid, or a bad signature',
  ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE: 'the server rejected your client certificate (alert unsupported_certificate): it lacks extendedKeyUsage clientAuth',
  ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR: 'the server could not verify your handshake signature (alert decrypt_error): the key does not belong to the certificate',
  ERR_SSL_TLSV1_ALERT_ACCESS_DENIED: 'the server denied access (alert access_denied)',
};

/** Node's verification codes for the server certificate (the client refused the server). */
const SERVER_VERIFY = new Set([
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_UNTRUSTED', 'CERT_SIGNATURE_FAILURE',
  'INVALID_PURPOSE', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_REJECTED', 'INVALID_CA',
]);

const CONNECT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);

export interface OutcomeContext {
  /** A client certificate was given and usable. */
  readonly presented: boolean;
  /** Server-side findings already explain a verification failure (do not repeat it generically). */
  readonly serverExplained: boolean;
  readonly host: string;
  readonly port: number;
}

export function outcome(a: Attempt, ctx: OutcomeContext): Problem[] {
  if (a.error !== undefined) return errorOutcome(a, ctx);
  const http = a.http;
  if (http === undefined) return [];
  const body = parseJson(http.body);
  const error = typeof body?.error === 'string' ? body.error : undefined;
  if (http.status === 400 && (error === 'client_certificate_required' || error === 'client_certificate_invalid')) {
    const reason = typeof body?.reason === 'string' && (REFUSAL_REASONS as readonly string[]).includes(body.reason) ? body.reason as RefusalReason : undefined;
    const hint = typeof body?.hint === 'string' ? body.hint : refusalHint(reason ?? (error === 'client_certificate_required' ? 'no_certificate' : 'other'));
    if (error === 'client_certificate_required' && !ctx.presented) {
      return [problem('error', 'CG_PROBE_NO_CLIENT_CERT', `the server (certgate) requires a client certificate and none was given: ${http.status} ${error}${routeOf(body)}`, { hint: 'pass your certificate with --cert (and --key)' })];
    }
    return [problem('error', 'CG_PROBE_REFUSED',
      `the server (certgate) refused your client certificate: ${http.status} ${error}${reason !== undefined ? `, reason ${reason}` : ''}${routeOf(body)}${typeof body?.message === 'string' ? ` ("${body.message}")` : ''}`,
      { hint })];
  }
  if (http.status === 403 && error === 'forbidden') {
    return [problem('error', 'CG_PROBE_REFUSED',
      `the server (certgate) verified your certificate but does not allow it${routeOf(body)}: 403 forbidden${typeof body?.rule === 'string' ? ` (rule: ${body.rule})` : ''}`,
      { hint: 'the route\'s allow list does not name you: send the server\'s operator the subject, SANs and fingerprint shown above' })];
  }
  return [];
}

function routeOf(body: Record<string, unknown> | undefined): string {
  return typeof body?.route === 'string' ? ` on route ${body.route}` : '';
}

function errorOutcome(a: Attempt, ctx: OutcomeContext): Problem[] {
  const { code, message } = a.error ?? { code: '', message: '' };
  if (CONNECT.has(code)) {
    return [problem('error', 'CG_PROBE_CONNECT', `could not reach ${ctx.host}:${ctx.port}: ${code} (${message})`,
      { hint: code === 'ECONNREFUSED' ? 'nothing listens there: check the port, and that the server runs and listens on that address'
        : code === 'ETIMEDOUT' ? 'no answer in time: check firewalls, the address and the port' : 'check the host name and DNS' })];
  }
  if (SERVER_VERIFY.has(code)) {
    if (ctx.serverExplained) return [];
    return [problem('error', code === 'ERR_TLS_CERT_ALTNAME_INVALID' ? 'CG_PROBE_HOSTNAME' : 'CG_PROBE_SERVER_UNTRUSTED',
      `the server certificate did not verify: ${message} (${code})`,
      { hint: code === 'ERR_TLS_CERT_ALTNAME_INVALID' ? CODES.CG_PROBE_HOSTNAME : 'install openssl to see the chain the server sends; pass the CA that issued the server certificate with --ca' })];
  }
  const alert = ALERTS[code];
  if (alert !== undefined) {
    if (code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' && !ctx.presented) {
      return [problem('error', 'CG_PROBE_NO_CLIENT_CERT', alert, { hint: 'pass your certificate with --cert (and --key)' })];
    }
    return [problem('error', 'CG_PROBE_REFUSED', `${alert}; OpenSSL: ${message}`)];
  }
  if (a.handshake && (code === 'ECONNRESET' || code === 'EPIPE')) {
    return [problem('error', 'CG_PROBE_REFUSED',
      `the server closed the connection right after the handshake (${code}): with TLS 1.3 this is how most servers refuse a client certificate${ctx.presented ? '' : ' (you sent none)'}`,
      { hint: ctx.presented ? 'compare your certificate with the CA names the server accepts (above)' : 'pass your certificate with --cert (and --key)' })];
  }
  return [problem('error', 'CG_PROBE_CONNECT', `the connection failed: ${message} (${code})`, { hint: 'see the lines above; run with --json for all details' })];
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, unknown> : undefined;
  } catch {
    return undefined;
  }
}

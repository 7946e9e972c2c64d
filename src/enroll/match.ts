/**
 * Does a CSR ask for exactly what its token allows? Pure: (grant, request) → the list of mismatches,
 * empty when the request may be signed.
 *
 * - Subject: exactly one CN, equal to the token's `cn` (exact, case-sensitive, as `allow.subject_cn`);
 *   at most one OU, equal to the token's `ou`; no other attribute (O, C, emailAddress, … could carry
 *   meaning to some upstream that the token never granted), no multi-valued RDN, text values only.
 * - SANs: every requested URI must match one of the token's `san_uri` entries and every DNS name one of
 *   its `san_dns` entries, with route `allow` semantics (compileAllow: `*`/`**` URI path segments via
 *   globMatch, `*.example.com` DNS wildcards). Asking for fewer SANs than allowed is fine; email, IP and
 *   other kinds are never granted.
 * - Wildcards are patterns of a grant, never values of a certificate: a requested DNS name with a `*`
 *   label, or a URI with a `*`/`**` path segment, is refused whatever the grant says (a token's
 *   `*.example.com` means "one host under example.com", as in a route's allow list, which a wildcard
 *   certificate would not satisfy either). Values reach this check already in their type's syntax
 *   (csr.ts → san.ts: no NUL, control, space or `_` can make a "label").
 */
import { compileAllow } from '../proxy/policy.js';
import type { ClientIdentity } from '../identity/types.js';
import type { CsrRequest } from './csr.js';

export interface Grant {
  readonly cn: string;
  readonly ou?: string;
  readonly san_uri: readonly string[];
  readonly san_dns: readonly string[];
}

/** Human-readable mismatches, each naming the value and what the token allows. */
export function identityMismatches(grant: Grant, csr: Pick<CsrRequest, 'attributes' | 'nonTextAttribute' | 'multiValuedRdn' | 'san'>): string[] {
  const out: string[] = [];
  const cns = csr.attributes.get('CN') ?? [];
  if (cns.length === 0) out.push(`the subject has no CN; this token allows CN ${quote(grant.cn)}`);
  else if (cns.length > 1) out.push(`the subject has ${cns.length} CNs; exactly one is allowed`);
  else if (cns[0] !== grant.cn) out.push(`subject CN ${quote(cns[0]!)} is not allowed; this token allows CN ${quote(grant.cn)}`);
  const ous = csr.attributes.get('OU') ?? [];
  if (ous.length > 1) out.push(`the subject has ${ous.length} OUs; at most one is allowed`);
  else if (ous.length === 1 && ous[0] !== grant.ou) {
    out.push(`subject OU ${quote(ous[0]!)} is not allowed; ${grant.ou === undefined ? 'this token allows no OU' : `this token allows OU ${quote(grant.ou)}`}`);
  }
  for (const attr of csr.attributes.keys()) {
    if (attr !== 'CN' && attr !== 'OU') out.push(`subject attribute ${attr} is not allowed; only CN and OU`);
  }
  if (csr.nonTextAttribute) out.push('the subject holds a value that is not a text string');
  if (csr.multiValuedRdn) out.push('the subject has a multi-valued RDN (e.g. CN=a+OU=b); use one attribute per RDN');
  const uriAllowed = allowedBy({ san_uri: grant.san_uri });
  for (const uri of csr.san.uri) {
    const wildcard = wildcardSan('uri', uri);
    if (wildcard !== undefined) out.push(`${wildcard}, a token's "*" is a pattern for one segment`);
    else if (!uriAllowed({ uri: [uri], dns: [] })) out.push(`SAN URI ${quote(uri)} is not allowed; this token allows ${list(grant.san_uri)}`);
  }
  const dnsAllowed = allowedBy({ san_dns: grant.san_dns });
  for (const dns of csr.san.dns) {
    const wildcard = wildcardSan('dns', dns);
    if (wildcard !== undefined) out.push(`${wildcard}, a token's "*.example.com" grants one host name under example.com`);
    else if (!dnsAllowed({ uri: [], dns: [dns] })) out.push(`SAN DNS ${quote(dns)} is not allowed; this token allows ${list(grant.san_dns)}`);
  }
  for (const other of csr.san.other) out.push(`SAN ${other} is not allowed; only URI and DNS SANs can be requested`);
  return out;
}

/**
 * Why a requested SAN is a wildcard certgate never issues (enrollment and `certs sign` alike), undefined
 * when it is none: a DNS name with a `*`, a URI with a `*`/`**` path segment (a route allow list reads
 * those as patterns, so a certificate carrying one would match names nobody granted it).
 */
export function wildcardSan(kind: 'uri' | 'dns', value: string): string | undefined {
  if (kind === 'dns') return value.includes('*') ? `SAN DNS ${quote(value)} is a wildcard; certgate never issues one` : undefined;
  return isUriWildcard(value) ? `SAN URI ${quote(value)} has a "*" or "**" path segment; certgate never issues a wildcard` : undefined;
}

/** A path segment a route allow list would read as a glob (policy.ts splitUri: everything after the authority). */
function isUriWildcard(uri: string): boolean {
  const sep = uri.indexOf('://');
  const slash = uri.indexOf('/', sep === -1 ? 0 : sep + 3);
  return slash !== -1 && uri.slice(slash + 1).split('/').some((s) => s === '*' || s === '**');
}

/** The route `allow` decision for one SAN, so tokens and routes read patterns the same way. */
function allowedBy(allow: { san_uri?: readonly string[]; san_dns?: readonly string[] }): (san: { uri: string[]; dns: string[] }) => boolean {
  const lists = Object.fromEntries(Object.entries(allow).filter(([, v]) => v.length > 0).map(([k, v]) => [k, [...v]]));
  if (Object.keys(lists).length === 0) return () => false; // nothing granted
  const policy = compileAllow(lists);
  return (san) => policy(sanOnlyIdentity(san)).allowed;
}

function sanOnlyIdentity(san: { uri: string[]; dns: string[] }): ClientIdentity {
  return {
    subject: '', issuer: '', subjectCn: [], subjectOu: [], fingerprint: '', serial: '',
    notBefore: new Date(0), notAfter: new Date(0), san: { ...san, email: [], ip: [] }, der: Buffer.alloc(0), chain: [],
  };
}

function quote(v: string): string {
  return JSON.stringify(v);
}

function list(values: readonly string[]): string {
  return values.length === 0 ? 'none' : values.map(quote).join(', ');
}

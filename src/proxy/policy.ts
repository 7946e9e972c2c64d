/**
 * Per-route client allow-lists, after ghostunnel's --allow-*. Pure. compileAllow() runs once per
 * route at startup and turns the lists into Maps and pre-split globs; a decision is then lookups
 * and short segment compares.
 *
 * - no `allow`: every client the TLS layer let in is allowed, including a client without a
 *   certificate (possible only with tls.client_auth: optional).
 * - `allow` present: a certificate is required, and the client is allowed when ANY value of ANY
 *   listed kind matches. An `allow` with no lists allows nobody (fail closed).
 * - subject_cn, subject_ou, fingerprint_sha256: exact, case-sensitive.
 * - san_dns: case-insensitive; `*.example.com` matches exactly one extra leftmost label
 *   (`a.example.com`, not `example.com`, not `a.b.example.com`). A `*` anywhere else is literal.
 *   A certificate's own wildcard SAN (`*.example.com`) does not satisfy a wildcard entry: it
 *   names no host, and the entry means "one host under example.com".
 * - san_uri: exact, case-sensitive, scheme and authority included (no case folding: SPIFFE IDs
 *   are case-sensitive and a looser compare could only widen access). In the path, a segment
 *   that is exactly `*` matches one segment, `**` zero or more segments; such segments are never
 *   empty, `.` or `..`. `spiffe://example.org/ns/*\/sa/**` matches `.../ns/prod/sa/svc-a` and
 *   `.../ns/prod/sa`. `*` inside a segment (`svc-*`) or in the authority is literal.
 */
import type { AllowConfig } from '../config/types.js';
import type { ClientIdentity } from '../identity/types.js';

export type PolicyDecision =
  | { allowed: true; matched?: string }
  | { allowed: false; error: 'client_certificate_required' | 'forbidden'; rule?: string };

export type Policy = (identity: ClientIdentity | undefined) => PolicyDecision;

export type AllowKind = keyof AllowConfig;

/** Checked in this order (cheapest first), so `matched` is deterministic. */
const KINDS: readonly AllowKind[] = ['fingerprint_sha256', 'subject_cn', 'subject_ou', 'san_dns', 'san_uri'];

type Matcher = (identity: ClientIdentity) => string | undefined;

const ALLOW_ANY: PolicyDecision = Object.freeze({ allowed: true });

export function compileAllow(allow: AllowConfig | undefined): Policy {
  if (allow === undefined) return () => ALLOW_ANY;

  const kinds = KINDS.filter((k) => allow[k] !== undefined);
  // Names the rule kinds for verbose 403 bodies; "none" for an allow with no lists.
  const rule = kinds.length === 0 ? 'none' : kinds.join(',');
  const required: PolicyDecision = Object.freeze({ allowed: false, error: 'client_certificate_required', rule });
  const forbidden: PolicyDecision = Object.freeze({ allowed: false, error: 'forbidden', rule });

  const matchers: Matcher[] = [];
  for (const kind of kinds) {
    const values = allow[kind] ?? [];
    if (values.length === 0) continue;
    switch (kind) {
      case 'fingerprint_sha256': {
        const m = labelMap(kind, values);
        matchers.push((id) => m.get(id.fingerprint));
        break;
      }
      case 'subject_cn': {
        const m = labelMap(kind, values);
        matchers.push((id) => firstHit(id.subjectCn, m));
        break;
      }
      case 'subject_ou': {
        const m = labelMap(kind, values);
        matchers.push((id) => firstHit(id.subjectOu, m));
        break;
      }
      case 'san_dns':
        matchers.push(compileDns(values));
        break;
      case 'san_uri':
        matchers.push(compileUri(values));
        break;
    }
  }

  return (identity) => {
    if (identity === undefined) return required;
    for (const match of matchers) {
      const hit = match(identity);
      if (hit !== undefined) return { allowed: true, matched: hit };
    }
    return forbidden;
  };
}

/**
 * Entries that are valid config but cannot mean what they look like (a `*` that is compared
 * literally), one message each; for config loading to show as warnings.
 */
export function allowProblems(allow: AllowConfig | undefined): string[] {
  const out: string[] = [];
  for (const v of allow?.san_dns ?? []) {
    if (v.includes('*') && dnsWildcardSuffix(v) === undefined) {
      out.push(`san_dns "${v}": "*" is a wildcard only as the whole first label (*.example.com); here it is literal`);
    }
  }
  for (const v of allow?.san_uri ?? []) {
    if (!v.includes('*')) continue;
    const { fixed, segments } = splitUri(v);
    if (fixed.includes('*') || segments.some((s) => s.includes('*') && s !== '*' && s !== '**')) {
      out.push(`san_uri "${v}": "*" and "**" are wildcards only as whole path segments; elsewhere they are literal`);
    }
  }
  return out;
}

function labelMap(kind: AllowKind, values: readonly string[]): Map<string, string> {
  return new Map(values.map((v) => [v, `${kind}:${v}`]));
}

function firstHit(have: readonly string[], allowed: ReadonlyMap<string, string>): string | undefined {
  for (const v of have) {
    const label = allowed.get(v);
    if (label !== undefined) return label;
  }
  return undefined;
}

/** ".example.com" for "*.example.com" (lower-cased); undefined when v is not such a wildcard. */
function dnsWildcardSuffix(v: string): string | undefined {
  if (!v.startsWith('*.') || v.length < 3 || v.indexOf('*', 1) !== -1) return undefined;
  return v.slice(1).toLowerCase();
}

function compileDns(values: readonly string[]): Matcher {
  const exact = new Map<string, string>();
  const wildcards: { suffix: string; label: string }[] = [];
  for (const v of values) {
    const label = `san_dns:${v}`;
    const suffix = dnsWildcardSuffix(v);
    if (suffix === undefined) exact.set(v.toLowerCase(), label);
    else wildcards.push({ suffix, label });
  }
  return (id) => {
    for (const raw of id.san.dns) {
      const name = raw.toLowerCase();
      const hit = exact.get(name);
      if (hit !== undefined) return hit;
      for (const w of wildcards) {
        if (name.length <= w.suffix.length || !name.endsWith(w.suffix)) continue;
        const first = name.slice(0, name.length - w.suffix.length);
        if (!first.includes('.') && !first.includes('*')) return w.label;
      }
    }
    return undefined;
  };
}

interface UriGlob {
  readonly fixed: string;
  readonly segments: readonly string[];
  readonly label: string;
}

/**
 * Splits a URI into the part compared literally (scheme + authority: everything before the first
 * "/" after "://", or before the first "/" when there is no "://") and its path segments.
 * "spiffe://td/a/b" → fixed "spiffe://td", segments ["a","b"]; "spiffe://td" → segments [].
 */
function splitUri(uri: string): { fixed: string; segments: string[] } {
  const sep = uri.indexOf('://');
  const slash = uri.indexOf('/', sep === -1 ? 0 : sep + 3);
  if (slash === -1) return { fixed: uri, segments: [] };
  return { fixed: uri.slice(0, slash), segments: uri.slice(slash + 1).split('/') };
}

function compileUri(values: readonly string[]): Matcher {
  const exact = new Map<string, string>();
  const globs: UriGlob[] = [];
  for (const v of values) {
    const label = `san_uri:${v}`;
    const { fixed, segments } = splitUri(v);
    const isGlob = !fixed.includes('*') && segments.some((s) => s === '*' || s === '**');
    if (isGlob) globs.push({ fixed, segments, label });
    else exact.set(v, label);
  }
  return (id) => {
    for (const uri of id.san.uri) {
      const hit = exact.get(uri);
      if (hit !== undefined) return hit;
      if (globs.length === 0) continue;
      const { fixed, segments } = splitUri(uri);
      for (const g of globs) {
        if (g.fixed === fixed && globMatch(g.segments, segments)) return g.label;
      }
    }
    return undefined;
  };
}

/** A segment a `*` or `**` may stand for. */
function globbable(s: string): boolean {
  return s !== '' && s !== '.' && s !== '..';
}

/**
 * Segment glob match by dynamic programming over (pattern index, value index), from the end:
 * linear in pattern × value length whatever the number of `**` (no backtracking blow-up).
 */
export function globMatch(pattern: readonly string[], value: readonly string[]): boolean {
  const n = value.length;
  // next[j]: pattern[i+1..] matches value[j..]; starts as "empty pattern" row.
  let next = new Uint8Array(n + 1);
  next[n] = 1;
  for (let i = pattern.length - 1; i >= 0; i--) {
    const p = pattern[i] as string;
    const cur = new Uint8Array(n + 1);
    for (let j = n; j >= 0; j--) {
      const v = value[j];
      if (p === '**') {
        cur[j] = next[j] === 1 || (v !== undefined && globbable(v) && cur[j + 1] === 1) ? 1 : 0;
      } else if (v === undefined) {
        cur[j] = 0;
      } else if (p === '*') {
        cur[j] = globbable(v) && next[j + 1] === 1 ? 1 : 0;
      } else {
        cur[j] = p === v && next[j + 1] === 1 ? 1 : 0;
      }
    }
    next = cur;
  }
  return next[0] === 1;
}

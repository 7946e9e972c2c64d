/**
 * A configuration's identity header dialect, compiled once per configuration generation: the preset's
 * headers (presets.ts) plus the opt-in ones, renamed by `headers.names`, and the rules a rename must
 * pass. A rename can never make certgate forge or split a header for the upstream: the new name is an
 * HTTP token, is no header with a meaning of its own to HTTP or to certgate (Host, framing, hop-by-hop,
 * X-Forwarded-*, another identity header), and two headers never share a name. Every name the dialect
 * sends is stripped from clients in every spelling (identity/headers.ts stripClientControlled), whatever
 * headers.pass_through says.
 */
import { ALL_HEADER_NAMES, headerSpecs, type DialectChoice, type HeaderSpec, type Preset, type TlsInfo } from './presets.js';
import type { ClientIdentity } from './types.js';

export type { DialectChoice, Preset, TlsInfo };

export interface DialectOptions extends DialectChoice {
  /** `headers.names`: a sent header's README name (any case) → the name to send instead. */
  readonly names: Readonly<Record<string, string>>;
  /** `headers.pass_through`, folded (config/load.ts). */
  readonly pass_through: readonly string[];
}

export interface HeaderDialect {
  readonly preset: Preset;
  /** Folded (lower-case) names this dialect sends, renamed ones included: always stripped from clients. */
  readonly sent: ReadonlySet<string>;
  readonly passThrough: readonly string[];
  /** Whether the headers need the connection's TLS facts (`headers.tls_info`). */
  readonly tlsInfo: boolean;
  /**
   * The headers for a request on a connection with `identity` (undefined: no certificate, optional
   * mode). Built once per identity — a ClientIdentity belongs to one connection (identity.ts identityOf)
   * and a dialect to one generation — and then shared: frozen, copy it, don't change it.
   */
  headers(identity: ClientIdentity | undefined, tls: TlsInfo | undefined): Readonly<Record<string, string>>;
}

interface Emit {
  readonly key: string;
  readonly spec: HeaderSpec;
}

export function compileDialect(opts: DialectOptions): HeaderDialect {
  const renames = new Map(Object.entries(opts.names).map(([from, to]) => [from.toLowerCase(), to.toLowerCase()] as const));
  const emits: Emit[] = headerSpecs(opts).map((spec) => {
    const own = spec.name.toLowerCase();
    return { key: renames.get(own) ?? own, spec };
  });
  const withoutCertificate = emits.filter((e) => e.spec.withoutCertificate !== undefined);
  const cache = new WeakMap<ClientIdentity, Readonly<Record<string, string>>>();
  // Without a certificate the headers depend on the connection's TLS facts only (one object per connection).
  const anonymous = build(withoutCertificate, (spec) => spec.withoutCertificate!(undefined));
  const anonymousByTls = new WeakMap<TlsInfo, Readonly<Record<string, string>>>();
  return {
    preset: opts.preset,
    sent: new Set(emits.map((e) => e.key)),
    passThrough: opts.pass_through,
    tlsInfo: opts.tls_info,
    headers(identity, tls) {
      if (identity === undefined) {
        if (tls === undefined) return anonymous;
        let headers = anonymousByTls.get(tls);
        if (headers === undefined) {
          headers = build(withoutCertificate, (spec) => spec.withoutCertificate!(tls));
          anonymousByTls.set(tls, headers);
        }
        return headers;
      }
      let headers = cache.get(identity);
      if (headers === undefined) {
        headers = build(emits, (spec) => spec.value(identity, tls));
        cache.set(identity, headers);
      }
      return headers;
    },
  };
}

function build(emits: readonly Emit[], value: (spec: HeaderSpec) => string): Readonly<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of emits) {
    const v = value(e.spec);
    if (v !== '') out[e.key] = v;
  }
  return Object.freeze(out);
}

export interface NameProblem {
  /** The `headers.names` key the problem is about, as written. */
  readonly key: string;
  /** Point at the key (true) or at its value (false). */
  readonly atKey: boolean;
  readonly message: string;
  readonly hint: string;
}

/** Letters, digits and `-` (a subset of RFC 9110 tokens without `_` and `.`, which CGI stacks fold to `-`). */
const NAME = /^[A-Za-z0-9][A-Za-z0-9-]{0,99}$/;

/** Names with a meaning of their own to HTTP, to the upstream's framing, or to certgate. */
const RESERVED_EXACT = new Set([
  'host', 'connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect',
  'forwarded', 'x-real-ip', 'x-request-id', 'authorization', 'cookie', 'via', 'http2-settings',
]);
const RESERVED_PREFIXES = ['content-', 'x-forwarded-', 'proxy-'];
/** certgate's own header families (identity/headers.ts): an upstream reads any name in them as certgate's. */
const OWN_PREFIXES = ['x-client-cert', 'client-cert', 'x-client-tls-'];
const KNOWN = new Map(ALL_HEADER_NAMES.map((n) => [n.toLowerCase(), n] as const));

/**
 * What is wrong with `headers.names` under `choice`; [] = every rename is safe. Checked by config/load.ts
 * (so by `certgate check` and every live reload), each problem at the entry's file:line.
 */
export function namesProblems(choice: DialectChoice, names: Readonly<Record<string, string>>): NameProblem[] {
  const problems: NameProblem[] = [];
  const sentNames = headerSpecs(choice).map((s) => s.name);
  const sent = new Set(sentNames.map((n) => n.toLowerCase()));
  const seenKeys = new Map<string, string>();
  const targets = new Map<string, string>();
  for (const [key, target] of Object.entries(names)) {
    const own = key.toLowerCase();
    const at = (atKey: boolean, message: string, hint: string): void => void problems.push({ key, atKey, message, hint });
    const earlier = seenKeys.get(own);
    if (earlier !== undefined) {
      at(true, `"${key}" is renamed twice (also as "${earlier}"; header names are case-insensitive)`, 'keep one entry for it');
      continue;
    }
    seenKeys.set(own, key);
    if (!KNOWN.has(own)) {
      at(true, `"${key}" is not a header certgate sends`, `use one of the names this config sends: ${sentNames.join(', ')}`);
      continue;
    }
    if (!sent.has(own)) {
      at(true, `"${KNOWN.get(own)}" is not sent with headers.preset: ${choice.preset} and these options`,
        `rename one of the headers this config sends (${sentNames.join(', ')}), or change headers.preset / turn the option on`);
      continue;
    }
    if (typeof target !== 'string' || !NAME.test(target)) {
      at(false, `${JSON.stringify(target)} is not a header name certgate can send`, 'use letters, digits and "-" only (no spaces, ":", "_" or "."), at most 100 characters, e.g. X-Client-Subject');
      continue;
    }
    const to = target.toLowerCase();
    const reserved = RESERVED_EXACT.has(to) || RESERVED_PREFIXES.some((p) => to.startsWith(p));
    if (reserved) {
      at(false, `"${target}" has a meaning of its own to HTTP or to the upstream (Host, Content-*, hop-by-hop, X-Forwarded-*, Forwarded, Authorization, Cookie, X-Request-Id): an identity value there would forge or break it`,
        'choose a name of your own, e.g. X-Client-Subject');
      continue;
    }
    if (to !== own && (KNOWN.has(to) || OWN_PREFIXES.some((p) => to.startsWith(p)))) {
      at(false, `"${target}" is the name of another identity header (certgate's own X-Client-Cert*, Client-Cert*, X-Client-TLS-* or a preset's): the upstream would read one header as another`,
        'choose a name outside those, e.g. X-Client-Subject, or pick the headers.preset that already sends it');
      continue;
    }
    // Two headers on one name (a sent header's own name is refused above unless it is the key's).
    const clash = targets.get(to);
    if (clash !== undefined) {
      at(false, `"${target}" would carry two headers ("${key}" and "${clash}")`, 'give each header its own name');
      continue;
    }
    targets.set(to, key);
  }
  return problems;
}

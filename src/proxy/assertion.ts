/**
 * X-Client-Cert-Assertion on the request path (issue 18): one signature per connection, route, config
 * generation and trust generation, reused until shortly before it expires; never a signature per request.
 *
 * - Connection: the cache is keyed on the connection's ClientIdentity object (proxy/verdict.ts computes it
 *   once per TLS connection), so every stream of an HTTP/2 session shares it, and another connection with
 *   the same certificate signs its own.
 * - Config generation: the signer belongs to one Generation (proxy/generation.ts) and its cache with it; a
 *   live reload (a changed allow list, key, issuer, ttl, audience) builds a new signer with an empty cache.
 * - Trust generation: each entry remembers the trust generation of the verdict it was signed under; a
 *   CA/CRL change re-checks the connection (a revoked client is refused before this step) and re-signs.
 * - Time: an entry is reused while less than REUSE_FRACTION of its lifetime has passed (see freshUntil).
 *
 * jose signs asynchronously (WebCrypto): a miss returns a Promise the pipeline awaits, and requests that
 * miss together on one connection (HTTP/2 streams) share it.
 */
import { SignJWT } from 'jose';
import type { AssertionConfig, RouteConfig } from '../config/types.js';
import { assertionClaims, type AssertionClaims } from '../identity/assertion.js';
import type { ClientIdentity } from '../identity/types.js';
import type { AssertionKeys } from '../tls/assertion-keys.js';

/**
 * An assertion is reused for the first three quarters of its lifetime and replaced after. The quarter left
 * (15 s of the default 60 s) is the margin a token keeps when it reaches the upstream: it covers clock skew
 * between the hosts and a slow hop, so an upstream never sees a token about to expire. A tenth (6 s) would
 * save almost nothing (4 signatures per connection-route per 3 minutes instead of 3.3) for a thinner margin.
 */
export const REUSE_FRACTION = 0.75;

/** Until when (ms since the epoch) an assertion issued at `iat` (seconds) with this lifetime is reused. */
export function freshUntil(iat: number, ttlMs: number): number {
  return iat * 1000 + Math.floor(ttlMs * REUSE_FRACTION);
}

interface Entry {
  readonly trust: number;
  /** ms since the epoch; reused before it. */
  readonly until: number;
  readonly token: string | Promise<string>;
}

/** Whether a cached entry may answer a request now (pure: the cache rules above). */
export function reusable(entry: Pick<Entry, 'trust' | 'until'> | undefined, trust: number, now: number): boolean {
  return entry !== undefined && entry.trust === trust && now < entry.until;
}

export type SignFn = (claims: AssertionClaims, keys: AssertionKeys) => Promise<string>;

/** jose's compact JWS: {alg, kid, typ: JWT} over the claims. */
export const joseSign: SignFn = (claims, keys) =>
  new SignJWT({ ...claims }).setProtectedHeader({ alg: keys.signing.alg, kid: keys.signing.kid, typ: 'JWT' }).sign(keys.signing.key);

export interface AssertionSigner {
  readonly keys: AssertionKeys;
  /**
   * The assertion for a verified request on `route`: a string when this connection has a fresh one, else a
   * Promise of a new one (rejects when signing fails: the request must not be forwarded without it).
   */
  token(identity: ClientIdentity, route: RouteConfig, trust: number, now?: number): string | Promise<string>;
  /** Signatures made so far (tests and the bench count them). */
  readonly signed: number;
}

export function createAssertionSigner(cfg: Pick<AssertionConfig, 'issuer' | 'ttl_ms'>, keys: AssertionKeys, sign: SignFn = joseSign): AssertionSigner {
  // Per connection (its identity object), then per route name.
  const cache = new WeakMap<ClientIdentity, Map<string, Entry>>();
  let signed = 0;
  return {
    keys,
    get signed() {
      return signed;
    },
    token(identity, route, trust, now = Date.now()) {
      let routes = cache.get(identity);
      const hit = routes?.get(route.name);
      if (hit !== undefined && reusable(hit, trust, now)) return hit.token;
      if (routes === undefined) cache.set(identity, routes = new Map());
      const claims = assertionClaims(identity, { issuer: cfg.issuer, audience: route.assertion_audience ?? route.name, now, ttlMs: cfg.ttl_ms });
      signed += 1;
      const entries = routes;
      const entry: Entry = {
        trust, until: freshUntil(claims.iat, cfg.ttl_ms),
        token: sign(claims, keys).then((jws) => {
          // Later requests read the string itself: no Promise on the hot path.
          if (entries.get(route.name) === entry) entries.set(route.name, { ...entry, token: jws });
          return jws;
        }, (err: unknown) => {
          if (entries.get(route.name) === entry) entries.delete(route.name);
          throw err;
        }),
      };
      entries.set(route.name, entry);
      return entry.token;
    },
  };
}

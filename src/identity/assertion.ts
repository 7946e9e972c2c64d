/**
 * The claims of X-Client-Cert-Assertion (issue 18): the verified identity as a JWT an upstream can check
 * without trusting the network between certgate and itself. Pure; signing and caching are the pipeline's
 * (proxy/assertion.ts), the keys tls/assertion-keys.ts's.
 *
 * Times are NumericDate (whole seconds since the epoch, RFC 7519 §2); `exp` is `iat` + ttl. `sub` is the
 * subject DN byte for byte as X-Client-Cert-Subject carries it; `cnf` binds the token to the certificate
 * as RFC 8705 §3.1 does (`x5t#S256`: base64url of the SHA-256 of the DER), and the same thumbprint is a
 * top-level claim for verifiers that do not read `cnf`. SANs are typed, each list as the certificate has it.
 */
import { headerSafeDn } from './presets.js';
import type { ClientIdentity } from './types.js';

export interface AssertionClaims {
  readonly iss: string;
  readonly sub: string;
  readonly aud: string;
  readonly iat: number;
  readonly nbf: number;
  readonly exp: number;
  readonly cnf: { readonly 'x5t#S256': string };
  readonly 'x5t#S256': string;
  readonly sans: { readonly dns: readonly string[]; readonly uri: readonly string[]; readonly email: readonly string[]; readonly ip: readonly string[] };
  /** Uppercase hex, as X-Client-Cert-Serial. */
  readonly serial: string;
  /** The certificate's notAfter, NumericDate. */
  readonly not_after: number;
}

export interface ClaimOptions {
  readonly issuer: string;
  readonly audience: string;
  /** ms since the epoch; iat is its whole second. */
  readonly now: number;
  /** Whole seconds, in ms. */
  readonly ttlMs: number;
}

export function assertionClaims(identity: ClientIdentity, opts: ClaimOptions): AssertionClaims {
  const iat = Math.floor(opts.now / 1000);
  // identity.fingerprint is the SHA-256 of the DER already (hex): re-encoded, not re-hashed.
  const thumbprint = Buffer.from(identity.fingerprint, 'hex').toString('base64url');
  return {
    iss: opts.issuer,
    sub: headerSafeDn(identity.subject),
    aud: opts.audience,
    iat,
    nbf: iat,
    exp: iat + Math.floor(opts.ttlMs / 1000),
    cnf: { 'x5t#S256': thumbprint },
    'x5t#S256': thumbprint,
    sans: { dns: identity.san.dns, uri: identity.san.uri, email: identity.san.email, ip: identity.san.ip },
    serial: identity.serial,
    not_after: Math.floor(identity.notAfter.getTime() / 1000),
  };
}

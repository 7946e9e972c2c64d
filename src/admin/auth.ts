/**
 * `admin.token_file`: when set, every admin path except the probes and the scrape (/healthz, /readyz,
 * /metrics) needs `Authorization: Bearer <token>`. Kubernetes probes hit the pod IP, so the listener
 * may have to leave loopback; the token keeps /clients (who calls, from where) and the status page private.
 *
 * The token is read once at start-up (trailing newline dropped, like passphrase_file). Comparison is in
 * constant time over SHA-256 digests, so neither the content nor the length leaks through timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { CertgateError } from '../errors.js';

/** The JWKS of headers.assertion (issue 18), where verifiers look for it (the OpenID/Pomerium convention). */
export const JWKS_PATH = '/.well-known/jwks.json';

/**
 * Paths that stay open with a token set: orchestrator probes, the Prometheus scrape, and the public keys
 * upstreams verify X-Client-Cert-Assertion with (public by nature: a JWKS holds no secret).
 */
export const PUBLIC_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics', JWKS_PATH]);

/** Shorter tokens are refused at start-up: they can be guessed. */
export const MIN_TOKEN_LENGTH = 16;

export interface AdminToken {
  /** True when `authorization` is `Bearer <the token>`. */
  check(authorization: string | undefined): boolean;
}

export function adminToken(token: string): AdminToken {
  const expected = createHash('sha256').update(token).digest();
  return {
    check(authorization) {
      if (authorization === undefined) return false;
      const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
      if (m === null) return false;
      const got = createHash('sha256').update(m[1] ?? '').digest();
      return timingSafeEqual(got, expected);
    },
  };
}

/** Reads admin.token_file. Throws CertgateError naming the file when it is unreadable, empty or too short. */
export async function loadAdminToken(file: string): Promise<AdminToken> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
    throw new CertgateError('CG_FILE_READ', `admin.token_file ${file}: cannot read it (${code})`, { file, cause: err });
  }
  const token = text.replace(/\r?\n$/, '');
  if (token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) {
    throw new CertgateError('CG_ADMIN_TOKEN', `admin.token_file ${file}: the token must be at least ${MIN_TOKEN_LENGTH} characters without spaces (found ${token.length})`, { file });
  }
  return adminToken(token);
}

/** Whether this request may see `path`. */
export function authorized(token: AdminToken | undefined, path: string, req: IncomingMessage): boolean {
  return token === undefined || PUBLIC_PATHS.has(path) || token.check(req.headers.authorization);
}

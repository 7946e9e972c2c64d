/**
 * `POST /enroll` on the admin listener: a CSR plus a one-time token in, a client certificate out.
 *
 * One request, top to bottom:
 *   1 body ≤ 64 KiB (PEM, or DER as application/pkcs10)            → 413
 *   2 Authorization: Bearer <id>.<secret>: known, right, not expired → 401
 *   3 token not spent (state_file)                                  → 401 token_used
 *   4 CSR parses (once: csr.ts), key is ECDSA P-256/P-384 or RSA ≥ 2048, signature verifies,
 *     extensions well-formed and not duplicated, each SAN in its type's syntax   → 400
 *   5 subject and SANs are what the token allows                    → 403 naming each mismatch
 *   6 exclusive: spent? (re-read) → build the certificate from the checked values (the CSR's key,
 *     the granted CN/OU and requested SANs; certgate's own extensions) → self-check every field and
 *     every SAN of every type (build.ts, issued.ts) → record spent (fsync) → 201 cert + chain
 * A token is spent only by step 6: a refused request leaves it usable, so a client can fix its CSR.
 * Every attempt is logged (token id, never the secret; requested identity; result; on issue, the
 * subject and every SAN the certificate carries) and counted in certgate_enrollments_total{result}.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Counter } from 'prom-client';
import type { EnrollmentConfig } from '../config/types.js';
import { CertgateError } from '../errors.js';
import type { Logger } from '../log.js';
import { buildClientCertificate } from './build.js';
import { readCsr, type CsrRequest } from './csr.js';
import type { Granted } from './issued.js';
import { loadIssuingCa, type EnrollmentSlice, type IssuingCa } from './issuer.js';
import { identityMismatches } from './match.js';
import { checkStateFile, createSpentStore, type SpentStore } from './state.js';
import { authenticate, loadTokens, type Token } from './tokens.js';
import { sendJson, sendText } from '../respond.js';

export const ENROLL_RESULTS = [
  'issued', 'token_missing', 'token_invalid', 'token_expired', 'token_used', 'csr_invalid', 'identity_mismatch',
  'too_large', 'unavailable', 'error',
] as const;
export type EnrollResult = (typeof ENROLL_RESULTS)[number];

/** A CSR is 1-2 KiB (RSA-8192: ~2.5 KiB as PEM); anything near this limit is not one. */
export const MAX_BODY_BYTES = 64 * 1024;
/** An oversized body is read and dropped up to this size so the client sees the 413 (closing on unread data resets it). */
const DRAIN_BYTES = 1024 * 1024;
const DAY_MS = 86_400_000;
const BACKDATE_MS = 5 * 60_000;
const PEM_CHAIN = 'application/pem-certificate-chain';

export interface Enrollment {
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

interface Outcome {
  readonly status: number;
  readonly result: EnrollResult;
  /** A JSON answer's value, or with `contentType` the answer's text (the PEM chain). */
  readonly body: object | string;
  readonly fields: Record<string, unknown>;
  readonly contentType?: string;
  readonly headers?: Record<string, string>;
}

/**
 * Everything enrollment loads and checks from files — the issuing CA (certificate, key, their match, its
 * place in tls.client_ca), the tokens file, the state file — without side effects: `certgate check` and a
 * live reload's validation (app/validate.ts) run it, so a reload applies an enrollment that loads or nothing.
 * Throws CertgateError (file:line + fix) when unusable.
 */
export interface LoadedEnrollment {
  readonly settings: EnrollmentConfig;
  readonly ca: IssuingCa;
  readonly tokens: number;
  readonly spent: number;
}

export async function loadEnrollment(config: EnrollmentSlice): Promise<LoadedEnrollment> {
  const e = config.enrollment;
  const ca = await loadIssuingCa(config);
  const tokens = await loadTokens(e.tokens_file);
  const spent = await checkStateFile(e.state_file, config.file, e.lines.state_file);
  return { settings: e, ca, tokens: tokens.length, spent };
}

/**
 * One spent-token store per state file in this process: an enrollment built by a live reload shares the
 * store (and its exclusive section) of the one before, so a request in flight on the old handler and one on
 * the new cannot both spend a token.
 */
const stores = new Map<string, SpentStore>();

/** Loads and checks the CA, tokens file and state file; throws CertgateError (file:line + fix) when unusable. */
export async function createEnrollment(config: EnrollmentSlice, deps: { counter: Counter<'result'>; log: Logger }): Promise<Enrollment> {
  return enrollmentFrom(await loadEnrollment(config), deps);
}

/** The POST /enroll handler of a loaded enrollment (loadEnrollment). */
export function enrollmentFrom(loaded: LoadedEnrollment, deps: { counter: Counter<'result'>; log: Logger }): Enrollment {
  const { settings: e, ca } = loaded;
  let store = stores.get(e.state_file);
  if (store === undefined) {
    store = createSpentStore(e.state_file);
    stores.set(e.state_file, store);
  }
  const spentStore = store;
  for (const result of ENROLL_RESULTS) deps.counter.inc({ result }, 0);
  deps.log.info({ msg: 'enrollment enabled', ca: ca.subject, tokens: loaded.tokens, spent: loaded.spent, tokens_file: e.tokens_file, max_days: e.max_days });
  return {
    async handle(req, res) {
      if (req.method !== 'POST') {
        reply(res, { status: 405, result: 'error', body: { error: 'method_not_allowed', message: 'POST a CSR to /enroll' }, fields: {}, headers: { allow: 'POST' } });
        return;
      }
      let outcome: Outcome;
      try {
        outcome = await enroll(req, e, ca, spentStore);
      } catch (err) {
        const code = err instanceof CertgateError ? err.code : undefined;
        deps.log.error({ msg: 'enrollment failed', err: (err as Error).message, code });
        outcome = code === 'CG_ENROLL_TOKENS' || code === 'CG_ENROLL_STATE'
          ? refuse(503, 'unavailable', 'enrollment_unavailable', 'enrollment is misconfigured on the server; see its log', {})
          : refuse(500, 'error', 'internal', 'the certificate could not be issued; see the server log', {});
      }
      deps.counter.inc({ result: outcome.result });
      const line = { msg: 'enrollment', result: outcome.result, status: outcome.status, remote_address: req.socket.remoteAddress, ...outcome.fields };
      if (outcome.result === 'issued') deps.log.info(line);
      else deps.log.warn(line);
      reply(res, outcome);
    },
  };
}

async function enroll(req: IncomingMessage, e: EnrollmentConfig, ca: IssuingCa, store: SpentStore): Promise<Outcome> {
  const body = await readBody(req);
  if (body === 'too_large') {
    return { ...refuse(413, 'too_large', 'payload_too_large', `the body is larger than ${MAX_BODY_BYTES} bytes; send one CSR`, {}), headers: { connection: 'close' } };
  }
  const auth = authenticate(req.headers.authorization, await loadTokens(e.tokens_file), new Date());
  if (!auth.ok) {
    const fields = auth.tokenId === undefined ? {} : { token_id: auth.tokenId };
    return { ...refuse(401, auth.reason, 'unauthorized', TOKEN_MESSAGES[auth.reason], fields), headers: { 'www-authenticate': 'Bearer error="invalid_token"' } };
  }
  const token = auth.token;
  if ((await store.read()).has(token.id)) return used(token);
  const parsed = readCsr(body);
  if (!parsed.ok) return refuse(400, 'csr_invalid', 'bad_csr', parsed.message, { token_id: token.id, reason: parsed.reason });
  const csr = parsed.csr;
  const fields = { token_id: token.id, requested: requested(csr), key_type: csr.key };
  const mismatches = identityMismatches(token, csr);
  if (mismatches.length > 0) {
    return refuse(403, 'identity_mismatch', 'forbidden', `the CSR asks for an identity this token does not allow: ${mismatches.join('; ')}`, { ...fields, mismatches });
  }
  return store.exclusive(async () => {
    // Re-read inside the critical section: a racing request may have spent the token since step 3.
    if ((await store.read()).has(token.id)) return used(token);
    const pem = await issue(csr, token, e, ca);
    await store.spend(token.id, { at: new Date().toISOString(), serial: pem.serial, subject: pem.subject });
    return {
      status: 201, result: 'issued', body: pem.cert + ca.chainPem, contentType: PEM_CHAIN,
      fields: { ...fields, serial: pem.serial, subject: pem.subject, san: pem.san, not_after: pem.notAfter.toISOString() },
    };
  });
}

const TOKEN_MESSAGES: Record<'token_missing' | 'token_invalid' | 'token_expired', string> = {
  token_missing: 'send the enrollment token as "Authorization: Bearer <token>"',
  token_invalid: 'the enrollment token is unknown or wrong',
  token_expired: 'the enrollment token has expired; ask for a new one',
};

function used(token: Token): Outcome {
  return { ...refuse(401, 'token_used', 'unauthorized', 'the enrollment token was already used; a token enrolls one certificate', { token_id: token.id }), headers: { 'www-authenticate': 'Bearer error="invalid_token"' } };
}

/**
 * Builds the certificate from the checked values only — the CSR's key, the token's CN (and OU when the
 * CSR asked for it), the requested SANs that match.ts allowed — with certgate's own extensions, and
 * self-checks it against that grant (build.ts). Any difference throws: nothing is sent and the token is
 * not spent.
 */
async function issue(csr: CsrRequest, token: Token, e: EnrollmentConfig, ca: IssuingCa): Promise<{ cert: string; serial: string; subject: string; san: string[]; notAfter: Date }> {
  const notBefore = new Date(Date.now() - BACKDATE_MS);
  const days = Math.min(token.cert_days ?? e.max_days, e.max_days);
  // Never past the CA's own notAfter: a chain is only as valid as its shortest-lived member.
  const notAfter = new Date(Math.min(notBefore.getTime() + days * DAY_MS, ca.notAfter.getTime()));
  const askedOu = (csr.attributes.get('OU') ?? []).length > 0;
  const granted: Granted = {
    subject: [...(askedOu && token.ou !== undefined ? [['OU', token.ou] as const] : []), ['CN', token.cn] as const],
    san: { uri: [...new Set(csr.san.uri)], dns: [...new Set(csr.san.dns)] },
    spki: csr.spki,
  };
  const built = await buildClientCertificate(granted, { issuer: ca.issuer, ca: ca.x509, notBefore, notAfter });
  const id = built.identity;
  if (id.subjectCn.length !== 1 || id.subjectCn[0] !== token.cn) throw new Error('issued certificate failed its self-check: CN is not the granted one');
  return { cert: built.pem, serial: id.serial, subject: id.subject, san: built.san, notAfter: id.notAfter };
}

function requested(csr: CsrRequest): Record<string, unknown> {
  const cut = (v: string): string => (v.length > 200 ? `${v.slice(0, 200)}…` : v);
  // Every requested name (csr.ts caps a request at MAX_SANS), each cut to 200 characters.
  return {
    cn: (csr.attributes.get('CN') ?? []).map(cut), ou: (csr.attributes.get('OU') ?? []).map(cut),
    san_uri: csr.san.uri.map(cut), san_dns: csr.san.dns.map(cut), ...(csr.san.other.length > 0 && { san_other: csr.san.other.map(cut) }),
  };
}

function refuse(status: number, result: EnrollResult, error: string, message: string, fields: Record<string, unknown>): Outcome {
  const mismatches = fields.mismatches;
  const reason = status >= 500 ? undefined : fields.reason ?? result;
  return {
    status, result, fields,
    body: { error, ...(reason !== undefined && { reason }), message, ...(mismatches !== undefined && { mismatches }) },
  };
}

function reply(res: ServerResponse, o: Outcome): void {
  if (o.contentType !== undefined) sendText(res, o.status, o.contentType, String(o.body), o.headers);
  else sendJson(res, o.status, o.body, o.headers);
}

/**
 * The body, or 'too_large' past MAX_BODY_BYTES. An oversized body is still read (and dropped) up to
 * DRAIN_BYTES, so the 413 reaches the client instead of a reset; beyond that the connection is cut.
 */
function readBody(req: IncomingMessage): Promise<Buffer | 'too_large'> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > DRAIN_BYTES) {
    req.resume();
    return Promise.resolve('too_large');
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
      else if (size > DRAIN_BYTES) {
        req.destroy();
        resolve('too_large');
      }
    });
    req.on('end', () => resolve(size > MAX_BODY_BYTES ? 'too_large' : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/**
 * Enrollment tokens: the YAML file `certgate certs token` appends to, and the bearer check.
 *
 *   tokens:
 *     - id: 3f9a1c2b7d4e0a51              # logged; not secret
 *       secret: sha256:<64 hex>           # SHA-256 of the secret; the secret itself is shown once, never stored
 *       expires: 2026-12-01T12:00:00.000Z
 *       cn: svc-b                         # the identity the CSR may ask for (see match.ts)
 *       ou: payments                      # optional
 *       san_uri: [spiffe://example.org/ns/*\/sa/svc-b]   # optional, route `allow` globs
 *       san_dns: [svc-b.internal]         # optional
 *       cert_days: 30                     # optional; never above enrollment.max_days
 *
 * The bearer a client sends is `<id>.<secret>`. A plain SHA-256 is enough here (no slow KDF): the
 * secret is 256 random bits, so there is nothing to brute-force. The hash compare is constant-time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Document, LineCounter, isSeq, parseDocument, type Node } from 'yaml';
import { z } from 'zod';
import { CertgateError } from '../errors.js';
import { writeFileAtomic } from '../pki/dev-pki.js';
import type { Grant } from './match.js';

/** `certgate certs token --dir DIR` writes DIR/enroll-tokens.yaml. */
export const TOKENS_FILE = 'enroll-tokens.yaml';

const ID = /^[A-Za-z0-9_-]{1,64}$/;

const TOKEN_SCHEMA = z.strictObject({
  id: z.string().regex(ID, { message: 'must be 1-64 letters, digits, _ or -' }),
  secret: z.string().regex(/^sha256:[0-9a-f]{64}$/, { message: 'must be sha256:<64 lowercase hex> (certgate certs token writes it)' }),
  expires: z.iso.datetime({ offset: true, message: 'must be an ISO 8601 time, e.g. 2026-12-01T12:00:00Z' }),
  cn: z.string().min(1),
  ou: z.string().min(1).optional(),
  san_uri: z.array(z.string().min(1)).optional(),
  san_dns: z.array(z.string().min(1)).optional(),
  cert_days: z.number().int().positive().max(825).optional(),
  created: z.string().optional(),
  note: z.string().optional(),
});
const FILE_SCHEMA = z.strictObject({ tokens: z.array(TOKEN_SCHEMA).nullable().default([]) });

export interface Token extends Grant {
  readonly id: string;
  /** The 32-byte SHA-256 of the secret. */
  readonly secretHash: Buffer;
  readonly expires: Date;
  readonly cert_days?: number;
}

export type TokenEntry = z.output<typeof TOKEN_SCHEMA>;

/** Parses a tokens file. Throws CG_ENROLL_TOKENS naming file:line for the first problem. */
export function parseTokens(source: string, file: string): Token[] {
  const lc = new LineCounter();
  const doc = parseDocument(source, { lineCounter: lc, uniqueKeys: true, prettyErrors: false });
  const fail = (message: string, offset: number | undefined): never => {
    throw new CertgateError('CG_ENROLL_TOKENS', message, { file, ...(offset !== undefined && { line: lc.linePos(offset).line }) });
  };
  if (doc.errors.length > 0) fail(`not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`, doc.errors[0]!.pos[0]);
  const parsed = FILE_SCHEMA.safeParse(doc.toJS() ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const at = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
    fail(`${at.join('.') || '(top level)'}: ${issue.message}`, offsetOf(doc, at));
  }
  const seen = new Set<string>();
  return (parsed.data?.tokens ?? []).map((t, i) => {
    if (seen.has(t.id)) fail(`tokens.${i}.id: token id "${t.id}" is used twice`, offsetOf(doc, ['tokens', i, 'id']));
    seen.add(t.id);
    return {
      id: t.id, secretHash: Buffer.from(t.secret.slice('sha256:'.length), 'hex'), expires: new Date(t.expires),
      cn: t.cn, san_uri: t.san_uri ?? [], san_dns: t.san_dns ?? [],
      ...(t.ou !== undefined && { ou: t.ou }), ...(t.cert_days !== undefined && { cert_days: t.cert_days }),
    };
  });
}

/** The nearest existing node's offset along `at`. */
function offsetOf(doc: Document, at: readonly (string | number)[]): number | undefined {
  for (let n = at.length; n >= 0; n--) {
    const node = doc.getIn(at.slice(0, n), true) as Node | undefined;
    if (node?.range) return node.range[0];
  }
  return undefined;
}

/** Reads the tokens file; a missing file holds no tokens (everything is refused). */
export async function loadTokens(file: string): Promise<Token[]> {
  let source: string;
  try {
    source = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return [];
    throw new CertgateError('CG_ENROLL_TOKENS', `cannot read ${file}: ${code ?? String(err)}`, { file, cause: err });
  }
  return parseTokens(source, file);
}

export type AuthResult =
  | { readonly ok: true; readonly token: Token }
  | { readonly ok: false; readonly reason: 'token_missing' | 'token_invalid' | 'token_expired'; readonly tokenId?: string };

const BEARER = /^Bearer[ \t]+([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{16,128})[ \t]*$/i;
const NO_HASH = Buffer.alloc(32);

/** The token an `Authorization: Bearer <id>.<secret>` header names, if the secret is right and it has not expired. */
export function authenticate(header: string | undefined, tokens: readonly Token[], now: Date): AuthResult {
  if (header === undefined || header === '') return { ok: false, reason: 'token_missing' };
  const m = BEARER.exec(header);
  if (m === null) return { ok: false, reason: 'token_invalid' };
  const [, id, secret] = m as unknown as [string, string, string];
  const token = tokens.find((t) => t.id === id);
  // Compare even for an unknown id, so the answer takes the same time either way.
  const equal = timingSafeEqual(sha256(secret), token?.secretHash ?? NO_HASH);
  if (token === undefined || !equal) return { ok: false, reason: 'token_invalid', tokenId: id };
  if (token.expires.getTime() <= now.getTime()) return { ok: false, reason: 'token_expired', tokenId: id };
  return { ok: true, token };
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export interface NewToken {
  readonly cn: string;
  readonly ou?: string;
  readonly sanUri?: readonly string[];
  readonly sanDns?: readonly string[];
  /** Token lifetime in days. */
  readonly days: number;
  readonly certDays?: number;
}

/** A fresh token: the bearer (shown once) and the entry to store (hash only). */
export function createToken(opts: NewToken, now = new Date()): { bearer: string; entry: TokenEntry } {
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const entry: TokenEntry = {
    id, secret: `sha256:${sha256(secret).toString('hex')}`,
    expires: new Date(now.getTime() + opts.days * 86_400_000).toISOString(),
    cn: opts.cn,
    ...(opts.ou !== undefined && { ou: opts.ou }),
    ...(opts.sanUri !== undefined && opts.sanUri.length > 0 && { san_uri: [...opts.sanUri] }),
    ...(opts.sanDns !== undefined && opts.sanDns.length > 0 && { san_dns: [...opts.sanDns] }),
    ...(opts.certDays !== undefined && { cert_days: opts.certDays }),
    created: now.toISOString(),
  };
  return { bearer: `${id}.${secret}`, entry };
}

const HEADER = ' certgate enrollment tokens (certgate certs token appends here). Secrets are stored as SHA-256 hashes.';

/**
 * Appends `entry` to the tokens file (created 0600 with its folder when missing), keeping comments and
 * every existing entry; written to a temporary file and renamed. The existing file must be valid.
 */
export async function appendToken(file: string, entry: TokenEntry): Promise<void> {
  let source = '';
  try {
    source = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new CertgateError('CG_ENROLL_TOKENS', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { file, cause: err });
    }
  }
  parseTokens(source, file);
  let doc: Document;
  if (source.trim() === '') {
    doc = new Document({ tokens: [] });
    doc.commentBefore = HEADER;
  } else {
    doc = parseDocument(source);
  }
  const list = doc.get('tokens', true);
  if (isSeq(list)) list.add(doc.createNode(entry));
  else doc.set('tokens', [entry]);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, doc.toString(), 0o600);
}
